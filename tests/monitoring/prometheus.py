"""A real Prometheus (Debian's /usr/bin/prometheus) for tests: its own config, port and TSDB under
the test's tmp_path, queried through its HTTP API. Everything stays on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.daemon import free_port

BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"
JOB = "dvc-gateway"  # the job name monitoring/prometheus/alerts.yml expects


class Prometheus:
    def __init__(self, url: str, http: aiohttp.ClientSession, log: Path) -> None:
        self.url, self.http, self.log = url, http, log

    async def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; the ``data`` of a successful answer."""
        async with self.http.get(f"{self.url}/api/v1/{path}", params=params) as r:
            body = await r.json()
        assert body.get("status") == "success", (path, params, body)
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query at the current time (POST, so long expressions are fine)."""
        async with self.http.post(f"{self.url}/api/v1/query", data={"query": expr}) as r:
            body = await r.json()
        assert body.get("status") == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def label_values(self, label: str, selector: str) -> list[str]:
        values: list[str] = await self.api(f"label/{label}/values", **{"match[]": selector})
        return values


async def poll(check: Callable[[], Awaitable[bool]], deadline: float, interval: float = 0.25) -> bool:
    """Calls ``check`` until it is true or ``deadline`` (monotonic) passes; whether it became true."""
    while True:
        if await check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


def write_config(path: Path, targets: list[str], rule_files: list[Path], interval: str = "1s") -> Path:
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": targets}]}],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@asynccontextmanager
async def running_prometheus(tmp: Path, targets: list[str], rule_files: list[Path],
                             timeout: float = 30.0) -> AsyncIterator[Prometheus]:
    """Starts Prometheus scraping ``targets`` every second, waits for /-/ready, stops it after."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = write_config(tmp / "prometheus.yml", targets, rule_files)
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            BINARY, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={tmp / 'tsdb'}", "--log.level=warn",
            stdout=out, stderr=out, env={k: v for k, v in os.environ.items() if not k.startswith("DVCGW_")})
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async def ready() -> bool:
                if proc.returncode is not None:
                    raise RuntimeError(f"prometheus exited: {log.read_text()[-2000:]}")
                try:
                    async with http.get(f"{url}/-/ready") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            if not await poll(ready, time.monotonic() + timeout, 0.1):
                raise TimeoutError(f"prometheus not ready: {log.read_text()[-2000:]}")
            yield Prometheus(url, http, log)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
