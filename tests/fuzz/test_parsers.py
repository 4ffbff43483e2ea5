"""Hypothesis property tests of the envelope parsers at the gateway's edges (issue 17): the national
portal's JSON replies, the payment platform's messages and CONFIRM callbacks, VNPT's SOAP replies
(through zeep, over a real socket) and PDF / image inputs of signing and e-certification.

Two kinds of property: a parser with an inverse gives back what was built (round trips), and
garbage in gives a value or a typed error from the project's tree (core.errors and each adapter's
errors module), never a foreign exception (ValueError, KeyError, lxml or pyHanko errors ...), which
the retry machinery and the HTTP edge would take for a bug. Derandomized, example counts kept
small: the whole tests/fuzz run stays under 3 minutes on two CPUs.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from PIL import Image

from adapters.national_portal import envelope as portal
from adapters.payment_platform import envelope as payment
from adapters.payment_platform.errors import PaymentError
from adapters.vnpt_receipts import envelope as vnpt
from adapters.vnpt_receipts.codes import ISSUE, Verdict
from adapters.vnpt_receipts.errors import ReceiptError, ReceiptUnsafeReply
from adapters.vnpt_receipts.transport import SoapServices
from config.schema import ReceiptsSettings
from core.errors import GatewayError, PortalAuthFailed, PortalUnavailable, ValidationError
from gateway import dossier, openapi
from gateway.signing_routes import check_pdf
from signing.certification import stamp
from signing.certification.errors import CertificationError
from signing.certification.service import parse_metadata
from signing.engine import _JobFailed as JobFailed
from signing.engine import open_writer
from signing.errors import SigningError
from signing.options import options_from_query, parse_options
from tests.fakes.pdfs import one_page_pdf
from tests.fakes.vnpt import ADMIN, SERVICE
from tests.samples import sample_dossier, sample_progress

DOSSIER_SCHEMA = {**openapi.document()["components"]["schemas"]["Dossier"], "$defs": openapi.document()[
    "components"]["schemas"]}
FAST = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

#: module-scoped fixture (one server, one zeep client) reused across examples, on purpose
SOAP = settings(SLOW, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=10), inner, max_size=4), max_leaves=12)
json_objects = st.dictionaries(st.text(max_size=12), json_values, max_size=6)
#: replies that look like the portal's, so the properties see the interesting branches
portal_replies = st.fixed_dictionaries({}, optional={
    "error_code": st.sampled_from([0, "0", "00", " 0 ", "3", "-3", 1, "x", None, True, 1.5]),
    "message": st.sampled_from(["", "Hồ sơ đã tồn tại", "Hồ sơ 123 không tồn tại", "Phiên hết hạn", "ok"])
    | st.text(max_size=40) | st.integers(),
    "session": st.text(max_size=20) | st.none() | st.integers(),
    "result": st.lists(json_values, max_size=3) | json_scalars,
})
raw_bytes = st.binary(max_size=300)


# ---------------------------------------------------------------- national portal (JSON)


@FAST
@given(json_objects, st.booleans())
def test_portal_json_object_round_trips(obj: dict[str, Any], bom: bool) -> None:
    """Any JSON object the portal sends, with or without a UTF-8 BOM, decodes to itself."""
    body = (b"\xef\xbb\xbf" if bom else b"") + orjson.dumps(obj)
    assert portal.decode_json_object(body, what="t") == obj


@FAST
@given(raw_bytes | json_values.map(orjson.dumps))
@example(b"")
@example(b"<html>502 Bad Gateway</html>")
@example(b"[1, 2]")
@example(b"\xef\xbb\xbf")
def test_portal_garbage_is_portal_unavailable(body: bytes) -> None:
    """A body that is not one JSON object is PortalUnavailable (retry), nothing else."""
    try:
        out = portal.decode_json_object(body, what="t")
    except PortalUnavailable:
        return
    assert isinstance(out, dict)


@FAST
@given(portal_replies | json_objects)
def test_portal_reply_classification_is_total(reply: dict[str, Any]) -> None:
    """Every decoded reply gets a verdict, rows and a login outcome: a session or PortalAuthFailed."""
    assert isinstance(portal.verdict(reply), portal.Verdict)
    assert all(isinstance(row, dict) for row in portal.result_rows(reply))
    assert isinstance(portal.has_result(reply), bool)
    try:
        session = portal.session_from_login(reply)
    except PortalAuthFailed:
        return
    assert isinstance(session, str) and session


@FAST
@given(st.text(max_size=40) | st.none() | st.integers(0, 10**12).map(str))
@example("²")
@example("١٢")
@example("9" * 400)
@example("1" * 5000)
@example("Wed, 21 Oct 2015 07:28:00")
def test_retry_after_is_seconds_or_none(value: str | None) -> None:
    """Retry-After from the portal or the provincial system: a number of seconds from now, or None."""
    out = portal.parse_retry_after(value, now=1_700_000_000.0)
    assert out is None or (isinstance(out, float) and 0.0 <= out < float("inf"))


# ---------------------------------------------------------------- payment platform

PARTY = payment.Party("DOITAC-H55", "test-secret")
confirm_fields = st.fixed_dictionaries({
    "ref": st.text(min_size=1, max_size=40), "amount": st.integers(1, 10**12),
    "ma_loi": st.sampled_from(["00", "99", "01"]) | st.text(max_size=3),
    "ma_giao_dich": st.text(max_size=20), "ma_ngan_hang": st.text(max_size=10),
    "thoi_gian": st.text(alphabet="0123456789", min_size=14, max_size=14), "thong_tin": st.text(max_size=60)})


@FAST
@given(confirm_fields)
def test_confirm_round_trips_through_json_and_its_checksum(fields: dict[str, Any]) -> None:
    """A CONFIRM built as the platform would, sent as JSON, parses to the same fields and its
    MaXacThuc verifies; the acknowledgement echoes the reference and the checksum."""
    msg = orjson.loads(orjson.dumps(payment.confirm_message(PARTY, **fields)))
    parsed = payment.parse_confirm(msg)
    assert isinstance(parsed, payment.Confirm)
    assert parsed.amount == fields["amount"] and parsed["MaThamChieu"] == fields["ref"]
    assert parsed["ThongTinGiaoDich"] == fields["thong_tin"] and parsed.paid == (fields["ma_loi"] == "00")
    assert payment.verify(msg, payment.CONFIRM_ORDER, PARTY.secret)
    ack = payment.confirm_ack(msg, PARTY.partner_code, ok=True)
    assert (ack["MaThamChieu"], ack["MaXacThuc"]) == (fields["ref"], msg["MaXacThuc"])


@FAST
@given(confirm_fields, st.sampled_from(payment.CONFIRM_ORDER), st.text(min_size=1, max_size=5))
def test_a_changed_confirm_field_fails_the_checksum(fields: dict[str, Any], name: str, extra: str) -> None:
    """Changing any field that enters MaXacThuc (here: appending to it) makes verify() false."""
    msg = payment.confirm_message(PARTY, **fields)
    msg[name] = str(msg[name]) + extra
    assert not payment.verify(msg, payment.CONFIRM_ORDER, PARTY.secret)


@FAST
@given(json_values | json_objects | st.dictionaries(st.sampled_from([*payment.CONFIRM_ORDER, "MaXacThuc"]),
                                                    json_values, max_size=11))
def test_confirm_garbage_is_refused_in_band(body: Any) -> None:
    """Any JSON body at the callback: a Confirm or the reason it is not one, a verify() verdict
    and an acknowledgement of strings, never an exception."""
    parsed = payment.parse_confirm(body)
    assert isinstance(parsed, payment.Confirm | str)
    if isinstance(body, dict):
        assert isinstance(payment.verify(body, payment.CONFIRM_ORDER, PARTY.secret), bool)
    assert all(isinstance(v, str) for v in payment.confirm_ack(body, PARTY.partner_code, ok=False).values())


@FAST
@given(raw_bytes | json_objects.map(orjson.dumps) | st.builds(
    lambda code, msg: orjson.dumps({"error_code": code, "message": msg}),
    st.sampled_from([0, "0", 1, None]), json_values | json_objects.map(lambda o: orjson.dumps(o).decode())))
@example(orjson.dumps({"error_code": "0", "message": '{"UrlThanhToan": "https://pay.example/1"}'}))
def test_payment_replies_parse_or_raise_payment_errors(body: bytes) -> None:
    """INIT, QUERY and GET_BILL replies: a value or a PaymentError, never a foreign exception."""
    for parse in (payment.parse_init_reply, payment.parse_query_reply, payment.check_pdf):
        try:
            parse(body)
        except PaymentError:
            pass


# ---------------------------------------------------------------- VNPT e-receipts (SOAP, zeep)

xml_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\x00", codec="utf-8")
                   .filter(lambda c: c in "\t\n" or (ord(c) >= 0x20 and c not in "\ufffe\uffff")), max_size=80)


@FAST
@given(st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]) | st.sampled_from("/-."),
               min_size=1, max_size=12).filter(lambda t: ";" not in t),
       st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]) | st.sampled_from("/."), min_size=1,
               max_size=10),
       st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=20),
       st.integers(0, 10**9).map(str))
def test_issue_reply_round_trips(pattern: str, serial: str, fkey: str, number: str) -> None:
    """``OK:<pattern>;<serial>-<fkey>_<number>`` gives back the receipt's pattern, serial and number."""
    out = vnpt.parse_issue(f"OK:{pattern};{serial}-{fkey}_{number}", fkey)
    assert out.verdict is Verdict.OK and out.receipt == vnpt.Receipt(fkey, pattern, serial, number)


