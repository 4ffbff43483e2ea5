"""The payment service: transactions and their local states (spec §11), the CONFIRM callback,
reconciliation by QUERY, the receipt (GET_BILL) and the ``on_paid`` hooks. No HTTP here: the
routes (gateway/payment_routes.py) parse, call and answer.

States and moves (spec §11.1, plus one gateway rule)::

    INIT "0" ──► khoi-tao ──► thanh-cong   CONFIRM MaLoi "00", or a QUERY that shows it paid
    INIT ≠ "0" / unknown ─► that-bai       khoi-tao ──► that-bai   CONFIRM/QUERY not paid
                           khoi-tao ──► het-han    no outcome give_up_after the INIT
                           het-han  ──► thanh-cong a late CONFIRM or QUERY
                           that-bai ──► thanh-cong [POLICY, gateway] the platform says the money was
                                                   taken: a payment is never refused after the fact

``thanh-cong`` is final. Each move is one transaction of the store, with its history row; the move
to ``thanh-cong`` also promises the ``on_paid`` hooks registered at that moment (store ``effects``).
The hooks then run once each: right after the move, and again from :meth:`PaymentService.reconcile`
for any a crash or a :class:`~core.errors.TransientError` left pending (a hook must therefore be
idempotent across a crash: enqueue durable work, e.g. ``Jobs.put`` with a dedupe key). A hook that
raises anything else is recorded ``failed`` and not run again (logged, ERROR).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from adapters.payment_platform import envelope as env
from adapters.payment_platform.client import PaymentClient
from adapters.payment_platform.envelope import CONFIRM_ORDER, Confirm, FeeLine, InitRequest, Payer, ReceiptContext
from adapters.payment_platform.errors import (
    BillNotReady,
    PaymentError,
    PaymentInvalid,
    PaymentRefused,
    PaymentUnavailable,
)
from adapters.payment_platform.store import (
    HET_HAN,
    KHOI_TAO,
    THANH_CONG,
    THAT_BAI,
    HistoryEntry,
    PaymentStore,
    Txn,
)
from config.schema import PaymentSettings
from core.errors import TransientError
from monitoring.metrics import Metrics

log = logging.getLogger("dvcgw.payment")
#: the longest wait between two QUERYs (or GET_BILLs) of one transaction
MAX_BACKOFF = 3600.0
_BATCH = 50


@dataclass(frozen=True)
class PaymentRequest:
    """An agency's request for a payment of a dossier's fees (validated by the HTTP edge)."""

    mahoso: str
    agency: str
    lines: tuple[FeeLine, ...]
    payer: Payer
    context: ReceiptContext = field(default_factory=ReceiptContext)


@dataclass(frozen=True)
class PaidPayment:
    """What an ``on_paid`` hook receives: the paid transaction. ``paid_time`` is the platform's
    ``ThoiGianGD`` as received (``yyyyMMddHHmmss``, UTC+7); ``paid_at`` the gateway's clock."""

    mahoso: str
    reference: str  # MaThamChieu
    agency: str
    items: tuple[FeeLine, ...]
    payer: Payer
    amount: int
    paid_at: float
    paid_time: str
    platform_transaction: str  # MaGiaoDich
    bank: str  # MaNganHang
    context: ReceiptContext = field(default_factory=ReceiptContext)  # MaTTHC, TenTTHC, MaDonVi, TenDonVi


Hook = Callable[[PaidPayment], Awaitable[None]]


@dataclass(frozen=True)
class Rejection:
    """Why a CONFIRM is refused: ``result`` is the metric label, ``detail`` what the record says."""

    result: str
    detail: str


def paid_payment(txn: Txn) -> PaidPayment:
    return PaidPayment(txn.mahoso, txn.ref, txn.agency, txn.lines, txn.payer, txn.amount, txn.paid_at or 0.0,
                       txn.paid_time or "", txn.ma_giao_dich or "", txn.ma_ngan_hang or "", txn.context)


