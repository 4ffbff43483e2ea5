"""The delivery worker: the sync engine in a process of its own, at a lower CPU priority
(``[queue] delivery_priority`` and ``delivery_nice``, see :mod:`gateway.priority`), so delivery
never slows accepting.

On the SQLite store the worker claims and records on the store itself
(:class:`queues.sqlite.SharedSQLiteQueue`, taking turns with the other writers through the
store's write lock); the daemon only wakes it when an acceptor or an operator has made new work.
On a queue only the daemon reaches (Kafka) it works through :class:`queues.remote.RemoteQueue`.
The daemon supervises the worker (restarts it if it dies) and relays its metrics and portal-gate
state to ``/metrics`` and ``/readyz``. The worker holds the store's ownership lock with the daemon
and is killed when the daemon dies, so no new daemon can start beside a worker of the old one.
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
from gateway.children import ChildProcess, die_with_parent
from gateway.priority import IdlePriority
from gateway.sync import SyncEngine
from monitoring.metrics import Metrics
from queues.api import EngineQueue, QueueBackend
from queues.remote import QueueServer, RemoteQueue
from queues.sqlite import SharedSQLiteQueue, inherited_fds, store_options

REPORT_EVERY_S = 1.0
WAKE_POLL_S = 30.0  # a waiting wake-up call to the daemon is renewed this often
# while the acceptors are busy, the worker's claims and outcomes gather this long into one
# transaction: each transaction holds the store's write lock, which the acceptors' commits wait
# for (measured at 1,000 accepts/s: p99 21-24 ms without, 16-21 ms with)
WORKER_YIELD_WINDOW_S = 0.005
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
        self._child = ChildProcess("delivery worker", [
            sys.executable, "-m", "gateway", "_deliver", "--socket", socket_path, "--parent", str(os.getpid())],
            pass_fds=inherited_fds(queue), first=1.0, cap=30.0)

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


def run_worker(socket_path: str, parent: int | None = None) -> int:
    """Entry point of ``dvcgw _deliver``: deliver until SIGTERM or until the daemon goes away."""
    from gateway.logs import setup_logging

    if parent is not None:
        # SIGKILL: a worker that writes the store must not outlive its daemon by a moment; what it
        # had in flight is claimed again by the next daemon (delivery is at-least-once)
        die_with_parent(parent, signal.SIGKILL)
    setup_logging()
    return asyncio.run(_worker(socket_path))


async def _worker(socket_path: str) -> int:
    relay = RemoteQueue(socket_path)
    await relay.start()
    settings: Settings = await relay.call("hello")
    if settings.queue.delivery_nice:
        os.nice(settings.queue.delivery_nice)
    runtime.tune()
    priority = IdlePriority() if settings.queue.delivery_priority == "idle" else None
    if priority is not None:
        priority.start()
    try:
        if settings.queue.backend != "sqlite":
            return await _deliver(relay, relay, settings)
        # the delivery bookkeeping needs no fsync of its own: a claim or an outcome lost with the
        # machine's power means one delivery repeated, which the portal absorbs (create-or-update)
        store = SharedSQLiteQueue(settings.storage.path, **{**store_options(settings), "synchronous": "normal"},
                                  yield_window=WORKER_YIELD_WINDOW_S,
                                  while_writing=priority.boost if priority is not None else None)
        await store.start()
        waker = asyncio.create_task(_wakes(relay, store), name="dvcgw-worker-wakes")
        try:
            return await _deliver(relay, store, settings)
        finally:
            waker.cancel()
            await asyncio.gather(waker, return_exceptions=True)
            await store.close()
    finally:
        if priority is not None:
            await priority.stop()
        await relay.close()


async def _wakes(relay: RemoteQueue, store: SharedSQLiteQueue) -> None:
    """Wake the engine whenever the daemon's queue is woken (an acceptor appended, an operator
    replayed or un-parked): one waiting call at a time, so no wake-up is consumed unseen."""
    while True:
        await relay.wait_for_work(WAKE_POLL_S)
        store.notify()


async def _deliver(relay: RemoteQueue, queue: EngineQueue, settings: Settings) -> int:
    metrics = Metrics()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    timeout = aiohttp.ClientTimeout(total=settings.portal.timeout)
    connector = aiohttp.TCPConnector(limit=settings.portal.max_concurrency * 2)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        engine = SyncEngine(queue, PortalClient(settings.portal, session, metrics=metrics), settings, metrics)
        tasks = [asyncio.create_task(engine.run()), asyncio.create_task(_report(relay, engine, metrics))]
        lost = asyncio.create_task(relay.lost.wait())
        await asyncio.wait([asyncio.create_task(stop.wait()), lost, *tasks], return_when=asyncio.FIRST_COMPLETED)
        await engine.stop(0.0 if relay.lost.is_set() else settings.server.shutdown_grace)
        for t in [*tasks, lost]:
            t.cancel()
        await asyncio.gather(*tasks, lost, return_exceptions=True)
    return 0


async def _report(queue: RemoteQueue, engine: SyncEngine, metrics: Metrics) -> None:
    while True:
        with contextlib.suppress(Exception):  # the daemon gone: the main loop notices and exits
            await queue.call("report", generate_latest(metrics.engine_registry), engine.gate.describe())
        await asyncio.sleep(REPORT_EVERY_S)
