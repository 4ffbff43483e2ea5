"""The delivery worker process: its metrics and gate reach the daemon's endpoints; the daemon
restarts it when it dies; it never outlives the daemon."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp

from tests.daemon import Daemon, free_port, write_config
from tests.harness import AGENCY_KEY, Sandbox
from tests.samples import sample_dossier

M = "000.00.01.H55-240318-00001"


def children(pid: int, role: str = "_deliver") -> list[int]:
    """The daemon's child processes running ``dvcgw <role>`` (the worker, or the HTTP acceptors)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    found = []
    for child in (int(x) for x in text.split()):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if role.encode() in argv:
            found.append(child)
    return found


async def until(cond, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def _delivered(http: aiohttp.ClientSession, url: str, m: str) -> bool:
    async with http.get(f"{url}/v1/dossiers/{m}") as r:
        return r.status == 200 and (await r.json())["delivery"] == "delivered"


async def test_worker_reports_and_is_restarted_and_never_orphaned(sandbox: Sandbox, tmp_path: Path) -> None:
    """Deliveries made by the worker show in /metrics and /readyz; the worker's loop runs in the
    idle scheduling class at nice 10; a killed worker is restarted and delivery goes on; a killed
    daemon takes its worker with it."""
    port = free_port()
    cfg = write_config(tmp_path / "gw.toml", port, sandbox.url, tmp_path / "gw.sqlite3")
    daemon = Daemon(cfg, port, tmp_path / "daemon.log")
    await daemon.start()
    assert daemon.proc is not None
    try:
        async with aiohttp.ClientSession(headers={"X-API-Key": AGENCY_KEY}) as http:
            async with http.put(f"{daemon.url}/v1/dossiers/{M}", json=sample_dossier(M)) as r:
                assert r.status == 202
            await until(lambda: _delivered(http, daemon.url, M))

            async def reported() -> bool:
                async with http.get(f"{daemon.url}/metrics") as r:
                    return 'dvcgw_deliveries_total{kind="snapshot",outcome="ok"} 1.0' in await r.text()
            await until(reported)
            async with http.get(f"{daemon.url}/readyz") as r:
                assert (await r.json())["checks"]["portal"]["circuit"] == "closed"

            (worker,) = children(daemon.proc.pid)
            # its loop (the main thread) runs in the idle class at the configured niceness
            assert os.sched_getscheduler(worker) == os.SCHED_IDLE
            assert os.getpriority(os.PRIO_PROCESS, worker) == 10
            os.kill(worker, signal.SIGKILL)

            async def replaced() -> bool:
                return bool(children(daemon.proc.pid)) and children(daemon.proc.pid) != [worker]  # type: ignore[union-attr]
            await until(replaced)
            m2 = "000.00.01.H55-240318-00002"
            async with http.put(f"{daemon.url}/v1/dossiers/{m2}", json=sample_dossier(m2)) as r:
                assert r.status == 202
            await until(lambda: _delivered(http, daemon.url, m2))
            (worker,) = children(daemon.proc.pid)
    finally:
        await daemon.kill()

    await until(lambda: _gone(worker), timeout=10)


async def _gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" in status.read_text()
