"""Inbound tests: the real sandbox (portal side), the fake provincial system, the real gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.appkeys import INBOUND, JOBS
from gateway.inbound.puller import InboundPuller
from queues.jobs import Jobs
from tests.fakes.portal import dossier
from tests.fakes.provincial import FakeProvincial, running_provincial
from tests.harness import Gateway, Sandbox, run_gateway, settings_for


def citizen(n: int, state: str = "new", **overrides: Any) -> dict[str, Any]:
    """A dossier a citizen submitted on the portal (invented values), in the textual state ``state``."""
    return dossier(code(n), TrangThaiHoSo=state, KenhThucHien="2", **overrides)


def code(n: int) -> str:
    return f"000.00.01.H55-241206-{n:05d}"


@dataclass
class World:
    gw: Gateway
    sandbox: Sandbox
    prov: FakeProvincial

    @property
    def puller(self) -> InboundPuller:
        return self.gw.app[INBOUND]

    @property
    def jobs(self) -> Jobs:
        return self.gw.app[JOBS]

    async def seed(self, *dossiers: dict[str, Any]) -> None:
        await self.sandbox.admin("inbound", {"dossiers": list(dossiers)})

    async def pull_and_deliver(self) -> Any:
        done = await self.puller.pull()
        await self.jobs.drain()
        return done


Run = Callable[..., AbstractAsyncContextManager[World]]


@pytest.fixture
async def prov() -> AsyncIterator[FakeProvincial]:
    async with running_provincial() as fake:
        yield fake


@pytest.fixture
def run_world(sandbox: Sandbox, prov: FakeProvincial, tmp_path: Path) -> Run:
    """``async with run_world(**inbound settings) as w``: a gateway pulling from the sandbox and
    delivering to the fake provincial system (the same files each time: a second one is a restart)."""

    @asynccontextmanager
    async def run(provincial: dict[str, Any] | None = None, **inbound: Any) -> AsyncIterator[World]:
        target = {"url": prov.url, "auth_header": prov.auth_header, "auth_value": prov.auth_value,
                  **(provincial or {})}
        settings = settings_for(tmp_path, sandbox.url, inbound={"enabled": True, **inbound}, provincial=target,
                                catalogue={"enabled": False})
        async with run_gateway(settings) as gw:
            yield World(gw, sandbox, prov)

    return run
