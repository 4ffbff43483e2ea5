"""POST /v1/certifications end to end: a real gateway, the real signing service, a real test PKI and TSA."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime
from pathlib import Path

import pytest

from signing.certification.books import VN_TZ
from signing.certification.stamp import images_to_pdf
from tests.signing.certification.client import REQUESTER, call, certify, metadata, operator
from tests.signing.certification.conftest import AUTHORITY_NAME, CONCURRENT, UNTRUSTED
from tests.signing.certification.scans import page_image, pdfinfo_pages, pdftotext, scan_pdf
from tests.signing.checks import pdfsig
from tests.signing.client import validate
from tests.signing.conftest import Gateway
from tests.signing.env import AGENCY_KEYS, World

JPEG = "image/jpeg"


async def test_three_page_scan_is_certified(cert_gw: Gateway, world: World, tmp_path: Path) -> None:
    """A 3-page JPEG scan: 201 with the record (fee 5,000, 3 pages, valid) and pdf_url; the copy keeps 3
    pages, its last page carries the block's lines exactly, the signature validates with pyHanko and
    pdfsig, and the record's SHA-256 is the served file's."""
    r = await certify(cert_gw.url, [(page_image(i + 1), JPEG) for i in range(3)], metadata())
    assert r.status == 201, r.body
    body = r.json()
    rec = body["record"]
    assert (rec["fee_vnd"], rec["page_count"], rec["status"]) == (5000, 3, "valid")
    assert rec["book_name"].endswith("-SCTĐT/BS") and rec["requester_name"] == REQUESTER["requester_name"]
    pdf = await call("GET", cert_gw.url + body["pdf_url"], AGENCY_KEYS["STP"])
    assert pdf.status == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert hashlib.sha256(pdf.body).hexdigest() == rec["file_sha256"]
    assert pdfinfo_pages(pdf.body) == 3
    when = datetime.fromisoformat(rec["certified_at"]).astimezone(VN_TZ)
    expected = ["Chứng thực bản sao đúng với bản chính",
                f"Số chứng thực: {rec['cert_number']}  Quyển số: {rec['book_name']}",
                f"Ngày {when.day:02d} tháng {when.month:02d} năm {when.year}",
                "Người thực hiện chứng thực", "Công chức Tư pháp – Hộ tịch", "Nguyễn Văn Ánh", AUTHORITY_NAME]
    assert [ln.strip() for ln in pdftotext(pdf.body, 3).splitlines() if ln.strip()] == expected
    status, reports = await validate(cert_gw.url, pdf.body)
    assert status == 200
    [rep] = reports["signatures"]
    assert (rep["indication"], rep["covers_whole_document"]) == ("TOTAL-PASSED", True)
    assert rep["timestamp"]["valid"]  # B-T by default
    assert rec["signers"][0]["serial"] == rep["signer"]["serial"] and rec["signers"][0]["tsa_time"]
    (tmp_path / "copy.pdf").write_bytes(pdf.body)
    assert pdfsig(tmp_path / "copy.pdf") == [{"valid": True, "total": True}]


async def test_pdf_scan_of_250_pages_is_charged_the_cap(cert_gw: Gateway) -> None:
    """A 250-page PDF scan is charged 200,000 VND (the per-copy cap) and keeps its 250 pages."""
    pages = [page_image(i, "PNG") for i in range(250)]
    r = await certify(cert_gw.url, [(images_to_pdf(pages), "application/pdf")], metadata())
    assert r.status == 201, r.body
    rec = r.json()["record"]
    assert (rec["page_count"], rec["fee_vnd"]) == (250, 200_000)


async def test_fifty_concurrent_certifications_get_one_to_fifty(cert_gw: Gateway) -> None:
    """50 certifications at once for one authority (a fresh book): numbers 1..50, no duplicate, no gap."""
    scan = scan_pdf(1)
    replies = await asyncio.gather(*(certify(cert_gw.url, [(scan, "application/pdf")],
                                             metadata(authority_code=CONCURRENT)) for _ in range(50)))
    assert [r.status for r in replies] == [201] * 50
    numbers = sorted(r.json()["record"]["cert_number"] for r in replies)
    assert numbers == list(range(1, 51))
    assert len({r.json()["record"]["book_id"] for r in replies}) == 1


async def test_failure_after_reservation_voids_and_next_takes_next(cert_gw: Gateway, world: World) -> None:
    """Every TSA down after the number was reserved: 503, the entry is void with the reason, and the
    next certification takes the next number (the voided one is neither reused nor a gap)."""
    first = await certify(cert_gw.url, [(scan_pdf(1), "application/pdf")], metadata())
    assert first.status == 201
    n = first.json()["record"]["cert_number"]
    book = first.json()["record"]["book_id"]
    world.tsa_a.fail = world.tsa_b.fail = True
    try:
        failed = await certify(cert_gw.url, [(scan_pdf(1), "application/pdf")], metadata())
    finally:
        world.tsa_a.fail = world.tsa_b.fail = False
    assert failed.status == 503, failed.body
    void = (await call("GET", f"{cert_gw.url}/v1/certifications/{book}/{n + 1}")).json()
    assert void["status"] == "void" and "tsa" in void["void_reason"].lower()
    nxt = await certify(cert_gw.url, [(scan_pdf(1), "application/pdf")], metadata())
    assert nxt.status == 201 and nxt.json()["record"]["cert_number"] == n + 2
    assert (await call("GET", f"{cert_gw.url}/v1/certifications/{book}/{n + 1}/pdf", AGENCY_KEYS["STP"])).status == 404


async def test_copy_that_does_not_validate_is_void(cert_gw: Gateway) -> None:
    """A key that chains to no trusted root: the server-side check refuses the copy (422) and voids it."""
    r = await certify(cert_gw.url, [(scan_pdf(1), "application/pdf")], metadata(authority_code=UNTRUSTED))
    assert r.status == 422 and r.json()["error"] == "signature_not_valid", r.body
    books = (await call("GET", f"{cert_gw.url}/v1/certification-books?authority={UNTRUSTED}", operator())).json()
    [book] = books["books"]
    assert (await call("GET", f"{cert_gw.url}/v1/certifications/{book['id']}/1")).json()["status"] == "void"


async def test_bad_requests_are_4xx_naming_the_field(cert_gw: Gateway) -> None:
    """Missing or bad metadata, unknown authority, no file, a bad image, another agency: 4xx naming the field."""
    scan = [(scan_pdf(1), "application/pdf")]
    cases = [
        (await certify(cert_gw.url, scan, {k: v for k, v in metadata().items() if k != "certifier_name"}),
         422, "certifier_name"),
        (await certify(cert_gw.url, scan, metadata(authority_code="nope")), 422, "authority_code"),
        (await certify(cert_gw.url, scan, metadata(paper_copies=-1)), 422, "paper_copies"),
        (await certify(cert_gw.url, scan, metadata(certifier_name="王小明")), 422, "certifier_name"),
        (await certify(cert_gw.url, scan, metadata(extra=1)), 422, "extra"),
        (await certify(cert_gw.url, scan, metadata(stamp_position={"x": 9000, "y": 10})), 422, "stamp_position"),
        (await certify(cert_gw.url, [], metadata()), 422, "file"),
        (await certify(cert_gw.url, [(b"garbage", JPEG)], metadata()), 422, "file[0]"),
        (await certify(cert_gw.url, scan, None), 422, "metadata"),
        (await certify(cert_gw.url, scan, raw_meta="{not json"), 422, "metadata"),
        (await certify(cert_gw.url, scan, metadata(), agency="SYT"), 403, "authority_code"),
    ]
    for reply, status, field in cases:
        assert reply.status == status, (field, reply.body)
        assert field in [e["field"] for e in reply.json()["errors"]], (field, reply.body)
    assert all(b"079199000123" not in r.body and "Trần".encode() not in r.body for r, _, _ in cases)
    raw = await call("POST", f"{cert_gw.url}/v1/certifications", AGENCY_KEYS["STP"], data=b"%PDF-1.7",
                     headers={"Content-Type": "application/pdf"})
    assert raw.status == 415


async def test_public_record_revoke_and_pdf_access(cert_gw: Gateway) -> None:
    """The open record has no requester data; another agency may neither fetch the PDF nor revoke;
    the authority's agency revokes with a reason, and the record then says revoked with date and reason."""
    rec = (await certify(cert_gw.url, [(scan_pdf(1), "application/pdf")], metadata())).json()["record"]
    base = f"{cert_gw.url}/v1/certifications/{rec['book_id']}/{rec['cert_number']}"
    pub = await call("GET", base)
    assert pub.status == 200
    assert "requester_name" not in pub.json() and b"079199000123" not in pub.body
    assert (await call("GET", base + "/pdf")).status == 401
    assert (await call("GET", base + "/pdf", AGENCY_KEYS["SYT"])).status == 403
    assert (await call("GET", base + "/pdf", operator())).status == 200
    assert (await call("POST", base + "/revoke", AGENCY_KEYS["SYT"], json={"reason": "x"})).status == 403
    bad = await call("POST", base + "/revoke", AGENCY_KEYS["STP"], json={})
    assert bad.status == 422 and bad.json()["errors"][0]["field"] == "reason"
    ok = await call("POST", base + "/revoke", AGENCY_KEYS["STP"], json={"reason": "Bản chính bị tẩy xóa"})
    assert ok.status == 200
    after = (await call("GET", base)).json()
    assert (after["status"], after["revocation_reason"]) == ("revoked", "Bản chính bị tẩy xóa") and after["revoked_at"]
    again = await call("POST", base + "/revoke", AGENCY_KEYS["STP"], json={"reason": "again"})
    assert again.status == 409
    assert (await call("GET", f"{cert_gw.url}/v1/certifications/{rec['book_id']}/999999")).status == 404
    assert (await call("GET", f"{cert_gw.url}/v1/certifications/{rec['book_id']}/abc")).status == 404


