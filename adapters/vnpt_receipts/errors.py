"""VNPT e-receipt errors, split first by what the caller can do (spec ``e-receipts.md`` §7.3, §8).

::

    ReceiptError (GatewayError)
    ├── ReceiptUnavailable (TransientError)  the outcome of the call is NOT known: timeout, connection
    │   │                                    error, HTTP status, SOAP fault, a reply that is not the
    │   │                                    expected XML, or ``OK:`` without our key. Recover first
    │   │                                    (ReceiptsClient.presence), then retry with the SAME fkey.
    │   └── ReceiptUnsafeReply               the reply declared a DTD (XXE, entity expansion): refused
    │                                        before any parser expanded it
    ├── ReceiptRetryable (TransientError)    the vendor answered an ``ERR:n`` of the transient class
    │                                        (nothing was done): retry later with the same fkey
    ├── ReceiptRefused (PermanentError)      the vendor answered an ``ERR:n`` of a permanent class:
    │                                        dead-letter it with ``code`` and ``meaning``
    ├── ReceiptInvalid (PermanentError)      refused locally before any call (amount ≤ 0, fkey rule,
    │                                        control characters …): the request must be corrected
    └── ReceiptWsdlError (PermanentError)    a configured WSDL cannot be loaded, is unsafe, or lacks an
                                             operation or parameter of spec §4: the tenant stays off

Vendor errors carry the parsed :class:`~adapters.vnpt_receipts.envelope.Outcome` (operation, code,
meaning from the spec's tables, category). Messages (``str(exc)``) are written here and never quote
the vendor's free text, a payload or a credential: they are safe to log. The vendor's own text after
``ERR:n`` is kept in ``outcome.vendor_text``, for the dead-letter record only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import GatewayError, PermanentError, TransientError

if TYPE_CHECKING:
    from adapters.vnpt_receipts.envelope import Outcome


class ReceiptError(GatewayError):
    """Base of the VNPT e-receipt adapter's errors; ``operation`` is the SOAP operation ("" if none)."""

    def __init__(self, message: str, *, operation: str = "") -> None:
        super().__init__(message)
        self.operation = operation


class ReceiptUnavailable(ReceiptError, TransientError):
    """The call's outcome is unknown: recover (spec §8) before retrying with the same fkey."""

    def __init__(self, message: str, *, operation: str = "", outcome: Outcome | None = None) -> None:
        super().__init__(message, operation=operation)
        self.outcome = outcome


class ReceiptUnsafeReply(ReceiptUnavailable):
    """A reply carried a document type declaration (and so possibly entities or external references)."""


class _VendorError(ReceiptError):
    """An ``ERR:n`` answer: ``code``, ``meaning`` and ``category`` come from the parsed outcome."""

    def __init__(self, outcome: Outcome) -> None:
        code = f"ERR:{outcome.code}" if outcome.code else "ERR"
        super().__init__(f"{outcome.operation} answered {code}: {outcome.meaning}", operation=outcome.operation)
        self.outcome = outcome
        self.code = outcome.code
        self.meaning = outcome.meaning
        self.category = outcome.category


class ReceiptRetryable(_VendorError, TransientError):
    """An ``ERR:n`` of the transient class (e.g. ERR:5 on issue): nothing was done, retry later."""


class ReceiptRefused(_VendorError, PermanentError):
    """An ``ERR:n`` of a permanent class: retrying the same request cannot help; dead-letter it."""


class ReceiptInvalid(ReceiptError, PermanentError):
    """A receipt request refused before any call; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ReceiptWsdlError(ReceiptError, PermanentError):
    """A configured WSDL is unusable for the operations of spec §4; the tenant cannot be enabled."""
