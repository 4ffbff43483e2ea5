"""Signing errors, placed in the gateway's tree (see :mod:`core.errors`).

::

    PermanentError
    └── SigningError              signature policy or input; ``code`` is the house error code
        ├── KeyNotAllowed         the agency may not use that key
        ├── UnknownKey            no such key alias
        ├── LevelNotAvailable     B-T or above asked for, and no TSA is configured
        ├── BadPdf                garbage, encrypted or unsignable PDF
        └── PdfTooLarge           over [signing] max_pdf_bytes
    TransientError
    └── SigningUnavailable        every TSA down, remote signer or revocation source unreachable

Each carries a ``code``; the HTTP edge (gateway.signing_routes) chooses the status by class.
"""

from __future__ import annotations

from core.errors import PermanentError, TransientError


class SigningError(PermanentError):
    """Signature policy or input problem; retrying the same request cannot help."""

    code = "signing_failed"

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class KeyNotAllowed(SigningError):
    code = "key_not_allowed"


class UnknownKey(SigningError):
    code = "unknown_key"


class LevelNotAvailable(SigningError):
    code = "level_not_available"


class BadPdf(SigningError):
    code = "invalid_pdf"


class PdfTooLarge(SigningError):
    code = "pdf_too_large"


class SigningUnavailable(TransientError):
    """A time-stamping authority, the remote signer or a revocation source cannot be reached now."""

    code = "signing_unavailable"

    def __init__(self, message: str, *, code: str = "signing_unavailable",
                 retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.message = message
        self.code = code
