"""Test harness: the real sandbox and the real gateway app, both on 127.0.0.1 port 0.

``Gateway.drain()`` runs the real sync loop until nothing is claimable and nothing is in flight;
``FakeClock`` lets a test move time forward to make retries due, instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from config.loader import build
from config.schema import Settings
from gateway.app import create_app
from gateway.appkeys import ENGINE, METRICS, QUEUE
from monitoring.metrics import Metrics
from tests.fakes.portal import FakeClock, SandboxHandle, running_sandbox

AGENCY_KEY = "agency-key-1"
OTHER_KEY = "agency-key-2"
OPERATOR_KEY = "operator-key"
#: distinctive, so that the suite-wide log scan (tests/security/logscan.py) can look for it
PORTAL_PASSWORD = "portal-password-1"
UNIT = "000.00.01.H55"
OTHER_UNIT = "000.00.02.H55"


class Sandbox(SandboxHandle):
    """The real sandbox (tests/fakes/portal.py) with the admin calls the gateway tests use."""

    async def config(self, **body: Any) -> None:
        await self.admin("config", body)

    async def know(self, *dossiers: dict[str, Any]) -> None:
        await self.admin("dossiers", {"dossiers": list(dossiers)})

    async def calls_for(self, mahoso: str) -> list[dict[str, Any]]:
        return list((await self.record())["dossiers"].get(mahoso, []))


@asynccontextmanager
async def run_sandbox() -> AsyncIterator[Sandbox]:
    async with running_sandbox() as sb:
        yield Sandbox(url=sb.url, app=sb.app, http=sb.http)


def settings_for(tmp_path: Path, portal_url: str, **sections: Any) -> Settings:
    """Settings built through the real loader (so overrides are type-checked like a file). A table's
    keys are merged into the defaults; a list (``agencies=[…]``) replaces them."""
    raw: dict[str, Any] = {
        "storage": {"path": str(tmp_path / "gw.sqlite3"), "synchronous": "normal"},
        "retry": {"delays": ["5s", "30s", "2m"], "give_up_after": "1h", "jitter": 0.0},
        "circuit": {"failure_threshold": 3, "cool_down": "30s"},
        "portal": {"adapter_url": portal_url, "username": "u", "password": PORTAL_PASSWORD, "dstcode": "TEST",
                   "madonvi": "000.00.00.H55", "connect_retries": 0, "timeout": "5s"},
        # deny by default (issue 17): the test agencies are granted every procedure code; signing
        # keys and certifying authorities grant themselves to agencies ([[signing.keys]] agencies)
        "agencies": [
            {"code": UNIT, "api_key": AGENCY_KEY, "units": [UNIT], "procedures": ["*"]},
            {"code": OTHER_UNIT, "api_key": OTHER_KEY, "units": [OTHER_UNIT], "procedures": ["*"]},
        ],
        "operator": {"api_key": OPERATOR_KEY},
        # the request rate is a token bucket on the app's clock, and a FakeClock that no test moves
        # would never refill it: no rate limit here (tests/security sets its own limits)
        "limits": {"rate": 0},
    }
    for name, values in sections.items():
        raw[name] = values if isinstance(values, list) else {**raw.get(name, {}), **values}
    return build(Settings, raw, "")


@dataclass
class Gateway:
    client: TestClient[Any, Any]
    app: web.Application
    clock: FakeClock

    @property
    def engine(self) -> Any:
        return self.app[ENGINE]

    @property
    def queue(self) -> Any:
        return self.app[QUEUE]

    @property
    def metrics(self) -> Metrics:
        return self.app[METRICS]

    async def drain(self) -> None:
        await self.app[ENGINE].drain()

    async def put(self, mahoso: str, body: Any, key: str = AGENCY_KEY, **kw: Any) -> aiohttp.ClientResponse:
        return await self.client.put(f"/v1/dossiers/{mahoso}", json=body, headers={"X-API-Key": key}, **kw)

    async def progress(self, mahoso: str, body: Any, key: str = AGENCY_KEY) -> aiohttp.ClientResponse:
        return await self.client.post(f"/v1/dossiers/{mahoso}/progress", json=body, headers={"X-API-Key": key})

    async def status(self, mahoso: str) -> dict[str, Any]:
        r = await self.client.get(f"/v1/dossiers/{mahoso}", headers={"X-API-Key": AGENCY_KEY})
        assert r.status == 200, await r.text()
        return await r.json()  # type: ignore[no-any-return]

    async def operator(self, method: str, path: str) -> aiohttp.ClientResponse:
        return await self.client.request(method, path, headers={"X-API-Key": OPERATOR_KEY})

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.sample(name, labels)
        return 0.0 if value is None else value


@asynccontextmanager
async def run_gateway(settings: Settings, clock: FakeClock | None = None) -> AsyncIterator[Gateway]:
    clock = clock or FakeClock(start=time.time())
    app = create_app(settings, clock=clock, run_engine=False)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield Gateway(client, app, clock)
    finally:
        await client.close()
