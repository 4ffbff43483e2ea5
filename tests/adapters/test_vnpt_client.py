"""VNPT e-receipts through the real stack: ReceiptsClient → zeep (in its threads) → HTTP → the fake
tenant on 127.0.0.1 (tests/fakes/vnpt.py). Assertions read the fake's record."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import zeep
from aiohttp import web

from adapters.vnpt_receipts import (
    FeeKind,
    FeeLine,
    Payer,
    PaymentMethod,
    Presence,
    ReceiptRequest,
    ReceiptsClient,
    Verdict,
    receipt_requests,
)
from adapters.vnpt_receipts import codes as vc
from adapters.vnpt_receipts.codes import Category
from adapters.vnpt_receipts.errors import (
    ReceiptInvalid,
    ReceiptRefused,
    ReceiptRetryable,
    ReceiptUnavailable,
    ReceiptWsdlError,
)
from adapters.vnpt_receipts.transport import Service, bundled_wsdl, new_session, zeep_settings
from tests.fakes.local import serving
from tests.fakes.vnpt import ADMIN, MASK, PATTERN, SERIAL, SERVICE, FakeVnpt, receipts_settings, running_vnpt

pytestmark = pytest.mark.usefixtures("loopback_only")

DOSSIER = "000.00.01.H56-250101-0001"
PAYER = Payer("Nguyễn Văn Mẫu", "Số 1 & 2, phường <Mẫu>")
# 2025-01-01 00:30 in Vietnam is still 2024-12-31 in UTC: the receipt date is Vietnam's
CLOCK = datetime(2024, 12, 31, 17, 30, tzinfo=UTC).timestamp()


def _payment(*lines: FeeLine, k: dict[FeeKind, int] | None = None) -> tuple[ReceiptRequest, ...]:
    lines = lines or (FeeLine(FeeKind.PHI, "Phí thẩm định hồ sơ", 50000, code="PHI01"),
                      FeeLine(FeeKind.LEPHI, "Lệ phí cấp giấy phép", 30000, code="LP01"))
    return receipt_requests(DOSSIER, "1.003560.000.00.00.H56", PAYER, lines, PaymentMethod.ONLINE, k=k)


@pytest.fixture
async def vnpt() -> AsyncIterator[FakeVnpt]:
    async with running_vnpt() as fake:
        yield fake


async def _open(fake: FakeVnpt, **overrides: Any) -> ReceiptsClient:
    return await ReceiptsClient.open(receipts_settings(fake, **overrides), clock=lambda: CLOCK)


@pytest.fixture
async def client(vnpt: FakeVnpt) -> AsyncIterator[ReceiptsClient]:
    c = await _open(vnpt)
    yield c
    await c.aclose()


# ── issue ─────────────────────────────────────────────────────────────────────────────────


async def test_a_fee_and_a_charge_are_two_receipts_with_the_payment_in_them(client: ReceiptsClient,
                                                                             vnpt: FakeVnpt) -> None:
    """Issue both receipts of a payment; the fake's record holds, per fkey, the lines, the payer,
    the dossier code, the method TTO, the issue date in Vietnam time, and the credentials sent."""
    phi, lephi = _payment()
    first, second = await client.issue(phi), await client.issue(lephi)
    assert first.verdict is Verdict.OK and first.receipt is not None
    assert (first.receipt.fkey, first.receipt.pattern, first.receipt.serial, first.receipt.number) == (
        f"{DOSSIER}-PHI-1", PATTERN, SERIAL, "1")
    assert second.receipt is not None and (second.receipt.fkey, second.receipt.number) == (f"{DOSSIER}-LEPHI-1", "2")
    assert set(vnpt.receipts) == {f"{DOSSIER}-PHI-1", f"{DOSSIER}-LEPHI-1"}
    calls = vnpt.calls_of(vc.ISSUE)
    assert [c.invoices[0]["key"] for c in calls] == [f"{DOSSIER}-PHI-1", f"{DOSSIER}-LEPHI-1"]
    inv = calls[0].invoices[0]["Invoice"]
    assert (inv["CusCode"], inv["Extra1"], inv["CusName"], inv["CusAddress"]) == (
        DOSSIER, DOSSIER, "Nguyễn Văn Mẫu", "Số 1 & 2, phường <Mẫu>")
    assert (inv["PaymentMethod"], inv["Amount"], inv["AmountInWords"], inv["ArisingDate"]) == (
        "TTO", "50000", "Năm mươi nghìn đồng", "01/01/2025")
    assert calls[0].invoices[0]["Products"] == [{
        "Code": "1.003560.000.00.00.H56", "ProdName": "Phí thẩm định hồ sơ", "ProdUnit": "Lần",
        "ProdQuantity": "1", "ProdPrice": "50000", "Total": "50000", "Amount": "50000", "Extra2": "0"}]
    assert calls[1].invoices[0]["Products"][0]["Extra2"] == "1"
    assert calls[0].fields["Account"] == MASK and calls[0].fields["username"] == MASK
    assert (calls[0].fields["pattern"], calls[0].fields["serial"], calls[0].fields["convert"]) == ("", "", "0")


async def test_the_call_is_soap_1_1_with_the_quoted_action(client: ReceiptsClient, vnpt: FakeVnpt) -> None:
    """§2: SOAPAction "http://tempuri.org/ImportAndPublishInv" (quoted), text/xml; charset=utf-8,
    qualified tempuri children, xmlInvData escaped as text."""
    await client.issue(_payment()[0])
    call = vnpt.calls_of(vc.ISSUE)[0]
    assert call.soap_version == "1.1" and call.soap_action == '"http://tempuri.org/ImportAndPublishInv"'
    assert call.content_type == "text/xml; charset=utf-8"
    assert b"<ns0:xmlInvData>&lt;Invoices&gt;&lt;Inv&gt;&lt;key&gt;" in call.body


async def test_a_duplicate_issue_is_done_not_an_error(client: ReceiptsClient, vnpt: FakeVnpt) -> None:
    """Issuing the same fkey again: VNPT answers ERR:13, the adapter says DONE; one receipt exists."""
    phi = _payment()[0]
    await client.issue(phi)
    again = await client.issue(phi)
    assert (again.verdict, again.code, again.category) == (Verdict.DONE, "13", Category.ALREADY_DONE)
    assert [c.answer for c in vnpt.calls_of(vc.ISSUE)] == [f"OK:{PATTERN};{SERIAL}-{phi.fkey}_1", "ERR:13"]
    assert len(vnpt.receipts) == 1


async def test_configured_pattern_and_serial_are_sent_and_zero_padded_numbers_kept(vnpt: FakeVnpt) -> None:
    """Both pattern and serial go out when set; the number is stored exactly as returned."""
    vnpt.ranges.add(("01BLP0/002", "BL/26E"))
    vnpt.zero_pad = True
    c = await _open(vnpt, pattern="01BLP0/002", serial="BL/26E")
    try:
        outcome = await c.issue(_payment()[0])
    finally:
        await c.aclose()
    assert outcome.receipt is not None and (outcome.receipt.pattern, outcome.receipt.serial,
                                            outcome.receipt.number) == ("01BLP0/002", "BL/26E", "0000001")
    assert vnpt.calls[0].fields["pattern"] == "01BLP0/002"


async def test_labels_instead_of_codes_when_the_tenant_prints_them(vnpt: FakeVnpt) -> None:
    """payment_method_text = "label": PaymentMethod carries "Trực tuyến" (spec §6.4)."""
    c = await _open(vnpt, payment_method_text="label")
    try:
        await c.issue(_payment()[0])
    finally:
        await c.aclose()
    assert vnpt.calls[0].invoices[0]["Invoice"]["PaymentMethod"] == "Trực tuyến"


async def test_amount_zero_never_reaches_vnpt(client: ReceiptsClient, vnpt: FakeVnpt) -> None:
    """§1 [POLICY]: amount ≤ 0 is refused locally; the fake saw no call."""
    with pytest.raises(ReceiptInvalid):
        _payment(FeeLine(FeeKind.PHI, "Phí", 0))
    with pytest.raises(ReceiptInvalid):
        await client.cancel("bad_key")
    assert vnpt.calls == []


# ── every ERR code through the wire ───────────────────────────────────────────────────────

_ISSUE = {"1": ReceiptRefused, "3": ReceiptRefused, "5": ReceiptRetryable, "6": ReceiptRefused,
          "7": ReceiptRefused, "10": ReceiptRefused, "20": ReceiptRefused, "21": ReceiptRetryable,
          "29": ReceiptRefused, "30": ReceiptRefused, "": ReceiptRefused, "99": ReceiptRefused}


@pytest.mark.parametrize(("code", "error"), list(_ISSUE.items()))
async def test_issue_err_codes_map_to_their_error(client: ReceiptsClient, vnpt: FakeVnpt, code: str,
                                                  error: type[Exception]) -> None:
    """ImportAndPublishInv ERR:n → ReceiptRetryable (transient class) or ReceiptRefused (permanent),
    carrying the code and the spec's meaning; unlisted codes and a bare ERR: are permanent."""
    vnpt.inject(vc.ISSUE, f"ERR:{code}")
    with pytest.raises(error) as info:
        await client.issue(_payment()[0])
    exc: Any = info.value
    assert exc.code == code and exc.operation == vc.ISSUE
    assert exc.meaning == (vc.TABLES[vc.ISSUE][code].meaning if code in vc.TABLES[vc.ISSUE] else vc.lookup(
        vc.ISSUE, code).meaning)
    assert vnpt.receipts == {}


