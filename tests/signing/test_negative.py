"""What must fail, fails: tampering, untrusted roots, revoked signers, TSAs down, foreign keys, bad input."""

from __future__ import annotations

import aiohttp
import pytest

from tests.fakes.pdfs import encrypted_pdf, one_page_pdf
from tests.signing import checks, client
from tests.signing.env import gateway_app, load_settings


async def _signed(signing_gw, key="file-pem", level="B-B", pdf=None, **opts) -> bytes:
    r = await client.sign(signing_gw.url, pdf or one_page_pdf(), {"key": key, "level": level, **opts})
    assert r.status == 200, r.body
    return r.body


async def test_tampered_pdf_fails_for_pyhanko_and_pdfsig(signing_gw, tmp_path):
    """Changing one signed byte makes the signature TOTAL-FAILED/HASH_FAILURE and pdfsig reports it invalid."""
    pdf = await _signed(signing_gw)
    tampered = pdf.replace(b"Giay phep so 123", b"Giay phep so 999", 1)
    assert tampered != pdf
    status, body = await client.validate(signing_gw.url, tampered)
    assert status == 200
    (sig,) = body["signatures"]
    assert (sig["intact"], sig["indication"], sig["sub_indication"]) == (False, "TOTAL-FAILED", "HASH_FAILURE")
    path = tmp_path / "tampered.pdf"
    path.write_bytes(tampered)
    (poppler,) = checks.pdfsig(path)
    assert poppler["valid"] is False


async def test_untrusted_root_is_indeterminate(signing_gw, world, tmp_path):
    """A signer chaining to a root not in [signing] trust_roots is not trusted: INDETERMINATE (no OS store)."""
    pdf = await _signed(signing_gw, key="untrusted")
    _, body = await client.validate(signing_gw.url, pdf)
    (sig,) = body["signatures"]
    assert sig["intact"] and sig["valid"] and not sig["trusted"]
    assert sig["indication"] == "INDETERMINATE"
    assert checks.openssl_verify(pdf, world.root_pem, tmp_path / "cms").returncode != 0


async def test_revoked_signer_is_reported_revoked(signing_gw):
    """A B-B signature by a revoked certificate validates as revoked (OCSP/CRL from the local responders)."""
    pdf = await _signed(signing_gw, key="revoked")
    _, body = await client.validate(signing_gw.url, pdf)
    (sig,) = body["signatures"]
    assert sig["revocation"] == "revoked"
    assert (sig["indication"], sig["sub_indication"]) == ("TOTAL-FAILED", "REVOKED")


async def test_revoked_signer_cannot_sign_long_term(signing_gw):
    """B-LT checks the signer's chain before signing: a revoked certificate is refused with 422."""
    r = await client.sign(signing_gw.url, one_page_pdf(), {"key": "revoked", "level": "B-LT"})
    assert r.status == 422
    assert r.json()["error"] == "certificate_invalid"


async def test_tsa_down_fails_over_to_next(signing_gw, world):
    """When the first TSA fails, the next one in tsa_urls stamps the signature; the failure is counted."""
    url_a = world.tsa_urls[0]
    before = signing_gw.metric("dvcgw_tsa_failures_total", url=url_a)
    seen_b = world.tsa_b.requests
    world.tsa_a.fail = True
    try:
        r = await client.sign(signing_gw.url, one_page_pdf(), {"key": "file-pem", "level": "B-T"})
    finally:
        world.tsa_a.fail = False
    assert r.status == 200 and r.headers["X-Signature-Level"] == "B-T"
    assert world.tsa_b.requests > seen_b
    assert signing_gw.metric("dvcgw_tsa_failures_total", url=url_a) > before
    assert signing_gw.metric("dvcgw_tsa_available", url=url_a) == 0
    assert signing_gw.metric("dvcgw_tsa_available", url=world.tsa_urls[1]) == 1
    assert signing_gw.metric("dvcgw_counterpart_request_duration_seconds_count",
                             counterpart="tsa", operation="timestamp", status="5xx") >= 1
    _, body = await client.validate(signing_gw.url, r.body)
    assert body["signatures"][0]["timestamp"]["valid"] is True


async def test_all_tsas_down_fails_the_request(signing_gw, world):
    """With every TSA down and no allow_downgrade, B-T gets 503 tsa_unavailable saying so; B-B still works."""
    world.tsa_a.fail = world.tsa_b.fail = True
    try:
        r = await client.sign(signing_gw.url, one_page_pdf(), {"key": "file-pem", "level": "B-T"})
        # the failed job's attempts still reach the metrics: every TSA reads unavailable
        availability = [signing_gw.metric("dvcgw_tsa_available", url=u) for u in world.tsa_urls]
        ok = await client.sign(signing_gw.url, one_page_pdf(), {"key": "file-pem", "level": "B-B"})
    finally:
        world.tsa_a.fail = world.tsa_b.fail = False
    assert r.status == 503
    assert availability == [0, 0]
    body = r.json()
    assert body["error"] == "tsa_unavailable" and "time-stamping" in body["message"]
    assert ok.status == 200
    assert signing_gw.metric("dvcgw_signatures_total", key="file-pem", level="B-T", outcome="unavailable") >= 1


