"""VNPT e-receipts, the pure layer: the fkey rule, xmlInvData, amounts in words, result parsing,
the error tables and the DTD guard (spec e-receipts.md §6–§8). No sockets."""

from __future__ import annotations

from datetime import date
from xml.etree import ElementTree as ET

import pytest

from adapters.vnpt_receipts import codes
from adapters.vnpt_receipts.codes import Category, Verdict
from adapters.vnpt_receipts.envelope import (
    amount_in_words,
    inv_data,
    is_error,
    parse_error,
    parse_issue,
    parse_ok,
    refuse_doctype,
)
from adapters.vnpt_receipts.errors import ReceiptInvalid, ReceiptUnsafeReply
from adapters.vnpt_receipts.model import (
    FeeKind,
    FeeLine,
    Payer,
    PaymentMethod,
    ReceiptRequest,
    fkey_for,
    receipt_requests,
)

DOSSIER = "H99.01-250101-0001"
PAYER = Payer("Nguyễn Văn Mẫu", "Số 1, phường Mẫu, tỉnh Mẫu")


def _request(*lines: FeeLine, kind: FeeKind = FeeKind.PHI, **kw: object) -> ReceiptRequest:
    args: dict[str, object] = {"fkey": fkey_for(DOSSIER, kind), "kind": kind, "dossier_code": DOSSIER,
                               "procedure_code": "9.999999", "payer": PAYER,
                               "lines": lines or (FeeLine(kind, "Phí thẩm định hồ sơ mẫu", 50000),)}
    args.update(kw)
    return ReceiptRequest(**args)  # type: ignore[arg-type]


# ── the fkey rule (§8) ─────────────────────────────────────────────────────────────────────


def test_fkey_is_dossier_kind_and_sequence() -> None:
    """§8: <MaHoSo>-<PHI|LEPHI>-<k>, k from 1."""
    assert fkey_for(DOSSIER, FeeKind.PHI) == "H99.01-250101-0001-PHI-1"
    assert fkey_for(DOSSIER, FeeKind.LEPHI, 3) == "H99.01-250101-0001-LEPHI-3"


def test_a_payment_with_a_fee_and_a_charge_gets_two_receipts_with_their_own_fkeys() -> None:
    """§1 step 2: one receipt per fee kind, phí first; each holds only its own kind's lines."""
    lines = [FeeLine(FeeKind.LEPHI, "Lệ phí cấp giấy", 30000), FeeLine(FeeKind.PHI, "Phí thẩm định", 50000),
             FeeLine(FeeKind.PHI, "Phí sao y", 2000)]
    phi, lephi = receipt_requests(DOSSIER, "1.000001", PAYER, lines)
    assert (phi.fkey, phi.kind, phi.total) == ("H99.01-250101-0001-PHI-1", FeeKind.PHI, 52000)
    assert [ln.name for ln in phi.lines] == ["Phí thẩm định", "Phí sao y"]
    assert (lephi.fkey, lephi.kind, lephi.total) == ("H99.01-250101-0001-LEPHI-1", FeeKind.LEPHI, 30000)
    assert phi.method is PaymentMethod.ONLINE


def test_one_kind_gives_one_receipt_and_k_moves_per_kind() -> None:
    """A charge alone is one receipt; a reissue uses the next k of that kind only."""
    (only,) = receipt_requests(DOSSIER, "1", PAYER, [FeeLine(FeeKind.LEPHI, "Lệ phí", 10)])
    assert only.fkey.endswith("-LEPHI-1")
    both = receipt_requests(DOSSIER, "1", PAYER, [FeeLine(FeeKind.PHI, "Phí", 1), FeeLine(FeeKind.LEPHI, "LP", 2)],
                            k={FeeKind.PHI: 2})
    assert [r.fkey for r in both] == [f"{DOSSIER}-PHI-2", f"{DOSSIER}-LEPHI-1"]


