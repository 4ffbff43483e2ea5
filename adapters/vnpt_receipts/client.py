"""Business operations on a VNPT e-receipt tenant: issue, cancel, view, download, and the presence
check that recovers an unknown outcome (spec ``e-receipts.md`` §5, §8).

Layers, top to bottom::

    issue / cancel / view / download / presence     judge the parsed outcome (OK, DONE, raise)
    envelope.parse_*                                 result string → Outcome (pure)
    SoapServices.call                                zeep in a thread: the network, translated errors

Every public coroutine raises only errors of :mod:`adapters.vnpt_receipts.errors`:
ReceiptUnavailable (outcome unknown: recover with :meth:`ReceiptsClient.presence`, then retry with
the same fkey), ReceiptUnsafeReply, ReceiptRetryable (ERR of the transient class), ReceiptRefused
(ERR of a permanent class: dead-letter with ``code`` and ``meaning``), ReceiptInvalid (refused
locally) and ReceiptWsdlError. The client keeps no state between calls and never logs payloads,
envelopes or credentials.
"""

from __future__ import annotations

import base64
import binascii
import enum
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

import requests

from adapters.vnpt_receipts import codes, envelope
from adapters.vnpt_receipts.codes import Category, Verdict
from adapters.vnpt_receipts.envelope import Outcome
from adapters.vnpt_receipts.errors import ReceiptRefused, ReceiptRetryable, ReceiptUnavailable
from adapters.vnpt_receipts.model import ReceiptRequest, check_fkey
from adapters.vnpt_receipts.transport import SoapServices
from config.schema import ReceiptsSettings

VIETNAM = timezone(timedelta(hours=7))
CONVERT_UNICODE = 0  # ``convert``: the text is already Unicode [POLICY §4]


class Presence(enum.Enum):
    """Whether VNPT holds a receipt under an fkey (spec §8 recovery, step 1)."""

    EXISTS = "exists"  # getInvViewFkey returned the receipt
    UNPAID = "unpaid"  # ERR:11: it exists, marked unpaid (an un-confirm went through)
    ABSENT = "absent"  # ERR:6: no receipt under that key; retry the issue with the same fkey


