"""E-receipts wired to payments: a paid payment's receipts are issued on VNPT through the durable
jobs, and an operator's refund cancels them (issue 15 §3 "On success", §4; docs/e-receipts.md).

* :func:`client_ctx` opens the tenant's :class:`ReceiptsClient` (its WSDLs, at start-up) before the
  jobs' context, so the client outlives their worker.
* :func:`jobs_ctx` registers the ``receipt`` topic's handler and the payments' ``on_paid`` hook
  (:func:`issue_hook`), before any worker runs.
* The hook puts one job per receipt (one per fee kind, spec §8 fkey ``<MaHoSo>-PHI|LEPHI-<k>``).
  ``k`` is the first number whose key holds no job of another payment, so a second payment of a
  dossier, or a reissue after a refund, gets a new key, and a re-run of the hook after a crash
  finds its own jobs and puts nothing twice. Each key and each outcome is written into the
  payment's history (``GET /v1/payments/{MaThamChieu}``): ``receipt_queued``, ``receipt_issued``
  (with VNPT's number when it gave one), ``receipt_cancelled``.
* ``POST /v1/payments/{MaThamChieu}/refund`` (operator) records the refund on the payment
  (spec payment-platform.md §11: a refund is tracked on the payment request, "Đã hoàn phí") and
  puts a ``cancel`` job under each of its receipt keys: it runs after the issue (one key, put order).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from adapters.payment_platform.service import Hook, PaidPayment, PaymentService
from adapters.vnpt_receipts import FeeKind, FeeLine, Payer, PaymentMethod, ReceiptsClient, receipt_requests
from adapters.vnpt_receipts.envelope import Outcome
from adapters.vnpt_receipts.errors import ReceiptInvalid
from adapters.vnpt_receipts.jobs import OnDone, cancel_payload, issue_payloads, receipt_handler
from adapters.vnpt_receipts.model import ReceiptRequest, fkey_for
from core.errors import FieldError
from gateway.appkeys import JOBS, PAYMENTS, RECEIPTS, SETTINGS
from gateway.auth import require_operator
from gateway.http_errors import HTTPProblem
from queues.jobs import RECEIPT, Job, Jobs

log = logging.getLogger("dvcgw.receipts")

HOOK = "receipts"
QUEUED, ISSUED, CANCELLED, REFUNDED = "receipt_queued", "receipt_issued", "receipt_cancelled", "refunded"
#: at most this many receipts of one kind for one dossier (k = 1..); past it the hook refuses
MAX_K = 99


async def client_ctx(app: web.Application) -> AsyncIterator[None]:
    client = await ReceiptsClient.open(app[SETTINGS].receipts)
    app[RECEIPTS] = client
    yield
    await client.aclose()


async def jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    jobs = app[JOBS]
    payments = app.get(PAYMENTS)
    jobs.handle(RECEIPT, receipt_handler(app[RECEIPTS], recorder(payments)))
    if payments is not None:
        payments.on_paid(HOOK, issue_hook(jobs, payments))
    yield


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/payments/{MaThamChieu}/refund", refund)


def _requests(paid: PaidPayment, k: dict[FeeKind, int]) -> tuple[ReceiptRequest, ...]:
    lines = [FeeLine(FeeKind.from_loai(i.kind), i.name, i.amount, i.code) for i in paid.items]
    procedure = paid.context.ma_tthc or paid.items[0].code  # TH prints MaTTHC; the fee code if unknown
    return receipt_requests(paid.mahoso, procedure, Payer(paid.payer.name, paid.payer.address), lines,
                            PaymentMethod.ONLINE, k=k)


async def _free_k(jobs: Jobs, paid: PaidPayment, kind: FeeKind) -> int:
    """The first k whose fkey holds no job, or only this payment's (a re-run of the hook)."""
    for k in range(1, MAX_K + 1):
        history = await jobs.history(RECEIPT, fkey_for(paid.mahoso, kind, k))
        if not history or any(job.payload.get("reference") == paid.reference for _, job in history):
            return k
    raise ReceiptInvalid("fkey", f"{MAX_K} receipts of one kind for one dossier already")


def issue_hook(jobs: Jobs, payments: PaymentService) -> Hook:
    """The ``on_paid`` hook: the payment's receipts, as durable jobs (see the module docstring)."""

    async def issue(paid: PaidPayment) -> None:
        kinds = {FeeKind.from_loai(i.kind) for i in paid.items}
        k = {kind: await _free_k(jobs, paid, kind) for kind in kinds}
        for fkey, payload in issue_payloads(_requests(paid, k), reference=paid.reference):
            if await jobs.put(RECEIPT, fkey, payload, dedupe=f"issue:{paid.reference}"):
                payments.note(paid.reference, QUEUED, fkey)

    return issue


def recorder(payments: PaymentService | None) -> OnDone:
    """Write each receipt's outcome into its payment's history (never the payer's data)."""

    async def done(op: str, job: Job, outcome: Outcome) -> None:
        number = outcome.receipt.number if outcome.receipt is not None else ""
        log.info("receipt %s %s (%s)%s", job.key, op, outcome.verdict.value, f" number {number}" if number else "")
        ref = job.payload.get("reference")
        if payments is not None and isinstance(ref, str):
            event = ISSUED if op == "issue" else CANCELLED
            payments.note(ref, event, f"{job.key} {outcome.verdict.value}" + (f" number {number}" if number else ""))

    return done


async def refund(request: web.Request) -> web.Response:
    """``POST /v1/payments/{MaThamChieu}/refund`` (operator): 202 with the receipt keys being
    cancelled; 404 unknown, 409 not paid or already refunded."""
    require_operator(request)
    payments = request.app[PAYMENTS]
    ref = request.match_info["MaThamChieu"]
    txn = payments.transaction(ref) if len(ref) <= 255 else None
    if txn is None:
        raise HTTPProblem(404, "not_found", "no payment has this MaThamChieu")
    if txn.state != "thanh-cong":
        raise HTTPProblem(409, "not_paid", f"the payment is {txn.state}: only a paid payment is refunded",
                          [FieldError("MaThamChieu", "not paid")])
    history = payments.history(ref)
    if any(h.event == REFUNDED for h in history):
        raise HTTPProblem(409, "already_refunded", "this payment was already refunded")
    payments.note(ref, REFUNDED, "by the operator")
    fkeys = [h.detail for h in history if h.event == QUEUED]
    for fkey in fkeys:
        await request.app[JOBS].put(RECEIPT, fkey, cancel_payload(fkey, reference=ref))
    return web.json_response({"MaThamChieu": ref, "cancelling": fkeys}, status=202)
