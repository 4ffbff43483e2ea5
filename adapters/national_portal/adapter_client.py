"""The province-adapter transport (spec §3.4, ``[portal] transport = "adapter"``).

:class:`AdapterClient` offers the operations of :class:`PortalClient` (``lookup``,
``sync_dossiers``, ``push_progress``) with the same errors of :mod:`core.errors`, so the sync
engine has one code path for both transports. What differs is only the wire:

==================  ==========================================  =================================
operation           request                                     success
==================  ==========================================  =================================
create              ``POST create_url``  ``[dossier, …]``       error_code 0 + "thành công"
update              ``POST update_url``  ``[dossier, …]``       the same
progress            ``POST progress_url`` ``[item ×≤10]``       text saying "thành công"
lookup [UNCERTAIN]  ``POST lookup_url`` ``{"mahoso": …}``       §5.3; no URL = "not known" (§5.6)
==================  ==========================================  =================================

It reuses the service client's HTTP layer: the concurrency cap, the rate limit, the bearer token
(``auth = "oauth2"``: one refresh on HTTP 401) and the status classes of §3.3. Authentication is
otherwise the adapter's: an optional static header (``[portal.adapter] auth_header``), and
``dstcode`` only when configured. There is no session: HTTP 401 without a token to refresh, or a
refusal that speaks of logging in, is :class:`~core.errors.PortalAuthFailed` (delivery pauses).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp

from adapters.national_portal import adapter_envelope, envelope
from adapters.national_portal.client import PortalClient, _decode, _raise_for_status, _require_ok
from adapters.national_portal.envelope import Verdict
from adapters.national_portal.errors import (
    PortalAlreadyExists,
    PortalAuthFailed,
    PortalNotFound,
    PortalRejected,
    PortalUnavailable,
)
from adapters.national_portal.transport import JsonBody, RawReply
from config.schema import PortalSettings
from monitoring.metrics import Metrics


class AdapterClient(PortalClient):
    """The national-portal operations through a province adapter: one URL each, bare arrays."""

    def __init__(
        self,
        settings: PortalSettings,
        session: aiohttp.ClientSession,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, session, metrics=metrics, clock=clock)
        a, base = settings.adapter, settings.adapter_url
        self._create_url = a.url(base, "create_url")
        self._update_url = a.url(base, "update_url")
        self._progress_url = a.url(base, "progress_url")
        self._lookup_url = a.url(base, "lookup_url")

    @property
    def can_lookup(self) -> bool:
        """False when the adapter has no lookup URL: ``lookup`` then answers "not known"."""
        return bool(self._lookup_url)

    async def lookup(self, mahoso: str) -> bool:
        """TraCuuHoSo through ``lookup_url``; without one, False, so that the first push is a create
        and a "đã tồn tại" reply turns it into an update (spec §5.6 fallback). A non-zero
        error_code raises PortalRejected (existence unknown)."""
        if not self._lookup_url:
            return False
        reply = _decode(envelope.LOOKUP, await self._send(envelope.LOOKUP, self._lookup_url,
                                                          adapter_envelope.lookup_body(mahoso)))
        _require_ok(reply)
        return envelope.has_result(reply)

    async def sync_dossiers(self, dossiers: Sequence[Mapping[str, Any]], *, updating: bool) -> None:
        """Create (``create_url``) or update (``update_url``); an empty sequence sends nothing.
        Raises as :meth:`PortalClient.sync_dossiers` does, and PortalAuthFailed for a refusal that
        speaks of logging in."""
        if not dossiers:
            return
        url = self._update_url if updating else self._create_url
        raw = await self._send(envelope.SYNC_DOSSIERS, url, adapter_envelope.dossier_body(dossiers))
        reply = _decode(envelope.SYNC_DOSSIERS, raw)
        _judge_sync(reply, updating)

    async def push_progress(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Progress through ``progress_url``; ValueError for more than 10 items, nothing sent for
        none. An empty or HTML reply is PortalUnavailable, a text not saying "thành công"
        PortalRejected (code ``"text"`` unless the reply was JSON with an error_code)."""
        body = adapter_envelope.progress_body(items)
        if not items:
            return
        raw = await self._send(envelope.PUSH_PROGRESS, self._progress_url, body, idempotent=False)
        _raise_for_status(envelope.PUSH_PROGRESS, raw)
        read = adapter_envelope.progress_reply(raw.body)
        if read.broken:
            raise PortalUnavailable(f"{envelope.PUSH_PROGRESS}: empty or HTML reply ({len(raw.body)} bytes)")
        if not read.ok:
            raise PortalRejected(read.code, read.message)

    # ── HTTP ──────────────────────────────────────────────────────────────────────────────

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._s.dstcode:
            headers["dstcode"] = self._s.dstcode
        a = self._s.adapter
        if a.auth_header:
            headers[a.auth_header] = a.auth_header_value
        return headers

    async def _send(self, service: str, url: str, body: JsonBody, *, idempotent: bool = True) -> RawReply:
        """One call under the concurrency cap and rate limit; HTTP 401 left after the token's one
        refresh (or with no token at all) is PortalAuthFailed: there is no session to renew."""
        async with self._limit:
            await self._rate.acquire()
            raw = await self._post_raw(url, service, body, idempotent=idempotent)
        if raw.status == 401:
            raise PortalAuthFailed(f"{service}: HTTP 401 from the adapter", code="401")
        return raw


def _judge_sync(reply: Mapping[str, Any], updating: bool) -> None:
    verdict = adapter_envelope.sync_verdict(reply)
    code, message = envelope.code_text(reply.get("error_code")), envelope.message_of(reply)
    if verdict is Verdict.OK or (verdict is Verdict.EXISTS and updating):
        return
    if verdict is Verdict.EXISTS:
        raise PortalAlreadyExists(code, message)
    if verdict is Verdict.NOT_FOUND and updating:
        raise PortalNotFound(code, message)
    if verdict is Verdict.SESSION_EXPIRED:
        raise PortalAuthFailed(message or "the adapter refused the call", code=code)
    raise PortalRejected(code, message)