@pytest.mark.parametrize(("code", "error"), [("1", ReceiptRefused), ("2", ReceiptRefused), ("6", ReceiptRefused)])
async def test_unconfirm_errors_stop_the_cancel(client: ReceiptsClient, vnpt: FakeVnpt, code: str,
                                                error: type[Exception]) -> None:
    """§5.2: the first step failing stops there: cancelInv is not called."""
    phi = _payment()[0]
    await client.issue(phi)
    vnpt.inject(vc.UNCONFIRM, f"ERR:{code}")
    with pytest.raises(error) as info:
        await client.cancel(phi.fkey)
    assert info.value.code == code and info.value.operation == vc.UNCONFIRM  # type: ignore[attr-defined]
    assert vnpt.calls_of(vc.CANCEL) == [] and vnpt.receipts[phi.fkey].status == "PAID"


@pytest.mark.parametrize(("code", "expected"), [("1", ReceiptRefused), ("2", ReceiptRefused), ("9", ReceiptRefused),
                                                ("8", Verdict.DONE)])
async def test_cancel_inv_codes(client: ReceiptsClient, vnpt: FakeVnpt, code: str, expected: Any) -> None:
    """cancelInv ERR:8 (already cancelled or replaced) is DONE; 1, 2, 9 are refusals."""
    phi = _payment()[0]
    await client.issue(phi)
    vnpt.inject(vc.CANCEL, f"ERR:{code}")
    if isinstance(expected, Verdict):
        assert (await client.cancel(phi.fkey)).verdict is expected
        return
    with pytest.raises(expected) as info:
        await client.cancel(phi.fkey)
    assert info.value.code == code and info.value.operation == vc.CANCEL


