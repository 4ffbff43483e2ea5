"""Per-agency limits (issue 17): request rate, requests in progress, body size and JSON depth.

``[limits]`` holds the defaults, an agency's ``limits`` table overrides any of them; the body size
is ``[server] max_body_bytes`` unless the agency sets its own (config/schema.py). The rate is a
token bucket per agency on the application's clock: ``burst`` requests may come at once, then
``rate`` per second. Over the rate or over ``max_concurrent`` requests in progress, the answer is
429 with ``Retry-After``; a JSON body over the agency's size is 413, nested deeper than its
``max_json_depth`` 400. Each refusal names the limit (``"limit"`` in the house error body), is
logged (agency code, limit, method, route template) and counted in
``dvcgw_limit_refusals_total``.

The rate and the concurrency are checked by :func:`limits_middleware`, before the handler, for
every request that carries a known agency's credentials; the operator and anonymous requests
(health, metrics, the public verification page) are not limited here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import compress
from typing import Any

from aiohttp import web

from config.schema import AgencySettings, Settings
from core.errors import FieldError
from gateway.appkeys import METRICS, SETTINGS
from gateway.auth import identify, route_template
from gateway.http_errors import HTTPProblem

log = logging.getLogger("dvcgw.access")

Handler = Callable[[web.Request], Any]


@dataclass(frozen=True)
class AgencyLimits:
    """One agency's limits, its overrides over the defaults already applied."""

    rate: float
    burst: int
    max_concurrent: int
    max_json_depth: int
    max_body_bytes: int


def limits_of(settings: Settings, agency: AgencySettings) -> AgencyLimits:
    own, default = agency.limits, settings.limits
    return AgencyLimits(
        rate=default.rate if own.rate is None else own.rate,
        burst=default.burst if own.burst is None else own.burst,
        max_concurrent=default.max_concurrent if own.max_concurrent is None else own.max_concurrent,
        max_json_depth=default.max_json_depth if own.max_json_depth is None else own.max_json_depth,
        max_body_bytes=settings.server.max_body_bytes if own.max_body_bytes is None else own.max_body_bytes)


def largest_body(settings: Settings) -> int:
    """The body size aiohttp must let through (``client_max_size``): the largest of any agency."""
    return max([settings.server.max_body_bytes, *(limits_of(settings, a).max_body_bytes for a in settings.agencies)])


@dataclass
class _Bucket:
    limits: AgencyLimits
    tokens: float
    stamp: float
    in_flight: int = 0


class Limiter:
    """The rate buckets and in-progress counts of every configured agency."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self._clock = clock
        now = clock()
        self._buckets = {a.code: _Bucket(limits_of(settings, a), float(limits_of(settings, a).burst), now)
                         for a in settings.agencies}

    def limits(self, code: str) -> AgencyLimits:
        return self._buckets[code].limits

    def admit(self, code: str) -> tuple[str, int] | None:
        """Take one request in (one token, one in-progress slot); else the limit and the seconds to wait."""
        b = self._buckets[code]
        if b.in_flight >= b.limits.max_concurrent:
            return "concurrency", 1
        if b.limits.rate > 0:
            now = self._clock()
            # a clock that went back (wall time) refills nothing
            b.tokens = min(float(b.limits.burst), b.tokens + max(now - b.stamp, 0.0) * b.limits.rate)
            b.stamp = now
            if b.tokens < 1.0:
                return "rate", max(1, math.ceil((1.0 - b.tokens) / b.limits.rate))
            b.tokens -= 1.0
        b.in_flight += 1
        return None

    def release(self, code: str) -> None:
        self._buckets[code].in_flight -= 1


LIMITER = web.AppKey("limiter", Limiter)

_SAY = {
    "rate": "agency {code} is over its request rate ({rate:g}/s, bursts of {burst}); retry after {wait} s",
    "concurrency": "agency {code} has {max_concurrent} requests in progress already; retry after {wait} s",
}


@web.middleware
async def limits_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """429 with ``Retry-After`` for an agency over its rate or its requests in progress."""
    agency = identify(request).agency
    if agency is None:
        return await handler(request)  # type: ignore[no-any-return]
    limiter = request.app[LIMITER]
    refused = limiter.admit(agency.code)
    if refused is not None:
        kind, wait = refused
        lim = limiter.limits(agency.code)
        message = _SAY[kind].format(code=agency.code, rate=lim.rate, burst=lim.burst,
                                    max_concurrent=lim.max_concurrent, wait=wait)
        raise refuse(request, agency, 429, "too_many_requests", kind, message, headers={"Retry-After": str(wait)})
    try:
        return await handler(request)  # type: ignore[no-any-return]
    finally:
        limiter.release(agency.code)


def refuse(request: web.Request, agency: AgencySettings, status: int, code: str, limit: str, message: str,
           errors: tuple[FieldError, ...] = (), headers: dict[str, str] | None = None) -> HTTPProblem:
    """The refusal for ``limit`` (body: ``"limit"``), logged and counted; no path, no body in the log."""
    log.warning("limited: agency %s over its %s limit on %s %s", agency.code, limit, request.method,
                route_template(request))
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.limit_refused(agency.code, limit)
    return HTTPProblem(status, code, message, errors, headers=headers, extra={"limit": limit})


def body_limits(request: web.Request) -> tuple[AgencySettings | None, int, int]:
    """The agency (if one called) and the JSON body size and depth its request may have; without an
    agency, ``[server] max_body_bytes`` and the ``[limits]`` depth."""
    agency = identify(request).agency
    limiter = request.app.get(LIMITER)
    if agency is None or limiter is None:
        settings = request.app[SETTINGS]
        return None, settings.server.max_body_bytes, settings.limits.max_json_depth
    lim = limiter.limits(agency.code)
    return agency, lim.max_body_bytes, lim.max_json_depth


#: The types a JSON parser gives: the containers are opened, the rest are leaves.
_CONTAINERS = frozenset({dict, list})
_JSON = _CONTAINERS | {str, int, float, bool, type(None)}


def too_deep(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest deeper than ``limit`` (a bare scalar is 0, ``{}`` is 1).

    Level by level, and only non-empty containers are opened: 100,000 empty rows cost one pass
    over a list, not 100,000 visits (the hostile suite's CPU budget). A container's children are
    checked by their types first (``set(map(type, ...))``, a C loop): a container whose children are
    all of JSON's own types is not walked element by element in Python (100,000 empty rows or
    100,000 unknown keys: ~6-8 ms, not ~20)."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 1
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            if set(map(type, children)) <= _JSON:  # exact types: the containers picked out by C loops
                below.extend(compress(children, map(_CONTAINERS.__contains__, map(type, children))))
            else:
                below.extend(c for c in children if isinstance(c, dict | list))
        depth += 1
        if below and depth > limit:
            return True
        level = list(filter(None, below))
    return False
