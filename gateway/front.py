"""The agency port's HTTP front: the two accept routes served straight off the socket, everything
else handed to aiohttp on the same connection.

An aiohttp ``Application`` spends ~220 µs of CPU per request on this kind of machine before the
handler runs (request object, router, middleware, response object); an ``asyncio.Protocol`` that
parses with httptools (llhttp, the parser of Node.js) spends ~37 µs. On the Kafka backend the
accept path is CPU-bound end to end, so that difference is most of what separates two instances on
two CPUs from 2,000 events/s (docs/decisions.md, "kafka").

What this front serves itself is deliberately narrow: a request whose head is complete and plain:

* ``PUT /v1/dossiers/{MaHoSo}`` or ``POST /v1/dossiers/{MaHoSo}/progress``, HTTP/1.1, the path
  without query, fragment or percent-escapes;
* its body framed by one ``Content-Length`` within ``[server] max_body_bytes``; no
  ``Transfer-Encoding``, ``Expect`` or ``Upgrade``.

Such a request runs the same code as aiohttp's handler (:func:`gateway.handlers.accept_snapshot`,
:func:`gateway.handlers.accept_progress`) and gets the same answers, errors in the house shape
included. Anything else, from the first request on the connection that is not of that shape (a
status read, an operator route, a chunked body, a malformed head, an oversized body), is handed to
aiohttp's own protocol together with every byte not yet consumed, and aiohttp serves the
connection from then on. HTTP/1.1 framing at its edges (limits, ``Expect: 100-continue``, chunked
bodies, error answers for broken heads) is therefore aiohttp's, as before.

Requests on one connection are answered in order (pipelining); a connection idle for longer than
the keep-alive timeout is closed; on shutdown the front stops listening, lets the requests in
flight finish within the grace period and closes the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import re
import socket
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import httptools
import orjson
from aiohttp import web

from gateway import handlers
from gateway.appkeys import SETTINGS
from gateway.auth import presented
from gateway.middleware import problem_answer

# the request line of the only requests served here; everything else goes to aiohttp at once
_PREFIXES = (b"PUT /v1/dossiers/", b"POST /v1/dossiers/")
_PREFIX_MAX = max(len(p) for p in _PREFIXES)
_METHODS = {"snapshot": "PUT", "progress": "POST"}  # each accept route's one method
_PATH = re.compile(rb"/v1/dossiers/([^/?#%{}\s]+)(/progress)?")
_HEAD_MAX = 16 * 1024  # a longer head is not a plain accept: aiohttp applies its own limits
_BACKLOG = 256 * 1024  # pipelined bytes buffered while a request runs before reading pauses
_KEEPALIVE_S = 75.0  # aiohttp's default keep-alive timeout
_PHRASES = {s.value: s.phrase.encode() for s in HTTPStatus}

Serve = Callable[[str, str, dict[bytes, bytes], bytes], Awaitable[tuple[int, bytes, dict[str, str]]]]


class _Head:
    """httptools callbacks for one request head."""

    __slots__ = ("complete", "headers", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key not in self.headers:
            self.headers[key] = value  # the first of a repeated header, as aiohttp's headers.get
        elif key == b"content-length":
            self.headers[key] = b"repeated"  # ambiguous framing: aiohttp refuses it

    def on_headers_complete(self) -> None:
        self.complete = True


class _Date:
    """The ``Date`` header, formatted once a second."""

    def __init__(self) -> None:
        self._at = 0
        self._value = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self._at:
            self._at = now
            self._value = email.utils.formatdate(now, usegmt=True).encode()
        return self._value


class FastFront:
    """The protocol factory for the agency port: one :class:`_Connection` per connection."""

    def __init__(self, server: web.Server, serve: Serve, max_body: int, *,
                 keepalive_s: float = _KEEPALIVE_S) -> None:
        self._server = server  # aiohttp's protocol factory, for the connections handed over
        self.serve = serve
        self.max_body = max_body
        self.keepalive_s = keepalive_s
        self.date = _Date()
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()  # requests in flight, their clients gone or not
        self.handed_over = 0  # connections given to aiohttp (tests, debugging)
        self.closing = False
        self._sweeper: asyncio.TimerHandle | None = None

    def __call__(self) -> _Connection:
        if self._sweeper is None:
            self._sweep()
        return _Connection(self)

    def hand_over(self) -> asyncio.Protocol:
        self.handed_over += 1
        return self._server()

    def _sweep(self) -> None:
        """Close connections idle past the keep-alive timeout (a timer per connection per request
        would cost more than the scan)."""
        cutoff = time.monotonic() - self.keepalive_s
        for conn in list(self.connections):
            if conn.task is None and conn.seen < cutoff:
                conn.close()
        self._sweeper = asyncio.get_running_loop().call_later(min(self.keepalive_s / 2, 10.0), self._sweep)

    async def shutdown(self, grace: float) -> None:
        """Stop reading new requests, let those in flight answer within ``grace``, close the rest."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            if conn.task is None:
                conn.close()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=grace)
        for conn in list(self.connections):
            conn.close()


