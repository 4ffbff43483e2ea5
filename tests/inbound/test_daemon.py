"""The schedules run in ``dvcgw serve`` itself: the catalogue is pulled at start-up and the inbound
puller's rounds deliver a seeded dossier to the provincial system, with no test driving them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.daemon import Daemon, free_port, write_config
from tests.fakes.provincial import FakeProvincial
from tests.harness import AGENCY_KEY, Sandbox
from tests.inbound.conftest import citizen, code


async def until(ok: Callable[[], Awaitable[bool]], what: str, deadline: float = 30.0) -> None:
    """Poll ``ok`` until it holds (the daemon works on its own schedule), or fail naming ``what``."""
    end = time.monotonic() + deadline
    while not await ok():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline} s: {what}")
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_the_daemon_pulls_the_catalogue_and_delivers_inbound_dossiers(
        sandbox: Sandbox, prov: FakeProvincial, tmp_path: Path) -> None:
    """A daemon with [catalogue] and [inbound] on: /v1/procedures serves the sandbox's catalogue
    without anyone asking for a pull, a dossier seeded before start and one seeded after both reach
    the fake provincial system, and SIGTERM stops it cleanly."""
    await sandbox.admin("inbound", {"dossiers": [citizen(1, "new")]})
    port = free_port()
    cfg = write_config(tmp_path / "gw.toml", port, sandbox.url, tmp_path / "gw.sqlite3",
                       catalogue={"enabled": True},
                       inbound={"enabled": True, "interval": "1s"},
                       provincial={"url": prov.url, "auth_header": prov.auth_header, "auth_value": prov.auth_value})
    daemon = Daemon(cfg, port, tmp_path / "daemon.log")
    await daemon.start()
    try:
        async with aiohttp.ClientSession(headers={"X-API-Key": AGENCY_KEY}) as http:
            async def catalogue_held() -> bool:
                async with http.get(f"{daemon.url}/v1/procedures") as r:
                    return r.status == 200 and len((await r.json())["items"]) == 5

            await until(catalogue_held, "the catalogue pulled at start-up")
        await until(lambda: _holds(prov, code(1)), "the dossier seeded before start delivered")
        await sandbox.admin("inbound", {"dossiers": [citizen(2, "processing")]})
        await until(lambda: _holds(prov, code(2)), "the dossier seeded later delivered by a later round")
    finally:
        assert await daemon.kill(15) == 0
    assert prov.stored[code(2)]["TrangThaiHoSo"] == "4"
    logged = daemon.log.read_text()
    assert "level=INFO" in logged and "level=ERROR" not in logged


async def _holds(prov: FakeProvincial, mahoso: str) -> bool:
    return mahoso in prov.stored
