"""Document-level behaviour: the visible Vietnamese stamp, certification (DocMDP), earlier signatures
kept valid, raw-body options, and the metrics the service exports."""

from __future__ import annotations

import re
import subprocess

import aiohttp

from tests.fakes.pdfs import one_page_pdf
from tests.signing import client
from tests.signing.conftest import FIXED_SIGNING_TIME

STAMP = "Ký bởi: Nguyễn Văn An — Sở Tư pháp tỉnh Thái Nguyên"
BOX = [40, 600, 560, 680]


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout


async def test_visible_stamp_renders_vietnamese_exactly(signing_gw, tmp_path, artifacts):
    """The stamp text with diacritics comes back out of pdftotext exactly (embedded DejaVu Sans), and a
    pdftoppm rendering of the stamp is written to test-artifacts/."""
    appearance = {"page": 0, "box": BOX, "text": "Ký bởi: %(name)s — %(org)s",
                  "params": {"name": "Nguyễn Văn An", "org": "Sở Tư pháp tỉnh Thái Nguyên"}}
    r = await client.sign(signing_gw.url, one_page_pdf(), {"key": "file-pem", "level": "B-B",
                                                        "field_name": "KyDuyet", "appearance": appearance})
    assert r.status == 200, r.body
    pdf = tmp_path / "stamped.pdf"
    pdf.write_bytes(r.body)
    (artifacts / "stamped.pdf").write_bytes(r.body)
    text = _run("pdftotext", "-layout", str(pdf), "-")
    assert STAMP in text, text
    # every glyph of the stamp lies inside its box (catches mis-scaled glyph widths)
    bbox = _run("pdftotext", "-bbox", str(pdf), "-")
    x_max = [float(m) for m in re.findall(r'xMax="([\d.]+)"[^>]*>[^<]*Nguyên</word>', bbox)]
    assert x_max and max(x_max) < BOX[2], bbox
    # crop to the stamp box at 100 dpi (PDF y grows upwards, pixels downwards)
    scale = 100 / 72
    x, y = int(BOX[0] * scale), int((842 - BOX[3]) * scale)
    w, h = int((BOX[2] - BOX[0]) * scale) + 1, int((BOX[3] - BOX[1]) * scale) + 1
    out = artifacts / "stamp"
    _run("pdftoppm", "-png", "-r", "100", "-singlefile", "-x", str(x), "-y", str(y), "-W", str(w),
         "-H", str(h), str(pdf), str(out))
    png = out.with_suffix(".png")
    assert png.stat().st_size > 1000
    _, body = await client.validate(signing_gw.url, r.body)
    assert body["signatures"][0]["field_name"] == "KyDuyet"
    assert body["signatures"][0]["indication"] == "TOTAL-PASSED"


async def test_stamp_fills_signer_and_time(signing_gw, tmp_path):
    """%(signer)s and %(ts)s in the stamp text are filled with the certificate name and the signing time."""
    appearance = {"page": 0, "box": BOX, "text": "%(signer)s\n%(ts)s"}
    r = await client.sign(signing_gw.url, one_page_pdf(), {"key": "file-pem", "appearance": appearance})
    assert r.status == 200, r.body
    pdf = tmp_path / "stamped.pdf"
    pdf.write_bytes(r.body)
    text = _run("pdftotext", str(pdf), "-")
    assert "Test signer file" in text and FIXED_SIGNING_TIME.strftime("%Y-%m-%d %H:%M:%S") in text, text


async def test_earlier_signatures_stay_valid(signing_gw):
    """Signing an already signed PDF is an incremental update: both signatures validate (PKCS#12 key second)."""
    first = await client.sign(signing_gw.url, one_page_pdf(), {"key": "file-pem", "level": "B-T"})
    second = await client.sign(signing_gw.url, first.body, {"key": "file-p12", "level": "B-B"})
    assert second.status == 200, second.body
    assert second.body.startswith(first.body)
    _, body = await client.validate(signing_gw.url, second.body)
    sigs = body["signatures"]
    assert [s["field_name"] for s in sigs] == ["Signature1", "Signature2"]
    assert all(s["indication"] == "TOTAL-PASSED" for s in sigs), sigs
    assert sigs[0]["covers_whole_document"] is False and sigs[1]["covers_whole_document"] is True


