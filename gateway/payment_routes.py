"""The payment routes (docs/payments.md) and the payment service's place in the app.

* ``POST /v1/payments`` (agency key; the agency must own the dossier's unit): validate, INIT, 201.
* ``POST /v1/payments/confirm``: the platform's CONFIRM callback. No API key: the ``MaXacThuc``
  checksum is the authentication (the service verifies it in constant time). Authentication in
  this app is per handler (gateway/auth.py), not a middleware, so this is the one route under
  /v1 whose handler asks for no key. It answers in the platform's protocol, not the agency API's:
  always HTTP 200 with the acknowledgement body of spec §8.2 (``MaLoi`` "00" or "99").
* ``GET /v1/payments/{MaThamChieu}`` (operator, or the agency owning the dossier's unit).
* ``GET /v1/payments/{MaThamChieu}/bill``: the platform's receipt PDF (GET_BILL), stored once fetched.

Resources (each its own ``cleanup_ctx``): :func:`store_ctx` opens the payments' file before the
queue (the accept path asks the service which dossiers are paid), :func:`loop_ctx` wires the
``on_paid`` hook that marks the dossier paid online and runs reconciliation after the queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from adapters.payment_platform.client import PaymentClient
from adapters.payment_platform.envelope import FeeLine, Payer, ReceiptContext
from adapters.payment_platform.errors import (
    BillNotReady,
    PaymentInvalid,
    PaymentRefused,
    PaymentUnavailable,
)
from adapters.payment_platform.service import Hook, PaidPayment, PaymentRequest, PaymentService
from adapters.payment_platform.store import PaymentStore
from adapters.payment_platform.transport import Transport
from config.schema import AgencySettings, Settings
from core.errors import FieldError, TransientError, ValidationError
from gateway import dossier
from gateway.accept import PAID_MARKS, PAID_ONLINE, SnapshotOvertaken
from gateway.appkeys import ACCEPT, CLOCK, METRICS, PAYMENTS, QUEUE, SETTINGS
from gateway.auth import UNITS, forbid, require_agency, require_operator_or_agency
from gateway.handlers import json_body
from gateway.http_errors import HTTPProblem
from gateway.times import iso_utc
from monitoring.metrics import PAYMENT
from monitoring.tracing import trace_config
from queues.api import EventKind, state_of

log = logging.getLogger("dvcgw.payment")

CONFIRM_PATH = "/v1/payments/confirm"
#: the name the dossier mark is stored under (store ``effects``): never rename it
MARK_HOOK = "dossier_paid_online"
_MAX_ITEMS = 50
_TEXT_LIMITS = {"MaPhiLePhi": 100, "TenPhiLePhi": 500, "HoTenNguoiNop": 200, "SoCMNDNguoiNop": 50,
                "DiaChiNguoiNop": 500, "MaTTHC": 100, "TenTTHC": 1000, "TenDonVi": 500}
_OPTIONAL = ("MaTTHC", "TenTTHC", "TenDonVi")


# ---------------------------------------------------------------- wiring


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/payments", create_payment)
    app.router.add_post(CONFIRM_PATH, confirm_payment)
    app.router.add_get("/v1/payments/{MaThamChieu}", get_payment)
    app.router.add_get("/v1/payments/{MaThamChieu}/bill", get_bill)


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    """The service with its file open and its client session; before the queue, closed after it."""
    settings: Settings = app[SETTINGS]
    p = settings.payment
    traced = [trace_config(app[METRICS], PAYMENT)]
    async with aiohttp.ClientSession(trace_configs=traced, timeout=aiohttp.ClientTimeout(total=float(p.timeout)),
                                     trust_env=False) as session:
        client = PaymentClient(p, Transport(session, timeout=float(p.timeout), access_token=p.access_token))
        store = PaymentStore(p.file(settings.storage.path), synchronous=settings.storage.synchronous)
        service = PaymentService(p, store, client, app[METRICS], clock=app[CLOCK])
        service.start()
        app[PAYMENTS] = service
        try:
            yield
        finally:
            service.close()


def loop_ctx(run: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    """Wire the dossier mark to ``on_paid`` (it needs the queue and the accept path); with ``run``,
    reconcile every ``[payment] interval`` (tests call ``app[PAYMENTS].reconcile()`` instead)."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        service = app[PAYMENTS]
        service.on_paid(MARK_HOOK, dossier_marker(app))
        task = asyncio.create_task(service.run(), name="dvcgw-payments") if run else None
        yield
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    return ctx