@FAST
@given(st.text(max_size=60) | st.none(), st.text(max_size=10))
@example("ERR:", "k")
@example("ERR:99999999999999999999", "k")
@example("OK:;-k_", "k")
def test_vnpt_result_strings_always_give_an_outcome(result: str | None, fkey: str) -> None:
    """Any result string is an Outcome (OK, DONE, TRANSIENT or PERMANENT), never an exception."""
    for out in (vnpt.parse_issue(result, fkey), vnpt.parse_ok("cancelInv", result)):
        assert isinstance(out, vnpt.Outcome)


@FAST
@given(raw_bytes)
@example(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>')
@example(b"\xef\xbb\xbf<!-- c --><!DOCTYPE x><x/>")
@example(b"\xff\xfe<\x00!\x00")
def test_refuse_doctype_raises_only_its_own_error(body: bytes) -> None:
    """The first XML defence reads any bytes: None, or ReceiptUnsafeReply."""
    try:
        vnpt.refuse_doctype(body)
    except ReceiptUnsafeReply:
        pass


class _Canned(BaseHTTPRequestHandler):
    """Answers every POST with the server's ``reply`` bytes as a SOAP 1.1 reply."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body: bytes = self.server.reply  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def soap() -> Iterator[tuple[ThreadingHTTPServer, asyncio.AbstractEventLoop, SoapServices]]:
    """The real adapter (zeep, requests, the bundled WSDLs) bound to a server on 127.0.0.1 that
    answers whatever bytes the test sets."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    server.reply = b""  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    loop = asyncio.new_event_loop()
    settings_ = ReceiptsSettings(enabled=True, base_url=f"http://127.0.0.1:{server.server_address[1]}",
                                 account=ADMIN[0], acpass=ADMIN[1], username=SERVICE[0], password=SERVICE[1],
                                 timeout=5.0, wsdl_timeout=5.0, max_concurrency=1)
    services = loop.run_until_complete(SoapServices.open(settings_))
    try:
        yield server, loop, services
    finally:
        loop.run_until_complete(services.aclose())
        loop.close()
        server.shutdown()
        server.server_close()


def _soap_reply(result_xml: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/'
            'envelope/"><soap:Body><ImportAndPublishInvResponse xmlns="http://tempuri.org/">'
            f"{result_xml}</ImportAndPublishInvResponse></soap:Body></soap:Envelope>").encode()


_FIELDS = {"Account": "a", "ACpass": "b", "xmlInvData": "<Invoices/>", "username": "u", "password": "p",
           "pattern": "", "serial": "", "convert": 0}


def _call(soap: Any, reply: bytes) -> str | None:
    server, loop, services = soap
    server.reply = reply
    return loop.run_until_complete(services.call(ISSUE, _FIELDS))  # type: ignore[no-any-return]


@SOAP
@given(xml_text)
@example("OK:01BLP0/001;BL/25E-k_1")
@example("ERR:13 <trùng> & 'fkey'")
def test_soap_result_round_trips_through_zeep(soap: Any, text: str) -> None:
    """The ``…Result`` string of a SOAP reply comes out of zeep exactly as VNPT wrote it (escaped)."""
    got = _call(soap, _soap_reply(f"<ImportAndPublishInvResult>{escape(text)}</ImportAndPublishInvResult>"))
    assert got == text or (got is None and text == "")


@SOAP
@given(raw_bytes | xml_text.map(lambda t: _soap_reply(t)) | st.sampled_from([
    _soap_reply("<ImportAndPublishInvResult><x/></ImportAndPublishInvResult>"),
    _soap_reply(""), b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>',
    b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>'
    b"<faultcode>soap:Server</faultcode><faultstring>boom</faultstring></soap:Fault></soap:Body></soap:Envelope>"]))
def test_soap_garbage_is_a_receipt_error(soap: Any, body: bytes) -> None:
    """Whatever bytes answer a SOAP call: a string (or None) or a ReceiptError, never an lxml or
    zeep exception."""
    try:
        got = _call(soap, body)
    except ReceiptError:
        return
    assert got is None or isinstance(got, str)


# ---------------------------------------------------------------- PDF and image inputs


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 200, 200)).save(out, "PNG")
    return out.getvalue()


