"""Cached credentials for the portal: the DVCQG session (§2.5) and the OAuth2 token (§3).

Both are a :class:`CredentialCache`: one value, fetched **single-flight** under an asyncio lock
(fifty callers needing it at once cause one fetch), reused until its lifetime ends on the
injected clock, and dropped by :meth:`CredentialCache.invalidate` only if the caller still holds
the current value (so concurrent callers refused with the same stale session cause one refresh).

If a fetch fails, the callers that queued behind it get the same error instead of each trying
again: no login storm (§2.5 "no automatic retry storm"). The next call after that tries afresh;
backing off between such calls is the delivery engine's pause, not this module's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from core.errors import PortalError

# fetch() returns the credential and for how many seconds it may be reused
Fetch = Callable[[], Awaitable[tuple[str, float]]]


class CredentialCache:
    """One credential, fetched single-flight and reused until it is older than its lifetime."""

    def __init__(self, fetch: Fetch, *, clock: Callable[[], float]) -> None:
        self._fetch = fetch
        self._clock = clock
        self._value: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self._attempts = 0
        self._completed = 0  # fetches finished, successfully or not
        self._last_error: PortalError | None = None
        self._held = False  # a fetch has succeeded before

    def _fresh(self) -> str | None:
        if self._value is not None and self._clock() < self._expires_at:
            return self._value
        return None

    async def get(self) -> str:
        """The current credential, fetching it first if absent or expired.

        Raises whatever ``fetch`` raises (PortalAuthFailed, PortalUnavailable …).
        """
        value = self._fresh()
        if value is not None:
            return value
        seen = self._completed
        async with self._lock:
            value = self._fresh()
            if value is not None:
                return value
            if self._completed != seen and self._last_error is not None:
                raise self._last_error  # the fetch we waited for just failed: share its result
            return await self._fetch_now()

    async def _fetch_now(self) -> str:
        self._attempts += 1
        try:
            value, lifetime = await self._fetch()
        except PortalError as exc:
            self._last_error = exc
            raise
        finally:
            self._completed += 1
        self._last_error = None
        self._value, self._expires_at = value, self._clock() + lifetime
        self._held = True
        return value

    def invalidate(self, stale: str) -> None:
        """Forget ``stale`` if it is still the cached value (a newer one is kept)."""
        if self._value == stale:
            self._value = None

    @property
    def refreshing(self) -> bool:
        """True once a credential was held: a fetch now replaces one that ran out or was refused."""
        return self._held

    @property
    def fetches(self) -> int:
        """How many fetches were started (for tests and diagnostics)."""
        return self._attempts
