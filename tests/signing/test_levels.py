"""Every PAdES level with every key source, each output checked by pyHanko, pdfsig and openssl."""

from __future__ import annotations

import base64
import json

import aiohttp
import pytest

from tests.fakes.pdfs import one_page_pdf
from tests.signing import checks, client
from tests.signing.conftest import FIXED_SIGNING_TIME

LEVELS = ["B-B", "B-T", "B-LT", "B-LTA"]


async def _sign_remote(signing_gw, world, level: str) -> bytes:
    before = set(world.remote.pending())
    r = await client.sign(signing_gw.url, one_page_pdf(), {"key": "remote", "level": level})
    assert r.status == 202, r.body
    job_id = r.json()["id"]
    # nothing is signed until the officer confirms: the job waits as "pending"
    _, body = await client.job(signing_gw.url, job_id)
    assert body["state"] == "pending"
    await client.wait_for(lambda: set(world.remote.pending()) - before)
    (tid,) = set(world.remote.pending()) - before
    _, body = await client.job(signing_gw.url, job_id)
    assert body["state"] == "pending"
    async with aiohttp.ClientSession() as s, s.post(f"{world.remote_url}/_test/confirm/{tid}") as resp:
        assert resp.status == 200
    body = await client.wait_job(signing_gw.url, job_id)
    assert body["state"] == "completed", body
    assert body["level"] == level
    return base64.b64decode(body["pdf_base64"])


async def _sign(signing_gw, world, key: str, level: str) -> bytes:
    if key == "remote":
        return await _sign_remote(signing_gw, world, level)
    r = await client.sign(signing_gw.url, one_page_pdf(), {"key": key, "level": level, "reason": "Cấp giấy phép"})
    assert r.status == 200, r.body
    assert r.headers["X-Signature-Level"] == level
    assert r.headers["X-Signature-Downgraded"] == "false"
    return r.body


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("key", ["file-pem", "hsm", "remote"])
async def test_level_and_source_validate_three_ways(signing_gw, world, tmp_path, key, level):
    """A PDF signed at each level with each key source is TOTAL-PASSED for pyHanko, 'Signature is
    Valid.' for pdfsig, and verifies with openssl cms against the test root."""
    if key == "hsm" and world.softhsm_conf is None:
        pytest.fail("SoftHSM2 is required (scripts/install-system-deps.sh installs it)")
    pdf = await _sign(signing_gw, world, key, level)
    path = tmp_path / "signed.pdf"
    path.write_bytes(pdf)

    status, body = await client.validate(signing_gw.url, pdf)
    assert status == 200
    reports = body["signatures"]
    sig = reports[0]
    assert (sig["type"], sig["indication"], sig["intact"], sig["valid"], sig["trusted"]) == (
        "signature", "TOTAL-PASSED", True, True, True), sig
    assert sig["revocation"] == "good"
    assert sig["signing_time"] == FIXED_SIGNING_TIME.isoformat()
    if level == "B-B":
        assert sig["timestamp"] is None
    else:
        assert sig["timestamp"]["valid"] is True
    if level in ("B-LT", "B-LTA"):
        assert b"/DSS" in pdf
    if level == "B-LTA":
        assert reports[-1]["type"] == "document_timestamp"
        assert reports[-1]["indication"] == "TOTAL-PASSED"
        # pyHanko appends the TSA's validation data after the document time-stamp (LTA updates only)
        assert reports[-1]["modification_level"] in ("none", "lta_updates"), json.dumps(reports[-1])
    else:
        assert len(reports) == 1

    poppler = checks.pdfsig(path)
    assert len(poppler) == len(reports)
    assert poppler[0]["valid"], poppler
    # B-LT and B-LTA append DSS revisions after the last signature
    assert poppler[0]["total"] is (level in ("B-B", "B-T"))
    assert sig["covers_whole_document"] is (level in ("B-B", "B-T"))
    if level == "B-LTA":  # pdfsig cannot check a document time-stamp: openssl ts does
        ts_check = checks.openssl_ts_verify(pdf, world.root_pem, tmp_path / "ts", index=1)
        assert ts_check.returncode == 0 and "Verification: OK" in ts_check.stdout, ts_check.stderr

    verified = checks.openssl_verify(pdf, world.root_pem, tmp_path / "cms")
    assert verified.returncode == 0, verified.stderr
    assert "Verification successful" in verified.stderr
