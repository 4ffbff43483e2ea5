"""Counterpart exchanges recorded at the aiohttp client level, so no adapter records anything: a
session made for a counterpart (``gateway.message_log.counterpart_session``) carries
:func:`audit_trace_config` beside the latency hooks of :mod:`monitoring.tracing`, and
:class:`AuditedResponse` as its response class.

Per request: the request body's chunks are kept as they are sent (``on_request_chunk_sent``).
The answer's body is seen as the adapter itself reads it, whichever way it reads (``read()``,
``json()``, or a bounded ``content.read(n)`` as the payment transport does): the response's
stream is teed, nothing is read ahead or buffered beyond what the adapter asks for. The exchange
is recorded once the body reached its end, or when the response is released or closed (then with
what was read). A request that got no answer (connection error, timeout) is recorded with status
0 and an empty response. The operation is the caller's ``trace_request_ctx={"operation": …}``,
with the method and path: never the query string, which may carry tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.streams import AsyncStreamIterator

from audit.log import AuditLog

Done = Callable[[bytes], None]


class _Tee:
    """A response's body stream, as the adapter reads it, with every byte read also kept."""

    def __init__(self, inner: Any, on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end
        self.parts: list[bytes] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _saw(self, data: bytes) -> bytes:
        if data:
            self.parts.append(data)
        if self._inner.at_eof():
            self._on_end()
        return data

    async def read(self, n: int = -1) -> bytes:
        return self._saw(await self._inner.read(n))

    async def readany(self) -> bytes:
        return self._saw(await self._inner.readany())

    async def readexactly(self, n: int) -> bytes:
        return self._saw(await self._inner.readexactly(n))

    async def readline(self) -> bytes:
        return self._saw(await self._inner.readline())

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        return self._saw(await self._inner.readuntil(separator))

    async def readchunk(self) -> tuple[bytes, bool]:
        data, end = await self._inner.readchunk()
        self._saw(data)
        return data, end

    def iter_chunked(self, n: int) -> AsyncStreamIterator[bytes]:
        return AsyncStreamIterator(lambda: self.read(n))

    def iter_any(self) -> AsyncStreamIterator[bytes]:
        return AsyncStreamIterator(self.readany)

    def __aiter__(self) -> AsyncStreamIterator[bytes]:
        return AsyncStreamIterator(self.readline)


class AuditedResponse(aiohttp.ClientResponse):
    """A ClientResponse whose body stream is teed for the message log (see the module docstring)."""

    _tee: _Tee | None = None
    _done: Done | None = None
    _ended = False
    _reported = False

    async def start(self, connection: Any) -> aiohttp.ClientResponse:
        resp = await super().start(connection)
        self._tee = _Tee(self.content, self._end)
        self.content = self._tee  # type: ignore[assignment]
        return resp

    def when_read(self, done: Done) -> None:
        """Calls ``done(body)`` once the body was read to its end (or the response let go)."""
        self._done = done
        if self._ended:
            self._report()

    def _end(self) -> None:
        self._ended = True
        self._report()

    def _report(self) -> None:
        if self._done is None or self._reported:
            return
        self._reported = True
        self._done(b"".join(self._tee.parts) if self._tee is not None else b"")

    def release(self) -> Any:
        self._ended = True
        self._report()
        return super().release()

    def close(self) -> None:
        self._ended = True
        self._report()
        super().close()


def _operation(ctx: SimpleNamespace, method: str, url: object, default: str) -> str:
    given = ctx.trace_request_ctx
    named = given.get("operation") if isinstance(given, dict) else None
    path = getattr(url, "path", "")
    return f"{named or default} {method} {path}"


def audit_trace_config(audit: AuditLog, counterpart: str, *, operation: str = "request") -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()

    async def on_chunk(session: aiohttp.ClientSession, ctx: SimpleNamespace,
                       params: aiohttp.TraceRequestChunkSentParams) -> None:
        sent = getattr(ctx, "audit_body", None)  # no on_request_start hook: one await less per request
        if sent is None:
            ctx.audit_body = sent = []
        sent.append(params.chunk)

    async def on_end(session: aiohttp.ClientSession, ctx: SimpleNamespace,
                     params: aiohttp.TraceRequestEndParams) -> None:
        resp, sent = params.response, b"".join(getattr(ctx, "audit_body", ()))
        op = _operation(ctx, params.method, params.url, operation)

        def done(body: bytes) -> None:
            audit.record("counterpart", "dvcgw", counterpart, op, resp.status, sent, body)

        if isinstance(resp, AuditedResponse):
            resp.when_read(done)
        else:  # a session without the teed response class: the answer's body is not seen
            done(b"")

    async def on_exception(session: aiohttp.ClientSession, ctx: SimpleNamespace,
                           params: aiohttp.TraceRequestExceptionParams) -> None:
        exc = params.exception
        status = exc.status if isinstance(exc, aiohttp.ClientResponseError) and exc.status else 0
        audit.record("counterpart", "dvcgw", counterpart, _operation(ctx, params.method, params.url, operation),
                     status, b"".join(getattr(ctx, "audit_body", ())), b"")

    config.on_request_chunk_sent.append(on_chunk)
    config.on_request_end.append(on_end)
    config.on_request_exception.append(on_exception)
    config.freeze()
    return config
