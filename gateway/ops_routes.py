"""The operator's view of one instance: ``/readyz``, the maintenance switch and the ``/status`` page.

``/readyz`` reads the cached sub-checks of :mod:`gateway.health`; ``/status`` is built from the
same checks, the queue's figures, the metric registry and the 766 indicators, rendered by
:mod:`monitoring.status` (pure HTML and SVG, no script).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from aiohttp import web

from core.errors import FieldError
from gateway.appkeys import CLOCK, ENGINE, KPI, LIFECYCLE, METRICS, QUEUE, READINESS, SETTINGS
from gateway.auth import require_operator
from gateway.handlers import json_body
from gateway.health import Readiness
from gateway.http_errors import HTTPProblem
from gateway.times import iso_utc
from monitoring import status as page
from monitoring.metrics import Metrics, build_version

log = logging.getLogger("dvcgw.health")

MAX_REASON = 200


def setup_readiness(app: web.Application) -> Readiness:
    """The instance's sub-checks: storage decides readiness; the portal gate only reports."""
    readiness = Readiness(app[SETTINGS].health)

    async def storage() -> dict[str, Any]:
        await app[QUEUE].ping()
        return {"status": "ok", "backend": app[SETTINGS].queue.backend}

    async def portal() -> dict[str, Any]:
        gate = app[ENGINE].gate.describe()
        return {"status": "ok" if gate["circuit"] == "closed" else "fail", **gate}

    readiness.add("storage", storage)
    readiness.add("portal", portal, decides=False, cache=False)
    app[READINESS] = readiness
    return readiness


def add_routes(app: web.Application) -> None:
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/v1/maintenance", get_maintenance)
    app.router.add_put("/v1/maintenance", put_maintenance)
    app.router.add_get("/status", status_page)



def maintenance_json(app: web.Application) -> dict[str, Any]:
    m = app[READINESS].maintenance
    return {"enabled": m.enabled, "reason": m.reason or None, "since": iso_utc(m.since)}


async def readiness_body(app: web.Application) -> tuple[bool, dict[str, Any]]:
    """Whether the instance is ready, and the ``/readyz`` body (also shown on ``/status``)."""
    readiness = app[READINESS]
    lifecycle = app[LIFECYCLE].state
    checks: dict[str, dict[str, Any]] = {}
    if lifecycle != "starting":
        checks = await readiness.results()
    checks_ok = bool(checks) and readiness.ok(checks)
    if lifecycle != "ready":
        status = lifecycle  # starting | draining
    elif readiness.maintenance.enabled:
        status = "maintenance"
    else:
        status = "ok" if checks_ok else "fail"
    body = {"status": status, "lifecycle": lifecycle, "maintenance": maintenance_json(app), "checks": checks}
    return status == "ok", body


async def readyz(request: web.Request) -> web.Response:
    """200 only while the instance should get traffic: started, not draining, not in maintenance,
    storage reachable. A portal outage is reported (``checks.portal``), not failed: accepting
    through outages is the gateway's job."""
    ok, body = await readiness_body(request.app)
    return web.json_response(body, status=200 if ok else 503)


async def get_maintenance(request: web.Request) -> web.Response:
    require_operator(request)
    return web.json_response(maintenance_json(request.app))


async def put_maintenance(request: web.Request) -> web.Response:
    """``PUT /v1/maintenance {"enabled": true, "reason": "..."}``: take the instance out of the load
    balancer (``/readyz`` 503) while it keeps serving; ``enabled: false`` puts it back."""
    require_operator(request)
    body = await json_body(request)
    errors: list[FieldError] = []
    if not isinstance(body, dict):
        raise HTTPProblem(422, "validation_failed", "the body must be a JSON object",
                          [FieldError("$", "expected an object")])
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        errors.append(FieldError("enabled", "required: true or false"))
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON or any(ord(c) < 32 for c in reason):
        errors.append(FieldError("reason", f"a single-line text of at most {MAX_REASON} characters"))
    unknown = sorted(set(body) - {"enabled", "reason"})
    errors.extend(FieldError(k[:64], "unknown field") for k in unknown[:5])
    if errors:
        raise HTTPProblem(422, "validation_failed", "the maintenance request is invalid", errors)
    assert isinstance(enabled, bool) and isinstance(reason, str)
    request.app[READINESS].maintenance.set(enabled, reason, request.app[CLOCK]())
    log.warning("maintenance mode %s by the operator%s: /readyz answers %s", "on" if enabled else "off",
                f" ({reason})" if reason else "", 503 if enabled else "as its checks say")
    return web.json_response(maintenance_json(request.app))


