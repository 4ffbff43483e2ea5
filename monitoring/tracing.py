"""Counterpart latency hung on aiohttp's ``TraceConfig`` hooks, not timed at call sites.

:func:`trace_config` returns a ``TraceConfig`` for one counterpart's ``ClientSession``
(``portal``, ``tsa``, ``remote_signer``). Every request made through that session, each attempt of
a retried one included, is reported once to a :class:`CallSink`: with the HTTP status when an
answer's head arrived (also when ``raise_for_status`` turned it into an exception), or ``None``
when the request failed without one (connection error, timeout).
The operation is what the caller passes as ``trace_request_ctx={"operation": ...}`` (a portal
service name, ``login``, ``token`` …), else the config's default: label values stay bounded
because only our own code names them.

Two sinks: :class:`~monitoring.metrics.Metrics` (the latency histogram, and 429 answers counted
as throttled) in the serving process, and :class:`CallLog` in a signing worker process, whose
calls travel back with the job's result and are replayed into the parent's metrics.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol

import aiohttp


class CallSink(Protocol):
    def counterpart_call(self, counterpart: str, operation: str, status: int | None, seconds: float) -> None: ...


@dataclass(frozen=True)
class CounterpartCall:
    """One finished outbound request (picklable: it crosses the process pool)."""

    counterpart: str
    operation: str
    status: int | None
    seconds: float


class CallLog:
    """A sink that keeps the calls until :meth:`take` (a signing worker's, per job)."""

    def __init__(self) -> None:
        self._calls: list[CounterpartCall] = []

    def counterpart_call(self, counterpart: str, operation: str, status: int | None, seconds: float) -> None:
        self._calls.append(CounterpartCall(counterpart, operation, status, seconds))

    def take(self) -> tuple[CounterpartCall, ...]:
        """Returns and forgets the calls recorded so far."""
        calls, self._calls = tuple(self._calls), []
        return calls


def trace_config(sink: CallSink, counterpart: str, *, operation: str = "request") -> aiohttp.TraceConfig:
    """A ``TraceConfig`` reporting each request of the session it is attached to to ``sink``."""
    config = aiohttp.TraceConfig()

    def op(ctx: SimpleNamespace) -> str:
        given = ctx.trace_request_ctx
        named = given.get("operation") if isinstance(given, dict) else None
        return str(named) if named else operation

    async def on_start(session: aiohttp.ClientSession, ctx: SimpleNamespace,
                       params: aiohttp.TraceRequestStartParams) -> None:
        ctx.started = asyncio.get_running_loop().time()

    async def on_end(session: aiohttp.ClientSession, ctx: SimpleNamespace,
                     params: aiohttp.TraceRequestEndParams) -> None:
        sink.counterpart_call(counterpart, op(ctx), params.response.status, _elapsed(ctx))

    async def on_exception(session: aiohttp.ClientSession, ctx: SimpleNamespace,
                           params: aiohttp.TraceRequestExceptionParams) -> None:
        exc = params.exception
        if isinstance(exc, asyncio.CancelledError):
            return  # we gave up on it (shutdown, an outer timeout): not the counterpart's doing
        # raise_for_status=True (pyHanko's TSA client) raises for an answer that did arrive
        status = exc.status if isinstance(exc, aiohttp.ClientResponseError) and exc.status else None
        sink.counterpart_call(counterpart, op(ctx), status, _elapsed(ctx))

    config.on_request_start.append(on_start)
    config.on_request_end.append(on_end)
    config.on_request_exception.append(on_exception)
    config.freeze()
    return config


def _elapsed(ctx: Any) -> float:
    started: float = getattr(ctx, "started", 0.0)
    return asyncio.get_running_loop().time() - started if started else 0.0
