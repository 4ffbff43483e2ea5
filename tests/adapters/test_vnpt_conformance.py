"""VNPT e-receipts, conformance with the vendor's WSDLs (``<repo>/../shared/spec/wsdl``, present in
CI; skipped, not failed, where absent): for every operation the gateway uses, the client builds the
same envelope, byte for byte, from the vendor's WSDL as from the project's own, and sends the same
bytes and headers; the vendor's WSDLs pass the start-up check; their real addresses are never used."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from adapters.vnpt_receipts import FeeKind, FeeLine, Payer, ReceiptsClient, Verdict, receipt_requests
from adapters.vnpt_receipts import codes as vc
from adapters.vnpt_receipts.envelope import inv_data
from adapters.vnpt_receipts.transport import OPERATIONS, Service, load_client, new_session
from config.schema import ReceiptsSettings
from tests.fakes.vnpt import VENDOR_FILES, FakeVnpt, receipts_settings, running_vnpt

VENDOR_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "wsdl"

pytestmark = [
    pytest.mark.skipif(not all((VENDOR_DIR / f).is_file() for f in VENDOR_FILES.values()),
                       reason=f"the vendor WSDLs are not at {VENDOR_DIR}"),
    pytest.mark.usefixtures("loopback_only"),
]

CLOCK = datetime(2025, 6, 30, 3, 0, tzinfo=UTC).timestamp()
REQUEST = receipt_requests("000.00.01.H56-250630-0042", "1.003560.000.00.00.H56",
                           Payer("Lê Văn Mẫu & Con", "Ấp <1>, xã Mẫu"),
                           [FeeLine(FeeKind.PHI, "Phí thẩm định", 120000), FeeLine(FeeKind.LEPHI, "Lệ phí", 15000)])


def _vendor(settings: ReceiptsSettings) -> ReceiptsSettings:
    """The same settings with each service's WSDL taken from the vendor's copy."""
    files = {f"{s.name.lower()}_wsdl": str(VENDOR_DIR / VENDOR_FILES[s]) for s in Service}
    return ReceiptsSettings(**{**settings.__dict__, **files})


def _arguments() -> dict[str, dict[str, Any]]:
    xml = inv_data(REQUEST[0], issued_on=datetime.fromtimestamp(CLOCK, UTC).date(), method_text="TTO")
    creds = {"userName": "svc-user", "userPass": "svc-pass"}
    return {
        vc.ISSUE: {"Account": "admin", "ACpass": "admin-pass", "xmlInvData": xml, "username": "svc-user",
                   "password": "svc-pass", "pattern": "01BLP0/001", "serial": "BL/25E", "convert": 0},
        vc.UNCONFIRM: {"lstFkey": REQUEST[0].fkey, **creds},
        vc.CANCEL: {"Account": "admin", "ACpass": "admin-pass", "fkey": REQUEST[0].fkey, **creds},
        vc.VIEW: {"fkey": REQUEST[0].fkey, **creds},
        vc.DOWNLOAD: {"fkey": REQUEST[0].fkey, **creds},
    }


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_envelopes_are_byte_identical_from_the_vendor_wsdl_and_ours(operation: str) -> None:
    """zeep's create_message for the operation, serialised: the same bytes from either WSDL (both
    loaded the way the adapter loads them, hardened and checked), and the same SOAPAction."""
    own = ReceiptsSettings(base_url="http://127.0.0.1:9")
    service = OPERATIONS[operation].service
    session = new_session()
    try:
        built = []
        for settings in (own, _vendor(own)):
            client = load_client(settings, session, service)
            proxy = client.create_service(service.binding, settings.address_of(service.value))
            built.append((etree.tostring(client.create_message(proxy, operation, **_arguments()[operation])),
                          client.wsdl.bindings[service.binding].get(operation).soapaction))
    finally:
        session.close()
    assert built[0] == built[1]
    assert built[0][1] == f"http://tempuri.org/{operation}"


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeVnpt, FakeVnpt]]:
    async with running_vnpt() as first, running_vnpt() as second:
        yield first, second


async def _flow(fake: FakeVnpt, settings: ReceiptsSettings) -> None:
    client = await ReceiptsClient.open(settings, clock=lambda: CLOCK)
    try:
        for request in REQUEST:
            assert (await client.issue(request)).verdict is Verdict.OK
        await client.view(REQUEST[0].fkey)
        await client.download(REQUEST[0].fkey)
        assert (await client.cancel(REQUEST[0].fkey)).verdict is Verdict.OK
    finally:
        await client.aclose()


async def test_the_same_bytes_and_headers_go_out_with_either_wsdl(fakes: tuple[FakeVnpt, FakeVnpt]) -> None:
    """The same flow (issue both receipts, view, download, cancel) once on the project's WSDLs and
    once on the vendor's, each against a fresh fake: every request body, SOAPAction and
    Content-Type the fakes recorded is identical."""
    ours, vendors = fakes
    await _flow(ours, receipts_settings(ours))
    await _flow(vendors, _vendor(receipts_settings(vendors)))

    def wire(fake: FakeVnpt) -> list[tuple[str, bytes, str, str]]:
        return [(c.operation, c.body, c.soap_action, c.content_type) for c in fake.calls]

    assert [c[0] for c in wire(ours)] == [vc.ISSUE, vc.ISSUE, vc.VIEW, vc.DOWNLOAD, vc.UNCONFIRM, vc.CANCEL]
    assert wire(ours) == wire(vendors)


async def test_vendor_wsdls_served_over_wsdl_urls_with_their_addresses_never_used() -> None:
    """The fake serves the vendor's own WSDL files at ?wsdl (addresses rewritten to itself); the
    adapter reads them from the URLs, passes the §9 check and works. The files' real addresses
    (*.vnpt-invoice.com.vn) are never contacted: the loopback guard would fail the test."""
    text = (VENDOR_DIR / VENDOR_FILES[Service.PUBLISH]).read_text(encoding="utf-8")
    assert "vnpt-invoice.com.vn" in text
    async with running_vnpt(wsdl_dir=VENDOR_DIR) as fake:
        urls = {f"{s.name.lower()}_wsdl": f"{fake.url}/{s.value.lower()}.asmx?WSDL" for s in Service}
        await _flow(fake, receipts_settings(fake, **urls))
        assert fake.wsdl_requests == 3 and len(fake.calls) == 6


async def test_vendor_wsdl_files_used_as_stored_copies_bind_to_the_configured_address(
        fakes: tuple[FakeVnpt, FakeVnpt]) -> None:
    """Stored copies of the tenant's ?wsdl (the production set-up, spec §9) still carry the vendor's
    demo addresses; calls go to [receipts] base_url instead."""
    fake = fakes[0]
    await _flow(fake, _vendor(receipts_settings(fake)))
    assert len(fake.calls) == 6
