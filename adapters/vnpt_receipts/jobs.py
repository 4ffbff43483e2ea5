"""E-receipts as durable jobs (:mod:`queues.jobs`, topic ``receipt``, key = the receipt's fkey).

A confirmed payment puts one job per receipt (:func:`issue_payloads`: one per fee kind, spec §8);
a refund puts a ``cancel`` job under the same fkey, so it runs after the issue (one key, put
order). The handler (:func:`receipt_handler`) calls VNPT and maps its answer onto the jobs' rules:

* ``OK`` and ``ERR:13`` (already issued under this fkey: DONE) → done, reported to ``on_done``;
* ``ERR:5``, ``ERR:21``, an unknown outcome, a timeout → :class:`~core.errors.TransientError`:
  retried on the ladder with the same fkey (the issue is idempotent by fkey);
* every other ``ERR:n`` → a dead letter whose code is ``ERR:n`` and whose message is the spec's
  meaning of it (never the vendor's text: it may quote the payer);
* a request the adapter refuses before any call (``ReceiptInvalid``) → a dead letter naming the field.

The payload holds what the receipt prints (the payer's name and address among it): it lives in
the jobs file (0600) and is never logged or shown by the operator routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from adapters.vnpt_receipts.client import ReceiptsClient
from adapters.vnpt_receipts.envelope import Outcome
from adapters.vnpt_receipts.errors import ReceiptInvalid, ReceiptRefused, ReceiptWsdlError
from adapters.vnpt_receipts.model import FeeKind, FeeLine, Payer, PaymentMethod, ReceiptRequest
from queues.jobs import Job, JobRefused

ISSUE, CANCEL = "issue", "cancel"
#: (operation, the job, outcome) once VNPT holds the result: the caller's record of the receipt
OnDone = Callable[[str, Job, Outcome], Awaitable[None]]


def request_json(request: ReceiptRequest, **extra: str) -> dict[str, Any]:
    """A receipt request as a job's payload (:func:`request_from_json` reads it back); ``extra``
    keys (e.g. the payment's reference) ride along for the caller."""
    return {
        **extra, "op": ISSUE, "fkey": request.fkey, "kind": request.kind.value, "dossier_code": request.dossier_code,
        "procedure_code": request.procedure_code, "method": request.method.value,
        "payer": {"name": request.payer.name, "address": request.payer.address,
                  "tax_code": request.payer.tax_code, "email": request.payer.email},
        "lines": [{"name": ln.name, "amount": ln.amount, "code": ln.code} for ln in request.lines],
    }


def request_from_json(payload: Mapping[str, Any]) -> ReceiptRequest:
    """The request a payload holds. Raises ReceiptInvalid (a field named) if it is not one."""
    try:
        kind = FeeKind(payload["kind"])
        payer = Payer(**payload["payer"])
        lines = tuple(FeeLine(kind, ln["name"], ln["amount"], ln.get("code", "")) for ln in payload["lines"])
        return ReceiptRequest(payload["fkey"], kind, payload["dossier_code"], payload["procedure_code"], payer,
                              lines, PaymentMethod(payload.get("method", PaymentMethod.ONLINE.value)))
    except (KeyError, TypeError, ValueError) as exc:
        raise ReceiptInvalid("payload", f"not a receipt request: {type(exc).__name__}: {exc}") from exc


def issue_payloads(requests: Sequence[ReceiptRequest], **extra: str) -> list[tuple[str, dict[str, Any]]]:
    """(fkey, payload) of each receipt of one payment, to put under topic ``receipt``."""
    return [(r.fkey, request_json(r, **extra)) for r in requests]


def cancel_payload(fkey: str, **extra: str) -> dict[str, Any]:
    """The payload of a refund's cancellation of the receipt under ``fkey``."""
    return {**extra, "op": CANCEL, "fkey": fkey}


def receipt_handler(client: ReceiptsClient, on_done: OnDone | None = None) -> Callable[[Job], Awaitable[None]]:
    """The ``receipt`` topic's handler (see the module docstring)."""

    async def handle(job: Job) -> None:
        op = job.payload.get("op")
        try:
            if op == ISSUE:
                outcome = await client.issue(request_from_json(job.payload))
            elif op == CANCEL:
                outcome = await client.cancel(str(job.payload.get("fkey", job.key)))
            else:
                raise JobRefused("bad_payload", f"unknown receipt operation {op!r}")
        except ReceiptRefused as exc:
            code = f"ERR:{exc.code}" if exc.code else "ERR"
            raise JobRefused(code, f"{exc.outcome.operation}: {exc.meaning or 'refused'}") from exc
        except ReceiptInvalid as exc:
            raise JobRefused("invalid", f"{exc.field}: the request cannot be sent") from exc
        except ReceiptWsdlError as exc:
            raise JobRefused("wsdl", str(exc)) from exc
        if on_done is not None:
            await on_done(str(op), job, outcome)

    return handle
