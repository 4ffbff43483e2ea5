"""National-portal errors: the public ones live in :mod:`core.errors` and are re-exported here.

::

    PortalError
    ├── PortalUnavailable (TransientError)   5xx, 408, timeout, connection reset, non-JSON/HTML/empty body
    ├── PortalThrottled   (TransientError)   HTTP 429; ``retry_after`` from Retry-After, or None
    ├── PortalRejected    (PermanentError)   non-zero error_code; ``code`` + ``portal_message`` verbatim
    │   ├── PortalAlreadyExists              "đã tồn tại" reply to a create: resend as an update
    │   └── PortalNotFound                   "hồ sơ … không tồn tại" reply to an update: resend as a create
    ├── PortalAuthFailed  (PermanentError)   login/token refused, or refused again after one refresh
    │   └── PortalForbidden                  HTTP 403 from NGSP/LGSP
    └── SessionExpired                       internal only: never leaves PortalClient

:class:`SessionExpired` is the signal "the session was refused, log in again once"; the client
turns a second one into :class:`PortalAuthFailed`.
"""

from __future__ import annotations

from core.errors import (
    PortalAlreadyExists,
    PortalAuthFailed,
    PortalError,
    PortalForbidden,
    PortalNotFound,
    PortalRejected,
    PortalThrottled,
    PortalUnavailable,
)

__all__ = [
    "PortalAlreadyExists",
    "PortalAuthFailed",
    "PortalError",
    "PortalForbidden",
    "PortalNotFound",
    "PortalRejected",
    "PortalThrottled",
    "PortalUnavailable",
    "SessionExpired",
]


class SessionExpired(PortalError):
    """HTTP 401 (session auth) or a session-ish non-zero reply. Internal to the client."""