@pytest.mark.parametrize(("dossier", "k"), [("H99_01-1", 1), ("H99 01", 1), ("H99;1", 1), ("A" * 95, 1),
                                            (DOSSIER, 0), (DOSSIER, True)])
def test_fkeys_outside_the_character_rule_are_refused(dossier: str, k: int) -> None:
    """§8: letters, digits, '.', '-' only, ≤ 100 characters; k ≥ 1."""
    with pytest.raises(ReceiptInvalid):
        fkey_for(dossier, FeeKind.PHI, k)


@pytest.mark.parametrize("amount", [0, -50000, 1.5, True, "50000"])
def test_amount_zero_or_less_or_not_an_integer_is_refused_locally(amount: object) -> None:
    """§1 [POLICY]: amount ≤ 0 never reaches VNPT (nor a non-integer amount)."""
    with pytest.raises(ReceiptInvalid) as info:
        FeeLine(FeeKind.PHI, "Phí", amount)  # type: ignore[arg-type]
    assert info.value.field == "amount"


def test_loai_phi_le_phi_codes() -> None:
    """The payment protocol's "1" = phí, "2" = lệ phí; nothing else."""
    assert FeeKind.from_loai("1") is FeeKind.PHI and FeeKind.from_loai(" 2 ") is FeeKind.LEPHI
    with pytest.raises(ReceiptInvalid):
        FeeKind.from_loai("Phi")


def test_a_receipt_holds_one_kind_and_at_least_one_line() -> None:
    with pytest.raises(ReceiptInvalid):
        _request(FeeLine(FeeKind.LEPHI, "Lệ phí", 1))
    with pytest.raises(ReceiptInvalid):
        ReceiptRequest(fkey_for(DOSSIER, FeeKind.PHI), FeeKind.PHI, DOSSIER, "1", PAYER, ())
    with pytest.raises(ReceiptInvalid):
        Payer("Tên\x00")


# ── xmlInvData (§6) ───────────────────────────────────────────────────────────────────────

SPEC_EXAMPLE = """
<Invoices><Inv><key>H99.01-250101-0001-PHI-1</key><Invoice>
  <CusCode>H99.01-250101-0001</CusCode><Extra1>H99.01-250101-0001</Extra1><ArisingDate>01/01/2025</ArisingDate>
  <CusName>Nguyễn Văn Mẫu</CusName><CusAddress>Số 1, phường Mẫu, tỉnh Mẫu</CusAddress>
  <Total>50000</Total><Amount>50000</Amount><AmountInWords>Năm mươi nghìn đồng</AmountInWords>
  <VATAmount>0</VATAmount><VATRate>0</VATRate><PaymentMethod>TTO</PaymentMethod><PaymentStatus>1</PaymentStatus>
  <Extra>Phí thẩm định hồ sơ mẫu</Extra>
  <Products><Product><Code>9.999999</Code><ProdName>Phí thẩm định hồ sơ mẫu</ProdName><ProdUnit>Lần</ProdUnit>
    <ProdQuantity>1</ProdQuantity><ProdPrice>50000</ProdPrice><Total>50000</Total><Amount>50000</Amount>
    <Extra2>0</Extra2></Product></Products>
</Invoice></Inv></Invoices>"""


def _canonical(xml: str) -> bytes:
    root = ET.fromstring(xml)
    for el in root.iter():
        el.text = (el.text or "").strip() or None
        el.tail = None
    return ET.tostring(root)


def test_inv_data_reproduces_the_spec_example() -> None:
    """§6.6's synthetic example, element for element and in the same order."""
    xml = inv_data(_request(), issued_on=date(2025, 1, 1), method_text="TTO")
    assert _canonical(xml) == _canonical(SPEC_EXAMPLE)
    assert not xml.startswith("<?xml")