#: Dead letters grouped on the status page: at most this many are read (one page of the store).
DEAD_SCAN = 500

_PAGE_HEADERS = {
    # the page carries no script and loads nothing: refuse both, and framing
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def _samples(metric: Any) -> list[Any]:
    """The samples of one of our own metric objects (``Collector.collect``), without walking the
    whole registry."""
    return [s for family in metric.collect() for s in family.samples]


def _counted(m: Metrics) -> tuple[float, float, float]:
    accepted = sum(s.value for s in _samples(m.events_accepted) if s.name.endswith("_total"))
    delivered = failed = 0.0
    for s in _samples(m.deliveries):
        if not s.name.endswith("_total"):
            continue
        if s.labels.get("outcome") == "ok":
            delivered += s.value
        else:
            failed += s.value
    return accepted, delivered, failed


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The ``q`` quantile of a cumulative histogram (``(le, count)`` pairs, ``+Inf`` last) by
    linear interpolation inside the bucket, as PromQL's histogram_quantile does."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_le, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lower_le
            inside = count - lower_count
            return lower_le + (le - lower_le) * ((rank - lower_count) / inside if inside else 0.0)
        lower_le, lower_count = le, count
    return lower_le


def _lag(m: Metrics) -> tuple[float | None, float | None]:
    merged: dict[float, float] = {}
    for s in _samples(m.sync_lag):
        if s.name.endswith("_bucket"):
            le = float(s.labels["le"])
            merged[le] = merged.get(le, 0.0) + s.value
    buckets = sorted(merged.items())
    return quantile(buckets, 0.5), quantile(buckets, 0.95)


async def _dead_groups(app: web.Application) -> tuple[list[page.DeadGroup], bool]:
    letters = (await app[QUEUE].dead_letters(None, DEAD_SCAN)).items
    groups: dict[tuple[str, str], page.DeadGroup] = {}
    for d in letters:
        if d.replayed:
            continue
        key = (str(d.error.cls), d.error.code)
        g = groups.get(key)
        if g is None or d.dead_at >= g.latest:
            message = d.error.message
            latest = d.dead_at
        else:
            message, latest = g.message, g.latest
        groups[key] = page.DeadGroup(key[0], key[1], (g.count if g else 0) + 1, latest, message)
    ordered = sorted(groups.values(), key=lambda g: (-g.count, g.cls, g.code))
    return ordered, len(letters) >= DEAD_SCAN


def _kpi_bars(app: web.Application, unit: str) -> list[page.KpiBar]:
    """The last periodic computation's rows of ``unit`` (the province, ``all``, by default), in
    month, quarter, year order per indicator."""
    kpi = app.get(KPI)
    report = kpi.latest() if kpi is not None else None
    if report is None:
        return []
    order = {"month": 0, "quarter": 1, "year": 2}
    rows = sorted((r for r in report.rows if r.unit == unit), key=lambda r: order.get(r.period, 3))
    return [page.KpiBar(r.indicator, r.period, r.period_id, r.numerator, r.denominator, r.ratio,
                        r.score, r.max_points, r.target) for r in rows]


async def status_page(request: web.Request) -> web.Response:
    """``GET /status``: the operator's page (``?lang=vi|en``). Open like ``/metrics``: it shows
    counts, reasons and indicators, never a dossier code or personal data."""
    app = request.app
    settings = app[SETTINGS]
    now = app[CLOCK]()
    _, readiness = await readiness_body(app)
    stats = await app[QUEUE].stats(now)
    m = app[METRICS]
    accepted, delivered, failed = _counted(m)
    lag50, lag95 = _lag(m)
    dead, cut = await _dead_groups(app)
    view = page.StatusView(
        now=now, instance=f"{socket.gethostname()}:{settings.server.port}", version=build_version(),
        started_at=m.sample("dvcgw_start_time_seconds") or now, backend=settings.queue.backend, readiness=readiness,
        accepted=accepted, delivered=delivered, failed=failed, lag_p50=lag50, lag_p95=lag95,
        oldest_pending_age=max(now - stats.oldest_pending_at, 0.0) if stats.oldest_pending_at else None,
        by_state=stats.by_state, dead=dead, dead_total=stats.dead_letters,
        dead_scanned_limit=DEAD_SCAN if cut else None, kpi=_kpi_bars(app, "all"),
        tz_hours=settings.monitoring.timezone_offset_hours)
    lang = page.pick_lang(request.query.get("lang"), request.headers.get("Accept-Language"))
    return web.Response(text=page.render(view, lang), content_type="text/html", charset="utf-8",
                        headers={**_PAGE_HEADERS, "Content-Language": lang})
