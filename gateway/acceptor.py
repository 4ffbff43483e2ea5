"""HTTP acceptor processes: the agency port served by several processes, so accepting uses every
core while the daemon keeps ownership of the store (its children write it beside it).

``[server] acceptors`` (default ``-1``: one per CPU, at most 4, none on a single CPU) sets how
many. With acceptors:

* the daemon binds N listening sockets on the public address (``SO_REUSEPORT``, so the kernel
  spreads connections evenly) and hands one to each of N children (``dvcgw _accept``); the daemon
  itself serves its full application only on a private Unix socket;
* a child parses, authenticates and validates ``PUT /v1/dossiers/{MaHoSo}`` and
  ``POST /v1/dossiers/{MaHoSo}/progress`` itself. On the SQLite store it then checks the
  transition and appends durably itself, inside one transaction (writers take turns through the
  store's write lock, so a check and its append stay atomic whichever process took the request),
  and sends the daemon only its counts and a wake-up for the engine. On Kafka it asks the daemon to
  judge a snapshot's transition (one small call over the private queue socket) and produces the
  event to ``<prefix>.outbound`` itself (:class:`gateway.accept.ProducingAcceptor`), so accepts
  never wait on the daemon's busy event loop for the produce. Either way the child sends 202 only
  once the event is durable;
* every other request (status reads, operator routes, signing, metrics, health) is forwarded
  unchanged to the daemon's private HTTP socket and answered from there.

The daemon supervises the children (restarts one that dies) and stops them first on shutdown, so
in-flight accepts finish before the store closes. If the daemon dies, a child's relay fails: it
answers 503 (never 202) and exits, and Linux's parent-death signal stops it as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web

from config.schema import Settings
from core.errors import QueueUnavailable
from gateway import handlers, runtime
from gateway.accept import LocalAcceptor, ProducingAcceptor, ShippedCounts, Tally
from gateway.appkeys import ACCEPT, CLOCK, LIFECYCLE, QUEUE, SETTINGS, Lifecycle
from gateway.auth import KEYRING, KeyRing
from gateway.children import ChildProcess, die_with_parent
from gateway.front import public_site
from gateway.http_errors import json_error
from gateway.middleware import error_middleware
from queues.api import QueueBackend
from queues.remote import QueueServer, RemoteQueue
from queues.sqlite import SharedSQLiteQueue, SQLiteQueue, inherited_fds, store_options

log = logging.getLogger("dvcgw.acceptor")
MAX_AUTO = 4
# hop-by-hop and framing headers are not forwarded (RFC 9110 §7.6.1); aiohttp sets the framing
_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                  "upgrade", "content-length", "host"})


def acceptor_count(configured: int, cpus: int | None = None) -> int:
    """``configured`` if ≥ 0; else one per CPU, at most :data:`MAX_AUTO`, none on a single CPU."""
    if configured >= 0:
        return configured
    n = cpus if cpus is not None else (os.cpu_count() or 1)
    return 0 if n < 2 else min(n, MAX_AUTO)


class AcceptorPool:
    """The daemon's side: the listening socket, the children, the relay and the private HTTP socket."""

    def __init__(self, settings: Settings, socks: list[socket.socket]) -> None:
        self._settings = settings
        self._socks = socks
        self.count = len(socks)
        self._dir = tempfile.mkdtemp(prefix="dvcgw-http-")
        os.chmod(self._dir, 0o700)
        self.http_path = os.path.join(self._dir, "http.sock")
        self._relay_path = os.path.join(self._dir, "relay.sock")
        self._server: QueueServer | None = None
        self._children: list[ChildProcess] = []

    async def ctx(self, app: web.Application) -> AsyncIterator[None]:
        """A ``cleanup_ctx`` entry, after the queue's: starts the relay and the children; on the way
        out stops the children before anything they rely on closes."""
        accept = app[ACCEPT]
        assert isinstance(accept, LocalAcceptor)
        await self.start(app[QUEUE], accept)
        yield
        await self.stop(self._settings.server.shutdown_grace)

    async def start(self, queue: QueueBackend, accept: LocalAcceptor) -> None:
        observe_produce = getattr(queue, "observe_produce", None)  # Kafka

        async def tally(t: Tally) -> None:  # a child's counts (and, on SQLite, its appends)
            accept.apply(t)
            if t.appended and isinstance(queue, SQLiteQueue):
                queue.notify()
            if observe_produce is not None:
                for seconds in t.produced:
                    observe_produce("outbound", seconds)

        self._server = QueueServer(queue, self._relay_path, self._settings, extra={
            "accept_check": accept.relayed_check,
            "accept_unwind": accept.relayed_unwind,
            "accept_tally": tally,
        })
        await self._server.start()
        # children that append to the SQLite store hold its ownership lock with the daemon
        self._children = [
            ChildProcess(f"HTTP acceptor {i}", [
                sys.executable, "-m", "gateway", "_accept", "--dir", self._dir, "--fd", str(sock.fileno()),
                "--parent", str(os.getpid())], pass_fds=(sock.fileno(), *inherited_fds(queue)), first=0.5, cap=10.0)
            for i, sock in enumerate(self._socks)]
        for child in self._children:
            await child.start()

    async def stop(self, grace: float) -> None:
        """SIGTERM every child: each stops accepting, finishes its requests within ``grace``, exits."""
        await asyncio.gather(*(child.stop(grace) for child in self._children))
        for sock in self._socks:
            sock.close()
        if self._server is not None:
            await self._server.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def listen_sockets(host: str, port: int, count: int, *, reuse_port: bool = True) -> list[socket.socket]:
    """One listening socket per acceptor on the same address (``SO_REUSEPORT``: the kernel spreads
    new connections evenly), all bound here before any child starts; port 0 picks one free port.
    A port already in use is an error, not a shared port: a single socket for the daemon itself is
    bound without ``SO_REUSEPORT`` (``reuse_port``), and before a group is bound a probe socket
    without it checks that nothing listens there yet."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if reuse_port and port:
        _probe(family, host, port)
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(family, socket.SOCK_STREAM)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind((host, port))
            port = s.getsockname()[1]
            s.listen(2048)
    except OSError:
        for s in socks:
            s.close()
        raise
    return socks


def _probe(family: int, host: str, port: int) -> None:
    """Raise OSError (address in use) if anything listens on ``(host, port)``: without this, the
    ``SO_REUSEPORT`` sockets would silently share the port with another daemon of the same user
    (a stale one answering half the requests), where a single socket fails to bind."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))