def test_inv_data_escapes_markup_in_names_and_keeps_tax_code_only_when_known() -> None:
    """§6.5: '&', '<', '>' stay data; CusTaxCode/Email only when known; charge lines carry Extra2 1."""
    payer = Payer("Công ty A & B <TNHH>", "Số 1 > 0", tax_code="0101234567")
    req = _request(FeeLine(FeeKind.LEPHI, "Lệ phí & phí", 1000), FeeLine(FeeKind.LEPHI, "Lệ phí 2", 500),
                   kind=FeeKind.LEPHI, payer=payer)
    root = ET.fromstring(inv_data(req, issued_on=date(2025, 12, 31), method_text="Trực tuyến"))
    invoice = root.find("Inv/Invoice")
    assert invoice is not None
    assert invoice.findtext("CusName") == "Công ty A & B <TNHH>" and invoice.findtext("CusAddress") == "Số 1 > 0"
    assert invoice.findtext("CusTaxCode") == "0101234567" and invoice.find("Email") is None
    assert invoice.findtext("Amount") == "1500" and invoice.findtext("Total") == "1500"
    assert invoice.findtext("AmountInWords") == "Một nghìn năm trăm đồng"
    assert invoice.findtext("ArisingDate") == "31/12/2025" and invoice.findtext("PaymentMethod") == "Trực tuyến"
    assert invoice.findtext("Extra") == "Lệ phí & phí; Lệ phí 2"
    products = invoice.findall("Products/Product")
    assert [(p.findtext("ProdName"), p.findtext("Amount"), p.findtext("Extra2")) for p in products] == [
        ("Lệ phí & phí", "1000", "1"), ("Lệ phí 2", "500", "1")]
    assert ET.fromstring(inv_data(_request(), issued_on=date(2025, 1, 1), method_text="TTO")).find(
        "Inv/Invoice/CusTaxCode") is None


def test_long_texts_are_cut_to_the_vendor_limits() -> None:
    """G1's limits (CusName 200, CusAddress 300, ProdName 200) and TH's Extra cut (450 + "...")."""
    long_name = "Phí " + "ă" * 600
    payer = Payer("N" * 250, "Đ" * 350)
    root = ET.fromstring(inv_data(_request(FeeLine(FeeKind.PHI, long_name, 1), payer=payer),
                                  issued_on=date(2025, 1, 1), method_text="TTO"))
    assert len(root.findtext("Inv/Invoice/CusName") or "") == 200
    assert len(root.findtext("Inv/Invoice/CusAddress") or "") == 300
    assert (root.findtext("Inv/Invoice/Products/Product/ProdName") or "").endswith("...")
    extra = root.findtext("Inv/Invoice/Extra") or ""
    assert len(extra) == 453 and extra.endswith("...")


@pytest.mark.parametrize(("amount", "words"), [
    (1, "Một đồng"), (5, "Năm đồng"), (10, "Mười đồng"), (15, "Mười lăm đồng"), (21, "Hai mươi mốt đồng"),
    (25, "Hai mươi lăm đồng"), (105, "Một trăm linh năm đồng"), (1000, "Một nghìn đồng"),
    (50000, "Năm mươi nghìn đồng"), (250500, "Hai trăm năm mươi nghìn năm trăm đồng"),
    (1005000, "Một triệu không trăm linh năm nghìn đồng"), (2000000000, "Hai tỷ đồng"),
    (1000000000000, "Một nghìn tỷ đồng"),
])
def test_amount_in_words(amount: int, words: str) -> None:
    """AmountInWords: Vietnamese reading of VND (G1 example: 50000 → Năm mươi nghìn đồng)."""
    assert amount_in_words(amount) == words


# ── results (§7) ──────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("result", "fkey", "pattern", "serial", "number"), [
    ("OK:01GTKT3/001;AA/12E-key1_1,key2_2", "key1", "01GTKT3/001", "AA/12E", "1"),  # G1's example
    ("OK:01BLP0/001;BL/25E-H99.01-250101-0001-PHI-1_0000002", "H99.01-250101-0001-PHI-1", "01BLP0/001",
     "BL/25E", "0000002"),  # zero-padded, and a key full of '-'
    ("OK:01-BLP/001;BL-25E-K-1_7;CC/25E-K-2_8", "K-1", "01-BLP/001", "BL-25E", "7"),  # '-' in pattern and serial
    ("OK:01BLP0/001;AA/12E-x_1;CC/25E-K-2_8", "K-2", "01BLP0/001", "CC/25E", "8"),  # second serial group
])
def test_ok_results_parse_anchored_on_the_known_key(result: str, fkey: str, pattern: str, serial: str,
                                                     number: str) -> None:
    """§7.1: pattern before the first ';', serial between the ';' and '-<key>_', the number as sent."""
    outcome = parse_issue(result, fkey)
    assert outcome.verdict is Verdict.OK and outcome.receipt is not None
    assert (outcome.receipt.fkey, outcome.receipt.pattern, outcome.receipt.serial, outcome.receipt.number) == (
        fkey, pattern, serial, number)


@pytest.mark.parametrize("result", ["OK:01BLP0/001;BL/25E-other_1", "OK:", "OK:01BLP0/001", "", "   ",
                                    "Success", "OK:01BLP0/001;BL/25E-K-1_x", None])
def test_an_answer_without_our_key_is_an_unknown_outcome(result: str | None) -> None:
    """§7.1 rule 4: OK: without our key (or no recognisable answer) is UNKNOWN: transient, recover first."""
    outcome = parse_issue(result, "K-1")
    assert outcome.verdict is Verdict.TRANSIENT and outcome.category is Category.UNKNOWN_OUTCOME


# The spec's §7.2 tables and §7.3 classes, written out here on purpose (not read from codes.py).
_P, _T, _D = Verdict.PERMANENT, Verdict.TRANSIENT, Verdict.DONE
SPEC_TABLES = {
    codes.ISSUE: {"1": _P, "3": _P, "5": _T, "6": _P, "7": _P, "10": _P, "13": _D, "20": _P, "21": _T, "29": _P,
                  "30": _P},
    codes.UNCONFIRM: {"1": _P, "2": _P, "6": _P, "7": _P},
    codes.CANCEL: {"1": _P, "2": _P, "8": _D, "9": _P},
    codes.VIEW: {"1": _P, "4": _P, "6": _P, "7": _P, "11": _P, "12": _T, "13": _T},
    codes.DOWNLOAD: {"1": _P, "2": _P, "4": _P, "6": _P, "7": _P, "11": _P, "12": _T, "13": _T},
}
SPEC_CODES = [(op, code, verdict) for op, table in SPEC_TABLES.items() for code, verdict in table.items()]


def test_the_tables_list_exactly_the_spec_codes() -> None:
    """Every code of §7.2 is in the adapter's tables, and no other."""
    assert {op: set(t) for op, t in codes.TABLES.items()} == {op: set(t) for op, t in SPEC_TABLES.items()}


@pytest.mark.parametrize(("operation", "code", "verdict"), SPEC_CODES)
def test_every_listed_code_maps_to_its_outcome(operation: str, code: str, verdict: Verdict) -> None:
    """ERR:n → the §7.3 class (DONE for a duplicate fkey and an already-cancelled receipt), carrying
    the code and the spec's meaning."""
    outcome = parse_error(operation, f"ERR:{code}")
    assert outcome is not None
    assert (outcome.operation, outcome.verdict, outcome.code) == (operation, verdict, code)
    assert outcome.meaning == codes.TABLES[operation][code].meaning and outcome.meaning