_PORTAL = [(op, code, ReceiptRetryable if code in ("12", "13") else ReceiptRefused)
           for op in (vc.VIEW, vc.DOWNLOAD) for code in vc.TABLES[op]]


@pytest.mark.parametrize(("operation", "code", "error"), _PORTAL)
async def test_view_and_download_codes(client: ReceiptsClient, vnpt: FakeVnpt, operation: str, code: str,
                                       error: type[Exception]) -> None:
    """getInvViewFkey / downloadInvPDFFkey: not yet accepted by the tax authority is transient;
    the rest are refusals with their own per-operation meaning."""
    phi = _payment()[0]
    await client.issue(phi)
    vnpt.inject(operation, f"ERR:{code}")
    with pytest.raises(error) as info:
        await (client.view(phi.fkey) if operation == vc.VIEW else client.download(phi.fkey))
    exc: Any = info.value
    assert (exc.code, exc.operation, exc.meaning) == (code, operation, vc.TABLES[operation][code].meaning)


# ── the fake's own checks (not injected) ──────────────────────────────────────────────────


async def test_wrong_credentials_are_err_1_a_configuration_refusal(vnpt: FakeVnpt) -> None:
    """§11.2: a wrong service password is ERR:1 (never a fault), category configuration."""
    c = await _open(vnpt, password="wrong")
    try:
        with pytest.raises(ReceiptRefused) as info:
            await c.issue(_payment()[0])
        with pytest.raises(ReceiptRefused):
            await c.view("X-1")
    finally:
        await c.aclose()
    assert (info.value.code, info.value.category) == ("1", Category.CONFIGURATION)
    assert [call.answer for call in vnpt.calls] == ["ERR:1", "ERR:1"]