async def test_operator_book_routes(cert_gw: Gateway) -> None:
    """Operators list, close and open books; a closed book stays readable; an agency key is refused."""
    url = f"{cert_gw.url}/v1/certification-books"
    assert (await call("GET", url, AGENCY_KEYS["STP"])).status == 403  # no operator grant (issue 17)
    first = (await certify(cert_gw.url, [(scan_pdf(1), "application/pdf")], metadata())).json()["record"]
    closed = await call("POST", f"{url}/{first['authority_code']}/close", operator())
    assert closed.status == 200 and closed.json()["status"] == "closed"
    assert (await call("POST", f"{url}/{first['authority_code']}/close", operator())).status == 409
    opened = await call("POST", f"{url}/{first['authority_code']}/open", operator())
    assert opened.status == 201 and opened.json()["current_number"] == 0
    assert (await call("POST", f"{url}/{first['authority_code']}/open", operator())).status == 409
    nxt = (await certify(cert_gw.url, [(scan_pdf(1), "application/pdf")], metadata())).json()["record"]
    assert nxt["book_id"] == opened.json()["id"] and nxt["cert_number"] == 1
    old = f"{cert_gw.url}/v1/certifications/{first['book_id']}/{first['cert_number']}"
    assert (await call("GET", old)).status == 200
    listed = (await call("GET", url, operator())).json()["books"]
    assert sum(1 for b in listed if b["authority_code"] == first["authority_code"] and b["status"] == "open") == 1
    assert (await call("POST", f"{url}/nope/open", operator())).status == 422


