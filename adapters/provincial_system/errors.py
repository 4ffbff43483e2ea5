"""Provincial one-stop system errors, split first by what the caller (the jobs outbox) can do.

::

    ProvincialError (GatewayError)
    ├── ProvincialUnavailable (TransientError)   5xx, 408, timeout, connection error: retry on the ladder
    │   └── ProvincialThrottled                  HTTP 429; ``retry_after`` from Retry-After, or None
    └── ProvincialRejected (PermanentError)      any other 4xx (a 3xx too: the URL is wrong): dead
                                                 letter with ``code`` (the answer's own ``code`` or
                                                 ``error`` when it is an identifier, else
                                                 ``HTTP <status>``) and a message naming the status

409, and a 4xx whose message says the dossier already exists, are not errors: the dossier (that
version of it) is there, the delivery is done (:mod:`adapters.provincial_system.envelope`).

Messages are written here and never quote the receiver's free text (it may quote the citizen)
nor the dossier sent: they are safe to log.
"""

from __future__ import annotations

from core.errors import GatewayError, PermanentError, TransientError


class ProvincialError(GatewayError):
    """Base of the provincial-system adapter's errors."""


class ProvincialUnavailable(ProvincialError, TransientError):
    """The provincial system could not take the dossier now (5xx, 408, timeout, connection)."""


class ProvincialThrottled(ProvincialUnavailable):
    """HTTP 429: wait ``retry_after`` seconds, or the next retry delay."""


class ProvincialRejected(ProvincialError, PermanentError):
    """The provincial system refused the dossier; retrying the same body cannot help."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"provincial system refused the dossier ({code}): {message}")
        self.code = code
