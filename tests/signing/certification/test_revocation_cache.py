"""The check before ``valid`` reuses revocation answers for ``[certification] revocation_cache``; the
public verification fetches them every time. Counted at the test PKI's OCSP/CRL server on 127.0.0.1
(one gateway with one signing worker, so every check sees the same cache)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from prometheus_client import CollectorRegistry

from config.schema import load
from signing.engine import earliest_next_update
from tests.signing.certification.client import call, certify, metadata
from tests.signing.certification.conftest import UNTRUSTED, certification_app, certification_toml
from tests.signing.certification.scans import scan_pdf
from tests.signing.env import AGENCY_KEYS, World, free_port

PDF = "application/pdf"
#: one check of a certified copy: the signer's OCSP, the issuing CA's CRL, the TSA certificate's OCSP
FETCHES_PER_CHECK = 3


def _gateway(world: World, storage: Path, revocation_cache: str | None) -> str:
    path = storage / "cert.toml"
    storage.mkdir(parents=True, exist_ok=True)
    path.write_text(certification_toml(world, storage, workers=1, revocation_cache=revocation_cache))
    url, _ = world.servers.serve(certification_app(load(path, environ={}), CollectorRegistry()), port=free_port())
    return url


@pytest.fixture(scope="module")
def cached_url(world: World, tmp_path_factory: pytest.TempPathFactory) -> str:
    return _gateway(world, tmp_path_factory.mktemp("rev-cache"), None)  # the default: "5m"


@pytest.fixture(scope="module")
def uncached_url(world: World, tmp_path_factory: pytest.TempPathFactory) -> str:
    return _gateway(world, tmp_path_factory.mktemp("rev-nocache"), "0s")


async def _fetches(world: World, action: Callable[[], Awaitable[object]]) -> int:
    before = world.pki_server.requests
    await action()
    return world.pki_server.requests - before


async def _certified(url: str, **over: str) -> bytes:
    r = await certify(url, [(scan_pdf(1), PDF)], metadata(**over))
    assert r.status == 201, r.body
    pdf = await call("GET", url + r.json()["pdf_url"], AGENCY_KEYS["STP"])
    return pdf.body


async def _verified(url: str, pdf: bytes) -> None:
    r = await call("POST", f"{url}/v1/certifications/verify", headers={"Content-Type": PDF}, data=pdf)
    assert r.status == 200 and r.json()["verdict"] == "valid", r.body


async def test_check_before_valid_reuses_answers_verify_fetches_them(cached_url: str, world: World) -> None:
    """The second certification's check asks the PKI nothing; each public verification asks again."""
    await _certified(cached_url)
    assert await _fetches(world, lambda: _certified(cached_url)) == 0
    copy = await _certified(cached_url)
    for _ in range(2):
        assert await _fetches(world, lambda: _verified(cached_url, copy)) == FETCHES_PER_CHECK


async def test_a_check_that_fails_forgets_the_answers(cached_url: str, world: World) -> None:
    """After a check that did not pass (an untrusted key: the number is void), the next check fetches
    its answers again instead of trusting what the failed one saw."""
    await _certified(cached_url)
    r = await certify(cached_url, [(scan_pdf(1), PDF)], metadata(authority_code=UNTRUSTED))
    assert (r.status, r.json()["error"]) == (422, "signature_not_valid"), r.body
    assert await _fetches(world, lambda: _certified(cached_url)) == FETCHES_PER_CHECK


async def test_zero_turns_the_cache_off(uncached_url: str, world: World) -> None:
    """revocation_cache = 0: every check fetches its answers."""
    await _certified(uncached_url)
    for _ in range(2):
        assert await _fetches(world, lambda: _certified(uncached_url)) == FETCHES_PER_CHECK


def test_earliest_next_update_of_ocsp_responses_and_crls(world: World) -> None:
    """The cache's lifetime is cut at the earliest nextUpdate of the answers it holds."""
    pki = world.pki
    signer = pki.signer("file").cert
    req = ocsp.OCSPRequestBuilder().add_certificate(signer, pki.inter.cert, hashes.SHA1()).build()
    resp = asn1_ocsp.OCSPResponse.load(pki.ocsp_response(req.public_bytes(serialization.Encoding.DER)))
    cl = asn1_crl.CertificateList.load(pki.crl("inter"))
    now = dt.datetime.now(dt.UTC)
    ocsp_next = earliest_next_update([resp], [])
    crl_next = earliest_next_update([], [cl])
    assert ocsp_next is not None and crl_next is not None
    assert now < ocsp_next <= now + dt.timedelta(hours=1, seconds=5)
    assert earliest_next_update([resp], [cl]) == min(ocsp_next, crl_next)
    assert earliest_next_update([], []) is None