def dossier_marker(app: web.Application) -> Hook:
    """The ``on_paid`` hook that marks the dossier paid online: its newest accepted snapshot again,
    with ``DuocThanhToanTrucTuyen`` "1", through the accept path, so the core sync carries it to the
    portal. Nothing to do when the newest snapshot already says 1 or 2, or when the queue cannot
    read payloads back (Kafka): the accept path's overlay marks the next snapshot."""
    async def mark(paid: PaidPayment) -> None:
        newest = await app[QUEUE].newest_snapshot(paid.mahoso)
        if newest is None or newest.payload.get(PAID_ONLINE) in PAID_MARKS:
            return
        item = dossier.validate_snapshot(paid.mahoso, {**newest.payload, PAID_ONLINE: "1"},
                                         app[SETTINGS].dossiers)
        state = state_of(EventKind.SNAPSHOT, newest.payload)
        try:
            await app[ACCEPT].snapshot(paid.mahoso, item, newest.agency, expect_previous=state)
        except SnapshotOvertaken as exc:  # read again at the next pass: the newer one may lack the mark
            raise TransientError(f"the dossier moved on while it was being marked paid: {exc}") from exc
        log.info("payment %s: dossier marked paid online (DuocThanhToanTrucTuyen 1)", paid.reference)

    return mark


# ---------------------------------------------------------------- POST /v1/payments


def _text(obj: dict[str, Any], name: str, path: str, errors: list[FieldError], *, required: bool) -> str:
    value = obj.get(name, "" if not required else None)
    if not isinstance(value, str) or (required and not value.strip()):
        errors.append(FieldError(path, "required: a non-empty string" if required else "expected a string"))
        return ""
    if len(value) > _TEXT_LIMITS[name]:
        errors.append(FieldError(path, f"at most {_TEXT_LIMITS[name]} characters"))
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        errors.append(FieldError(path, "must not contain control characters"))
    return value


def _line(raw: Any, i: int, errors: list[FieldError]) -> FeeLine | None:
    path = f"items[{i}]"
    if not isinstance(raw, dict):
        errors.append(FieldError(path, "expected an object"))
        return None
    _unknown(raw, ("LoaiPhiLePhi", "MaPhiLePhi", "TenPhiLePhi", "SoTien"), path, errors)
    kind = raw.get("LoaiPhiLePhi")
    if kind not in ("1", "2"):
        errors.append(FieldError(f"{path}.LoaiPhiLePhi", "expected \"1\" (phí, a fee) or \"2\" (lệ phí, a charge)"))
    amount = raw.get("SoTien")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        errors.append(FieldError(f"{path}.SoTien", "expected a positive integer (VND)"))
        amount = 0
    code = _text(raw, "MaPhiLePhi", f"{path}.MaPhiLePhi", errors, required=True)
    name = _text(raw, "TenPhiLePhi", f"{path}.TenPhiLePhi", errors, required=True)
    return FeeLine(str(kind), code, name, amount)


def _unknown(obj: dict[str, Any], known: tuple[str, ...], path: str, errors: list[FieldError]) -> None:
    for key in sorted(set(obj) - set(known))[:5]:
        errors.append(FieldError(f"{path}.{key}" if path else key, "unknown field"))