async def test_certification_locks_the_document(signing_gw):
    """certify + docmdp no_changes: the report shows DocMDP respected, and a later signature is refused (422)."""
    r = await client.sign(signing_gw.url, one_page_pdf(), {"key": "file-pem", "certify": True, "docmdp": "no_changes"})
    assert r.status == 200, r.body
    _, body = await client.validate(signing_gw.url, r.body)
    assert body["signatures"][0]["docmdp_ok"] is True
    again = await client.sign(signing_gw.url, r.body, {"key": "file-p12"})
    assert again.status == 422
    assert again.json()["error"] == "signing_failed"


async def test_raw_pdf_body_takes_options_from_query(signing_gw):
    """A raw application/pdf body with ?key=&level=&reason= is signed like the multipart form."""
    async with aiohttp.ClientSession() as s, s.post(
            f"{signing_gw.url}/v1/signatures", params={"key": "file-pem", "level": "B-T", "reason": "Sao y bản chính"},
            data=one_page_pdf(), headers=client.headers(**{"Content-Type": "application/pdf"})) as r:
        assert r.status == 200
        assert r.headers["X-Signature-Level"] == "B-T"
        assert (await r.read()).startswith(b"%PDF-")


async def test_metrics_are_exported(signing_gw):
    """Signatures, latency, TSA latency and availability, validations and certificate expiry are
    recorded on the injected registry; the TSA requests (made in a worker process) and the remote
    signer's reach the counterpart latency histogram through their sessions' trace hooks."""
    await client.sign(signing_gw.url, one_page_pdf(), {"key": "file-pem", "level": "B-T"})
    r = await client.sign(signing_gw.url, one_page_pdf(), {"key": "file-pem", "level": "B-B"})
    await client.validate(signing_gw.url, r.body)
    remote = await client.sign(signing_gw.url, one_page_pdf(), {"key": "remote-auto"})
    assert remote.status == 202
    assert (await client.wait_job(signing_gw.url, remote.json()["id"]))["state"] == "completed"
    assert signing_gw.metric("dvcgw_signatures_total", key="file-pem", level="B-B", outcome="ok") >= 1
    assert signing_gw.metric("dvcgw_signing_duration_seconds_count") >= 2
    assert signing_gw.metric("dvcgw_tsa_request_duration_seconds_count", url=gateway_tsa(signing_gw)) >= 1
    assert signing_gw.metric("dvcgw_tsa_available", url=gateway_tsa(signing_gw)) == 1
    latency = "dvcgw_counterpart_request_duration_seconds_count"
    assert signing_gw.metric(latency, counterpart="tsa", operation="timestamp", status="2xx") >= 1
    assert signing_gw.metric(latency, counterpart="remote_signer", operation="credentials_info", status="2xx") >= 1
    assert signing_gw.metric(latency, counterpart="remote_signer", operation="sign_hash", status="2xx") >= 1
    assert signing_gw.metric("dvcgw_validations_total", indication="TOTAL-PASSED") >= 1
    days = signing_gw.metric("dvcgw_signing_cert_expiry_seconds", key="file-pem") / 86400
    assert 360 < days < 366
    assert signing_gw.metric("dvcgw_signing_cert_expiry_seconds", key="hsm") > 360 * 86400


def gateway_tsa(signing_gw) -> str:
    for metric in signing_gw.registry.collect():
        if metric.name == "dvcgw_tsa_request_duration_seconds":
            for sample in metric.samples:
                if sample.name.endswith("_count") and sample.value > 0:
                    return str(sample.labels["url"])
    raise AssertionError("no TSA call recorded")
