"""HTTP handlers: parse → call → respond. Routes are listed once, in :func:`add_routes`."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config.schema import AgencySettings
from core.errors import FieldError
from gateway import dossier, openapi, params
from gateway.appkeys import ACCEPT, CATALOGUE, CLOCK, JOBS, KPI, METRICS, PORTAL_CODES, QUEUE, SETTINGS
from gateway.auth import (
    PROCEDURES,
    UNITS,
    forbid,
    may_send_procedure,
    require_agency,
    require_operator,
    require_operator_or_agency,
)
from gateway.catalogue.fill import complete
from gateway.http_errors import HTTPProblem, refuse_encoded_body
from gateway.limits import body_limits, refuse, too_deep
from gateway.times import iso_utc
from monitoring.kpi import ALL_UNITS, LEFT_OUT, KpiRow, Period
from monitoring.kpi.periods import current_periods
from monitoring.kpi.service import OTHER_UNIT
from queues.api import DeadLetter, DossierStatus, ReplayResult


def add_routes(app: web.Application, *, signing: bool = False) -> None:
    app.router.add_put("/v1/dossiers/{MaHoSo}", put_dossier)
    app.router.add_post("/v1/dossiers/{MaHoSo}/progress", post_progress)
    app.router.add_get("/v1/dossiers/{MaHoSo}", get_dossier)
    app.router.add_get("/v1/dead-letters", list_dead_letters)
    app.router.add_get("/v1/dead-letters/{id}", get_dead_letter)
    app.router.add_post("/v1/dead-letters/{id}/replay", replay_dead_letter)
    app.router.add_delete("/v1/dead-letters/{id}", drop_dead_letter)
    app.router.add_get("/v1/kpi", get_kpi)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi.serve_full if signing else openapi.serve)


# ---------------------------------------------------------------- agency


def _authorise(request: web.Request, mahoso: str) -> AgencySettings:
    """The calling agency, if it may send dossiers of ``mahoso``'s unit: else 401, 422 for a
    malformed code (before its unit is looked at), or 403."""
    agency = require_agency(request)
    problem = dossier.code_problem(mahoso, request.app[SETTINGS].dossiers.strict_code)
    if problem:
        raise HTTPProblem(422, "validation_failed", "the dossier code (MaHoSo) in the path is malformed",
                          [FieldError("MaHoSo", problem)])
    unit = mahoso.split("-", 1)[0]
    if unit not in agency.units:
        raise forbid(request, agency, UNITS, "MaHoSo", f"agency {agency.code} may not send dossiers of unit {unit}",
                     "unit (first dash segment) is not one of the agency's units")
    return agency


def _may_send(request: web.Request, agency: AgencySettings, payload: Mapping[str, Any]) -> None:
    """403 (grant ``procedures``) unless one of the agency's patterns matches the snapshot's MaTTHC."""
    ma_tthc = str(payload.get("MaTTHC", ""))
    if not may_send_procedure(agency, ma_tthc):
        raise forbid(request, agency, PROCEDURES, "MaTTHC",
                     f"agency {agency.code} may not send dossiers of procedure {ma_tthc[:100]!r}",
                     "matches none of the agency's procedure patterns")


async def json_body(request: web.Request) -> Any:
    """The body as JSON: 415 for another media type or any Content-Encoding, 413 over the limit (the
    agency's ``max_body_bytes``), 408 when it is not in within ``body_timeout``, 400 for broken JSON
    or JSON nested deeper than the agency's ``max_json_depth``."""
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise HTTPProblem(415, "unsupported_media_type", f"Content-Type must be application/json, got {ctype!r}")
    refuse_encoded_body(request)
    server = request.app[SETTINGS].server
    agency, max_bytes, max_depth = body_limits(request)
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(request, agency, max_bytes)  # before reading a byte of it
    try:
        async with asyncio.timeout(float(server.body_timeout)):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise _too_large(request, agency, max_bytes) from exc
    except TimeoutError as exc:
        waited = float(server.body_timeout)
        problem = HTTPProblem(408, "request_timeout", f"the body did not arrive within {waited:g} s")
        problem.force_close()  # the rest of the body may still come: this connection carries nothing more
        raise problem from exc
    if len(raw) > max_bytes:  # chunked: no Content-Length to judge first
        raise _too_large(request, agency, max_bytes)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HTTPProblem(400, "malformed_json", f"the body is not valid JSON: {exc}") from exc
    if too_deep(body, max_depth):
        message = f"the JSON body nests arrays and objects deeper than {max_depth} levels"
        errors = (FieldError("body", f"deeper than max_json_depth = {max_depth}"),)
        if agency is None:
            raise HTTPProblem(400, "json_too_deep", message, errors, extra={"limit": "json_depth"})
        raise refuse(request, agency, 400, "json_too_deep", "json_depth", message, errors)
    return body


def _too_large(request: web.Request, agency: AgencySettings | None, max_bytes: int) -> HTTPProblem:
    message = f"the body is over {max_bytes} bytes"
    errors = (FieldError("body", f"over max_body_bytes = {max_bytes}"),)
    if agency is None:
        return HTTPProblem(413, "payload_too_large", message, errors, extra={"limit": "body_size"})
    return refuse(request, agency, 413, "payload_too_large", "body_size", message, errors)


async def put_dossier(request: web.Request) -> web.Response:
    """``PUT /v1/dossiers/{MaHoSo}``: 202 once the snapshot is durable. The checks run in the order
    400 (two keys)/401, 422 (the path's code), 403, 415, 413, 400, 422 (fields, then the procedure
    catalogue: an unknown MaTTHC under strictness "reject", a TenTTHC nobody can supply), 409
    (transition, under enforce)."""
    app = request.app
    started = app[CLOCK]()
    mahoso = request.match_info["MaHoSo"]
    agency = _authorise(request, mahoso)
    item = dossier.validate_snapshot(mahoso, await json_body(request), app[SETTINGS].dossiers)
    _may_send(request, agency, item.payload)
    item = complete(item, app.get(CATALOGUE), app[METRICS], agency.code)
    accepted = await app[ACCEPT].snapshot(mahoso, item, agency.code)
    app[ACCEPT].observe(app[CLOCK]() - started)
    return _json(202, {"event_id": accepted.event_id, "sequence": accepted.sequence})


async def post_progress(request: web.Request) -> web.Response:
    """``POST /v1/dossiers/{MaHoSo}/progress``: 202 once every item is durable, in order."""
    mahoso = request.match_info["MaHoSo"]
    agency = _authorise(request, mahoso)
    items = dossier.validate_progress(mahoso, await json_body(request), request.app[SETTINGS].dossiers)
    accepted = await request.app[ACCEPT].progress(mahoso, items, agency.code)
    return _json(202, {"event_ids": [a.event_id for a in accepted], "sequence": accepted[-1].sequence})


def _json(status: int, body: dict[str, Any]) -> web.Response:
    """A JSON answer encoded by orjson (the accept path's answers; a third of json.dumps' cost)."""
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")



def status_json(st: DossierStatus, portal_code: str | None) -> dict[str, Any]:
    return {
        "MaHoSo": st.mahoso,
        "portal_code": portal_code,
        "accepted_state": st.accepted_state,
        "delivered_state": st.delivered_state,
        "delivery": st.delivery.value,
        "attempts": st.attempts,
        "next_attempt_at": iso_utc(st.next_attempt_at),
        "last_error": st.last_error.as_json() if st.last_error else None,
        "pending_progress": st.pending_progress,
    }


async def get_dossier(request: web.Request) -> web.Response:
    mahoso = request.match_info["MaHoSo"]
    _authorise(request, mahoso)
    st = await request.app[QUEUE].status(mahoso)
    if st is None:
        raise HTTPProblem(404, "not_found", "the gateway has accepted no event for this dossier")
    return web.json_response(status_json(st, await request.app[PORTAL_CODES].known(mahoso)))


# ---------------------------------------------------------------- operator


def dead_letter_json(d: DeadLetter) -> dict[str, Any]:
    return {
        "id": d.id, "MaHoSo": d.mahoso, "kind": d.kind.value, "sequence": d.sequence,
        "reason_class": d.error.cls, "code": d.error.code, "message": d.error.message,
        "attempts": d.attempts, "dead_at": iso_utc(d.dead_at), "replayed": d.replayed,
    }


def _dead_letter_id(request: web.Request) -> str:
    """The path's dead-letter id; 422 when malformed (gateway.params)."""
    return params.dead_letter_id(request.match_info["id"], request.app[SETTINGS].queue.backend)


async def list_dead_letters(request: web.Request) -> web.Response:
    require_operator(request)
    limit = params.page_limit(request.query.get("limit"))
    cursor = request.query.get("cursor") or None
    if cursor is not None:
        cursor = params.dead_letter_id(cursor, request.app[SETTINGS].queue.backend, "cursor")
    page = await request.app[QUEUE].dead_letters(cursor, limit)
    return web.json_response({"items": [dead_letter_json(d) for d in page.items], "next": page.next_cursor})


async def get_dead_letter(request: web.Request) -> web.Response:
    require_operator(request)
    d = await request.app[QUEUE].dead_letter(_dead_letter_id(request))
    if d is None:
        raise HTTPProblem(404, "not_found", "no such dead letter")
    return web.json_response(dead_letter_json(d))


async def replay_dead_letter(request: web.Request) -> web.Response:
    require_operator(request)
    dl_id = _dead_letter_id(request)
    result = await request.app[QUEUE].replay(dl_id, request.app[CLOCK]())
    if result is ReplayResult.NOT_FOUND:
        raise HTTPProblem(404, "not_found", "no such dead letter")
    if result is ReplayResult.ALREADY_REPLAYED:
        raise HTTPProblem(409, "already_replayed", "this dead letter was already replayed")
    return web.json_response({"id": dl_id, "result": result.value}, status=202)


async def drop_dead_letter(request: web.Request) -> web.Response:
    require_operator(request)
    if not await request.app[QUEUE].drop(_dead_letter_id(request)):
        raise HTTPProblem(404, "not_found", "no such dead letter")
    return web.Response(status=204)


# ---------------------------------------------------------------- 766 indicators


def _local_iso(ts: int, offset_s: int) -> str:
    zone = dt.timezone(dt.timedelta(seconds=offset_s))
    return dt.datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds")


def kpi_json(period: Period, computed_at: float, rows: list[KpiRow], offset_s: int) -> dict[str, Any]:
    return {
        "period": {"kind": period.kind, "id": period.id, "start": _local_iso(period.start, offset_s),
                   "end": _local_iso(period.end, offset_s)},
        "computed_at": iso_utc(computed_at),
        "rows": [{"indicator": r.indicator, "unit": r.unit, "period": r.period, "period_id": r.period_id,
                  "numerator": r.numerator, "denominator": r.denominator, "ratio": r.ratio, "score": r.score,
                  "max_points": r.max_points, "basis": r.basis, "target": r.target, "estimate": r.estimate}
                 for r in rows],
        "left_out": list(LEFT_OUT),
    }


async def get_kpi(request: web.Request) -> web.Response:
    """``GET /v1/kpi?unit=&period=``: the 766 figures of one period (default: the current month).
    The operator sees every unit and the province (``all``); an agency its own units only. The
    checks run in the order 400 (two keys)/401, 404 (disabled), 422 (period, unit), 403."""
    agency = require_operator_or_agency(request)
    app = request.app
    kpi = app.get(KPI)
    if kpi is None:
        raise HTTPProblem(404, "not_found", "the 766 indicators are disabled ([kpi] enabled = false)")
    offset = kpi.calc.offset_s
    month = current_periods(app[CLOCK](), offset)["month"].id
    period = params.kpi_period(request.query.get("period"), month, offset)
    unit = params.kpi_unit(request.query.get("unit"), kpi.calc.units, (ALL_UNITS, OTHER_UNIT))
    if agency is not None and unit is not None and unit not in agency.units:
        raise forbid(request, agency, UNITS, "unit", f"agency {agency.code} may read the indicators of its own "
                                                    "units only", "not one of the agency's units")
    report = await kpi.report(period.id, unit)
    rows = [r for r in report.rows if agency is None or r.unit in agency.units]
    return _json(200, kpi_json(period, report.computed_at, rows, offset))


# ---------------------------------------------------------------- open


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    app = request.app
    m = app[METRICS]
    now = app[CLOCK]()
    m.publish_queue(await app[QUEUE].stats(now), now)
    catalogue = app.get(CATALOGUE)
    if catalogue is not None:
        catalogue.publish_age()
    jobs = app[JOBS]
    m.publish_jobs(await jobs.counts(), await jobs.oldest_pending(), now)
    kpi = app.get(KPI)
    # the 766 families, rendered once per computation (monitoring/kpi/exposition.py)
    body = generate_latest(m.registry) + (kpi.metrics_text() if kpi is not None else b"")
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp
