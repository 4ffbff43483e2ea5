"""A certification tied to a dossier reaches the sandbox portal as a result document of that dossier,
and the link it carries serves the certified copy without a key."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from tests.harness import AGENCY_KEY, UNIT, Sandbox, run_gateway, settings_for
from tests.monitoring.traffic import signing_section
from tests.samples import sample_dossier
from tests.signing.certification.scans import scan_pdf
from tests.signing.env import World

MAHOSO = f"{UNIT}-250315-00777"
AUTHORITY = "000.00.01.H55-CT"
PUBLIC = "https://dvcgw.example.gov.vn"


async def test_certified_copy_reaches_the_portal_as_a_result_document(sandbox: Sandbox, world: World,
                                                                       tmp_path: Path) -> None:
    """PUT the dossier, certify a copy with its dossier_code, run the jobs and the sync: the portal's
    newest copy of the dossier lists the copy in DanhSachGiayToKetQua with the gateway's link, and
    that link (path + token) serves exactly the certified PDF to anyone."""
    settings = settings_for(tmp_path, sandbox.url, signing=signing_section(world), certification={
        "public_base_url": PUBLIC,
        "authorities": [{"code": AUTHORITY, "name": "UBND xã A", "key": "file-pem", "agencies": [UNIT]}]})
    async with run_gateway(settings) as gw:
        assert (await gw.put(MAHOSO, sample_dossier(MAHOSO, TrangThaiHoSo="4"))).status == 202
        await gw.drain()
        form = aiohttp.FormData()
        form.add_field("metadata", json.dumps({
            "authority_code": AUTHORITY, "certifier_name": "Nguyễn Văn A", "certifier_title": "Công chức",
            "requester_name": "Trần Thị B", "requester_id_no": "001099000001", "document_name": "Giấy khai sinh",
            "dossier_code": MAHOSO}), content_type="application/json")
        form.add_field("file", scan_pdf(1), filename="scan.pdf", content_type="application/pdf")
        r = await gw.client.post("/v1/certifications", data=form, headers={"X-API-Key": AGENCY_KEY})
        assert r.status == 201, await r.text()
        rec = (await r.json())["record"]
        from gateway.appkeys import JOBS
        await gw.app[JOBS].drain()
        await gw.drain()
        calls = await sandbox.calls_for(MAHOSO)
        assert len(calls) >= 2
        sent = json.dumps(calls[-1], ensure_ascii=False)
        link = f"{PUBLIC}/v1/certifications/{rec['book_id']}/{rec['cert_number']}/pdf?token={rec['download_token']}"
        assert link in sent and "Bản sao chứng thực: Giấy khai sinh" in sent
        parts = urlsplit(link)
        pdf = await gw.client.get(f"{parts.path}?{parts.query}")
        assert pdf.status == 200
        assert hashlib.sha256(await pdf.read()).hexdigest() == rec["file_sha256"]
        assert (await gw.client.get(f"{parts.path}?token=wrong")).status == 401
        # the job is idempotent: running the hook's job again adds nothing
        from gateway.certification_results import add_result
        before = len(await sandbox.calls_for(MAHOSO))
        await add_result(gw.app, MAHOSO, {"DuongDanTepTinKetQua": link, "TenGiayTo": "x", "MaGiayToKetQua": "y"})
        await gw.drain()
        assert len(await sandbox.calls_for(MAHOSO)) == before


async def test_dossier_code_without_public_base_url_is_refused(sandbox: Sandbox, world: World,
                                                                tmp_path: Path) -> None:
    """With no public_base_url the gateway cannot give the dossier a link: 422 naming dossier_code, no number taken."""
    settings = settings_for(tmp_path, sandbox.url, signing=signing_section(world), certification={
        "authorities": [{"code": AUTHORITY, "name": "UBND xã A", "key": "file-pem", "agencies": [UNIT]}]})
    async with run_gateway(settings) as gw:
        form = aiohttp.FormData()
        form.add_field("metadata", json.dumps({
            "authority_code": AUTHORITY, "certifier_name": "A", "certifier_title": "B", "requester_name": "C",
            "requester_id_no": "1", "document_name": "D", "dossier_code": MAHOSO}), content_type="application/json")
        form.add_field("file", scan_pdf(1), filename="scan.pdf", content_type="application/pdf")
        r = await gw.client.post("/v1/certifications", data=form, headers={"X-API-Key": AGENCY_KEY})
        assert r.status == 422 and (await r.json())["errors"][0]["field"] == "dossier_code"
        books = await gw.operator("GET", "/v1/certification-books")
        assert (await books.json())["books"] == []