# ------------------------------------------------------------------ the acceptor process


def run_acceptor(directory: str, fd: int, parent: int) -> int:
    """Entry point of ``dvcgw _accept``: serve the inherited socket until SIGTERM or the daemon goes."""
    from gateway.logs import setup_logging

    die_with_parent(parent)
    setup_logging()
    return asyncio.run(_acceptor(directory, fd))


async def _acceptor(directory: str, fd: int) -> int:
    relay = RemoteQueue(os.path.join(directory, "relay.sock"))
    await relay.start()
    settings: Settings = await relay.call("hello")
    app = create_acceptor_app(settings, relay, os.path.join(directory, "http.sock"))
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=float(settings.server.shutdown_grace))
    await runner.setup()
    site = public_site(runner, socket.socket(fileno=fd), fast=settings.server.fast_accept,
                       grace=float(settings.server.shutdown_grace))
    await site.start()
    runtime.tune()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    lost = asyncio.create_task(relay.lost.wait())
    await asyncio.wait([asyncio.create_task(stop.wait()), lost], return_when=asyncio.FIRST_COMPLETED)
    app[LIFECYCLE].state = "draining"
    if relay.lost.is_set():
        log.error("the daemon is gone; this HTTP acceptor stops")
    await runner.cleanup()
    lost.cancel()
    await relay.close()
    return 1 if relay.lost.is_set() else 0


def create_acceptor_app(settings: Settings, relay: RemoteQueue, daemon_http: str,
                        clock: Callable[[], float] = time.time) -> web.Application:
    """The acceptor's application: the two accept routes here, everything else from the daemon."""
    app = web.Application(client_max_size=settings.server.max_body_bytes, middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[LIFECYCLE] = Lifecycle("ready")
    app[KEYRING] = KeyRing(settings.agencies, settings.operator)
    accept_ctx = _accepting(app, settings, relay)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.UnixConnector(path=daemon_http, limit=64)
        timeout = aiohttp.ClientTimeout(total=max(float(settings.server.shutdown_grace), 60.0))
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as s:
            app[_SESSION] = s
            async with accept_ctx:
                yield

    app.cleanup_ctx.append(ctx)
    app.router.add_put("/v1/dossiers/{MaHoSo}", handlers.put_dossier)
    app.router.add_post("/v1/dossiers/{MaHoSo}/progress", handlers.post_progress)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


_SESSION = web.AppKey("daemon_session", aiohttp.ClientSession)


@contextlib.asynccontextmanager
async def _accepting(app: web.Application, settings: Settings, relay: RemoteQueue) -> AsyncIterator[None]:
    """Accept into the store from this process: on SQLite by appending to the shared store, on
    Kafka by producing to outbound (the daemon judges transitions). Either way counts and engine
    wake-ups go to the daemon."""

    async def send(tally: Tally) -> None:
        await relay.call("accept_tally", tally)

    counts = ShippedCounts(send)
    store: SharedSQLiteQueue | None = None
    producing: Any = None  # queues.kafka_produce.Producing, imported only on Kafka
    warm: asyncio.Task[None] | None = None
    if settings.queue.backend == "sqlite":
        store = SharedSQLiteQueue(settings.storage.path, on_write=counts.appended, **store_options(settings))
        await store.start()
        app[ACCEPT] = LocalAcceptor(store, counts, settings, cache_states=False)
    else:
        from queues.kafka_produce import Appender, Producing, client_options, guard

        k = settings.queue.kafka
        producing = Producing(client_options(k), counts.produced)

        async def connect() -> None:  # in the background: a broker away must not hold up serving (503s)
            with contextlib.suppress(QueueUnavailable):
                await guard("producer start", producing.live(), float(k.request_timeout))

        warm = asyncio.create_task(connect())
        app[ACCEPT] = ProducingAcceptor(relay, Appender(settings, producing), counts)
    counts.start()
    try:
        yield
    finally:
        if store is not None:
            await store.close()
        if warm is not None:
            warm.cancel()
            await asyncio.gather(warm, return_exceptions=True)
        if producing is not None:
            await producing.close()
        await counts.close()


async def forward(request: web.Request) -> web.StreamResponse:
    """Answer ``request`` from the daemon's private socket, headers and body as they come."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
    # the body streams through: the daemon applies its own limits (agency bodies, signing's PDFs)
    body = request.content.iter_chunked(1 << 16) if request.body_exists else None
    session = request.app[_SESSION]
    try:
        async with session.request(request.method, f"http://dvcgw{request.rel_url}", headers=headers,
                                   data=body, allow_redirects=False) as r:
            data = await r.read()
            out = {k: v for k, v in r.headers.items() if k.lower() not in _HOP}
            return web.Response(status=r.status, body=data, headers=out)
    except (aiohttp.ClientError, OSError) as exc:
        log.warning("cannot reach the daemon for %s: %s", request.method, type(exc).__name__)
        return json_error(503, "unavailable", "the gateway is restarting; retry", headers={"Retry-After": "1"})
