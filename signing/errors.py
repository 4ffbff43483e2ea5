"""Signing errors, placed in the gateway's tree (see :mod:`core.errors`).

::

    PermanentError
    └── SigningError              status 4xx; ``code`` is the house error code
        ├── KeyNotAllowed         403: the agency may not use that key
        ├── UnknownKey            404/422: no such key alias
        ├── BadPdf                422: garbage, encrypted or unsignable PDF
        └── PdfTooLarge           413
    TransientError
    └── SigningUnavailable        503: every TSA down, remote signer or revocation source unreachable

Each carries ``status`` and ``code`` so the HTTP layer maps it without string matching.
"""

from __future__ import annotations

from core.errors import PermanentError, TransientError


class SigningError(PermanentError):
    """Signature policy or input problem; retrying the same request cannot help."""

    status = 422
    code = "signing_failed"

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class KeyNotAllowed(SigningError):
    status = 403
    code = "key_not_allowed"


class UnknownKey(SigningError):
    status = 422
    code = "unknown_key"


class BadPdf(SigningError):
    status = 422
    code = "invalid_pdf"


class PdfTooLarge(SigningError):
    status = 413
    code = "pdf_too_large"


class SigningUnavailable(TransientError):
    """A time-stamping authority, the remote signer or a revocation source cannot be reached now."""

    status = 503
    code = "signing_unavailable"

    def __init__(self, message: str, *, code: str = "signing_unavailable",
                 retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.message = message
        self.code = code
