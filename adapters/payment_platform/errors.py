"""Payment-platform errors, split first by what the caller can do (spec ``payment-platform.md`` §12).

::

    PaymentError (GatewayError)
    ├── PaymentUnavailable (TransientError)   the outcome of the call is NOT known: timeout, connection
    │                                         error, HTTP status other than 200, a body that is not the
    │                                         expected JSON. INIT: the transaction is recorded that-bai
    │                                         (no payment URL reached the citizen); QUERY/GET_BILL: ask
    │                                         again later
    ├── BillNotReady (TransientError)         GET_BILL answered an empty body: the receipt is not ready
    ├── PaymentRefused (PermanentError)       INIT answered a non-zero ``error_code``: ``code`` and the
    │                                         platform's ``platform_message`` verbatim
    └── PaymentInvalid (PermanentError)       refused locally before any call (amount, field, a reply
                                              that breaks the protocol such as a bill that is not a PDF);
                                              ``field`` names what is wrong

Messages (``str(exc)``) never quote a payer's name or ID number, nor the secret: they are safe to log.
Foreign exceptions (aiohttp, JSON) are translated once, in :mod:`.transport` and :mod:`.envelope`.
"""

from __future__ import annotations

from core.errors import GatewayError, PermanentError, TransientError


class PaymentError(GatewayError):
    """Base of the payment-platform adapter's errors; ``operation`` is INIT, QUERY or GET_BILL ("" if none)."""

    def __init__(self, message: str, *, operation: str = "") -> None:
        super().__init__(message)
        self.operation = operation


class PaymentUnavailable(PaymentError, TransientError):
    """The call's outcome is unknown (network, HTTP status, unreadable reply)."""

    def __init__(self, message: str, *, operation: str = "", retry_after: float | None = None) -> None:
        PaymentError.__init__(self, message, operation=operation)
        self.retry_after = retry_after


class BillNotReady(PaymentError, TransientError):
    """GET_BILL gave an empty body: the platform has no receipt yet (spec §9); ask again later."""

    def __init__(self, message: str, *, operation: str = "GET_BILL") -> None:
        PaymentError.__init__(self, message, operation=operation)
        self.retry_after = None


class PaymentRefused(PaymentError, PermanentError):
    """INIT refused: ``code`` is the reply's ``error_code``, ``platform_message`` its ``message``."""

    def __init__(self, code: str, platform_message: str, *, operation: str = "INIT") -> None:
        super().__init__(f"{operation} refused by the payment platform (error_code {code})", operation=operation)
        self.code = code
        self.platform_message = platform_message


class PaymentInvalid(PaymentError, PermanentError):
    """A request or a reply that breaks the protocol; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str, *, operation: str = "") -> None:
        super().__init__(f"{field}: {message}", operation=operation)
        self.field = field