PDF = one_page_pdf()
pdf_mutations = st.one_of(
    st.integers(0, len(PDF)).map(lambda n: PDF[:n]),  # truncated
    st.tuples(st.integers(0, len(PDF) - 1), st.binary(min_size=1, max_size=8)).map(
        lambda t: PDF[:t[0]] + t[1] + PDF[t[0] + len(t[1]):]),  # overwritten
    raw_bytes.map(lambda b: b"%PDF-1.7\n" + b),
    raw_bytes,
)


@SLOW
@given(pdf_mutations)
@example(b"%PDF-1.7\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>")
@example(b"%PDF-1.7\n1 0 obj<</Type/Catalog/Pages 1 0 R>>endobj\ntrailer<</Root 1 0 R>>")
def test_pdf_inputs_give_a_value_or_a_typed_error(data: bytes) -> None:
    """The upload checks of signing and e-certification read any bytes: a value, or BadPdf /
    BadDocument (the project's tree), never a pyHanko or Python exception."""
    try:
        check_pdf(data)
    except SigningError:
        pass
    for read in (stamp.page_count, stamp.inspect):
        try:
            read(data)
        except CertificationError:
            pass


@SLOW
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=3))
def test_images_round_trip_to_one_page_each(sizes: list[tuple[int, int]]) -> None:
    """JPEG/PNG scans become a PDF with one page per image, in order."""
    assert stamp.page_count(stamp.images_to_pdf([_png(w, h) for w, h in sizes])) == len(sizes)


