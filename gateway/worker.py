"""The delivery worker: the sync engine in a process of its own, so delivery has its own core and
never slows accepting.

The daemon keeps sole ownership of the store; the worker reaches it only through
:class:`queues.remote.RemoteQueue`. The daemon supervises the worker (restarts it if it dies) and
relays its metrics and portal-gate state to ``/metrics`` and ``/readyz``. If the daemon dies, the
worker's queue calls fail and it exits: it can never act on the store on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from typing import Any

import aiohttp
from prometheus_client import generate_latest

from adapters.national_portal.client import PortalClient
from config.schema import Settings
from gateway import runtime
from gateway.children import ChildProcess
from gateway.sync import SyncEngine
from monitoring.metrics import Metrics
from queues.api import QueueBackend
from queues.remote import QueueServer, RemoteQueue

REPORT_EVERY_S = 1.0
_UNKNOWN_GATE: dict[str, Any] = {"circuit": "unknown", "reason": None, "paused": False,
                                 "consecutive_failures": 0, "reopens_at": None}


class InlineEngineView:
    """The engine in the daemon's own loop (tests, ``delivery_process = false``)."""

    def __init__(self, engine: SyncEngine, metrics: Metrics) -> None:
        self._engine, self._metrics = engine, metrics

    def gate(self) -> dict[str, Any]:
        return self._engine.gate.describe()

    def metrics_text(self) -> bytes:
        return generate_latest(self._metrics.engine_registry)


class DeliveryProcess:
    """Starts, supervises and stops the worker process; answers for it in /readyz and /metrics."""

    def __init__(self, settings: Settings, queue: QueueBackend) -> None:
        self._settings = settings
        self._dir = tempfile.mkdtemp(prefix="dvcgw-")
        os.chmod(self._dir, 0o700)
        socket_path = os.path.join(self._dir, "queue.sock")
        self._server = QueueServer(queue, socket_path, settings)
        self._child = ChildProcess("delivery worker", [sys.executable, "-m", "gateway", "_deliver",
                                                       "--socket", socket_path], first=1.0, cap=30.0)

    @property
    def restarts(self) -> int:
        return self._child.restarts

    async def start(self) -> None:
        await self._server.start()
        await self._child.start()

    async def stop(self, grace: float) -> None:
        """SIGTERM the worker: it finishes in-flight portal calls within ``grace``, then exits."""
        await self._child.stop(grace)
        await self._server.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def gate(self) -> dict[str, Any]:
        return dict(self._server.report[1]) if self._server.report else dict(_UNKNOWN_GATE)

    def metrics_text(self) -> bytes:
        return self._server.report[0] if self._server.report else b""


# ------------------------------------------------------------------ the worker process


def run_worker(socket_path: str) -> int:
    """Entry point of ``dvcgw _deliver``: deliver until SIGTERM or until the daemon goes away."""
    from gateway.logs import setup_logging

    setup_logging()
    return asyncio.run(_worker(socket_path))


async def _worker(socket_path: str) -> int:
    queue = RemoteQueue(socket_path)
    await queue.start()
    settings: Settings = await queue.call("hello")
    if settings.queue.delivery_nice:
        os.nice(settings.queue.delivery_nice)
    runtime.tune()
    metrics = Metrics()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    timeout = aiohttp.ClientTimeout(total=settings.portal.timeout)
    connector = aiohttp.TCPConnector(limit=settings.portal.max_concurrency * 2)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        engine = SyncEngine(queue, PortalClient(settings.portal, session, metrics=metrics), settings, metrics)
        tasks = [asyncio.create_task(engine.run()), asyncio.create_task(_report(queue, engine, metrics))]
        lost = asyncio.create_task(queue.lost.wait())
        await asyncio.wait([asyncio.create_task(stop.wait()), lost, *tasks], return_when=asyncio.FIRST_COMPLETED)
        await engine.stop(0.0 if queue.lost.is_set() else settings.server.shutdown_grace)
        for t in [*tasks, lost]:
            t.cancel()
        await asyncio.gather(*tasks, lost, return_exceptions=True)
    await queue.close()
    return 0


async def _report(queue: RemoteQueue, engine: SyncEngine, metrics: Metrics) -> None:
    while True:
        with contextlib.suppress(Exception):  # the daemon gone: the main loop notices and exits
            await queue.call("report", generate_latest(metrics.engine_registry), engine.gate.describe())
        await asyncio.sleep(REPORT_EVERY_S)
