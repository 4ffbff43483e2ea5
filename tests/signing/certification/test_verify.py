"""POST /v1/certifications/verify: genuine passes; changed, forged and revoked copies do not."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp

from signing.certification.books import VN_TZ
from signing.certification.stamp import StampText, stamp_last_page
from tests.signing.certification.client import call, certify, metadata
from tests.signing.certification.scans import scan_pdf
from tests.signing.client import sign
from tests.signing.conftest import Gateway
from tests.signing.env import AGENCY_KEYS


async def _verify(url: str, pdf: bytes) -> tuple[int, Any]:
    form = aiohttp.FormData()
    form.add_field("file", pdf, filename="copy.pdf", content_type="application/pdf")
    async with aiohttp.ClientSession() as s, s.post(f"{url}/v1/certifications/verify", data=form) as r:
        return r.status, await r.json()


async def _certified(gw: Gateway) -> tuple[dict[str, Any], bytes]:
    r = await certify(gw.url, [(scan_pdf(2), "application/pdf")], metadata())
    assert r.status == 201, r.body
    body = r.json()
    pdf = await call("GET", gw.url + body["pdf_url"], AGENCY_KEYS["STP"])
    return body["record"], pdf.body


def _codes(result: dict[str, Any]) -> set[str]:
    return {r["code"] for r in result["reasons"]}


async def test_genuine_copy_is_valid_without_a_key(cert_gw: Gateway) -> None:
    """The certified copy as delivered: valid, no reasons, the public record without requester data."""
    rec, pdf = await _certified(cert_gw)
    status, result = await _verify(cert_gw.url, pdf)
    assert status == 200
    assert (result["verdict"], result["reasons"]) == ("valid", []), result
    assert (result["record"]["cert_number"], result["record"]["book_name"]) == (rec["cert_number"], rec["book_name"])
    assert "requester_name" not in result["record"] and "requester_id_no" not in result["record"]


async def test_one_byte_changed_fails(cert_gw: Gateway) -> None:
    """One byte changed inside the first page's image: invalid, by hash and by signature."""
    rec, pdf = await _certified(cert_gw)
    at = pdf.index(b"stream", 200) + 400  # inside the first image stream
    changed = pdf[:at] + bytes([pdf[at] ^ 0x01]) + pdf[at + 1:]
    status, result = await _verify(cert_gw.url, changed)
    assert status == 200
    assert result["verdict"] == "invalid", result
    assert {"HASH_MISMATCH", "SIGNATURE_INVALID"} <= _codes(result)
    assert result["record"]["cert_number"] == rec["cert_number"]  # found by the printed block


async def test_resigned_copy_with_a_forged_number_fails(cert_gw: Gateway) -> None:
    """Another document stamped with a real record's number and book, then validly signed with the same
    key through POST /v1/signatures: the signature is fine, the file is not the record's: invalid."""
    rec, _ = await _certified(cert_gw)
    when = datetime.fromisoformat(rec["certified_at"]).astimezone(VN_TZ)
    forged = stamp_last_page(scan_pdf(1), StampText(rec["cert_number"], rec["book_name"], when, rec["certifier_name"],
                                                    rec["certifier_title"], rec["authority_name"]))
    signed = await sign(cert_gw.url, forged, {"key": "file-pem", "level": "B-T"})
    assert signed.status == 200, signed.body
    status, result = await _verify(cert_gw.url, signed.body)
    assert status == 200
    assert result["verdict"] == "invalid", result
    assert "HASH_MISMATCH" in _codes(result) and "SIGNATURE_INVALID" not in _codes(result)
    # a number no record has: unknown
    nobody = stamp_last_page(scan_pdf(1), StampText(999_999, rec["book_name"], when, "X", "Y", "Z"))
    status, result = await _verify(cert_gw.url, (await sign(cert_gw.url, nobody, {"key": "file-pem"})).body)
    assert (status, result["verdict"], result["record"]) == (200, "unknown", None)


async def test_revoked_copy_says_revoked_with_date_and_reason(cert_gw: Gateway) -> None:
    """After revocation the genuine file verifies as revoked, with the date and the reason."""
    rec, pdf = await _certified(cert_gw)
    base = f"{cert_gw.url}/v1/certifications/{rec['book_id']}/{rec['cert_number']}"
    assert (await call("POST", base + "/revoke", AGENCY_KEYS["STP"], json={"reason": "Cấp nhầm"})).status == 200
    status, result = await _verify(cert_gw.url, pdf)
    assert status == 200 and result["verdict"] == "revoked", result
    assert _codes(result) == {"RECORD_REVOKED"}
    assert result["record"]["revocation_reason"] == "Cấp nhầm" and result["record"]["revoked_at"]


async def test_changed_after_signing_fails(cert_gw: Gateway) -> None:
    """An incremental update appended after the signature (the old bytes intact): invalid."""
    _, pdf = await _certified(cert_gw)
    from io import BytesIO

    from pyhanko.pdf_utils.generic import TextStringObject
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    w = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
    w.root["/Lang"] = TextStringObject("vi")  # any change after signing
    w.update_root()
    out = BytesIO()
    w.write(out)
    status, result = await _verify(cert_gw.url, out.getvalue())
    assert status == 200 and result["verdict"] == "invalid", result
    assert {"HASH_MISMATCH", "MODIFIED_AFTER_SIGNING"} <= _codes(result)


async def test_not_a_pdf_is_422_naming_file(cert_gw: Gateway) -> None:
    """Garbage is refused naming the file part."""
    status, result = await _verify(cert_gw.url, b"hello")
    assert status == 422 and result["errors"][0]["field"] == "file"
