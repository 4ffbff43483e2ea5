"""Business operations on the national portal (DVCQG): lookup, dossier sync, progress push, the
procedure catalogue (``LayDanhSachTTHC`` on the share endpoint, ``LayThuTuc``) and read-only calls
of a configured service (the inbound dossier pull).

Layers, top to bottom::

    lookup / sync_dossiers / push_progress     judge the decoded reply (ok, exists, rejected)
    list_procedures / procedure / call
    _service                                    concurrency cap, rate limit, session + one re-login
    _post                                       dstcode + bearer headers, one token refresh on 401,
                                                HTTP status → error class, JSON decode
    Transport.send                              the network (translated errors, quick reconnects)

Every public coroutine raises only errors of :mod:`core.errors`:
PortalUnavailable, PortalThrottled, PortalRejected, PortalAlreadyExists, PortalAuthFailed,
PortalForbidden. The client never logs dossier content.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp

from adapters.national_portal import envelope
from adapters.national_portal.auth import CredentialCache
from adapters.national_portal.envelope import Verdict
from adapters.national_portal.errors import (
    PortalAlreadyExists,
    PortalAuthFailed,
    PortalError,
    PortalForbidden,
    PortalNotFound,
    PortalRejected,
    PortalThrottled,
    PortalUnavailable,
    SessionExpired,
)
from adapters.national_portal.transport import JsonBody, RawReply, Transport
from config.schema import PortalSettings
from monitoring.metrics import PORTAL, Metrics

log = logging.getLogger(__name__)

_SNIPPET = 200  # bytes of an unexpected HTTP error body kept in PortalRejected's message


class RateLimiter:
    """Token bucket: ``rate`` calls per second, bursts up to ``max(1, rate)``; 0 = unlimited.

    Uses the event loop's clock (real time), not the injected clock: waiting must really wait.
    """

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._last: float | None = None

    async def acquire(self) -> None:
        """Take one token, sleeping until it is due; reservations keep arrival order."""
        if self._rate <= 0:
            return
        now = asyncio.get_running_loop().time()
        if self._last is not None:
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        self._tokens -= 1.0
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / self._rate)


class PortalClient:
    """The national-portal operations the sync engine calls. One instance per settings tree."""

    def __init__(
        self,
        settings: PortalSettings,
        session: aiohttp.ClientSession,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._s = settings
        self._metrics = metrics
        self._transport = Transport(session, timeout=settings.timeout, connect_retries=settings.connect_retries)
        self._limit = asyncio.Semaphore(settings.max_concurrency)
        self._rate = RateLimiter(settings.rate_limit_per_s)
        uses_token = settings.auth in ("oauth2", "oauth2+session")
        uses_session = settings.auth in ("session", "oauth2+session")
        self._tokens = CredentialCache(self._fetch_token, clock=clock) if uses_token else None
        self._sessions = CredentialCache(self._login, clock=clock) if uses_session else None
        self._service_url = settings.adapter_url.rstrip("/") + settings.integration_endpoint
        self._share_url = settings.adapter_url.rstrip("/") + settings.share_endpoint
        self._login_url = settings.adapter_url.rstrip("/") + settings.auth_endpoint

    # ── public operations ─────────────────────────────────────────────────────────────────

    async def lookup(self, mahoso: str) -> bool:
        """``TraCuuHoSo``: True if the portal holds ``mahoso`` (non-empty ``result``).

        A non-zero error_code raises PortalRejected: existence is then unknown, do not guess.
        """
        reply = await self._service(envelope.LOOKUP, envelope.lookup_params(mahoso))
        _require_ok(reply)
        return envelope.has_result(reply)

    async def sync_dossiers(self, dossiers: Sequence[Mapping[str, Any]], *, updating: bool) -> None:
        """``DongBoHoSoMC`` with ``isUpdating`` "True"/"False"; an empty sequence sends nothing.

        A create answered "đã tồn tại" raises PortalAlreadyExists (resend the same body as an
        update); an update answered "đã tồn tại" is success. An update answered "hồ sơ … không tồn
        tại" raises PortalNotFound (the portal lost the dossier: resend the same body as a create).
        """
        if not dossiers:
            return
        reply = await self._service(envelope.SYNC_DOSSIERS, envelope.sync_params(dossiers, updating=updating))
        if envelope.verdict(reply) is Verdict.EXISTS:
            if updating:
                return
            raise PortalAlreadyExists(envelope.code_text(reply.get("error_code")), envelope.message_of(reply))
        if updating and envelope.verdict(reply) is Verdict.NOT_FOUND:
            raise PortalNotFound(envelope.code_text(reply.get("error_code")), envelope.message_of(reply))
        _require_ok(reply)

    async def push_progress(self, items: Sequence[Mapping[str, Any]]) -> None:
        """``CapNhatTienDoHoSoMC``; ValueError for more than 10 items, nothing sent for none.

        Not idempotent on the portal side, so a connection broken mid-request is not resent here.
        """
        params = envelope.progress_params(items)
        if not items:
            return
        reply = await self._service(envelope.PUSH_PROGRESS, params, idempotent=False)
        _require_ok(reply)

    async def list_procedures(self) -> list[dict[str, Any]]:
        """``LayDanhSachTTHC`` (share endpoint, no parameters): the catalogue rows, each with at
        least ``MATTHC`` and ``TENTTHC`` (other columns passed through, spec §5.5). A non-zero
        error_code raises PortalRejected."""
        reply = await self._service(envelope.PROCEDURE_LIST, {}, endpoint="share")
        _require_ok(reply)
        return envelope.result_rows(reply)

    async def procedure(self, ma_tthc: str) -> dict[str, Any] | None:
        """``LayThuTuc`` (integration endpoint, ``maTTHC``): the procedure detail (``result[0]``,
        fields upper case as sent, spec §5.4), or None when the portal has no such procedure (an
        empty ``result``). A non-zero error_code raises PortalRejected."""
        reply = await self._service(envelope.PROCEDURE, envelope.procedure_params(ma_tthc))
        _require_ok(reply)
        rows = envelope.result_rows(reply)
        return rows[0] if rows else None

    async def call(self, service: str, params: Mapping[str, Any], *, endpoint: str = "integration") -> dict[str, Any]:
        """Any other read-only service (the inbound dossier pull, whose name and parameters are
        configured, spec §1.2): the decoded reply after the success test. A non-zero error_code
        raises PortalRejected."""
        reply = await self._service(service, params, endpoint=endpoint)
        _require_ok(reply)
        return reply

    # ── service layer: limits, session, one re-login ──────────────────────────────────────

    async def _service(
        self, service: str, params: Mapping[str, Any], *, idempotent: bool = True, endpoint: str = "integration"
    ) -> dict[str, Any]:
        """One service call with at most one re-login; returns the decoded reply (any verdict
        but SESSION_EXPIRED). Raises PortalAuthFailed when the fresh session is refused too.
        ``endpoint`` "share" posts to ``share_endpoint`` (catalogue services, spec §2.1)."""
        url = self._share_url if endpoint == "share" else self._service_url
        async with self._limit:
            for attempt in (1, 2):
                session = await self._sessions.get() if self._sessions is not None else None
                await self._rate.acquire()
                body = envelope.service_body(service, params, madonvi=self._s.madonvi, session=session)
                reply = await self._post_session(url, service, body, idempotent)
                if reply is not None:
                    return reply
                if session is None or self._sessions is None or attempt == 2:
                    raise PortalAuthFailed(f"{service}: session refused again after a fresh login")
                log.info("portal session refused on %s; logging in again once", service)
                self._sessions.invalidate(session)
        raise AssertionError("unreachable")

    async def _post_session(
        self, url: str, service: str, body: Mapping[str, Any], idempotent: bool
    ) -> dict[str, Any] | None:
        """POST a service body; None means "the session was refused" (HTTP 401 or a session reply)."""
        try:
            reply = await self._post(url, service, body, idempotent=idempotent)
        except SessionExpired:
            return None
        return None if envelope.verdict(reply) is Verdict.SESSION_EXPIRED else reply

    # ── HTTP layer: headers, bearer refresh, status classes ──────────────────────────────

    async def _post(
        self, url: str, service: str, body: Mapping[str, Any], *, idempotent: bool = True
    ) -> dict[str, Any]:
        """POST JSON with dstcode (and bearer); one token refresh on HTTP 401 when a token is used."""
        return _decode(service, await self._post_raw(url, service, body, idempotent=idempotent))

    def _headers(self) -> dict[str, str]:
        """The headers of every call but the token request (the bearer is added per call)."""
        return envelope.base_headers(self._s.dstcode)

    async def _post_raw(
        self, url: str, service: str, body: JsonBody, *, idempotent: bool = True
    ) -> RawReply:
        """POST JSON (an object, or the adapter variant's bare array) and return the raw reply, after
        one token refresh on HTTP 401 when a token is used; the status is not judged here."""
        for attempt in (1, 2):
            token = await self._tokens.get() if self._tokens is not None else None
            headers = self._headers()
            if token is not None:
                headers["Authorization"] = token
            raw = await self._transport.send(
                url, service=service, headers=headers, json_body=body, idempotent=idempotent
            )
            if raw.status != 401 or token is None or self._tokens is None:
                return raw
            self._tokens.invalidate(token)
            if attempt == 2:
                raise PortalAuthFailed(f"{service}: HTTP 401 again with a fresh token", code="401")
            log.info("portal answered 401 on %s; fetching a new token once", service)
        raise AssertionError("unreachable")

    # ── credential fetchers (run single-flight by CredentialCache) ───────────────────────

    async def _login(self) -> tuple[str, float]:
        """§2.2 login; the session is reused for ``session_max_age``."""
        body = envelope.login_body(self._s.username, self._s.password)
        try:
            reply = await self._post(self._login_url, "login", body)
            session = envelope.session_from_login(reply)
        except SessionExpired as exc:
            self._count_auth("login", ok=False)
            raise PortalAuthFailed("portal login refused with HTTP 401", code="401") from exc
        except PortalError:
            self._count_auth("login", ok=False)
            raise
        self._count_auth("login", ok=True)
        return session, self._s.session_max_age

    async def _fetch_token(self) -> tuple[str, float]:
        """§3.1 client-credentials token, reused until ``expires_in − 60 s``. Counted as ``token``
        the first time, ``refresh`` once it replaces a token that ran out or was refused."""
        s = self._s
        kind = "refresh" if self._tokens is not None and self._tokens.refreshing else "token"
        req = envelope.token_request(s.client_id, s.client_secret, client_auth=s.client_auth)
        try:
            raw = await self._transport.send(s.token_url, service="token", headers=req.headers, form=req.form)
            token = envelope.parse_token(_decode_token(raw))
        except PortalError:
            self._count_auth(kind, ok=False)
            raise
        self._count_auth(kind, ok=True)
        return token.header_value, token.usable_for

    def _count_auth(self, kind: str, *, ok: bool) -> None:
        """``dvcgw_auth_total{counterpart="portal", kind, result}``: login (a DVCQG session, the
        first or a new one after a refusal), token or refresh (OAuth2)."""
        if self._metrics is not None:
            self._metrics.auth_result(PORTAL, kind, ok)


# ── reply interpretation (pure helpers) ──────────────────────────────────────────────────


def _require_ok(reply: Mapping[str, Any]) -> None:
    """Raise PortalRejected (code, message verbatim) unless error_code is 0."""
    if not envelope.is_ok(reply.get("error_code")):
        raise PortalRejected(envelope.code_text(reply.get("error_code")), envelope.message_of(reply))


def _raise_for_status(what: str, raw: RawReply) -> None:
    """Map a non-2xx status to the §3.3 error classes (401 → SessionExpired, for the caller)."""
    status = raw.status
    if 200 <= status < 300:
        return
    if status == 401:
        raise SessionExpired(f"{what}: HTTP 401")
    if status == 403:
        raise PortalForbidden(f"{what}: HTTP 403, the application may not call this API", code="403")
    if status == 429:
        retry_after = envelope.parse_retry_after(raw.headers.get("Retry-After"), now=time.time())
        raise PortalThrottled(f"{what}: HTTP 429", retry_after=retry_after)
    if status >= 500 or status == 408:
        raise PortalUnavailable(f"{what}: HTTP {status}")
    # [POLICY] other statuses (400, 404, 3xx …): the request itself is wrong, retrying cannot help
    snippet = raw.body[:_SNIPPET].decode("utf-8", "replace")
    raise PortalRejected(f"HTTP {status}", snippet)


def _decode(what: str, raw: RawReply) -> dict[str, Any]:
    """Status check, then the body as one JSON object (else PortalUnavailable)."""
    _raise_for_status(what, raw)
    return envelope.decode_json_object(raw.body, what=what)


def _decode_token(raw: RawReply) -> dict[str, Any]:
    """Token endpoint replies: 400/401 mean the client credentials were refused."""
    if raw.status in (400, 401):
        raise PortalAuthFailed(f"token request refused with HTTP {raw.status}", code=str(raw.status))
    return _decode("token", raw)
