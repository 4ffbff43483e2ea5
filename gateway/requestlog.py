"""Per request: a request id, the access log, and a client that left mid-request.

* The request id is the ``X-Request-ID`` header when it is 1–64 characters of ``A–Z a–z 0–9 . _ : -``,
  else a new random one. It is echoed in the response's ``X-Request-ID`` and set in
  :data:`gateway.logs.REQUEST_ID` while the request is handled, so every log line about the request
  carries it.
* With ``[server] access_log = true``, one INFO line per request on ``dvcgw.access``: the method,
  the route template (``/v1/dossiers/{MaHoSo}``, never the raw path, which holds the dossier code),
  the status, the duration and the calling agency's code when its key was valid.
* A client that closes the connection before its request is read is a normal event: one INFO line
  (status 499 in the access log, as nginx writes it), not an error with a traceback.
* Every request counts on ``dvcgw_http_requests_total{route, method, status}``: the same route
  template (``unmatched`` when no route matched, so a scan of random paths adds one series, not
  one per path), the method (``other`` beyond the usual seven), the status class (499 is 4xx; a
  request cancelled at shutdown is 5xx).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.auth import AGENCY
from gateway.logs import REQUEST_ID, new_request_id
from monitoring.metrics import Metrics

HEADER = "X-Request-ID"
REQUEST_ID_KEY = web.RequestKey("request_id", str)
CLIENT_CLOSED = 499  # nginx's "client closed request": no answer was sent

_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

log = logging.getLogger("dvcgw.http")
access = logging.getLogger("dvcgw.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_id_for(request: web.Request) -> str:
    """The client's ``X-Request-ID`` if it is short and safe to log as is, else a new one."""
    given = request.headers.get(HEADER, "")
    return given if _SAFE_ID.fullmatch(given) else new_request_id()


def matched_route(request: web.Request) -> str | None:
    """The matched route's template (``/v1/dossiers/{MaHoSo}``), or None when nothing matched."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def route_template(request: web.Request) -> str:
    """The matched route's template, or ``-`` when nothing matched (the access log's form)."""
    return matched_route(request) or "-"


def client_gone(request: web.Request) -> bool:
    """True once the client's connection is closed (it left before the answer)."""
    transport = request.transport
    return transport is None or transport.is_closing()


def request_context(*, access_log: bool, metrics: Metrics | None = None) -> Middleware:
    """The outermost middleware: sets the request id, notes a client that left, writes the access line
    and counts the request."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request_id_for(request)
        request[REQUEST_ID_KEY] = rid
        token = REQUEST_ID.set(rid)
        started = time.perf_counter()
        status: int | str = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = "cancelled"  # shutdown_grace ran out
            raise
        except Exception:
            if not client_gone(request):
                raise
            status = CLIENT_CLOSED
            log.info("client closed the connection before its request was read", extra={
                "route": route_template(request), "peer": request.remote,
                "_dvcgw_repeat": ("closed", request.remote)})
            return web.Response(status=CLIENT_CLOSED)  # never sent: aiohttp drops it quietly
        finally:
            if access_log:
                _access(request, status, time.perf_counter() - started)
            if metrics is not None:
                metrics.http_request(matched_route(request), request.method, status if isinstance(status, int) else 500)
            REQUEST_ID.reset(token)

    return middleware


def _access(request: web.Request, status: int | str, seconds: float) -> None:
    agency = request.get(AGENCY)  # set by the route's authentication, when the agency's key was valid
    access.info("request", extra={
        "method": request.method, "route": route_template(request), "status": status,
        "duration_ms": round(seconds * 1000, 1), "agency": agency.code if agency else None})


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer, errors included, carries the request's id."""
    rid = request.get(REQUEST_ID_KEY)
    if rid is not None:
        response.headers[HEADER] = rid