async def test_an_unregistered_range_and_an_exhausted_one(vnpt: FakeVnpt) -> None:
    """A pattern/serial pair the tenant does not hold is ERR:20; no numbers left is ERR:6 (capacity)."""
    c = await _open(vnpt, pattern="01BLP0/009", serial="ZZ/25E")
    try:
        with pytest.raises(ReceiptRefused) as info:
            await c.issue(_payment()[0])
        assert info.value.code == "20"
    finally:
        await c.aclose()
    vnpt.range_size = 0
    c = await _open(vnpt)
    try:
        with pytest.raises(ReceiptRefused) as info:
            await c.issue(_payment()[0])
        assert (info.value.code, info.value.category) == ("6", Category.CAPACITY)
    finally:
        await c.aclose()


# ── cancel, view, download, presence ──────────────────────────────────────────────────────


async def test_cancel_unconfirms_then_cancels_and_a_second_cancel_is_done(client: ReceiptsClient,
                                                                          vnpt: FakeVnpt) -> None:
    """§5.2 in order; the record shows the fkey in lstFkey then fkey; cancelling again is DONE."""
    phi = _payment()[0]
    await client.issue(phi)
    assert (await client.cancel(phi.fkey)).verdict is Verdict.OK
    assert vnpt.receipts[phi.fkey].status == "CANCELLED"
    assert [(c.operation, c.fields.get("lstFkey", c.fields.get("fkey"))) for c in vnpt.calls[1:]] == [
        (vc.UNCONFIRM, phi.fkey), (vc.CANCEL, phi.fkey)]
    again = await client.cancel(phi.fkey)
    assert (again.verdict, again.operation, again.code) == (Verdict.DONE, vc.CANCEL, "8")


async def test_a_cancel_cut_between_its_two_steps_completes_when_retried(client: ReceiptsClient,
                                                                          vnpt: FakeVnpt) -> None:
    """The first step went through but the second was lost: on retry UnConfirmPaymentFkey answers
    ERR:7 (already unpaid) and cancelInv still runs and cancels (docs/decisions.md)."""
    phi = _payment()[0]
    await client.issue(phi)
    vnpt.inject(vc.CANCEL, "drop")
    with pytest.raises(ReceiptUnavailable):
        await client.cancel(phi.fkey)
    assert vnpt.receipts[phi.fkey].status == "UNPAID"
    assert (await client.cancel(phi.fkey)).verdict is Verdict.OK
    assert vnpt.calls_of(vc.UNCONFIRM)[-1].answer == "ERR:7" and vnpt.receipts[phi.fkey].status == "CANCELLED"


async def test_a_receipt_still_marked_paid_is_not_cancelled_past_err_7(client: ReceiptsClient,
                                                                        vnpt: FakeVnpt) -> None:
    """If ERR:7 meant "could not reverse the paid mark", cancelInv refuses with ERR:9: a refusal."""
    phi = _payment()[0]
    await client.issue(phi)
    vnpt.inject(vc.UNCONFIRM, "ERR:7")
    with pytest.raises(ReceiptRefused) as info:
        await client.cancel(phi.fkey)
    assert (info.value.operation, info.value.code, info.value.category) == (vc.CANCEL, "9", Category.STATE)
    assert vnpt.receipts[phi.fkey].status == "PAID"


async def test_cancel_of_an_unknown_key_is_a_not_found_refusal(client: ReceiptsClient) -> None:
    """UnConfirmPaymentFkey ERR:6 on a key we think issued: an inconsistency for the operator."""
    with pytest.raises(ReceiptRefused) as info:
        await client.cancel(f"{DOSSIER}-PHI-9")
    assert (info.value.code, info.value.category) == ("6", Category.NOT_FOUND)


async def test_view_download_and_presence(client: ReceiptsClient, vnpt: FakeVnpt) -> None:
    """View: the HTML verbatim (its own <!DOCTYPE html> is data, not refused); download: PDF bytes;
    presence: EXISTS, UNPAID (ERR:11), ABSENT (ERR:6)."""
    phi = _payment()[0]
    await client.issue(phi)
    html = await client.view(phi.fkey)
    assert html.startswith("<!DOCTYPE html>") and f"Ký hiệu: {SERIAL}" in html and "Số: 1" in html
    pdf = await client.download(phi.fkey)
    assert pdf.startswith(b"%PDF-") and b"Bien lai BL/25E so 1" in pdf
    assert await client.presence(phi.fkey) is Presence.EXISTS
    assert await client.presence(f"{DOSSIER}-PHI-2") is Presence.ABSENT
    vnpt.receipts[phi.fkey].status = "UNPAID"
    assert await client.presence(phi.fkey) is Presence.UNPAID
    with pytest.raises(ReceiptRefused) as info:
        await client.view(phi.fkey)
    assert (info.value.code, info.value.category) == ("11", Category.NOT_PAID)


async def test_a_download_that_is_not_a_pdf_is_an_error(client: ReceiptsClient, vnpt: FakeVnpt) -> None:
    """§5.3: a result that does not decode to a PDF is treated as an error."""
    vnpt.inject(vc.DOWNLOAD, "result:not base64!", "result:" + "SGVsbG8=")
    for _ in range(2):
        with pytest.raises(ReceiptUnavailable):
            await client.download("K-1")


# ── unknown outcomes and transport failures ───────────────────────────────────────────────


@pytest.mark.parametrize("fault", ["http500", "fault", "drop", "result:OK:01BLP0/001;BL/25E-someone-else_4",
                                   "result:Success"])
async def test_failures_with_an_unknown_outcome(client: ReceiptsClient, vnpt: FakeVnpt, fault: str) -> None:
    """HTTP 5xx, a SOAP fault, a dropped connection, an OK: without our key, a strange answer:
    ReceiptUnavailable (transient; recover before retrying)."""
    vnpt.inject(vc.ISSUE, fault)
    with pytest.raises(ReceiptUnavailable) as info:
        await client.issue(_payment()[0])
    assert info.value.operation == vc.ISSUE and "Nguyễn" not in str(info.value)


async def test_a_reply_slower_than_the_timeout(vnpt: FakeVnpt) -> None:
    """A delay longer than [receipts] timeout: ReceiptUnavailable, and the next call works."""
    c = await _open(vnpt, timeout=0.2)
    vnpt.inject(vc.VIEW, "delay:1.0")
    try:
        with pytest.raises(ReceiptUnavailable, match="timeout"):
            await c.view("K-1")
        assert await c.presence("K-1") is Presence.ABSENT
    finally:
        await c.aclose()


async def test_calls_run_off_the_event_loop_and_side_by_side(client: ReceiptsClient, vnpt: FakeVnpt) -> None:
    """A slow VNPT holds one thread, not the loop: while a view waits 1 s at the fake, other calls
    (up to max_concurrency) complete, and concurrent issues get distinct numbers."""
    vnpt.inject(vc.VIEW, "delay:1.0")
    slow = asyncio.create_task(client.view("K-1"))
    requests = [receipt_requests(f"000.00.01.H56-250101-{i:04d}", "1", PAYER, [FeeLine(FeeKind.PHI, "Phí", 1000)])[0]
                for i in range(6)]
    outcomes = await asyncio.wait_for(asyncio.gather(*(client.issue(r) for r in requests)), timeout=0.9)
    assert not slow.done()
    assert sorted(int(o.receipt.number) for o in outcomes if o.receipt) == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ReceiptRefused):
        await slow


async def test_committed_then_dropped_is_recovered_and_reissue_is_done(client: ReceiptsClient,
                                                                        vnpt: FakeVnpt) -> None:
    """§8: VNPT issued the receipt but the answer was lost. The caller sees an unknown outcome,
    presence finds the receipt, and issuing again with the same fkey is DONE: one receipt."""
    phi = _payment()[0]
    vnpt.inject(vc.ISSUE, "commit_drop")
    with pytest.raises(ReceiptUnavailable):
        await client.issue(phi)
    assert await client.presence(phi.fkey) is Presence.EXISTS
    assert (await client.issue(phi)).verdict is Verdict.DONE
    assert list(vnpt.receipts) == [phi.fkey]


async def test_nothing_listens_at_the_address(vnpt: FakeVnpt) -> None:
    """A closed port: ReceiptUnavailable naming the operation, nothing else escapes."""
    url = vnpt.url
    c = await ReceiptsClient.open(receipts_settings(vnpt, base_url=re.sub(r":\d+$", ":1", url)))
    try:
        with pytest.raises(ReceiptUnavailable, match="ConnectionError"):
            await c.issue(_payment()[0])
    finally:
        await c.aclose()