async def test_cli_books_list_close_open(cert_gw: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    """`dvcgw books list|close|open` against the running daemon prints the books; errors exit non-zero."""
    from gateway.cli import main
    base = ["books", "--url", cert_gw.url, "--key", operator()]
    await asyncio.to_thread(main, [*base, "open", CONCURRENT])  # whether or not another test opened one
    assert await asyncio.to_thread(main, [*base, "close", CONCURRENT]) == 0
    assert await asyncio.to_thread(main, [*base, "open", CONCURRENT]) == 0
    assert await asyncio.to_thread(main, [*base, "list", "--authority", CONCURRENT]) == 0
    out = capsys.readouterr().out
    assert out.count("closed") >= 2 and "open" in out and "-SCTĐT/BS" in out
    assert await asyncio.to_thread(main, [*base, "open", CONCURRENT]) != 0
    assert "already has an open book" in capsys.readouterr().err


def test_every_certification_route_is_in_the_openapi_document(world: World) -> None:
    """The routes setup_certification adds are all in the served document (validated as OpenAPI 3.1)."""
    from openapi_spec_validator import validate as validate_spec
    from prometheus_client import CollectorRegistry

    from config.schema import load
    from gateway.openapi import document
    from tests.signing.certification.conftest import certification_app, certification_toml
    path = world.tmp / "cert-openapi.toml"
    path.write_text(certification_toml(world, world.tmp / "unused"))
    app = certification_app(load(path, environ={}), CollectorRegistry())
    routes = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    doc = document(True, certification=True)
    validate_spec(doc)
    assert {p for p in routes if "certif" in p or p == "/verify"} <= set(doc["paths"])


async def test_level_b_lt_is_configurable(world: World, tmp_path: Path) -> None:
    """[certification] level = "B-LT": the copy carries validation data (/DSS) and still validates."""
    from prometheus_client import CollectorRegistry

    from config.schema import load
    from tests.signing.certification.conftest import certification_app, certification_toml
    from tests.signing.env import free_port
    path = world.tmp / "cert-blt.toml"
    path.write_text(certification_toml(world, tmp_path, level="B-LT"))
    url, runner = world.servers.serve(certification_app(load(path, environ={}), CollectorRegistry()), port=free_port())
    try:
        r = await certify(url, [(scan_pdf(1), "application/pdf")], metadata())
        assert r.status == 201, r.body
        pdf = (await call("GET", url + r.json()["pdf_url"], AGENCY_KEYS["STP"])).body
        assert b"/DSS" in pdf
        status, reports = await validate(url, pdf)
        assert status == 200 and reports["signatures"][0]["indication"] == "TOTAL-PASSED"
    finally:
        world.servers.stop(runner)
