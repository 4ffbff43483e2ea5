"""Counterpart exchanges recorded at the aiohttp client level: one ``TraceConfig`` per counterpart
session, beside the latency one of :mod:`monitoring.tracing`, so no adapter records anything.

Per request: the request body's chunks are hashed as they are sent (``on_request_chunk_sent``);
when the answer's head arrives (``on_request_end``) its body is read once (aiohttp keeps it: the
adapter's own ``read()``/``json()`` gets the same bytes) and the exchange is recorded. A request
that got no answer (connection error, timeout) is recorded with status 0 and an empty response.
The operation is the caller's ``trace_request_ctx={"operation": …}`` (as for the metrics), with
the method and path; never the query string, which may carry tokens.
"""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp

from audit.log import AuditLog


def _operation(ctx: SimpleNamespace, method: str, url: object, default: str) -> str:
    given = ctx.trace_request_ctx
    named = given.get("operation") if isinstance(given, dict) else None
    path = getattr(url, "path", "")
    return f"{named or default} {method} {path}"


def audit_trace_config(audit: AuditLog, counterpart: str, *, operation: str = "request") -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()

    async def on_start(session: aiohttp.ClientSession, ctx: SimpleNamespace,
                       params: aiohttp.TraceRequestStartParams) -> None:
        ctx.audit_body = []

    async def on_chunk(session: aiohttp.ClientSession, ctx: SimpleNamespace,
                       params: aiohttp.TraceRequestChunkSentParams) -> None:
        ctx.audit_body.append(params.chunk)

    async def on_end(session: aiohttp.ClientSession, ctx: SimpleNamespace,
                     params: aiohttp.TraceRequestEndParams) -> None:
        resp = params.response
        try:
            body = await resp.read()
        except (TimeoutError, aiohttp.ClientError):
            body = b""  # the adapter's own read() raises the same error to it
        audit.record("counterpart", "dvcgw", counterpart, _operation(ctx, params.method, params.url, operation),
                     resp.status, b"".join(getattr(ctx, "audit_body", ())), body)

    async def on_exception(session: aiohttp.ClientSession, ctx: SimpleNamespace,
                           params: aiohttp.TraceRequestExceptionParams) -> None:
        exc = params.exception
        status = exc.status if isinstance(exc, aiohttp.ClientResponseError) and exc.status else 0
        audit.record("counterpart", "dvcgw", counterpart, _operation(ctx, params.method, params.url, operation),
                     status, b"".join(getattr(ctx, "audit_body", ())), b"")

    config.on_request_start.append(on_start)
    config.on_request_chunk_sent.append(on_chunk)
    config.on_request_end.append(on_end)
    config.on_request_exception.append(on_exception)
    config.freeze()
    return config