async def test_redirects_are_not_followed(vnpt: FakeVnpt) -> None:
    """A 307 from the configured address (which would resend the credentials elsewhere) is an
    unknown outcome, and a redirected ?wsdl URL is not loaded: nothing reaches the target."""
    app = web.Application()
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"{vnpt.url}{request.path_qs}")

    app.router.add_route("*", "/{tail:.*}", redirect)
    async with serving(app) as mover:
        c = await _open(vnpt, base_url=mover)
        try:
            with pytest.raises(ReceiptUnavailable):
                await c.issue(_payment()[0])
        finally:
            await c.aclose()
        with pytest.raises(ReceiptWsdlError, match="TooManyRedirects"):
            await _open(vnpt, portal_wsdl=f"{mover}/PortalService.asmx?wsdl")
    assert vnpt.calls == [] and vnpt.wsdl_requests == 0


# ── WSDLs and addresses ───────────────────────────────────────────────────────────────────


async def test_the_configured_address_wins_over_the_wsdl(vnpt: FakeVnpt) -> None:
    """The bundled WSDLs say https://tenant.invalid/…; calls go to base_url + path (lower-case
    paths too, as some tenants publish them)."""
    assert "https://tenant.invalid/PublishService.asmx" in bundled_wsdl(Service.PUBLISH).read_text()
    c = await _open(vnpt, publish_path="/publishservice.asmx")
    try:
        assert (await c.issue(_payment()[0])).verdict is Verdict.OK
    finally:
        await c.aclose()
    assert len(vnpt.calls) == 1


async def test_wsdls_from_the_tenants_wsdl_urls(vnpt: FakeVnpt) -> None:
    """Each WSDL read once from <path>?wsdl at start-up (as the operator may configure it)."""
    urls = {f"{s.name.lower()}_wsdl": f"{vnpt.url}/{s.value}.asmx?wsdl" for s in Service}
    c = await _open(vnpt, **urls)
    try:
        phi = _payment()[0]
        await c.issue(phi)
        assert await c.presence(phi.fkey) is Presence.EXISTS
    finally:
        await c.aclose()
    assert vnpt.wsdl_requests == 3