async def test_all_tsas_down_with_allow_downgrade_signs_b_b(world, tmp_path):
    """allow_downgrade = true: every TSA down gives a B-B signature and the response says it was downgraded."""
    from prometheus_client import CollectorRegistry
    settings = load_settings(world, "downgrade", storage=tmp_path, allow_downgrade=True, workers=1)
    url, runner = world.servers.serve(gateway_app(settings, CollectorRegistry()))
    world.tsa_a.fail = world.tsa_b.fail = True
    try:
        r = await client.sign(url, one_page_pdf(), {"key": "file-pem", "level": "B-T"})
    finally:
        world.tsa_a.fail = world.tsa_b.fail = False
        world.servers.stop(runner)
    assert r.status == 200
    assert (r.headers["X-Signature-Level"], r.headers["X-Signature-Downgraded"]) == ("B-B", "true")


async def test_b_t_without_any_tsa_configured_is_refused_not_retried(world, tmp_path):
    """No [signing] tsa_urls and no allow_downgrade: B-T is a 422 naming ``level`` (no retry can
    help), not a 503 with Retry-After; B-B still signs (issue 13)."""
    from prometheus_client import CollectorRegistry
    settings = load_settings(world, "no-tsa", storage=tmp_path, tsa_urls=(), workers=1)
    url, runner = world.servers.serve(gateway_app(settings, CollectorRegistry()))
    try:
        r = await client.sign(url, one_page_pdf(), {"key": "file-pem", "level": "B-T"})
        ok = await client.sign(url, one_page_pdf(), {"key": "file-pem", "level": "B-B"})
    finally:
        world.servers.stop(runner)
    assert r.status == 422 and "Retry-After" not in r.headers
    body = r.json()
    assert body["error"] == "level_not_available" and [e["field"] for e in body["errors"]] == ["level"]
    assert ok.status == 200


async def test_agency_refused_a_key_not_its_own(signing_gw):
    """An agency may use only keys listing it: 403 naming the signing_keys grant; an unknown alias is 422."""
    r = await client.sign(signing_gw.url, one_page_pdf(), {"key": "syt-seal"}, agency="STP")
    assert r.status == 403
    assert r.json()["error"] == "forbidden" and r.json()["grant"] == "signing_keys"
    r = await client.sign(signing_gw.url, one_page_pdf(), {"key": "syt-seal"}, agency="SYT")
    assert r.status == 200
    r = await client.sign(signing_gw.url, one_page_pdf(), {"key": "nope"})
    assert r.status == 422 and r.json()["error"] == "unknown_key"


async def test_missing_api_key_is_401(signing_gw):
    """The signing endpoints need agency authentication."""
    async with aiohttp.ClientSession() as s, s.post(f"{signing_gw.url}/v1/signatures?key=file-pem", data=one_page_pdf(),
                                                    headers={"Content-Type": "application/pdf"}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"] == "unauthenticated"


@pytest.mark.parametrize(("body", "status", "code", "words"), [
    (b"hello, this is not a PDF", 422, "invalid_pdf", "no %PDF- header"),
    (b"%PDF-1.7\n1 0 obj <<>> garbage without xref", 422, "invalid_pdf", "not a readable PDF"),
    (None, 422, "invalid_pdf", "encrypted"),
    (b"%PDF-1.7\n" + b"0" * 2_100_000, 413, "pdf_too_large", "larger than"),
])
async def test_bad_pdfs_get_clear_4xx(signing_gw, body, status, code, words):
    """Garbage, encrypted and oversized PDFs are rejected with a 4xx that says why, for sign and validate."""
    pdf = encrypted_pdf() if body is None else body
    for path in ("/v1/signatures?key=file-pem", "/v1/signatures/validate"):
        async with aiohttp.ClientSession() as s, s.post(
                signing_gw.url + path, data=pdf, headers=client.headers(**{"Content-Type": "application/pdf"})) as resp:
            got = await resp.json()
            assert (resp.status, got["error"]) == (status, code), got
            assert words in got["message"]


async def test_bad_options_list_every_field(signing_gw):
    """Invalid options give 422 with one entry per offending field."""
    r = await client.sign(signing_gw.url, one_page_pdf(), {"key": "file-pem", "level": "B-X", "colour": "red",
                                                        "appearance": {"page": 0, "box": [10, 10, 5, 5], "text": ""}})
    assert r.status == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"level", "colour", "appearance.box", "appearance.text"} <= fields


async def test_other_agencies_jobs_are_invisible(signing_gw):
    """GET /v1/signatures/{id} answers 404 for a job of another agency (and for unknown ids)."""
    r = await client.sign(signing_gw.url, one_page_pdf(), {"key": "remote-auto"})
    assert r.status == 202
    job_id = r.json()["id"]
    assert (await client.job(signing_gw.url, job_id, agency="SYT"))[0] == 404
    assert (await client.job(signing_gw.url, "no-such-job"))[0] == 404
