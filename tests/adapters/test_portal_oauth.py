"""PortalClient with OAuth2 client credentials (spec §3) against the real sandbox's /token."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from adapters.national_portal import PortalClient
from core.errors import PortalAuthFailed, PortalForbidden
from monitoring.metrics import Metrics
from tests.fakes.portal import FakeClock, SandboxHandle, dossier, portal_settings

CODE = "000.00.01.H56-240315-00077"


def client(
    sb: SandboxHandle, http: aiohttp.ClientSession, clock: FakeClock | None = None, **kw: object
) -> PortalClient:
    metrics = kw.pop("metrics", None)
    settings = portal_settings(sb.url, **{"auth": "oauth2", **kw})
    return PortalClient(settings, http, metrics=metrics, clock=clock or FakeClock())  # type: ignore[arg-type]


@pytest.mark.parametrize("client_auth", ["basic", "form"])
async def test_token_fetched_once_and_reused(
    sandbox: SandboxHandle, http: aiohttp.ClientSession, client_auth: str
) -> None:
    """§3.2: two calls (and 20 concurrent ones) share one token, fetched with the configured
    client authentication; pure oauth2 sends no session and never logs in."""
    c = client(sandbox, http, client_auth=client_auth, max_concurrency=20)
    await c.lookup(CODE)
    await c.sync_dossiers([dossier(CODE)], updating=False)
    await asyncio.gather(*(c.lookup(CODE) for _ in range(20)))
    record = await sandbox.record()
    assert record["tokens"] == 1 and record["token_methods"] == [client_auth]
    assert record["logins"] == 0


async def test_oauth2_plus_session_uses_both(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§3.2 oauth2+session: one token and one login; the login itself carries the bearer
    (the sandbox answers 401 to any call without a live bearer once a token exists)."""
    c = client(sandbox, http, auth="oauth2+session")
    assert await c.lookup(CODE) is False
    await c.lookup(CODE)
    record = await sandbox.record()
    assert (record["tokens"], record["logins"], record["calls"]) == (1, 1, 2)


async def test_token_refetched_after_expiry_margin(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§3.2: a token with expires_in 3600 is reused for 3540 s on the injected clock, then renewed."""
    clock = FakeClock()
    c = client(sandbox, http, clock)
    await c.lookup(CODE)
    clock.advance(3539)
    await c.lookup(CODE)
    assert (await sandbox.record())["tokens"] == 1
    clock.advance(2)
    await c.lookup(CODE)
    assert (await sandbox.record())["tokens"] == 2


async def test_401_drops_token_and_retries_once(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§3.3: HTTP 401 → drop the cached token, fetch one new token, repeat the call once."""
    metrics = Metrics(CollectorRegistry())
    c = client(sandbox, http, metrics=metrics)
    await c.lookup(CODE)
    await sandbox.fault("expire_tokens")
    assert await c.lookup(CODE) is False
    record = await sandbox.record()
    assert record["tokens"] == 2 and record["calls"] == 3
    assert metrics.sample("dvcgw_auth_total", {"counterpart": "portal", "kind": "token", "result": "ok"}) == 1
    assert metrics.sample("dvcgw_auth_total", {"counterpart": "portal", "kind": "refresh", "result": "ok"}) == 1


async def test_second_401_is_auth_failed(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§3.3 loop guard: if the fresh token gets 401 too, PortalAuthFailed after one new token."""
    await sandbox.admin("config", {"token_ttl": 0})  # every token the sandbox issues is dead on arrival
    c = client(sandbox, http)
    with pytest.raises(PortalAuthFailed) as info:
        await c.lookup(CODE)
    assert type(info.value) is PortalAuthFailed
    record = await sandbox.record()
    assert record["tokens"] == 2 and record["calls"] == 2


async def test_refused_client_credentials_are_auth_failed(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    """§3.1: the token endpoint refusing the client is PortalAuthFailed; no service call is made."""
    await sandbox.admin("config", {"clients": {"someone-else": "x"}})
    metrics = Metrics(CollectorRegistry())
    with pytest.raises(PortalAuthFailed):
        await client(sandbox, http, metrics=metrics).lookup(CODE)
    assert (await sandbox.record())["calls"] == 0
    assert metrics.sample("dvcgw_auth_total", {"counterpart": "portal", "kind": "token", "result": "failed"}) == 1


async def test_403_with_token_is_forbidden(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§3.3: HTTP 403 is PortalForbidden and does not trigger a token refresh."""
    c = client(sandbox, http)
    await sandbox.fault("http403")
    with pytest.raises(PortalForbidden):
        await c.lookup(CODE)
    assert (await sandbox.record())["tokens"] == 1
