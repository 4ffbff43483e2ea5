"""mTLS as a second way in (issue 17): a real TLS handshake against the real app on 127.0.0.1
port 0, with certificates from a test PKI. A mapped certificate is an agency (by subject or by
fingerprint); an expired one or one from another CA never completes the handshake; a trusted but
unmapped one is 401; an API key still works beside certificates, but not for another agency."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.appkeys import METRICS
from tests.harness import AGENCY_KEY, OTHER_KEY, OTHER_UNIT, UNIT, Sandbox, settings_for
from tests.samples import sample_dossier
from tests.security.conftest import pki_server, served
from tests.security.pki import Issued, Pki, client_context

M = f"{UNIT}-240315-00001"


def _agencies(pki: Pki) -> list[dict[str, Any]]:
    return [
        {"code": UNIT, "api_key": AGENCY_KEY, "units": [UNIT], "procedures": ["*"],
         "tls_subjects": [pki.client.subject, pki.expired.subject], "tls_fingerprints": [pki.pinned.fingerprint]},
        {"code": OTHER_UNIT, "api_key": OTHER_KEY, "units": [OTHER_UNIT], "procedures": ["*"]},
    ]


async def _put(url: str, pki: Pki, who: Issued | None, headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
    connector = aiohttp.TCPConnector(ssl=client_context(pki, who))
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.put(f"{url}/v1/dossiers/{M}", json=sample_dossier(M), headers=headers or {}) as r:
            await r.read()
            return r


async def test_a_mapped_certificate_is_the_agency_by_subject_or_fingerprint(sandbox: Sandbox, pki: Pki,
                                                                           tmp_path: Path) -> None:
    """A certificate from the trusted CA whose subject, or whose SHA-256 fingerprint, is mapped to
    the agency authenticates it with no API key: 202, and the event is the agency's."""
    settings = settings_for(tmp_path, sandbox.url, server=pki_server(pki), agencies=_agencies(pki))
    async with served(settings) as (url, _):
        assert url.startswith("https://")
        by_subject = await _put(url, pki, pki.client)
        by_fingerprint = await _put(url, pki, pki.pinned)
    assert by_subject.status == 202 and by_fingerprint.status == 202


async def test_an_expired_certificate_fails_the_handshake(sandbox: Sandbox, pki: Pki, tmp_path: Path) -> None:
    """An expired certificate, although its subject is mapped, never gets an HTTP answer."""
    settings = settings_for(tmp_path, sandbox.url, server=pki_server(pki), agencies=_agencies(pki))
    async with served(settings) as (url, app):
        with pytest.raises(aiohttp.ClientError) as refused:
            await _put(url, pki, pki.expired)
        assert _requests(app) == 0  # not one request reached the application
        assert (await _put(url, pki, pki.client)).status == 202  # the listener is fine
        assert _requests(app) == 1
    assert _handshake_refused(refused.value), repr(refused.value)


async def test_a_certificate_of_another_ca_fails_the_handshake(sandbox: Sandbox, pki: Pki, tmp_path: Path) -> None:
    """Another CA's certificate with the very subject that is mapped gets no answer: the subject
    counts only for certificates the handshake verified against ``client_ca``."""
    settings = settings_for(tmp_path, sandbox.url, server=pki_server(pki), agencies=_agencies(pki))
    assert pki.stranger.subject == pki.client.subject
    async with served(settings) as (url, app):
        with pytest.raises(aiohttp.ClientError) as refused:
            await _put(url, pki, pki.stranger)
        assert _requests(app) == 0
    assert _handshake_refused(refused.value), repr(refused.value)


async def test_an_unmapped_certificate_is_401_and_a_key_still_works(sandbox: Sandbox, pki: Pki,
                                                                    tmp_path: Path) -> None:
    """A verified certificate mapped to nobody: 401 naming the mapping. With client_cert
    "optional", a client with no certificate still authenticates with its API key; a key of
    another agency beside a mapped certificate is 401 (they must name the same agency)."""
    settings = settings_for(tmp_path, sandbox.url, server=pki_server(pki), agencies=_agencies(pki))
    async with served(settings) as (url, _):
        unmapped = await _put(url, pki, pki.unmapped)
        unmapped_body = await unmapped.json()
        keyed = await _put(url, pki, None, {"X-API-Key": AGENCY_KEY})
        mixed = await _put(url, pki, pki.client, {"X-API-Key": OTHER_KEY})
        nothing = await _put(url, pki, None)
    assert unmapped.status == 401 and "tls_subjects" in unmapped_body["message"], unmapped_body
    assert keyed.status == 202
    assert mixed.status == 401 and (await mixed.json())["error"] == "unauthenticated"
    assert nothing.status == 401


async def test_required_client_certificates_refuse_a_handshake_without_one(sandbox: Sandbox, pki: Pki,
                                                                          tmp_path: Path) -> None:
    """With client_cert "required", a client presenting no certificate gets no HTTP at all, even
    with a valid API key; a mapped one is served."""
    settings = settings_for(tmp_path, sandbox.url, server=pki_server(pki, "required"), agencies=_agencies(pki))
    async with served(settings) as (url, _):
        with pytest.raises(aiohttp.ClientError) as refused:
            await _put(url, pki, None, {"X-API-Key": AGENCY_KEY})
        assert (await _put(url, pki, pki.client)).status == 202
    assert _handshake_refused(refused.value), repr(refused.value)


async def test_plain_http_to_the_tls_listener_gets_nothing(sandbox: Sandbox, pki: Pki, tmp_path: Path) -> None:
    """The TLS listener speaks TLS only: a plain-HTTP request with a valid key is not served."""
    settings = settings_for(tmp_path, sandbox.url, server=pki_server(pki), agencies=_agencies(pki))
    async with served(settings) as (url, _), aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(url.replace("https://", "http://") + f"/v1/dossiers/{M}",
                                headers={"X-API-Key": AGENCY_KEY}) as r:
                assert r.status == 400  # aiohttp's answer to TLS bytes it cannot parse, if any
                raise aiohttp.ClientError("not served")


def _requests(app: web.Application) -> float:
    """Requests the application answered (dvcgw_http_requests_total, every series)."""
    families = app[METRICS].registry.collect()
    return sum(s.value for f in families if f.name == "dvcgw_http_requests" for s in f.samples
               if s.name.endswith("_total"))


def _handshake_refused(exc: BaseException) -> bool:
    """The server's alert reaches the client as an SSL error, or as a connection cut mid-handshake."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError | aiohttp.ServerDisconnectedError | ConnectionResetError):
            return True
        if isinstance(seen, aiohttp.ClientOSError) and "SSL" in str(seen).upper():
            return True
        seen = seen.__cause__ or seen.__context__
    return False