def _jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(out, "JPEG")
    return out.getvalue()


IMAGES = (_png(50, 50), _jpeg(50, 50))
truncated_images = st.tuples(st.sampled_from(IMAGES), st.integers(8, 700)).map(lambda t: t[0][:t[1]])


@SLOW
@given(st.lists(raw_bytes | truncated_images | st.sampled_from([PDF, b"GIF89a\x01\x00\x01\x00"]), min_size=0,
                max_size=3))
@example([_png(50, 50)[:60]])
@example([_jpeg(50, 50)[:-20]])
def test_image_garbage_is_bad_document(parts: list[bytes]) -> None:
    """Parts that are not JPEG/PNG images, or are cut short, are BadDocument naming the part, never
    a Pillow error (a truncated PNG or JPEG raised OSError from save(), outside the check)."""
    try:
        stamp.images_to_pdf(parts)
    except CertificationError:
        pass


def test_an_image_bomb_is_bad_document() -> None:
    """A PNG whose header claims 40,000 × 40,000 pixels (Pillow's decompression-bomb limit) is
    BadDocument, not Pillow's DecompressionBombError."""
    small = _png(1, 1)
    ihdr = small.index(b"IHDR")
    import struct
    import zlib

    head = b"IHDR" + struct.pack(">II", 40_000, 40_000) + small[ihdr + 12:ihdr + 17]
    bomb = small[:ihdr] + head + struct.pack(">I", zlib.crc32(head)) + small[ihdr + 21:]
    with pytest.raises(CertificationError):
        stamp.images_to_pdf([bomb])


