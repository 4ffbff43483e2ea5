"""The gateway's error tree, split first by what the caller can do.

::

    GatewayError
    ├── TransientError            retry later (timeouts, 5xx, 429, broker down); carries retry_after
    │   ├── PortalUnavailable      (also PortalError)  5xx, timeout, connection reset, non-JSON body
    │   ├── PortalThrottled        (also PortalError)  HTTP 429, Retry-After honoured
    │   ├── QueueUnavailable       the queue backend (SQLite, Kafka) cannot take or give work now
    │   ├── CodeStoreUnavailable   the dossier-code rule's file (spec §8) cannot be read or written now
    │   └── SigningUnavailable     a TSA or remote signer is down (signing/)
    └── PermanentError            retrying the same input cannot help
        ├── ConfigError            a settings file or environment override is wrong; names the key
        ├── ValidationError        agency input; carries a list of FieldError
        ├── TransitionRefused      a TrangThaiHoSo transition outside spec §7.2 under [transitions] enforce
        ├── PortalError            (base of the national-portal errors; see adapters/national_portal)
        │   ├── PortalRejected     business rejection: code + message verbatim
        │   │   ├── PortalAlreadyExists  "đã tồn tại" reply to a create: resend as an update
        │   │   └── PortalNotFound       "hồ sơ … không tồn tại" reply to an update: resend as a create
        │   ├── PortalAuthFailed   login or token refused twice: pause delivery, a person must act
        │   └── PortalForbidden    HTTP 403 from NGSP/LGSP: subscription missing, pause delivery
        └── SigningError           signature policy, bad PDF, key not allowed (signing/)

    VNPT e-receipt errors (ReceiptError: Unavailable and Retryable are TransientError; Refused, Invalid,
    WsdlError are PermanentError) are drawn in adapters/vnpt_receipts/errors.py.

The retry machinery asks only ``isinstance(exc, TransientError)``; foreign exceptions (aiohttp,
sqlite3, aiokafka, zeep, pyHanko) are translated once at their adapter's edge, ``from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class TransientError(GatewayError):
    """The operation may succeed later; ``retry_after`` (seconds) is a hint, or None."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(GatewayError):
    """Retrying the same input cannot help."""


class ConfigError(PermanentError):
    """A settings problem; ``key`` is the dotted path of the offending key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of agency input; ``field`` uses JSON-path-like notation."""

    field: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class ValidationError(PermanentError):
    """Agency input failed validation; the problems are listed in ``errors``. ``more_errors``
    counts those found beyond the listed ones (the dossier validator lists at most 50), and
    ``stopped`` says the check gave up looking for more (there may be others)."""

    def __init__(self, errors: list[FieldError], *, code: str = "validation_failed", more_errors: int = 0,
                 stopped: bool = False) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors
        self.code = code
        self.more_errors = more_errors
        self.stopped = stopped


class TransitionRefused(PermanentError):
    """A snapshot's ``TrangThaiHoSo`` may not follow the dossier's last accepted state
    (``[transitions] enforce = true``); nothing was stored."""

    def __init__(self, previous: str | None, new: str) -> None:
        super().__init__(f"TrangThaiHoSo may not go from {previous} to {new} ([transitions] enforce = true)")
        self.previous, self.new = previous, new


class QueueUnavailable(TransientError):
    """The queue backend cannot accept or hand out work right now."""


class CodeStoreUnavailable(TransientError):
    """The dossier-code rule's own file (spec §8: sequences, local → portal codes) failed; the
    delivery that needed it is retried on the ladder."""


class PortalError(GatewayError):
    """Base of errors from the national portal (DVCQG) adapter."""


class PortalUnavailable(PortalError, TransientError):
    """5xx, timeout, connection reset or a body that is not JSON: follow the retry ladder."""


class PortalThrottled(PortalError, TransientError):
    """HTTP 429: wait ``retry_after`` seconds, or the next retry delay."""


class PortalRejected(PortalError, PermanentError):
    """A business rejection; ``code`` and ``message`` are exactly what the portal sent."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"portal rejected ({code}): {message}")
        self.code = code
        self.portal_message = message


class PortalAlreadyExists(PortalRejected):
    """The portal already holds the dossier ("đã tồn tại"): resend the same body as an update."""


class PortalNotFound(PortalRejected):
    """An update was refused because the portal does not hold the dossier (it lost it, or it was
    deleted there): forget that the portal has it, and resend the same body as a create."""


class PortalAuthFailed(PortalError, PermanentError):
    """Login or token refused even after one fresh attempt: pause delivery, a person must act."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.portal_message = message


class PortalForbidden(PortalAuthFailed):
    """HTTP 403 from NGSP/LGSP: the application lacks a subscription; pause delivery."""