def test_meanings_follow_the_spec_text() -> None:
    """A few meanings verbatim from §7.2 (the same code means different things per operation)."""
    assert parse_error(codes.ISSUE, "ERR:13").meaning == "Duplicate fkey"  # type: ignore[union-attr]
    assert parse_error(codes.CANCEL, "ERR:8").meaning == "Already replaced or already cancelled"  # type: ignore[union-attr]
    assert parse_error(codes.VIEW, "ERR:13").category is Category.PENDING_TAX_AUTHORITY  # type: ignore[union-attr]
    assert parse_error(codes.ISSUE, "ERR:6").category is Category.CAPACITY  # type: ignore[union-attr]


def test_error_text_after_the_code_is_kept_and_unlisted_codes_are_permanent() -> None:
    """'ERR:3 text' keeps the text aside; a bare ERR:, ERR:8.1 or an unknown code is PERMANENT/unlisted."""
    outcome = parse_error(codes.ISSUE, "  ERR:3 Dữ liệu xml đầu vào không đúng quy định")
    assert outcome is not None and outcome.code == "3" and outcome.vendor_text.startswith("Dữ liệu")
    for text, code in (("ERR:", ""), ("ERR:8.1", "8.1"), ("ERR:99", "99")):
        unlisted = parse_error(codes.CANCEL, text)
        assert unlisted is not None and unlisted.code == code
        assert (unlisted.verdict, unlisted.category) == (Verdict.PERMANENT, Category.UNLISTED)
    assert parse_error(codes.ISSUE, "OK:x") is None


def test_only_a_leading_err_is_an_error() -> None:
    """§5.3 [POLICY]: HTML that contains 'ERR:' somewhere is a receipt page, not an error."""
    assert is_error(" \nERR:6") and not is_error("<html><p>ERR:6</p></html>")
    assert parse_error(codes.VIEW, "<html>ERR:6</html>") is None


def test_cancel_and_unconfirm_results() -> None:
    """OK:… is success (anything after OK: ignored); ERR:8 on cancelInv is DONE."""
    assert parse_ok(codes.UNCONFIRM, "OK:").verdict is Verdict.OK
    assert parse_ok(codes.UNCONFIRM, "OK:key1").verdict is Verdict.OK
    assert parse_ok(codes.CANCEL, "ERR:8").verdict is Verdict.DONE
    assert parse_ok(codes.CANCEL, None).category is Category.UNKNOWN_OUTCOME


# ── the DTD guard ─────────────────────────────────────────────────────────────────────────

_ENV = b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/></soap:Envelope>'


@pytest.mark.parametrize("body", [
    b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + _ENV,
    b'<?xml version="1.0"?>\n<!-- note -->\n<?pi x?>  <!DOCTYPE x SYSTEM "http://evil.example/x.dtd">' + _ENV,
    b"\xef\xbb\xbf<?xml version='1.0'?><!DOCTYPE x>" + _ENV,
    ('<?xml version="1.0" encoding="utf-16"?><!DOCTYPE x [<!ENTITY a "b">]>' + _ENV.decode()).encode("utf-16"),
    b"<!-- unterminated comment <!DOCTYPE x>",
])
def test_a_prolog_with_a_document_type_is_refused(body: bytes) -> None:
    """Whatever comes first (declaration, comments, PIs, BOM, UTF-16), a DTD in the prolog is refused."""
    with pytest.raises(ReceiptUnsafeReply):
        refuse_doctype(body)


@pytest.mark.parametrize("body", [
    _ENV,
    b'<?xml version="1.0"?><soap:Envelope xmlns:soap="x"><soap:Body><r>&lt;!DOCTYPE html&gt;&lt;html/&gt;</r>'
    b"</soap:Body></soap:Envelope>",
    b'<soap:Envelope xmlns:soap="x"><soap:Body><r><![CDATA[<!DOCTYPE html><html/>]]></r></soap:Body></soap:Envelope>',
    b"Internal Server Error",
])
def test_document_types_inside_the_body_are_data(body: bytes) -> None:
    """A receipt view starting with <!DOCTYPE html> arrives escaped (or as CDATA): not a declaration."""
    refuse_doctype(body)