def _edited_wsdl(tmp_path: Path, service: Service, old: str, new: str) -> str:
    text = bundled_wsdl(service).read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / service.bundled_wsdl
    path.write_text(text.replace(old, new), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(("service", "old", "new", "words"), [
    (Service.BUSINESS, "cancelInv", "cancelInvoice", "lacks the operation cancelInv"),
    (Service.PORTAL, 'name="userPass"', 'name="pass"', "expected getInvViewFkey(fkey, userName, userPass)"),
    (Service.PUBLISH, 'soapAction="http://tempuri.org/ImportAndPublishInv"', 'soapAction="urn:x"', "SOAPAction"),
    (Service.PUBLISH, 'name="PublishServiceSoap" type', 'name="PublishSoap" type', "no binding"),
])
async def test_a_wsdl_without_the_expected_operations_keeps_the_tenant_off(
        vnpt: FakeVnpt, tmp_path: Path, service: Service, old: str, new: str, words: str) -> None:
    """Spec §9: start-up refuses a WSDL lacking an operation, naming its parameters otherwise, or
    with another SOAPAction."""
    path = _edited_wsdl(tmp_path, service, old, new)
    with pytest.raises(ReceiptWsdlError, match=re.escape(words)):
        await _open(vnpt, **{f"{service.name.lower()}_wsdl": path})


@pytest.mark.parametrize("insert", [
    '<!DOCTYPE wsdl:definitions [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
])
async def test_a_wsdl_with_a_dtd_is_refused(vnpt: FakeVnpt, tmp_path: Path, insert: str) -> None:
    """The WSDL is parsed under the same rules as replies: a DTD keeps the tenant off."""
    path = _edited_wsdl(tmp_path, Service.PORTAL, "<wsdl:definitions", insert + "<wsdl:definitions")
    with pytest.raises(ReceiptWsdlError, match="DTD"):
        await _open(vnpt, portal_wsdl=path)


async def test_a_wsdl_that_imports_another_document_is_refused(vnpt: FakeVnpt, tmp_path: Path) -> None:
    """No document but the configured WSDL is ever loaded (xsd:import of a local file here; an
    http one would be a network fetch)."""
    (tmp_path / "extra.xsd").write_text('<s:schema xmlns:s="http://www.w3.org/2001/XMLSchema" '
                                        'targetNamespace="urn:extra"/>', encoding="utf-8")
    path = _edited_wsdl(tmp_path, Service.PORTAL, '<s:schema elementFormDefault="qualified" '
                        'targetNamespace="http://tempuri.org/">', '<s:schema elementFormDefault="qualified" '
                        'targetNamespace="http://tempuri.org/"><s:import namespace="urn:extra" '
                        f'schemaLocation="{tmp_path / "extra.xsd"}"/>')
    with pytest.raises(ReceiptWsdlError, match="imports another document"):
        await _open(vnpt, portal_wsdl=path)


async def test_a_missing_wsdl_file_is_a_wsdl_error(vnpt: FakeVnpt, tmp_path: Path) -> None:
    with pytest.raises(ReceiptWsdlError, match="cannot load"):
        await _open(vnpt, publish_wsdl=str(tmp_path / "nope.wsdl"))


# ── the loopback guard itself ─────────────────────────────────────────────────────────────


async def test_the_loopback_guard_refuses_other_hosts(vnpt: FakeVnpt, loopback_only: list[object]) -> None:
    """The guard these tests run under would catch a call to a real host (here TEST-NET-1)."""
    c = await ReceiptsClient.open(receipts_settings(vnpt, base_url="http://192.0.2.1"))
    try:
        with pytest.raises(ReceiptUnavailable):
            await c.view("K-1")
    finally:
        await c.aclose()
    assert loopback_only and "192.0.2.1" in str(loopback_only)
    loopback_only.clear()


def test_fixture_credentials_are_fakes() -> None:
    """No real credentials in tests: the fake's pairs are invented."""
    assert all(v.startswith("fake-") for v in (*ADMIN, *SERVICE))


# ── the fake's own fidelity (spec §11.1) ──────────────────────────────────────────────────


async def test_the_fake_answers_soap_1_2_in_1_2(vnpt: FakeVnpt) -> None:
    """Both bindings are served: a zeep client on the 1.2 port gets its answer in 1.2 (zeep would
    refuse a 1.1 envelope), with the action in the Content-Type."""
    session = new_session()
    try:
        plain = zeep.Client(str(bundled_wsdl(Service.PORTAL)), transport=zeep.Transport(session=session),
                            settings=zeep_settings())
        proxy = plain.create_service("{http://tempuri.org/}PortalServiceSoap12", f"{vnpt.url}/PortalService.asmx")
        result = await asyncio.to_thread(proxy.getInvViewFkey, fkey="K-1", userName=SERVICE[0], userPass=SERVICE[1])
    finally:
        session.close()
    assert result == "ERR:6"
    assert vnpt.calls[0].soap_version == "1.2"
    assert 'action="http://tempuri.org/getInvViewFkey"' in vnpt.calls[0].content_type


_RAW = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        '<ImportAndPublishInv xmlns="http://tempuri.org/"><Account>a</Account>{convert}</ImportAndPublishInv>'
        "</soap:Body></soap:Envelope>")


@pytest.mark.parametrize(("action", "convert", "words"), [
    ('"http://tempuri.org/cancelInv"', "<convert>0</convert>", "SOAPAction"),
    ("", "<convert>0</convert>", "SOAPAction"),
    ("http://tempuri.org/ImportAndPublishInv", "", "convert is required"),
    ("http://tempuri.org/ImportAndPublishInv", '<convert xmlns="">0</convert>', "convert is required"),
])
async def test_the_fake_faults_on_a_wrong_action_or_a_missing_int(vnpt: FakeVnpt, http: aiohttp.ClientSession,
                                                                  action: str, convert: str, words: str) -> None:
    """A wrong or missing SOAPAction, and a missing (or unqualified, hence absent) convert, are
    HTTP 500 SOAP faults, not ERR: strings."""
    async with http.post(f"{vnpt.url}/PublishService.asmx", data=_RAW.format(convert=convert).encode(),
                         headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": action}) as resp:
        body = await resp.text()
    assert resp.status == 500 and "<faultstring>" in body and words in body
    assert vnpt.receipts == {}
