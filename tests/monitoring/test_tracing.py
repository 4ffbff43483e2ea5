"""Counterpart latency on aiohttp TraceConfig hooks (monitoring/tracing.py), against a real server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from monitoring.metrics import Metrics
from monitoring.tracing import CallLog, CounterpartCall, trace_config

COUNT = "dvcgw_counterpart_request_duration_seconds_count"


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]))


ENTERED = web.AppKey("entered", asyncio.Event)


async def _slow(request: web.Request) -> web.Response:
    request.app[ENTERED].set()
    await asyncio.sleep(5)
    return web.Response()


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_route("*", "/status/{code}", _status)
    app.router.add_get("/slow", _slow)
    app[ENTERED] = asyncio.Event()
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        yield srv
    finally:
        await srv.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nobody listens once it is closed


async def test_each_request_is_observed_with_its_operation_and_status_class(server: TestServer) -> None:
    """The operation is the caller's trace_request_ctx (else the default); the status is the class;
    a 429 also counts as throttled; a refused connection is ``error``."""
    m = Metrics(CollectorRegistry())
    async with aiohttp.ClientSession(trace_configs=[trace_config(m, "portal")]) as s:
        for code in (200, 204, 503, 429):
            async with s.post(server.make_url(f"/status/{code}"), trace_request_ctx={"operation": "TraCuuHoSo"}):
                pass
        async with s.get(server.make_url("/status/404")):
            pass
        with pytest.raises(aiohttp.ClientConnectionError):
            await s.post(f"http://127.0.0.1:{closed_port()}/", trace_request_ctx={"operation": "login"})

    def n(op: str, status: str) -> float | None:
        return m.sample(COUNT, {"counterpart": "portal", "operation": op, "status": status})

    assert (n("TraCuuHoSo", "2xx"), n("TraCuuHoSo", "5xx"), n("TraCuuHoSo", "4xx")) == (2, 1, 1)
    assert n("request", "4xx") == 1
    assert n("login", "error") == 1
    assert m.sample("dvcgw_throttled_total", {"counterpart": "portal"}) == 1


async def test_a_status_raised_by_raise_for_status_keeps_its_class(server: TestServer) -> None:
    """pyHanko's TSA client posts with raise_for_status=True: the answer came, so it is 5xx, not error."""
    log = CallLog()
    async with aiohttp.ClientSession(trace_configs=[trace_config(log, "tsa", operation="timestamp")]) as s:
        with pytest.raises(aiohttp.ClientResponseError):
            await s.post(server.make_url("/status/503"), raise_for_status=True)
    (call,) = log.take()
    assert (call.counterpart, call.operation, call.status) == ("tsa", "timestamp", 503)
    assert call.seconds >= 0
    assert log.take() == ()


async def test_timeouts_are_errors_and_cancellations_are_not_counted(server: TestServer) -> None:
    """A request timing out is the counterpart's ``error``; one we cancel ourselves is not observed."""
    log = CallLog()
    async with aiohttp.ClientSession(trace_configs=[trace_config(log, "remote_signer")]) as s:
        with pytest.raises(TimeoutError):
            await s.get(server.make_url("/slow"), timeout=aiohttp.ClientTimeout(total=0.05),
                        trace_request_ctx={"operation": "sign_hash"})
        server.app[ENTERED].clear()
        task = asyncio.create_task(s.get(server.make_url("/slow")))
        await server.app[ENTERED].wait()  # the request is at the server: cancel it in flight
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    calls = log.take()
    assert [(c.operation, c.status) for c in calls] == [("sign_hash", None)]
    assert 0.04 <= calls[0].seconds < 5


def test_worker_calls_replay_into_the_metrics() -> None:
    """A signing worker's logged calls, replayed in the serving process, land like traced ones."""
    m = Metrics(CollectorRegistry())
    for call in (CounterpartCall("tsa", "timestamp", 200, 0.2), CounterpartCall("tsa", "timestamp", None, 1.0)):
        m.counterpart_call(call.counterpart, call.operation, call.status, call.seconds)
    assert m.sample(COUNT, {"counterpart": "tsa", "operation": "timestamp", "status": "2xx"}) == 1
    assert m.sample(COUNT, {"counterpart": "tsa", "operation": "timestamp", "status": "error"}) == 1
