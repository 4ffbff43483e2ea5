"""Pure build and parse for VNPT e-receipts (spec ``e-receipts.md`` §6, §7). No I/O here.

* :func:`inv_data` builds ``xmlInvData`` (one ``<Inv>`` per call [POLICY §6.1]) with an XML
  serializer, never by concatenation, so ``&``, ``<`` and ``>`` in names stay data (§6.5).
* :func:`parse_issue`, :func:`parse_ok` and :func:`parse_error` turn VNPT's result strings into
  typed :class:`Outcome` values: OK (with pattern, serial, number), DONE (already done: ERR:13 on
  issue), TRANSIENT (retry) or PERMANENT (dead-letter, with the code and its meaning).
* :func:`refuse_doctype` is the first XML defence: a reply whose prolog declares a DTD is refused
  before any parser sees it (zeep's own ``forbid_dtd``/``forbid_entities`` are the second).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from xml.etree import ElementTree as ET

from adapters.vnpt_receipts import codes
from adapters.vnpt_receipts.codes import Category, Verdict
from adapters.vnpt_receipts.errors import ReceiptInvalid, ReceiptUnsafeReply
from adapters.vnpt_receipts.model import ReceiptRequest

# G1's lengths (characters); longer texts are cut with "..." (TH cuts Extra above 500 to 450 + "...")
CUS_NAME_MAX = 200
CUS_ADDRESS_MAX = 300
PROD_NAME_MAX = 200
PAYMENT_METHOD_MAX = 150
EXTRA_MAX, EXTRA_CUT = 500, 450
PROD_UNIT = "Lần"  # "time": one service rendered (TH)


# ── outcomes ───────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Receipt:
    """An issued receipt: the fkey and what VNPT assigned (``number`` exactly as returned)."""

    fkey: str
    pattern: str
    serial: str
    number: str


@dataclass(frozen=True)
class Outcome:
    """What one VNPT answer means. ``code`` is the text after ``ERR:`` ("" for OK, or a bare ``ERR:``),
    ``meaning`` the spec's text for it, ``vendor_text`` whatever VNPT wrote after the code (may quote
    data: store it with the dead letter, do not log it)."""

    operation: str
    verdict: Verdict
    category: Category | None = None
    code: str = ""
    meaning: str = ""
    vendor_text: str = ""
    receipt: Receipt | None = None


_ERR = re.compile(r"ERR:(\d+(?:\.\d+)?)?")


def is_error(result: str) -> bool:
    """A result is an error only when it starts with ``ERR:`` after leading white space [POLICY §5.3]."""
    return result.lstrip().startswith("ERR:")


def parse_error(operation: str, result: str) -> Outcome | None:
    """The outcome of an ``ERR:n`` result (None when ``result`` is not one)."""
    text = result.strip()
    m = _ERR.match(text)
    if m is None:
        return None
    code = m.group(1) or ""
    found = codes.lookup(operation, code)
    return Outcome(operation, found.category.verdict, found.category, code, found.meaning, text[m.end():].strip())


def unknown(operation: str, why: str) -> Outcome:
    """An answer that says neither OK nor ERR in the expected form: the outcome is not known."""
    return Outcome(operation, Verdict.TRANSIENT, Category.UNKNOWN_OUTCOME, meaning=why)


def parse_ok(operation: str, result: str | None) -> Outcome:
    """``UnConfirmPaymentFkey`` and ``cancelInv``: ``OK:…`` is success (anything after ``OK:`` is
    ignored [UNCERTAIN §7.1]), ``ERR:n`` per the table, anything else an unknown outcome."""
    if result is None:
        return unknown(operation, "empty result")
    err = parse_error(operation, result)
    if err is not None:
        return err
    if result.strip().startswith("OK:"):
        return Outcome(operation, Verdict.OK)
    return unknown(operation, "the result is neither OK: nor ERR:")


def parse_issue(result: str | None, fkey: str) -> Outcome:
    """``ImportAndPublishInv``'s result for the receipt ``fkey`` (spec §7.1 parsing rules).

    ``OK:<pattern>;<serial>-<key>_<number>[,…][;<serial2>-…]``: the pattern is the text before the
    first ``;``; the serial is the text between the ``;`` before ``-<fkey>_`` and that ``-`` (keys,
    patterns and serials may contain ``-`` or ``/``, so the parse anchors on the known key); the
    number is the digits after ``_``, kept as sent (``1`` or ``0000001``). An ``OK:`` that lacks our
    key is an unknown outcome (rule 4). ``ERR:13`` (duplicate fkey) is DONE."""
    if result is None:
        return unknown(codes.ISSUE, "empty result")
    err = parse_error(codes.ISSUE, result)
    if err is not None:
        return err
    text = result.strip()
    if not text.startswith("OK:"):
        return unknown(codes.ISSUE, "the result is neither OK: nor ERR:")
    receipt = _find_receipt(text[3:], fkey)
    if receipt is None:
        return unknown(codes.ISSUE, "OK: without the receipt's fkey")
    return Outcome(codes.ISSUE, Verdict.OK, receipt=receipt)


_NUMBER = re.compile(r"(\d+)(?=$|[,;])")


def _find_receipt(body: str, fkey: str) -> Receipt | None:
    first = body.find(";")
    if first <= 0:
        return None
    anchor = f"-{fkey}_"
    at = body.find(anchor, first)
    if at < 0:
        return None
    serial = body[body.rfind(";", 0, at) + 1:at]
    number = _NUMBER.match(body, at + len(anchor))
    if not serial or number is None:
        return None
    return Receipt(fkey, body[:first], serial, number.group(1))


# ── xmlInvData ─────────────────────────────────────────────────────────────────────────────


def inv_data(request: ReceiptRequest, *, issued_on: date, method_text: str) -> str:
    """``xmlInvData`` for one receipt (spec §6.2, §6.3, §6.6), without an XML declaration.

    ``issued_on`` is the issue date in Vietnam time (ArisingDate, ``dd/MM/yyyy``); ``method_text``
    what goes into PaymentMethod (the code ``TTO`` or the label ``Trực tuyến``, per tenant).
    Raises ReceiptInvalid if the total is not the sum of the lines (it is, by construction)."""
    total = request.total
    if total <= 0 or total != sum(line.amount for line in request.lines):
        raise ReceiptInvalid("lines", "Invoice/Amount must equal the sum of the line amounts and be positive")
    root = ET.Element("Invoices")
    inv = ET.SubElement(root, "Inv")
    _add(inv, "key", request.fkey)
    invoice = ET.SubElement(inv, "Invoice")
    for tag, value in _invoice_fields(request, issued_on, method_text):
        _add(invoice, tag, value)
    products = ET.SubElement(invoice, "Products")
    for line in request.lines:
        product = ET.SubElement(products, "Product")
        for tag, value in (
            ("Code", request.procedure_code), ("ProdName", _cut(line.name, PROD_NAME_MAX)),
            ("ProdUnit", PROD_UNIT), ("ProdQuantity", "1"), ("ProdPrice", str(line.amount)),
            ("Total", str(line.amount)), ("Amount", str(line.amount)), ("Extra2", line.kind.extra2),
        ):
            _add(product, tag, value)
    return ET.tostring(root, encoding="unicode", short_empty_elements=False)


def _invoice_fields(request: ReceiptRequest, issued_on: date, method_text: str) -> list[tuple[str, str]]:
    payer, total = request.payer, str(request.total)
    fields = [
        ("CusCode", request.dossier_code), ("Extra1", request.dossier_code),
        ("ArisingDate", issued_on.strftime("%d/%m/%Y")),
        ("CusName", _cut(payer.name, CUS_NAME_MAX)), ("CusAddress", _cut(payer.address, CUS_ADDRESS_MAX)),
    ]
    if payer.tax_code.strip():
        fields.append(("CusTaxCode", payer.tax_code.strip()))
    if payer.email.strip():
        fields.append(("Email", payer.email.strip()))
    fields += [
        ("Total", total), ("Amount", total), ("AmountInWords", amount_in_words(request.total)),
        ("VATAmount", "0"), ("VATRate", "0"), ("PaymentMethod", _cut(method_text, PAYMENT_METHOD_MAX)),
        ("PaymentStatus", "1"), ("Extra", _extra(request)),
    ]
    return fields


def _add(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


def _extra(request: ReceiptRequest) -> str:
    """The fee name(s) printed on the receipt; TH's cut: above 500 characters, 450 plus "..."."""
    names = list(dict.fromkeys(unicodedata.normalize("NFC", line.name).strip() for line in request.lines))
    text = "; ".join(names)
    return text if len(text) <= EXTRA_MAX else _cut(text, EXTRA_CUT + 3)