def test_every_typed_error_is_in_the_tree() -> None:
    """The error classes these properties accept all sit under GatewayError."""
    for cls in (PortalUnavailable, PortalAuthFailed, PaymentError, ReceiptError, SigningError, CertificationError):
        assert issubclass(cls, GatewayError)



# ---------------------------------------------------------------- agency input at the edge


def _mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with up to three top-level fields set to any JSON value or removed."""
    keys = st.sampled_from(sorted(base)) | st.text(max_size=8)
    near_valid = st.sampled_from(["", None, " ", "0", "1", "2", "20240315093000", "2024-03-15", "a" * 300])
    change = st.tuples(keys, near_valid | st.text(max_size=12) | json_values | st.just(REMOVE))
    return st.lists(change, max_size=3).map(lambda changes: _apply(base, changes))


REMOVE = object()


def _apply(base: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes:
        if value is REMOVE:
            out.pop(key, None)
        else:
            out[key] = value
    return out


M = "000.00.01.H55-240315-00012"


@FAST
@given(_mutated(sample_dossier(M)) | json_values)
def test_an_accepted_snapshot_is_valid_by_the_published_schema(body: Any) -> None:
    """The dossier validator takes a body or raises ValidationError, nothing else; and what it takes,
    the served document's Dossier schema takes too (no accepted request the schema calls invalid)."""
    try:
        dossier.validate_snapshot(M, body)
    except ValidationError:
        return
    Draft202012Validator(DOSSIER_SCHEMA).validate(body)


@SLOW
@given(st.lists(_mutated(sample_progress(M, 1)[0]), min_size=1, max_size=3) | json_values)
def test_progress_is_taken_or_refused_with_a_validation_error(body: Any) -> None:
    try:
        dossier.validate_progress(M, body)
    except ValidationError:
        return


@FAST
@given(json_values | st.dictionaries(st.sampled_from(["key", "level", "certify", "reason", "location", "field",
                                                      "page", "box", "x"]), json_values, max_size=5))
def test_signing_options_are_taken_or_refused_with_a_validation_error(raw: Any) -> None:
    """The signing options (JSON part or ?options=) and query options: SignOptions or a typed error."""
    for parse in (parse_options, lambda r: options_from_query({str(k): str(v) for k, v in r.items()})
                  if isinstance(r, dict) else parse_options(r)):
        try:
            parse(raw)
        except (ValidationError, SigningError):
            pass


@FAST
@given(json_values | _mutated({"authority_code": "000.00.99.H55", "certifier_name": "Nguyễn Thử",
                                "certifier_title": "Công chức", "requester_name": "Trần Thử",
                                "requester_id_no": "079199000001", "document_name": "Giấy khai sinh",
                                "paper_copies": 1, "stamp_position": {"x": 10, "y": 10}}))
def test_certification_metadata_is_taken_or_refused_with_a_validation_error(raw: Any) -> None:
    try:
        parse_metadata(raw)
    except ValidationError:
        pass


@SLOW
@given(pdf_mutations)
def test_the_signing_worker_opens_a_pdf_or_refuses_it_as_invalid(data: bytes) -> None:
    """pyHanko's reader behind the signing worker: a writer, or the worker's invalid_pdf failure
    (which the service turns into BadPdf), never a pyHanko or Python exception."""
    try:
        open_writer(data)
    except JobFailed as exc:
        assert exc.code == "invalid_pdf"