class ReceiptsClient:
    """The VNPT operations the payment flow calls. One instance per tenant; make it with :meth:`open`."""

    def __init__(self, settings: ReceiptsSettings, services: SoapServices, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._s = settings
        self._services = services
        self._clock = clock

    @classmethod
    async def open(cls, settings: ReceiptsSettings, *, session: requests.Session | None = None,
                   clock: Callable[[], float] = time.time) -> ReceiptsClient:
        """Load and check the tenant's three WSDLs and bind them to the configured addresses.
        ``session`` (optional) is used for every request and left open by :meth:`aclose`.
        Raises ReceiptWsdlError."""
        return cls(settings, await SoapServices.open(settings, session=session), clock=clock)

    async def aclose(self) -> None:
        """Wait for the calls in flight, then release the threads (and the session if it was ours)."""
        await self._services.aclose()

    # ── issue ─────────────────────────────────────────────────────────────────────────────

    async def issue(self, request: ReceiptRequest) -> Outcome:
        """``ImportAndPublishInv`` with one ``<Inv>``: idempotent by ``request.fkey``.

        Returns an Outcome with verdict OK (``outcome.receipt``: pattern, serial, number) or DONE
        (ERR:13, VNPT already holds a receipt under this fkey: treat it as issued; its number is
        not in the answer). Raises ReceiptRetryable (ERR:5, ERR:21), ReceiptRefused (other codes,
        with ``code`` and ``meaning``), ReceiptUnavailable (unknown outcome, including ``OK:``
        without our key), ReceiptInvalid (before any call)."""
        xml = envelope.inv_data(request, issued_on=self._today(), method_text=self._method_text(request))
        s = self._s
        result = await self._services.call(codes.ISSUE, {
            "Account": s.account, "ACpass": s.acpass, "xmlInvData": xml, "username": s.username,
            "password": s.password, "pattern": s.pattern, "serial": s.serial, "convert": CONVERT_UNICODE,
        })
        return _settled(envelope.parse_issue(result, request.fkey))

    # ── cancel ────────────────────────────────────────────────────────────────────────────

    async def cancel(self, fkey: str) -> Outcome:
        """Cancel the receipt under ``fkey`` after a refund (spec §5.2): ``UnConfirmPaymentFkey``
        (reverse the "paid" mark), then ``cancelInv``.

        Returns verdict OK (cancelled now) or DONE (``cancelInv`` ERR:8: already cancelled or
        replaced). The second step is taken when the first answered OK, or ERR:7 (the mark could not
        be reversed, e.g. because an earlier attempt already did): ``cancelInv`` checks the status
        itself and answers ERR:9 for a receipt still marked paid (docs/decisions.md). Any other
        answer of the first step stops there. Raises as :meth:`issue` does; ERR:6 on the first step
        (VNPT has no receipt for a key we hold as issued) is ReceiptRefused, category not_found:
        an inconsistency for the operator."""
        check_fkey(fkey)
        s = self._s
        first = envelope.parse_ok(codes.UNCONFIRM, await self._services.call(
            codes.UNCONFIRM, {"lstFkey": fkey, "userName": s.username, "userPass": s.password}))
        if not (first.verdict is Verdict.OK or first.code == "7"):
            _settled(first)
        second = envelope.parse_ok(codes.CANCEL, await self._services.call(codes.CANCEL, {
            "Account": s.account, "ACpass": s.acpass, "fkey": fkey, "userName": s.username, "userPass": s.password,
        }))
        return _settled(second)

    # ── view, download, presence ──────────────────────────────────────────────────────────

    async def view(self, fkey: str) -> str:
        """``getInvViewFkey``: the receipt as HTML, verbatim (serve it as ``text/html``).
        Raises ReceiptRefused (ERR:6 not found, ERR:11 not paid, …), ReceiptRetryable (ERR:12/13:
        not yet accepted by the tax authority), ReceiptUnavailable."""
        return await self._portal(codes.VIEW, fkey)

    async def download(self, fkey: str) -> bytes:
        """``downloadInvPDFFkey``: the receipt's PDF (the result decoded from base64 [INFERRED §4]).
        A result that does not decode to a PDF raises ReceiptUnavailable; ERR answers as :meth:`view`."""
        text = await self._portal(codes.DOWNLOAD, fkey)
        try:
            pdf = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            pdf = b""
        if not pdf.startswith(b"%PDF-"):
            raise ReceiptUnavailable(f"{codes.DOWNLOAD}: the result is not a base64 PDF", operation=codes.DOWNLOAD)
        return pdf

    async def presence(self, fkey: str) -> Presence:
        """Recovery after an unknown outcome (spec §8 step 1), through ``getInvViewFkey``: a receipt
        page means EXISTS, ERR:11 UNPAID, ERR:6 ABSENT. Other answers raise as :meth:`view`."""
        try:
            await self._portal(codes.VIEW, fkey)
        except ReceiptRefused as exc:
            if exc.category is Category.NOT_FOUND:
                return Presence.ABSENT
            if exc.category is Category.NOT_PAID:
                return Presence.UNPAID
            raise
        return Presence.EXISTS

    async def _portal(self, operation: str, fkey: str) -> str:
        check_fkey(fkey)
        result = await self._services.call(
            operation, {"fkey": fkey, "userName": self._s.username, "userPass": self._s.password})
        if result is None or not result.strip():
            raise ReceiptUnavailable(f"{operation}: empty result", operation=operation)
        outcome = envelope.parse_error(operation, result)
        if outcome is not None:
            _settled(outcome)
        return result

    # ── helpers ───────────────────────────────────────────────────────────────────────────

    def _today(self) -> date:
        """The issue date in Vietnam time (ArisingDate) [POLICY §6.2]."""
        return datetime.fromtimestamp(self._clock(), UTC).astimezone(VIETNAM).date()

    def _method_text(self, request: ReceiptRequest) -> str:
        method = request.method
        return method.label if self._s.payment_method_text == "label" else method.value


def _settled(outcome: Outcome) -> Outcome:
    """Return an OK or DONE outcome; raise the matching error for the others."""
    if outcome.verdict in (Verdict.OK, Verdict.DONE):
        return outcome
    if outcome.category is Category.UNKNOWN_OUTCOME:
        raise ReceiptUnavailable(f"{outcome.operation}: outcome unknown ({outcome.meaning})",
                                 operation=outcome.operation, outcome=outcome)
    if outcome.verdict is Verdict.TRANSIENT:
        raise ReceiptRetryable(outcome)
    raise ReceiptRefused(outcome)