def _cut(text: str, limit: int) -> str:
    """NFC ``text`` stripped; above ``limit`` characters, ``limit − 3`` of them plus "...", never
    separating a letter from its combining marks."""
    text = unicodedata.normalize("NFC", text).strip()
    if len(text) <= limit:
        return text
    end = limit - 3
    while end > 0 and unicodedata.combining(text[end]):
        end -= 1
    return text[:end] + "..."


# ── amount in Vietnamese words ─────────────────────────────────────────────────────────────

_DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
_GROUPS = ("", "nghìn", "triệu", "tỷ", "nghìn tỷ", "triệu tỷ")


def amount_in_words(amount: int) -> str:
    """``AmountInWords``: VND in Vietnamese words, capitalised, e.g. 50000 → "Năm mươi nghìn đồng",
    1005000 → "Một triệu không trăm linh năm nghìn đồng". Amounts from 1 to 10^18 − 1."""
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount < 10**18:
        raise ReceiptInvalid("amount", "expected a positive integer below 10^18")
    groups: list[int] = []
    while amount:
        amount, rest = divmod(amount, 1000)
        groups.append(rest)
    words: list[str] = []
    for i in range(len(groups) - 1, -1, -1):
        if groups[i]:
            words.append(_three(groups[i], full=i < len(groups) - 1))
            if _GROUPS[i]:
                words.append(_GROUPS[i])
    text = " ".join(words)
    return text[0].upper() + text[1:] + " đồng"


