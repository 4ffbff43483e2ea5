"""A full gateway (sync + signing) driven through real traffic, so every metric family has samples.

:func:`full_gateway` builds the whole app (the sandbox as portal, signing with a file key from the
signing tests' PKI and both of its TSAs). :func:`drive` sends what an operator's day holds: creates,
updates and progress delivered, a truncated text, an unusual transition, a 429, a 503 and a
business rejection (a dead letter), a TSA failing over, signing and validation, a certification
issued then revoked and one voided, and requests no route matches. :func:`scrape` reads ``/metrics``
as Prometheus would.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from tests.fakes.pdfs import one_page_pdf
from tests.harness import AGENCY_KEY, UNIT, Gateway, Sandbox, run_gateway, settings_for
from tests.samples import sample_dossier, sample_progress
from tests.signing.env import World

CREATED = f"{UNIT}-240315-00101"
TRUNCATED = f"{UNIT}-240315-00102"
THROTTLED = f"{UNIT}-240315-00103"
FAILING = f"{UNIT}-240315-00104"
REJECTED = f"{UNIT}-240315-00105"
#: every dossier code :func:`drive` pushes: none may ever show up in a label
DOSSIERS = (CREATED, TRUNCATED, THROTTLED, FAILING, REJECTED)
CERT_AUTHORITY = "000.00.09.H55"


def signing_section(world: World) -> dict[str, object]:
    """[signing] with the world's file key (its passphrase file is written by build_world) and both TSAs."""
    keys = world.tmp / "keys"
    return {
        "tsa_urls": list(world.tsa_urls), "tsa_timeout": "3s", "tsa_attempts": 1, "workers": 1,
        "trust_roots": [str(world.root_pem)],
        "keys": [{"alias": "file-pem", "source": "file", "agencies": [UNIT],
                  "key_file": str(keys / "file.key.pem"), "cert_file": str(keys / "file.crt.pem"),
                  "chain_files": [str(keys / "chain.pem")],
                  "passphrase_file": str(world.tmp / "secrets" / "pass")}],
    }


@asynccontextmanager
async def full_gateway(tmp_path: Path, sandbox: Sandbox, world: World) -> AsyncIterator[Gateway]:
    settings = settings_for(tmp_path, sandbox.url, signing=signing_section(world), certification={
        "authorities": [{"code": CERT_AUTHORITY, "name": "UBND xã A", "key": "file-pem", "agencies": [UNIT]}]},
        audit={"bodies": "hash", "seal_key": "file-pem"})  # the message log's families (audit/)
    async with run_gateway(settings) as gw:
        yield gw


async def drive(gw: Gateway, sandbox: Sandbox, world: World) -> None:
    """Real traffic touching every family this gateway registers (see the module docstring)."""
    await _sync_traffic(gw, sandbox)
    await _signing_traffic(gw, world)
    await _certification_traffic(gw, world)
    from gateway.message_log import SEALER
    assert await gw.app[SEALER].seal_once()  # writes the records, and one sealing round: every audit family
    assert (await gw.client.get("/no/such/route")).status == 404  # unmatched
    assert (await gw.client.request("PROPFIND", f"/v1/dossiers/{CREATED}")).status == 405


async def _sync_traffic(gw: Gateway, sandbox: Sandbox) -> None:
    assert (await gw.put(CREATED, sample_dossier(CREATED, TrangThaiHoSo="10"))).status == 202
    assert (await gw.progress(CREATED, sample_progress(CREATED, 2))).status == 202
    assert (await gw.put(TRUNCATED, sample_dossier(TRUNCATED, TrichYeuHoSo="Đăng ký " * 200))).status == 202
    await gw.drain()
    assert (await gw.put(CREATED, sample_dossier(CREATED, TrangThaiHoSo="4"))).status == 202  # unusual 10 → 4
    await gw.drain()  # an update
    await sandbox.fault(mode="http429", count=1, retry_after=30)
    assert (await gw.put(THROTTLED, sample_dossier(THROTTLED))).status == 202
    await gw.drain()
    await sandbox.fault(mode="http503", count=1)
    assert (await gw.put(FAILING, sample_dossier(FAILING))).status == 202
    await gw.drain()
    assert (await gw.put(REJECTED, sample_dossier(REJECTED))).status == 202
    await gw.drain()
    await sandbox.fault(mode="reject", count=1, message="Mã thủ tục không tồn tại trên Cổng DVCQG")
    assert (await gw.put(REJECTED, sample_dossier(REJECTED, TrangThaiHoSo="9"))).status == 202
    await gw.drain()
    gw.clock.advance(31)
    await gw.drain()
    for code in (THROTTLED, FAILING):
        assert (await gw.status(code))["delivery"] == "delivered", code
    assert (await gw.status(REJECTED))["delivery"] == "dead"


async def _signing_traffic(gw: Gateway, world: World) -> None:
    world.tsa_a.fail = True  # the first TSA is down: counted, and the second one stamps
    try:
        signed = await _post_pdf(gw, "/v1/signatures?key=file-pem&level=B-T", one_page_pdf())
    finally:
        world.tsa_a.fail = False
    await _post_pdf(gw, "/v1/signatures/validate", signed)


async def _certify(gw: Gateway) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("metadata", json.dumps({
        "authority_code": CERT_AUTHORITY, "certifier_name": "Nguyễn Văn A", "certifier_title": "Công chức",
        "requester_name": "Trần Thị B", "requester_id_no": "001099000001", "document_name": "Giấy khai sinh"}),
        content_type="application/json")
    form.add_field("file", one_page_pdf(), filename="scan.pdf", content_type="application/pdf")
    return await gw.client.post("/v1/certifications", data=form, headers={"X-API-Key": AGENCY_KEY})


async def _certification_traffic(gw: Gateway, world: World) -> None:
    """One certification issued then revoked, one voided (every TSA down after its number was taken)."""
    issued = await _certify(gw)
    assert issued.status == 201, await issued.text()
    rec = (await issued.json())["record"]
    world.tsa_a.fail = world.tsa_b.fail = True
    try:
        assert (await _certify(gw)).status == 503
    finally:
        world.tsa_a.fail = world.tsa_b.fail = False
    r = await gw.client.post(f"/v1/certifications/{rec['book_id']}/{rec['cert_number']}/revoke",
                             json={"reason": "test"}, headers={"X-API-Key": AGENCY_KEY})
    assert r.status == 200, await r.text()


async def _post_pdf(gw: Gateway, path: str, pdf: bytes) -> bytes:
    r = await gw.client.post(path, data=pdf, headers={"X-API-Key": AGENCY_KEY, "Content-Type": "application/pdf"})
    assert r.status == 200, await r.text()
    return await r.read()


async def scrape(gw: Gateway) -> str:
    r = await gw.client.get("/metrics")
    assert r.status == 200
    return await r.text()
