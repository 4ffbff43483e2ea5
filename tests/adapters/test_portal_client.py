"""PortalClient against the real sandbox (session auth): wire format, create-or-update, error
classes, session lifecycle, limits, metrics. Spec national-portal.md §2, §3.3, §5, §9."""

from __future__ import annotations

import asyncio
import email.utils
import time

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from adapters.national_portal import PortalClient
from core.errors import (
    PortalAlreadyExists,
    PortalAuthFailed,
    PortalForbidden,
    PortalRejected,
    PortalThrottled,
    PortalUnavailable,
    TransientError,
)
from monitoring.metrics import Metrics
from monitoring.tracing import trace_config
from tests.fakes.portal import (
    DSTCODE,
    MADONVI,
    ClosingServer,
    FakeClock,
    SandboxHandle,
    dossier,
    portal_settings,
    progress,
)

CODE = "000.00.01.H56-240315-00012"


def client(sb: SandboxHandle, http: aiohttp.ClientSession, **kw: object) -> PortalClient:
    clock = kw.pop("clock", time.monotonic)
    metrics = kw.pop("metrics", None)
    return PortalClient(portal_settings(sb.url, **kw), http, metrics=metrics, clock=clock)  # type: ignore[arg-type]


# ── wire format and the create-or-update paths ───────────────────────────────────────────


