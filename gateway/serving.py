"""The daemon's run loop: serve until SIGTERM or SIGINT, then drain and stop.

Built on aiohttp's public ``AppRunner``/``SockSite`` rather than ``web.run_app``, because
``run_app`` closes the listening socket first and runs ``on_shutdown`` after it: ``/readyz``
could never answer "draining" to a load balancer. Here, on the first signal:

1. the lifecycle becomes ``draining`` (``/readyz`` answers 503 ``{"status": "draining"}``) and a
   "draining" line is logged; requests are still served as usual;
2. on SIGTERM, the listener stays open for ``[server] drain_delay`` so that load balancers see the
   503 and stop sending (a second signal cuts the wait short; SIGINT, Ctrl-C at a terminal, skips it);
3. ``runner.cleanup()``: the listener closes, requests in flight get ``[server] shutdown_grace``,
   then the application's clean-up runs (delivery engine, store);
4. repeated log lines still held back are written, then a "stopped" line.

Under systemd (``Type=notify``, deploy/dvcgw.service) ``READY=1`` is sent once the listener accepts
and start-up has finished, and ``STOPPING=1`` at the first signal (gateway.sdnotify).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import time

from aiohttp import web

from config.schema import Settings
from gateway.appkeys import LIFECYCLE
from gateway.logs import flush_repeats
from gateway.sdnotify import notify

LINGER_S = 2.0  # aiohttp's default is 10 s: a stalled client held the connection that long again
log = logging.getLogger("dvcgw.serve")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def serve(app: web.Application, sock: socket.socket, settings: Settings, tls: ssl.SSLContext | None = None) -> None:
    """Run ``app`` on the listening ``sock`` (HTTPS with ``tls``, gateway.tls) until a signal has
    drained and stopped it."""
    asyncio.run(_serve(app, sock, settings, tls))


async def _serve(app: web.Application, sock: socket.socket, settings: Settings, tls: ssl.SSLContext | None) -> None:
    runner = make_runner(app, settings)
    await runner.setup()
    signals: asyncio.Queue[signal.Signals] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    try:
        # a TLS handshake is bounded by asyncio's own 60 s; header_timeout runs once it is done
        await web.SockSite(runner, sock, ssl_context=tls).start()
        _announce(sock, settings, tls is not None)
        notify(f"READY=1\nSTATUS=serving on {settings.server.listen}\nMAINPID={os.getpid()}")
        first = await signals.get()
        await _drain(app, settings, first, signals)
    finally:
        started = time.monotonic()
        await runner.cleanup()
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
        flush_repeats()
        log.info("stopped (%.1fs from closing the listener to closing the store)", time.monotonic() - started)


def make_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    """The runner with the daemon's connection deadlines (the tests serve through it too)."""
    return web.AppRunner(app, access_log=None, shutdown_timeout=float(settings.server.shutdown_grace),
                         # aiohttp's keep-alive timer runs from a connection's start and from each
                         # answer until a complete head arrives: it is the head deadline as well
                         keepalive_timeout=float(settings.server.header_timeout),
                         # after an error answered before the body was read (408, 413, 401), how long
                         # the rest of the body is read and dropped before the connection closes
                         lingering_time=LINGER_S)


def _announce(sock: socket.socket, settings: Settings, tls: bool) -> None:
    host, port = sock.getsockname()[:2]
    log.info("dvcgw ready on %s://%s:%s (queue %s, store %s, portal %s)", "https" if tls else "http", host, port,
             settings.queue.backend, settings.storage.path, settings.portal.adapter_url)


async def _drain(app: web.Application, settings: Settings, sig: signal.Signals,
                 signals: asyncio.Queue[signal.Signals]) -> None:
    app[LIFECYCLE].state = "draining"
    notify(f"STOPPING=1\nSTATUS=draining on {sig.name}")
    delay = float(settings.server.drain_delay) if sig == signal.SIGTERM else 0.0
    log.info("draining on %s: /readyz answers 503; the listener closes in %.1fs; then requests in flight, "
             "and after them portal calls in flight, each have up to %.1fs",
             sig.name, delay, float(settings.server.shutdown_grace))
    if delay > 0:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                again = await signals.get()
                log.info("%s again: closing the listener now", again.name)
