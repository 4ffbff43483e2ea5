"""``make run`` (scripts/run.sh) as a newcomer meets it: the banner tells the truth, the sample
dossier arrives, and a second run refuses plainly without touching the first one's files."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from tests.daemon import free_port
from tests.security.logscan import remember_log_file

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = "000.00.01.H55-240315-00012"


def _env(tmp_path: Path, port: int, sandbox_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVCGW_")}
    env.update(DVCGW_SERVER__LISTEN=f"127.0.0.1:{port}", SANDBOX_PORT=str(sandbox_port),
               DVCGW_RUN_DIR=str(tmp_path / "run"), DVCGW_STORAGE__PATH=str(tmp_path / "store" / "dvcgw.sqlite3"))
    for name in ("dvcgw.log", "sandbox.log"):  # the suite-wide log scan reads them at the end
        remember_log_file(tmp_path / "run" / name)
    return env


async def _banner(proc: asyncio.subprocess.Process, timeout: float = 60) -> str:
    """Everything run.sh printed up to its last banner line."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while not lines or "Ctrl-C stops both." not in lines[-1]:
        line = await asyncio.wait_for(proc.stdout.readline(), max(deadline - time.monotonic(), 0.1))
        if not line:
            raise AssertionError("run.sh ended before its banner: " + "".join(lines))
        lines.append(line.decode())
    return "".join(lines)


async def _sandbox_has(sandbox_port: int, code: str, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            async with http.get(f"http://127.0.0.1:{sandbox_port}/_sandbox/record") as r:
                if code in (await r.json())["dossiers"]:
                    return True
            await asyncio.sleep(0.1)
    return False


async def test_make_run_on_another_port_then_a_second_run_refuses(tmp_path: Path) -> None:
    """With DVCGW_SERVER__LISTEN and SANDBOX_PORT set, the banner names that address and the store
    actually used, and the README's sample dossier reaches the sandbox on that port; a second run
    says one is already running, exits non-zero, and leaves the first one's log byte for byte."""
    port, sandbox_port = free_port(), free_port()
    env = _env(tmp_path, port, sandbox_port)
    first = await asyncio.create_subprocess_exec("bash", str(ROOT / "scripts" / "run.sh"), env=env, cwd=ROOT,
                                                 stdout=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        banner = await _banner(first)
        assert f"http://127.0.0.1:{port}/readyz" in banner and ":8080" not in banner
        assert f"http://127.0.0.1:{port}/status" in banner
        assert str(tmp_path / "store" / "dvcgw.sqlite3") in banner
        async with aiohttp.ClientSession() as http:
            body = (ROOT / "docs" / "examples" / "dossier.json").read_bytes()
            async with http.put(f"http://127.0.0.1:{port}/v1/dossiers/{SAMPLE}", data=body,
                                headers={"X-API-Key": "demo-agency-key", "Content-Type": "application/json"}) as r:
                assert r.status == 202, await r.text()
        assert await _sandbox_has(sandbox_port, SAMPLE)
        log = tmp_path / "run" / "dvcgw.log"
        before = log.read_bytes()
        second = await asyncio.create_subprocess_exec("bash", str(ROOT / "scripts" / "run.sh"), env=env, cwd=ROOT,
                                                      stdout=asyncio.subprocess.PIPE,
                                                      stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode != 0
        assert "already running" in err.decode(), (out, err)
        assert log.read_bytes() == before
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        await asyncio.wait_for(first.wait(), 30)