def _three(n: int, *, full: bool) -> str:
    """0 < n < 1000 in words; ``full`` reads the hundreds even when 0 ("không trăm") as a group
    after the leading one does."""
    hundreds, tens, units = n // 100, n // 10 % 10, n % 10
    out: list[str] = []
    if full or hundreds:
        out += [_DIGITS[hundreds], "trăm"]
    if tens == 0:
        if units:
            out += (["linh"] if out else []) + [_DIGITS[units]]
    elif tens == 1:
        out.append("mười")
        if units:
            out.append("lăm" if units == 5 else _DIGITS[units])
    else:
        out += [_DIGITS[tens], "mươi"]
        if units:
            out.append({1: "mốt", 5: "lăm"}.get(units, _DIGITS[units]))
    return " ".join(out)


# ── the first XML defence ──────────────────────────────────────────────────────────────────

_PROLOG_ITEM = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
_UTF16 = {b"\xff\xfe": "utf-16", b"\xfe\xff": "utf-16", b"<\x00": "utf-16-le", b"\x00<": "utf-16-be"}


def refuse_doctype(body: bytes, *, operation: str = "") -> None:
    """Raise ReceiptUnsafeReply if ``body``'s XML prolog holds ``<!`` other than a comment: a
    document type declaration, the only place entities (XXE, billion laughs) and external DTDs can
    be declared. Only the prolog is read, so ``<!DOCTYPE html>`` escaped inside a result (a receipt
    view) is data, not a declaration."""
    encoding = _UTF16.get(body[:2])
    if encoding is not None:
        body = body.decode(encoding, errors="replace").encode("utf-8")
    pos = 3 if body.startswith(b"\xef\xbb\xbf") else 0
    while (m := _PROLOG_ITEM.match(body, pos)) is not None and m.end() > pos:
        pos = m.end()
    if body.startswith(b"<!", pos):
        raise ReceiptUnsafeReply("the reply declares a document type (DTD); refused unread", operation=operation)
