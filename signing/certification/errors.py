"""Certification errors, placed in the gateway's tree (see :mod:`core.errors`).

::

    PermanentError
    └── CertificationError        ``code`` is the house error code; the HTTP edge picks the status
        ├── NoSuchEntry           no book / number (404)
        ├── BookConflict          a book is already open, or none is open to close (409)
        └── BadState              the entry is not in a state that allows the change (409)
"""

from __future__ import annotations

from core.errors import PermanentError


class CertificationError(PermanentError):
    code = "certification_failed"

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NoSuchEntry(CertificationError):
    code = "not_found"


class BookConflict(CertificationError):
    code = "book_conflict"


class BadState(CertificationError):
    code = "bad_state"
