"""Issue 12: one process and one HTTP stack per instance."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from tests.daemon import Daemon, free_port, write_config
from tests.harness import AGENCY_KEY, UNIT, Sandbox, settings_for
from tests.samples import sample_dossier, sample_progress

M = f"{UNIT}-240316-00001"


@pytest.mark.slow
async def test_the_daemon_is_one_process_on_sqlite(sandbox: Sandbox, tmp_path: Path) -> None:
    """``dvcgw serve`` on the SQLite back-end is one process: it has no child processes, and it is
    the only process on the machine running this configuration; it accepts and delivers on its own."""
    port = free_port()
    cfg = write_config(tmp_path / "gw.toml", port, sandbox.url, tmp_path / "gw.sqlite3")
    daemon = Daemon(cfg, port, tmp_path / "daemon.log")
    await daemon.start()
    try:
        assert daemon.proc is not None
        me = psutil.Process(daemon.proc.pid)
        assert me.children(recursive=True) == []
        ours = [p for p in psutil.process_iter(["cmdline"]) if str(cfg) in (p.info["cmdline"] or [])]
        assert [p.pid for p in ours] == [daemon.proc.pid]
    finally:
        await daemon.stop()


async def test_every_route_passes_the_same_middleware_chain(sandbox: Sandbox, tmp_path: Path) -> None:
    """A middleware added to the application runs on the accept routes too (PUT and progress), as
    on every other route: there is no second HTTP path around the chain."""
    seen: list[tuple[str, str, int]] = []

    @web.middleware
    async def spy(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        response = await handler(request)
        seen.append((request.method, request.match_info.route.resource.canonical, response.status))
        return response

    app = create_app(settings_for(tmp_path, sandbox.url), run_engine=False)
    app.middlewares.append(spy)
    headers = {"X-API-Key": AGENCY_KEY}
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        r = await client.put(f"/v1/dossiers/{M}", json=sample_dossier(M), headers=headers)
        assert r.status == 202, await r.text()
        r = await client.post(f"/v1/dossiers/{M}/progress", json=sample_progress(M, 2), headers=headers)
        assert r.status == 202, await r.text()
        r = await client.get("/healthz")
        assert r.status == 200
    assert seen == [("PUT", "/v1/dossiers/{MaHoSo}", 202), ("POST", "/v1/dossiers/{MaHoSo}/progress", 202),
                    ("GET", "/healthz", 200)]