class PaymentService:
    """One partner's payments. ``start``/``close`` open and close the store; the routes call
    :meth:`create`, :meth:`confirm`, :meth:`transaction`, :meth:`bill`; :meth:`run` reconciles
    every ``[payment] interval`` (tests call :meth:`reconcile`)."""

    def __init__(self, settings: PaymentSettings, store: PaymentStore, client: PaymentClient, metrics: Metrics,
                 clock: Callable[[], float] = time.time) -> None:
        self._s = settings
        self._store = store
        self._client = client
        self._m = metrics
        self._clock = clock
        self._hooks: dict[str, Hook] = {}
        self._paid: set[str] = set()
        self._initiating: set[str] = set()
        self._running: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ lifecycle

    def on_paid(self, name: str, hook: Hook) -> None:
        """Register ``hook`` under ``name`` (stable across restarts: pending effects are stored by name)."""
        self._hooks[name] = hook

    def start(self) -> None:
        self._store.open()
        self._paid = self._store.paid_dossiers()

    def close(self) -> None:
        self._store.close()

    def is_paid(self, mahoso: str) -> bool:
        """Whether a payment of ``mahoso`` is ``thanh-cong`` (an in-memory set: the accept path asks)."""
        return mahoso in self._paid

    # ------------------------------------------------------------------ INIT

    async def create(self, req: PaymentRequest) -> Txn:
        """Send INIT and record the transaction: ``khoi-tao`` on success. On a refusal or an unknown
        outcome the transaction is recorded ``that-bai`` and PaymentRefused / PaymentUnavailable is
        raised; PaymentInvalid means nothing was sent or stored."""
        now = self._clock()
        thoi_gian, ref = self._free_reference(req.mahoso, now)
        init = InitRequest(ref, req.mahoso, req.lines, req.payer, req.context, thoi_gian, self._s.ip)
        if init.amount > self._s.max_amount:
            raise PaymentInvalid("items", f"the total is over [payment] max_amount ({self._s.max_amount} VND)")
        self._initiating.add(ref)
        try:
            url, _message = await self._client.init(init)
        except PaymentRefused as exc:
            self._record_init(req, init, THAT_BAI, None, f"INIT refused: error_code {exc.code}: "
                                                          f"{exc.platform_message[:300]}")
            self._m.payments.labels("init_refused").inc()
            raise
        except PaymentUnavailable as exc:
            self._record_init(req, init, THAT_BAI, None, f"INIT outcome unknown: {exc}")
            self._m.payments.labels("init_unknown").inc()
            raise
        finally:
            self._initiating.discard(ref)
        txn = self._record_init(req, init, KHOI_TAO, url, "INIT accepted (error_code 0)")
        self._m.payments.labels("initiated").inc()
        return txn

    def _free_reference(self, mahoso: str, now: float) -> tuple[str, str]:
        """A time and a reference (§5) no transaction has: a second request for the same dossier in
        the same second takes the next second."""
        for step in range(60):
            thoi_gian = env.timestamp(now + step)
            ref = env.reference(mahoso, thoi_gian)
            if ref not in self._initiating and not self._store.exists(ref):
                return thoi_gian, ref
        raise PaymentInvalid("MaHoSo", "too many payment requests for this dossier in the last minute")

    def _record_init(self, req: PaymentRequest, init: InitRequest, state: str, url: str | None, detail: str) -> Txn:
        now = self._clock()
        txn = Txn(ref=init.reference, mahoso=req.mahoso, agency=req.agency, amount=init.amount, state=state,
                  thoi_gian=init.thoi_gian, created_at=now, updated_at=now, url=url, lines=req.lines, payer=req.payer,
                  context=req.context, ma_giao_dich=None, ma_ngan_hang=None, paid_at=None, paid_time=None,
                  next_query_at=now + float(self._s.pending_after) if state == KHOI_TAO else None, queries=0,
                  bill_due_at=None, bill_attempts=0)
        self._store.insert(txn, "init", detail)
        return txn

    # ------------------------------------------------------------------ CONFIRM

    async def confirm(self, body: Any) -> dict[str, str]:
        """Handle one CONFIRM callback; the acknowledgement to send back (always HTTP 200). A wrong
        checksum, another partner, an unknown reference or another amount is rejected ("99") and
        recorded, and changes nothing. A valid repeat gets the same answer and changes nothing."""
        now = self._clock()
        verdict = self._judge(body)
        if isinstance(verdict, Rejection):
            result, detail = verdict.result, verdict.detail
            ref = str(body.get("MaThamChieu", ""))[:255] if isinstance(body, dict) else ""
            self._store.reject_callback(now, result, ref, detail, _text(body))
            self._m.payment_callbacks.labels(result).inc()
            if result == "amount_mismatch":
                log.warning("payment %s: CONFIRM refused, %s (an alert: check with the platform)", ref, detail)
            return env.confirm_ack(body, self._s.partner_code, ok=False)
        txn, confirm = verdict
        changed = self._apply_confirm(txn, confirm, now)
        self._m.payment_callbacks.labels("accepted" if changed is not None else "duplicate").inc()
        if changed is not None and changed.state == THANH_CONG:
            await self._run_effects(changed)
        return env.confirm_ack(body, self._s.partner_code, ok=True)

    def _judge(self, body: Any) -> tuple[Txn, Confirm] | Rejection:
        """The transaction a CONFIRM is about, or why it is rejected (§8.2 steps 1-3)."""
        parsed = env.parse_confirm(body)
        if isinstance(parsed, str):
            return Rejection("malformed", parsed)
        if not env.verify(body, CONFIRM_ORDER, self._s.secret):
            return Rejection("bad_checksum", "MaXacThuc does not match")
        if parsed["MaDoiTac"] != self._s.partner_code:
            return Rejection("wrong_partner", "MaDoiTac is not this gateway's partner code")
        txn = self._store.get(parsed["MaThamChieu"])
        if txn is None:
            return Rejection("unknown_reference", "no transaction has this MaThamChieu")
        if parsed.amount != txn.amount:
            return Rejection("amount_mismatch", f"SoTien {parsed.amount} differs from the INIT's {txn.amount}")
        return txn, parsed

    def _apply_confirm(self, txn: Txn, confirm: Confirm, now: float) -> Txn | None:
        """The transaction after the move a valid CONFIRM makes, or None when it makes none (repeat)."""
        if confirm.paid:
            return self._settle_paid(txn.ref, now, "confirm", confirm["MaGiaoDich"], confirm["MaNganHang"],
                                     confirm["ThoiGianGD"])
        moved = self._store.transition(txn.ref, (KHOI_TAO, HET_HAN), THAT_BAI, now, "confirm",
                                       f"not paid: MaLoi {confirm['MaLoi']}", next_query_at=None)
        if moved is not None:
            self._m.payments.labels("failed").inc()
            log.info("payment %s: the platform says not paid (MaLoi %s)", txn.ref, confirm["MaLoi"][:8])
        return moved

    def _settle_paid(self, ref: str, now: float, source: str, ma_giao_dich: str, ma_ngan_hang: str,
                     paid_time: str) -> Txn | None:
        moved = self._store.transition(
            ref, (KHOI_TAO, HET_HAN, THAT_BAI), THANH_CONG, now, source, f"paid: MaGiaoDich {ma_giao_dich}",
            effects=tuple(self._hooks), ma_giao_dich=ma_giao_dich, ma_ngan_hang=ma_ngan_hang, paid_at=now,
            paid_time=paid_time, next_query_at=None, bill_due_at=now)
        if moved is not None:
            self._paid.add(moved.mahoso)
            self._m.payments.labels("paid").inc()
            log.info("payment %s: paid (%s)", ref, source)
        return moved

    # ------------------------------------------------------------------ hooks

    async def _run_effects(self, txn: Txn) -> None:
        for name in list(self._hooks):
            await self._run_effect(txn, name)

    async def _run_effect(self, txn: Txn, name: str) -> None:
        hook = self._hooks.get(name)
        key = (txn.ref, name)
        if hook is None or key in self._running:
            return
        self._running.add(key)
        try:
            await hook(paid_payment(txn))
        except TransientError as exc:
            log.warning("payment %s: on_paid hook %s will be retried: %s", txn.ref, name, exc)
            return
        except Exception as exc:
            log.error("payment %s: on_paid hook %s failed for good: %s", txn.ref, name, type(exc).__name__,
                      exc_info=exc)
            self._store.effect_done(txn.ref, name, self._clock(), f"failed: {type(exc).__name__}")
            return
        finally:
            self._running.discard(key)
        self._store.effect_done(txn.ref, name, self._clock(), "ok")

    # ------------------------------------------------------------------ reconciliation

    async def reconcile(self) -> None:
        """One pass: QUERY every transaction due, fetch due receipts, run pending hooks."""
        now = self._clock()
        for txn in self._store.due_queries(now, _BATCH):
            await self._query(txn, now)
        for txn in self._store.due_bills(now, _BATCH):
            await self._fetch_bill(txn, now)
        for txn, name in self._store.pending_effects(_BATCH):
            await self._run_effect(txn, name)

    async def run(self) -> None:
        """Reconcile every ``[payment] interval`` until cancelled."""
        while True:
            try:
                await self.reconcile()
            except Exception as exc:  # the loop must outlive one bad pass; the next one tries again
                log.error("payment reconciliation pass failed: %s", type(exc).__name__, exc_info=exc)
            await asyncio.sleep(float(self._s.interval))

    def _backoff(self, attempts: int) -> float:
        return float(min(float(self._s.interval) * 2 ** min(attempts, 20), MAX_BACKOFF))

    def _lookup_time(self, txn: Txn, now: float) -> str:
        return txn.thoi_gian if self._s.query_time == "init" else env.timestamp(now)

    async def _query(self, txn: Txn, now: float) -> None:
        if now >= txn.created_at + float(self._s.give_up_after):
            self._expire(txn, now)
            return
        next_at = now + self._backoff(txn.queries)
        try:
            reply = await self._client.query(txn.ref, self._lookup_time(txn, now))
        except PaymentError as exc:
            self._store.note(txn.ref, now, "query", f"no answer: {exc}", next_query_at=next_at,
                             queries=txn.queries + 1)
            self._m.payment_reconciliations.labels("error").inc()
            return
        verdict = self._query_verdict(reply, txn)
        self._m.payment_reconciliations.labels(verdict).inc()
        if verdict == "paid":
            paid = self._settle_paid(txn.ref, now, "query", reply.ma_giao_dich, reply.ma_ngan_hang,
                                     reply.thoi_gian)
            if paid is not None:
                await self._run_effects(paid)
        elif verdict == "failed":
            if self._store.transition(txn.ref, (KHOI_TAO,), THAT_BAI, now, "query",
                                      f"not paid: MaLoi {reply.ma_loi}", next_query_at=None) is not None:
                self._m.payments.labels("failed").inc()
        else:
            self._store.note(txn.ref, now, "query", f"{verdict}: MaLoi {reply.ma_loi}, TrangThaiGD "
                             f"{reply.trang_thai or '(none)'}", next_query_at=next_at, queries=txn.queries + 1)
            if verdict == "amount_mismatch":
                log.warning("payment %s: QUERY shows another amount (%s, INIT %s): not closed, check with "
                            "the platform", txn.ref, reply.amount, txn.amount)

    def _query_verdict(self, reply: env.QueryReply, txn: Txn) -> str:
        """paid | failed | pending | amount_mismatch, by [payment] query_paid_states and query_not_paid."""
        if reply.ma_loi != env.PAID:
            return "failed" if self._s.query_not_paid == "failed" else "pending"
        if self._s.query_paid_states and reply.trang_thai not in self._s.query_paid_states:
            return "pending"
        if reply.amount is not None and reply.amount != txn.amount:
            return "amount_mismatch"
        return "paid"

    def _expire(self, txn: Txn, now: float) -> None:
        moved = self._store.transition(txn.ref, (KHOI_TAO,), HET_HAN, now, "expired",
                                       "no outcome within [payment] give_up_after: reconcile by hand",
                                       next_query_at=None)
        if moved is not None:
            self._m.payments.labels("expired").inc()
            self._m.payment_reconciliations.labels("expired").inc()
            log.warning("payment %s: no outcome after %.0f s, marked het-han for manual reconciliation",
                        txn.ref, float(self._s.give_up_after))

    # ------------------------------------------------------------------ receipt (GET_BILL)

    async def _fetch_bill(self, txn: Txn, now: float) -> None:
        try:
            pdf = await self._client.get_bill(txn.ref, self._lookup_time(txn, now))
        except (BillNotReady, PaymentUnavailable) as exc:
            late = now >= (txn.paid_at or now) + float(self._s.give_up_after)
            self._store.schedule_bill(txn.ref, None if late else now + self._backoff(txn.bill_attempts))
            if late:
                self._store.note(txn.ref, now, "bill", f"receipt not fetched, given up: {exc}")
            return
        except PaymentInvalid as exc:
            self._store.schedule_bill(txn.ref, None)
            self._store.note(txn.ref, now, "bill", f"receipt refused: {exc}")
            return
        self._store.store_bill(txn.ref, pdf, now)

    async def bill(self, ref: str) -> bytes | None:
        """The stored receipt PDF of ``ref``; fetched now if the payment is paid and none is stored.
        None: no such paid transaction. Raises BillNotReady / PaymentUnavailable / PaymentInvalid."""
        stored = self._store.bill(ref)
        if stored is not None:
            return stored
        txn = self._store.get(ref)
        if txn is None or txn.state != THANH_CONG:
            return None
        now = self._clock()
        pdf = await self._client.get_bill(ref, self._lookup_time(txn, now))
        self._store.store_bill(ref, pdf, now)
        return pdf

    # ------------------------------------------------------------------ reads

    def transaction(self, ref: str) -> Txn | None:
        return self._store.get(ref)

    def history(self, ref: str) -> list[HistoryEntry]:
        return self._store.history(ref)

    def note(self, ref: str, event: str, detail: str) -> None:
        """A history row on ``ref`` that changes no state (a receipt queued or issued, a refund)."""
        self._store.note(ref, self._clock(), event, detail)

    def rejected_callbacks(self) -> list[dict[str, Any]]:
        return self._store.callbacks()


def _text(body: Any) -> str:
    """A callback body as stored for audit (JSON text; what cannot be encoded, its repr)."""
    try:
        return orjson.dumps(body).decode()[:65536]
    except TypeError:
        return repr(body)[:65536]