class _Connection(asyncio.Protocol):
    __slots__ = ("_buf", "_closed", "_front", "_paused", "_transport", "seen", "task")

    def __init__(self, front: FastFront) -> None:
        self._front = front
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self.task: asyncio.Task[None] | None = None
        self.seen = time.monotonic()  # the last bytes received
        self._paused = False
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = t = transport  # type: ignore[assignment]
        sock = t.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._front.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        # a request in flight still finishes (its event may already be durable); its answer is dropped
        self._closed = True
        self._front.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self.seen = time.monotonic()
        if self.task is None:
            self._next()
        elif len(self._buf) > _BACKLOG and not self._paused:
            self._paused = True
            assert self._transport is not None
            self._transport.pause_reading()

    def close(self) -> None:
        if not self._closed and self._transport is not None:
            self._closed = True
            self._transport.close()
        self._front.connections.discard(self)

    def _next(self) -> None:
        """Serve the next complete request in the buffer, or hand the connection to aiohttp."""
        buf = self._buf
        if not buf:
            return
        if self._front.closing:
            self.close()
            return
        if not buf.startswith(_PREFIXES):
            if len(buf) >= _PREFIX_MAX or not any(p.startswith(bytes(buf)) for p in _PREFIXES):
                self._hand_over()
            return
        end = buf.find(b"\r\n\r\n", 0, _HEAD_MAX)
        if end < 0:
            if len(buf) >= _HEAD_MAX:
                self._hand_over()
            return
        head_len = end + 4
        head = _Head()
        parser = httptools.HttpRequestParser(head)
        try:
            parser.feed_data(bytes(buf[:head_len]))
        except httptools.HttpParserError:
            self._hand_over()  # aiohttp answers a malformed head its own way
            return
        route = self._route(parser, head)
        if route is None:
            self._hand_over()
            return
        kind, mahoso, length = route
        if len(buf) < head_len + length:
            return  # the body is still arriving
        body = bytes(buf[head_len:head_len + length])
        del buf[:head_len + length]
        keep_alive = parser.should_keep_alive()
        self.task = task = asyncio.get_running_loop().create_task(
            self._answer(kind, mahoso, head.headers, body, keep_alive))
        tasks = self._front.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _route(self, parser: httptools.HttpRequestParser, head: _Head) -> tuple[str, str, int] | None:
        """(kind, MaHoSo, body length) for a plain accept request; None for anything else."""
        if not head.complete or parser.get_http_version() != "1.1" or parser.should_upgrade():
            return None
        h = head.headers
        if b"transfer-encoding" in h or b"expect" in h or b"upgrade" in h:
            return None
        match = _PATH.fullmatch(head.url)
        if match is None:
            return None
        kind = "progress" if match.group(2) else "snapshot"
        if parser.get_method() != _METHODS[kind].encode():
            return None
        length = h.get(b"content-length")
        if length is None or not length.isdigit() or int(length) > self._front.max_body:
            return None
        try:
            return kind, match.group(1).decode("ascii"), int(length)
        except UnicodeDecodeError:
            return None

    async def _answer(self, kind: str, mahoso: str, headers: dict[bytes, bytes], body: bytes,
                      keep_alive: bool) -> None:
        front = self._front
        try:
            status, payload, extra = await front.serve(kind, mahoso, headers, body)
        except Exception as exc:  # answered in the house shape, as by the middleware
            where = f"/v1/dossiers/{mahoso}" + ("/progress" if kind == "progress" else "")
            status, err, extra = problem_answer(exc, _METHODS[kind], where)
            payload = orjson.dumps(err)
        keep_alive = keep_alive and not front.closing
        if not self._closed and self._transport is not None:
            lines = [b"HTTP/1.1 %d %s\r\n" % (status, _PHRASES.get(status, b"")),
                     b"Content-Type: application/json; charset=utf-8\r\n",
                     b"Content-Length: %d\r\n" % len(payload),
                     b"Date: " + front.date() + b"\r\n"]
            lines.extend(b"%s: %s\r\n" % (k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items())
            if not keep_alive:
                lines.append(b"Connection: close\r\n")
            lines.append(b"\r\n")
            lines.append(payload)
            self._transport.write(b"".join(lines))
        self.task = None
        self.seen = time.monotonic()
        if not keep_alive:
            self.close()
            return
        if self._paused and not self._closed and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        if not self._closed:
            self._next()

    def _hand_over(self) -> None:
        """Give the connection, and every byte not yet consumed, to aiohttp's protocol."""
        transport = self._transport
        assert transport is not None and self.task is None
        self._front.connections.discard(self)
        proto = self._front.hand_over()
        proto.connection_made(transport)
        transport.set_protocol(proto)
        data, self._buf = bytes(self._buf), bytearray()
        if data:
            proto.data_received(data)
        if self._paused:
            self._paused = False
            transport.resume_reading()


def accept_server(app: web.Application) -> Serve:
    """The accept routes' code for the front: the same as aiohttp's handlers, on raw parts."""

    async def serve(kind: str, mahoso: str, headers: dict[bytes, bytes],
                    body: bytes) -> tuple[int, bytes, dict[str, str]]:
        key = presented(_text(headers.get(b"x-api-key")), _text(headers.get(b"authorization")))
        ctype = (_text(headers.get(b"content-type")) or "").partition(";")[0].strip().lower()

        async def read() -> bytes:
            return body

        accept = handlers.accept_progress if kind == "progress" else handlers.accept_snapshot
        answer = await accept(app, mahoso, key, ctype or "application/octet-stream", read)
        return 202, orjson.dumps(answer), {}

    return serve


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


class FrontSite(web.SockSite):
    """A listening socket served by :class:`FastFront` in front of the runner's aiohttp server."""

    def __init__(self, runner: web.AppRunner, sock: socket.socket, *, grace: float, backlog: int = 2048) -> None:
        super().__init__(runner, sock, backlog=backlog)
        self._grace = grace
        self.front: FastFront | None = None

    async def start(self) -> None:
        runner = self._runner
        assert isinstance(runner, web.AppRunner) and runner.server is not None
        app = runner.app
        self.front = FastFront(runner.server, accept_server(app), app[SETTINGS].server.max_body_bytes)
        self._runner._reg_site(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self.front, sock=self._sock, backlog=self._backlog)

    async def stop(self) -> None:
        await super().stop()
        if self.front is not None:
            await self.front.shutdown(self._grace)


def public_site(runner: web.AppRunner, sock: socket.socket, *, fast: bool, grace: float) -> web.BaseSite:
    """The agency port: served by the front (``[server] fast_accept``), else by aiohttp alone."""
    return FrontSite(runner, sock, grace=grace) if fast else web.SockSite(runner, sock, backlog=2048)


def run(app: web.Application, sock: socket.socket | None, path: str | None, *, grace: float, fast: bool,
        announce: Callable[[], None]) -> None:
    """``web.run_app`` with the public socket ``sock`` (:func:`public_site`), or aiohttp alone on a
    private Unix socket ``path`` (the daemon behind acceptor processes). SIGINT and SIGTERM stop it
    gracefully: stop listening, finish what is in flight within ``grace``, run the clean-ups."""

    async def main() -> None:
        runner = web.AppRunner(app, handle_signals=True, access_log=None, shutdown_timeout=grace)
        await runner.setup()
        try:
            site = (public_site(runner, sock, fast=fast, grace=grace) if sock is not None
                    else web.UnixSite(runner, str(path)))
            await site.start()
            announce()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    loop = asyncio.new_event_loop()
    task = loop.create_task(main())
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(task)
        rest = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in rest:
            t.cancel()
        if rest:
            loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