def _payer(raw: Any, errors: list[FieldError]) -> Payer:
    if not isinstance(raw, dict):
        errors.append(FieldError("payer", "required: an object with HoTenNguoiNop, SoCMNDNguoiNop, DiaChiNguoiNop"))
        return Payer("")
    _unknown(raw, ("HoTenNguoiNop", "SoCMNDNguoiNop", "DiaChiNguoiNop"), "payer", errors)
    return Payer(_text(raw, "HoTenNguoiNop", "payer.HoTenNguoiNop", errors, required=True),
                 _text(raw, "SoCMNDNguoiNop", "payer.SoCMNDNguoiNop", errors, required=False),
                 _text(raw, "DiaChiNguoiNop", "payer.DiaChiNguoiNop", errors, required=False))


def _lines(raw: Any, errors: list[FieldError]) -> tuple[FeeLine, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= _MAX_ITEMS:
        errors.append(FieldError("items", f"required: an array of 1 to {_MAX_ITEMS} fee lines"))
        return ()
    lines = [_line(x, i, errors) for i, x in enumerate(raw)]
    return tuple(x for x in lines if x is not None)


def validate_request(body: Any, agency: str) -> tuple[PaymentRequest, dict[str, str]]:
    """The request, and the optional receipt fields the agency gave; ValidationError (422) otherwise.
    ``MaHoSo`` is checked by the caller (format 422, then the unit 403)."""
    if not isinstance(body, dict):
        raise ValidationError([FieldError("", "expected a JSON object {MaHoSo, items, payer}")])
    errors: list[FieldError] = []
    _unknown(body, ("MaHoSo", "items", "payer", *_OPTIONAL), "", errors)
    lines = _lines(body.get("items"), errors)
    payer = _payer(body.get("payer"), errors)
    extra = {k: _text(body, k, k, errors, required=False) for k in _OPTIONAL if k in body}
    if errors:
        raise ValidationError(errors)
    return PaymentRequest(str(body["MaHoSo"]), agency, lines, payer), extra


def _authorise(request: web.Request, agency: AgencySettings, mahoso: Any) -> None:
    """Whether ``agency`` may ask payments of ``mahoso``'s unit: 422 (missing, malformed), 403."""
    if not isinstance(mahoso, str):
        raise ValidationError([FieldError("MaHoSo", "required: the dossier code, a string")])
    problem = dossier.code_problem(mahoso, request.app[SETTINGS].dossiers.strict_code)
    if problem:
        raise ValidationError([FieldError("MaHoSo", problem)])
    unit = mahoso.split("-", 1)[0]
    if unit not in agency.units:
        raise forbid(request, agency, UNITS, "MaHoSo", f"agency {agency.code} may not ask payments for unit {unit}",
                     "unit (first dash segment) is not one of the agency's units")


async def _context(request: web.Request, mahoso: str, given: dict[str, str]) -> ReceiptContext:
    """ThongTinBienLai's procedure and unit: what the agency gave, else the dossier's newest snapshot."""
    newest = await request.app[QUEUE].newest_snapshot(mahoso)
    stored = newest.payload if newest is not None else {}
    return ReceiptContext(ma_tthc=given.get("MaTTHC") or str(stored.get("MaTTHC", "")),
                          ten_tthc=given.get("TenTTHC") or str(stored.get("TenTTHC", "")),
                          ma_don_vi=mahoso.split("-", 1)[0], ten_don_vi=given.get("TenDonVi", ""))


async def create_payment(request: web.Request) -> web.Response:
    """``POST /v1/payments``: 201 {MaThamChieu, UrlThanhToan, state}. Checks: 400/401, 415, 413, 400,
    422 (MaHoSo), 403, 422 (the rest); then 502 (the platform refused) or 503 (no answer)."""
    agency = require_agency(request)  # 401 before the body is read
    body = await json_body(request)
    _authorise(request, agency, body.get("MaHoSo") if isinstance(body, dict) else None)
    req, given = validate_request(body, agency.code)
    req = PaymentRequest(req.mahoso, req.agency, req.lines, req.payer, await _context(request, req.mahoso, given))
    try:
        txn = await request.app[PAYMENTS].create(req)
    except PaymentInvalid as exc:
        raise ValidationError([FieldError(exc.field, str(exc))]) from exc
    except PaymentRefused as exc:
        raise HTTPProblem(502, "payment_refused", f"the payment platform refused the transaction "
                          f"(error_code {exc.code}): {exc.platform_message[:300]}; ask again") from exc
    except PaymentUnavailable as exc:
        raise HTTPProblem(503, "payment_platform_unavailable", f"no answer from the payment platform ({exc}); "
                          "nothing can be paid on that attempt, ask again", headers={"Retry-After": "30"}) from exc
    return _json(201, {"MaThamChieu": txn.ref, "UrlThanhToan": txn.url, "state": txn.state})


# ---------------------------------------------------------------- the callback


async def confirm_payment(request: web.Request) -> web.Response:
    """``POST /v1/payments/confirm``: the CONFIRM callback. Always 200 with the acknowledgement."""
    body: Any = None
    try:
        async with asyncio.timeout(float(request.app[SETTINGS].server.body_timeout)):
            raw = await request.read()
        body = orjson.loads(raw)
    except (web.HTTPRequestEntityTooLarge, TimeoutError, orjson.JSONDecodeError):
        body = None  # malformed: rejected ("99") and recorded by the service
    ack = await request.app[PAYMENTS].confirm(body)
    return web.Response(body=orjson.dumps(ack), status=200, content_type="application/json", charset="utf-8")


# ---------------------------------------------------------------- reads


def _readable(request: web.Request) -> Any:
    """The transaction the caller may read: 401, 404, 403 (an agency not owning the dossier's unit)."""
    caller = require_operator_or_agency(request)
    ref = request.match_info["MaThamChieu"]
    txn = request.app[PAYMENTS].transaction(ref) if len(ref) <= 255 else None
    if txn is None:
        raise HTTPProblem(404, "not_found", "no payment has this MaThamChieu")
    if caller is not None and txn.mahoso.split("-", 1)[0] not in caller.units:
        raise forbid(request, caller, UNITS, "MaThamChieu", f"agency {caller.code} may not read payments of this unit",
                     "the payment's dossier is not of one of the agency's units")
    return txn


async def get_payment(request: web.Request) -> web.Response:
    """``GET /v1/payments/{MaThamChieu}``: the transaction, its local state (spec §11) and history."""
    txn = _readable(request)
    history = request.app[PAYMENTS].history(txn.ref)
    return _json(200, {
        "MaThamChieu": txn.ref, "MaHoSo": txn.mahoso, "SoTien": txn.amount, "state": txn.state,
        "UrlThanhToan": txn.url, "MaGiaoDich": txn.ma_giao_dich, "paid_at": iso_utc(txn.paid_at),
        "history": [{"at": iso_utc(h.at), "event": h.event, "state": h.state, "detail": h.detail} for h in history],
    })


async def get_bill(request: web.Request) -> web.Response:
    """``GET /v1/payments/{MaThamChieu}/bill``: the receipt PDF; 409 until paid or while the
    platform has none yet, 503 when it does not answer."""
    txn = _readable(request)
    try:
        pdf = await request.app[PAYMENTS].bill(txn.ref)
    except BillNotReady as exc:
        raise HTTPProblem(409, "not_ready", "the payment platform has no receipt yet; ask again later",
                          headers={"Retry-After": "60"}) from exc
    except PaymentUnavailable as exc:
        raise HTTPProblem(503, "payment_platform_unavailable", str(exc), headers={"Retry-After": "30"}) from exc
    except PaymentInvalid as exc:
        raise HTTPProblem(502, "bad_receipt", "the payment platform's receipt is not a PDF") from exc
    if pdf is None:
        raise HTTPProblem(409, "not_paid", f"the payment is {txn.state}: a receipt exists only once it is paid")
    return web.Response(body=pdf, content_type="application/pdf")


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
