"""The operator's view of one instance: ``/readyz``, the maintenance switch and the ``/status`` page.

``/readyz`` reads the cached sub-checks of :mod:`gateway.health`; ``/status`` is built from the
same checks, the queue's figures, the metric registry and the 766 indicators, rendered by
:mod:`monitoring.status` (pure HTML and SVG, no script).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import orjson
from aiohttp import web

from core.errors import FieldError
from gateway.appkeys import CLOCK, ENGINE, LIFECYCLE, QUEUE, READINESS, SETTINGS
from gateway.auth import require_operator
from gateway.health import Readiness
from gateway.http_errors import HTTPProblem

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


def _iso(ts: float | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def maintenance_json(app: web.Application) -> dict[str, Any]:
    m = app[READINESS].maintenance
    return {"enabled": m.enabled, "reason": m.reason or None, "since": _iso(m.since)}


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
    if request.content_type != "application/json":
        raise HTTPProblem(415, "unsupported_media_type", "Content-Type must be application/json")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise HTTPProblem(400, "malformed_json", f"the body is not valid JSON: {exc}") from exc
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
