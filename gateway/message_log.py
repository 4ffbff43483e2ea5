"""The message log's place in the app (audit/, docs/audit.md), where ``[audit] bodies`` is not "off".

* :func:`setup` creates the :class:`~audit.log.AuditLog` (its file opened by the first
  ``cleanup_ctx``, closed last, after every session that records into it), the middleware that
  records accepted agency requests and callbacks and refuses agency writes while sealing is overdue
  (``[audit] halt_after_unsealed``), and, after signing started, the :class:`~audit.log.Sealer`.
* :func:`counterpart_session` is the one place every counterpart's session is made: latency
  hooks, and, with the log on, the exchange's record (its trace hooks and teed response class).
* :func:`add_readiness` adds the ``audit`` check to /readyz: it fails with the reason while halted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web

from audit.log import AuditLog, Sealer
from audit.trace import AuditedResponse, audit_trace_config
from config.schema import Settings
from gateway.appkeys import CLOCK, METRICS, READINESS, SETTINGS
from gateway.auth import AGENCY, identify
from gateway.http_errors import json_error
from gateway.middleware import Handler
from gateway.requestlog import route_template
from monitoring.metrics import AuditMetrics, Metrics
from monitoring.tracing import trace_config

AUDIT = web.AppKey("audit_log", AuditLog)
SEALER = web.AppKey("audit_sealer", Sealer)
#: routes whose caller is a counterpart calling back (no agency key): who it is
CALLBACKS = {"/v1/payments/confirm": "payment_platform", "/v1/signatures/callbacks/{id}": "remote_signer"}
_READS = ("GET", "HEAD", "OPTIONS")


def enabled(settings: Settings) -> bool:
    return settings.audit.bodies != "off"


def middlewares(settings: Settings) -> list[Any]:
    """Between the request context and the error middleware (it sees the final status)."""
    return [audit_middleware] if enabled(settings) else []


def setup(app: web.Application, settings: Settings, clock: Callable[[], float]) -> None:
    """Creates the log (before any session is made) and its first cleanup_ctx; nothing when off."""
    if not enabled(settings):
        return
    audit = AuditLog(settings.audit, settings.audit.file(settings.storage.path), AuditMetrics(app[METRICS]),
                     clock=clock, synchronous=settings.audit.synchronous)
    app[AUDIT] = audit

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await audit.start()
        yield
        await audit.close()

    app.cleanup_ctx.append(ctx)


def setup_sealing(app: web.Application, settings: Settings, run: bool) -> None:
    if enabled(settings):
        app.cleanup_ctx.append(sealer_ctx(run))


def sealer_ctx(run: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    """The sealer, on the signing service (registered after it: closed before it)."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        from gateway.signing_routes import SERVICE

        service = app[SERVICE]
        alias = app[SETTINGS].audit.seal_key
        sealer = Sealer(app[AUDIT], lambda data: service.sign_data(alias, data), service.timestamp, key_alias=alias)
        await sealer.start(run)
        app[SEALER] = sealer
        yield
        await sealer.close()

    return ctx


def counterpart_traces(app: web.Application, counterpart: str, *, operation: str = "request",
                       metrics: Metrics | None = None) -> list[aiohttp.TraceConfig]:
    """The trace hooks of a counterpart's ``ClientSession``: latency (on ``metrics``, default the
    app's), and the message log's record."""
    traced = [trace_config(metrics if metrics is not None else app[METRICS], counterpart, operation=operation)]
    audit = app.get(AUDIT)
    if audit is not None:
        traced.append(audit_trace_config(audit, counterpart, operation=operation))
    return traced


def counterpart_session(app: web.Application, counterpart: str, *, operation: str = "request",
                        metrics: Metrics | None = None, **kw: Any) -> aiohttp.ClientSession:
    """The ``ClientSession`` of a counterpart (``kw``: timeout, connector …): its trace hooks and,
    with the log on, the teed response class whose bodies the log records."""
    if AUDIT in app:
        kw["response_class"] = AuditedResponse
    traced = counterpart_traces(app, counterpart, operation=operation, metrics=metrics)
    return aiohttp.ClientSession(trace_configs=traced, **kw)


def halt_reason(app: web.Application) -> str:
    sealer = app.get(SEALER)
    return sealer.halt_reason() if sealer is not None else ""


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Records each accepted (status < 400) agency request and callback; refuses agency writes while
    the log has gone unsealed for longer than ``[audit] halt_after_unsealed``."""
    app = request.app
    route = route_template(request)
    callback = CALLBACKS.get(route)
    if callback is None and request.method not in _READS:
        reason = halt_reason(app)
        if reason and identify(request).agency is not None:
            return json_error(503, "message_log_unsealed", f"agency requests are refused: {reason}",
                              headers={"Retry-After": "60"})
    response = await handler(request)
    agency = request.get(AGENCY)
    if response.status < 400 and (agency is not None or callback is not None):
        body = await request.read() if request.body_exists else b""
        out = response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else b""
        client = agency.code if agency is not None else str(callback)
        app[AUDIT].record("agency" if agency is not None else "callback", client, "dvcgw",
                          f"{request.method} {route}", response.status, body, out)
    return response


def add_readiness(app: web.Application) -> None:
    if AUDIT not in app:
        return

    async def check() -> dict[str, Any]:
        sealer = app.get(SEALER)
        if sealer is None:
            return {"status": "ok", "sealing": "starting"}
        reason = sealer.halt_reason()
        body: dict[str, Any] = {"status": "fail" if reason else "ok", "unsealed_for_s":
                                round(max(0.0, app[CLOCK]() - sealer.covered_at), 1)}
        if reason:
            body["reason"] = reason
        elif sealer.last_error:
            body["last_error"] = sealer.last_error
        return body

    app[READINESS].add("audit", check, cache=False)