async def test_create_path_wire_format(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§5.6 preferred path on the wire: TraCuuHoSo with lower-case ``mahoso``, then DongBoHoSoMC
    with isUpdating the string "False", then progress; dstcode and madonvi on every call."""
    c = client(sandbox, http)
    assert await c.lookup(CODE) is False
    await c.sync_dossiers([dossier(CODE)], updating=False)
    await c.push_progress([progress(CODE, 1), progress(CODE, 2)])
    assert await c.lookup(CODE) is True

    entries = (await sandbox.record())["dossiers"][CODE]
    assert [e["service"] for e in entries] == ["TraCuuHoSo", "DongBoHoSoMC", "CapNhatTienDoHoSoMC", "TraCuuHoSo"]
    assert entries[0]["params"] == {"mahoso": CODE}
    assert entries[1]["isUpdating"] == "False" and entries[1]["data"] == dossier(CODE)
    assert [i["NoiDungXuLy"] for i in entries[2]["items"]] == ["Bước 1", "Bước 2"]
    assert all(e["dstcode"] == DSTCODE and e["madonvi"] == MADONVI for e in entries)
    assert all(e.get("error_code", "0") in ("0", "00") for e in entries)


async def test_update_path_sends_is_updating_true(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§5.1: a dossier the portal already holds is pushed with isUpdating "True" and replaced."""
    await sandbox.admin("dossiers", {"dossiers": [CODE]})
    c = client(sandbox, http)
    assert await c.lookup(CODE) is True
    await c.sync_dossiers([dossier(CODE, TrangThaiHoSo="4")], updating=True)
    entry = (await sandbox.record())["dossiers"][CODE][-1]
    assert entry["isUpdating"] == "True" and entry["error_code"] == "00"
    assert sandbox.state.dossiers[CODE]["TrangThaiHoSo"] == "4"


async def test_create_of_existing_dossier_raises_already_exists(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    """§5.6 fallback: a create answered "đã tồn tại" raises PortalAlreadyExists with the portal's
    code and message; resending the same body as an update succeeds."""
    c = client(sandbox, http)
    await c.sync_dossiers([dossier(CODE)], updating=False)
    with pytest.raises(PortalAlreadyExists) as info:
        await c.sync_dossiers([dossier(CODE)], updating=False)
    assert info.value.code == "-3"
    assert info.value.portal_message == f"Hồ sơ {CODE} đã tồn tại trên hệ thống"
    await c.sync_dossiers([dossier(CODE)], updating=True)


async def test_update_answered_already_exists_is_success(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§5.6 [POLICY]: "đã tồn tại" in reply to an update is success, not an error."""
    await sandbox.admin("dossiers", {"dossiers": [CODE]})
    await sandbox.fault("reject", error_code="3", message="Hồ sơ đã tồn tại")
    await client(sandbox, http).sync_dossiers([dossier(CODE)], updating=True)
    assert (await sandbox.record())["calls"] == 1


async def test_eleven_progress_items_refused_before_sending(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    """§5.2: more than 10 progress items is a ValueError and nothing reaches the portal."""
    c = client(sandbox, http)
    await c.sync_dossiers([dossier(CODE)], updating=False)
    with pytest.raises(ValueError):
        await c.push_progress([progress(CODE, n) for n in range(11)])
    assert (await sandbox.record())["calls"] == 1


async def test_progress_before_dossier_is_rejected(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§5.2 precondition: progress for a dossier the portal lacks is a business rejection."""
    with pytest.raises(PortalRejected) as info:
        await client(sandbox, http).push_progress([progress(CODE)])
    assert info.value.code == "-5" and CODE in info.value.portal_message


# ── error classes (§3.3, §9) ─────────────────────────────────────────────────────────────


async def test_http_503_is_unavailable_and_not_retried_in_call(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    """§3.3: 5xx is PortalUnavailable (transient); in-call retries are for connection errors only."""
    await sandbox.fault("http503", count=1)
    with pytest.raises(PortalUnavailable) as info:
        await client(sandbox, http).lookup(CODE)
    assert isinstance(info.value, TransientError)
    assert (await sandbox.record())["calls"] == 1


async def test_http_429_retry_after_seconds(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§3.3: 429 is PortalThrottled carrying Retry-After delta-seconds."""
    await sandbox.fault("http429", retry_after=7)
    with pytest.raises(PortalThrottled) as info:
        await client(sandbox, http).lookup(CODE)
    assert info.value.retry_after == 7.0


async def test_http_429_retry_after_http_date(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§3.3 / RFC 9110: a Retry-After HTTP-date becomes the seconds from now until that date."""
    await sandbox.fault("http429", retry_after=email.utils.formatdate(time.time() + 120, usegmt=True))
    with pytest.raises(PortalThrottled) as info:
        await client(sandbox, http).lookup(CODE)
    assert info.value.retry_after is not None and 115 <= info.value.retry_after <= 120


async def test_http_429_without_retry_after(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§3.3: without Retry-After, retry_after is None (the queue backs off on its own)."""
    await sandbox.fault("http429")
    with pytest.raises(PortalThrottled) as info:
        await client(sandbox, http).lookup(CODE)
    assert info.value.retry_after is None


async def test_rejection_keeps_code_and_message_verbatim(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§9: a business error is PortalRejected with the portal's code and message unchanged."""
    message = "Mã thủ tục hành chính không tồn tại trong CSDL quốc gia"
    await sandbox.fault("reject", error_code="-12", message=message)
    with pytest.raises(PortalRejected) as info:
        await client(sandbox, http).sync_dossiers([dossier(CODE)], updating=False)
    assert type(info.value) is PortalRejected
    assert (info.value.code, info.value.portal_message) == ("-12", message)


async def test_http_403_is_forbidden(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§3.3: HTTP 403 is PortalForbidden (pause delivery, a subscription must change)."""
    await sandbox.fault("http403")
    with pytest.raises(PortalForbidden):
        await client(sandbox, http).lookup(CODE)


@pytest.mark.parametrize("mode", ["html", "empty"])
async def test_html_or_empty_body_is_unavailable(
    sandbox: SandboxHandle, http: aiohttp.ClientSession, mode: str
) -> None:
    """§9: an HTML page or an empty body with status 200 is broken upstream: PortalUnavailable."""
    await sandbox.fault(mode)
    with pytest.raises(PortalUnavailable):
        await client(sandbox, http).lookup(CODE)


async def test_timeout_is_unavailable_and_not_retried(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§3.3: a timeout is PortalUnavailable and is not repeated inside the call."""
    await sandbox.fault("slow", delay=0.5)
    with pytest.raises(PortalUnavailable):
        await client(sandbox, http, timeout=0.1).lookup(CODE)
    assert (await sandbox.record())["calls"] == 1


async def test_connection_errors_retried_quickly_for_idempotent_calls(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    """A connection broken before any reply is retried ``connect_retries`` times within the call
    (lookups, dossier pushes), then surfaces as PortalUnavailable."""
    server = ClosingServer()
    url = await server.start()
    try:
        # the token comes from the sandbox, the service calls go to the closing server
        settings = portal_settings(url, auth="oauth2", token_url=f"{sandbox.url}/token", connect_retries=2)
        c = PortalClient(settings, http)
        started = time.monotonic()
        with pytest.raises(PortalUnavailable):
            await c.lookup(CODE)
        assert server.connections == 3
        assert time.monotonic() - started < 1.0
    finally:
        await server.stop()


async def test_progress_not_resent_after_a_broken_connection(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    """Progress items are not idempotent: after the request went out on a connection that then
    broke, the client does not resend it inside the call."""
    server = ClosingServer()
    url = await server.start()
    try:
        settings = portal_settings(url, auth="oauth2", token_url=f"{sandbox.url}/token", connect_retries=2)
        c = PortalClient(settings, http)
        with pytest.raises(PortalUnavailable):
            await c.push_progress([progress(CODE)])
        assert server.connections == 1
    finally:
        await server.stop()


async def test_refused_connection_is_unavailable(http: aiohttp.ClientSession) -> None:
    """Nothing listening on the port is PortalUnavailable (translated from aiohttp)."""
    server = ClosingServer()
    url = await server.start()
    await server.stop()
    with pytest.raises(PortalUnavailable) as info:
        await PortalClient(portal_settings(url, connect_retries=1), http).lookup(CODE)
    assert isinstance(info.value.__cause__, aiohttp.ClientError)


# ── session lifecycle (§2.5) ─────────────────────────────────────────────────────────────


async def test_fifty_concurrent_calls_log_in_once(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§2.5 single flight: 50 concurrent calls on a cold client cause exactly one login."""
    c = client(sandbox, http, max_concurrency=50)
    results = await asyncio.gather(*(c.lookup(f"{CODE}-{n}") for n in range(50)))
    assert results == [False] * 50
    record = await sandbox.record()
    assert record["logins"] == 1 and record["calls"] == 50


async def test_expired_session_relogs_once_and_succeeds(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§2.5 reactive refresh: an expired session costs one login and the call still succeeds,
    also when 20 concurrent calls all meet the expired session."""
    c = client(sandbox, http, max_concurrency=20)
    await c.lookup(CODE)
    await sandbox.fault("expire_sessions")
    await asyncio.gather(*(c.lookup(CODE) for _ in range(20)))
    assert (await sandbox.record())["logins"] == 2


async def test_session_refused_twice_is_auth_failed(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§2.5 loop guard: if the fresh session is refused too, PortalAuthFailed after one re-login."""
    c = client(sandbox, http)
    await sandbox.fault("reject", count=2, error_code="-1", message="Phiên làm việc không hợp lệ")
    with pytest.raises(PortalAuthFailed):
        await c.lookup(CODE)
    record = await sandbox.record()
    assert record["logins"] == 2 and record["calls"] == 2


async def test_refused_login_is_auth_failed(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§9: a refused login is PortalAuthFailed carrying the portal's message; concurrent callers
    waiting for that login share its failure instead of each logging in again."""
    await sandbox.admin("config", {"refuse_logins": True})
    c = client(sandbox, http, max_concurrency=10)
    outcomes = await asyncio.gather(*(c.lookup(CODE) for _ in range(10)), return_exceptions=True)
    assert all(isinstance(o, PortalAuthFailed) for o in outcomes)
    assert "mật khẩu" in str(outcomes[0])
    record = await sandbox.record()
    assert record["login_failures"] == 1 and record["calls"] == 0


async def test_session_refreshed_after_max_age(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§2.5 proactive refresh: after session_max_age on the injected clock the client logs in
    again before calling, not before."""
    clock = FakeClock()
    c = client(sandbox, http, clock=clock, session_max_age=1800.0)
    await c.lookup(CODE)
    clock.advance(1799)
    await c.lookup(CODE)
    assert (await sandbox.record())["logins"] == 1
    clock.advance(2)
    await c.lookup(CODE)
    assert (await sandbox.record())["logins"] == 2


# ── limits and metrics ───────────────────────────────────────────────────────────────────


async def test_concurrency_cap(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """max_concurrency bounds the calls in flight at the portal."""
    c = client(sandbox, http, max_concurrency=3)
    await c.lookup(CODE)
    await sandbox.fault("slow", count=12, delay=0.05)
    await asyncio.gather(*(c.lookup(CODE) for _ in range(12)))
    assert (await sandbox.record())["max_in_flight"] == 3


async def test_rate_limit(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """rate_limit_per_s is a token bucket: 20/s with a burst of 20 makes 30 calls last ≥ 0.45 s."""
    c = client(sandbox, http, rate_limit_per_s=20.0, max_concurrency=30)
    started = time.monotonic()
    await asyncio.gather(*(c.lookup(CODE) for _ in range(30)))
    assert time.monotonic() - started >= 0.45


async def test_metrics_latency_and_logins(sandbox: SandboxHandle) -> None:
    """Through a session traced for the portal, latency is observed per service (the operation the
    transport names) and status class; logins are counted by kind and result."""
    metrics = Metrics(CollectorRegistry())
    async with aiohttp.ClientSession(trace_configs=[trace_config(metrics, "portal")]) as traced:
        c = client(sandbox, traced, metrics=metrics)
        await c.lookup(CODE)
        await sandbox.fault("http503")
        with pytest.raises(PortalUnavailable):
            await c.lookup(CODE)
        await sandbox.admin("config", {"refuse_logins": True})
        c2 = client(sandbox, traced, metrics=metrics)
        with pytest.raises(PortalAuthFailed):
            await c2.lookup(CODE)
    get = metrics.registry.get_sample_value
    name = "dvcgw_counterpart_request_duration_seconds_count"
    assert get(name, {"counterpart": "portal", "operation": "TraCuuHoSo", "status": "2xx"}) == 1
    assert get(name, {"counterpart": "portal", "operation": "TraCuuHoSo", "status": "5xx"}) == 1
    assert get(name, {"counterpart": "portal", "operation": "login", "status": "2xx"}) == 2
    assert get("dvcgw_auth_total", {"counterpart": "portal", "kind": "login", "result": "ok"}) == 1
    assert get("dvcgw_auth_total", {"counterpart": "portal", "kind": "login", "result": "failed"}) == 1
