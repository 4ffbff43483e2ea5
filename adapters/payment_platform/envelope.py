"""Pure build and parse of the payment platform's messages (spec ``payment-platform.md``), and the
``MaXacThuc`` checksum (§10). No I/O.

``MaXacThuc`` is the lowercase hex SHA-256 of the UTF-8 bytes of the message's fields, in the
order of its type (§10.1), joined with ``|``, with the shared secret appended as the last element:
a keyed hash by plain concatenation, not HMAC. Values are used exactly as sent or received: never
trimmed, never re-formatted (an inbound ``ThoiGianGD`` or ``SoTien`` is hashed as it arrived).
Verification compares in constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from adapters.payment_platform.errors import BillNotReady, PaymentInvalid, PaymentRefused, PaymentUnavailable

#: §10.1, the secret always comes last
INIT_ORDER = ("LoaiBanTin", "PhienBan", "MaDoiTac", "MaThamChieu", "SoTien", "LoaiHinhThanhToan", "MaKenhThanhToan",
              "MaThietBi", "NgonNgu", "MaTienTe", "MaNganHang", "ThongTinGiaoDich", "ThoiGianGD", "Ip")
QUERY_ORDER = ("LoaiBanTin", "PhienBan", "MaDoiTac", "MaThamChieu", "ThoiGianGD")
GET_BILL_ORDER = QUERY_ORDER
#: note ThoiGianGD before ThongTinGiaoDich, the other way round from INIT
CONFIRM_ORDER = ("LoaiBanTin", "MaLoi", "MaDoiTac", "MaThamChieu", "SoTien", "MaTienTe", "MaGiaoDich", "MaNganHang",
                 "ThoiGianGD", "ThongTinGiaoDich")

#: §6.1: TH's constructor defaults, the only values seen in public code
INIT_FIXED = {"LoaiHinhThanhToan": "PAY", "MaKenhThanhToan": "1", "MaThietBi": "1", "NgonNgu": "vi-VN",
              "MaTienTe": "VND", "MaNganHang": "PAYMENT"}
PAID = "00"  # MaLoi of a paid transaction and of a processed acknowledgement (§12)
REJECTED = "99"
#: §4: the platform's clock is Asia/Ho_Chi_Minh, UTC+07:00, no daylight saving
PLATFORM_TZ = dt.timezone(dt.timedelta(hours=7))
_NON_WORD = re.compile(r"\W")


# ---------------------------------------------------------------- checksum


def checksum_input(values: Sequence[str], secret: str) -> str:
    """The string that is hashed: the values, then the secret, joined with ``|`` (§10)."""
    return "|".join([*values, secret])


def checksum(values: Sequence[str], secret: str) -> str:
    """``MaXacThuc`` of ``values`` (already in the message type's order)."""
    return hashlib.sha256(checksum_input(values, secret).encode("utf-8")).hexdigest()


def field_text(message: Mapping[str, Any], name: str) -> str:
    """A field as it enters the checksum: a string as is, an integer in plain decimal, absent = "".
    Anything else (a float, a boolean, an object) raises PaymentInvalid: no exact text exists for it."""
    value = message.get(name)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise PaymentInvalid(name, f"expected a string or an integer, got {type(value).__name__}")


def message_checksum(message: Mapping[str, Any], order: Sequence[str], secret: str) -> str:
    """``MaXacThuc`` of ``message`` for the field order ``order``."""
    return checksum([field_text(message, name) for name in order], secret)


def verify(message: Mapping[str, Any], order: Sequence[str], secret: str) -> bool:
    """Whether ``message["MaXacThuc"]`` is right, compared in constant time (lowercase to lowercase).
    A field that has no exact text (PaymentInvalid) makes the message wrong."""
    received = message.get("MaXacThuc")
    if not isinstance(received, str):
        return False
    try:
        expected = message_checksum(message, order, secret)
    except PaymentInvalid:
        return False
    return hmac.compare_digest(expected.encode("ascii"), received.lower().encode("utf-8"))


# ---------------------------------------------------------------- times and references


def timestamp(epoch: float) -> str:
    """``yyyyMMddHHmmss`` on the 24-hour clock, Asia/Ho_Chi_Minh (§4; never TH's 12-hour ``hh``)."""
    return dt.datetime.fromtimestamp(int(epoch), PLATFORM_TZ).strftime("%Y%m%d%H%M%S")


def reference(mahoso: str, thoi_gian: str) -> str:
    """``MaThamChieu`` (§5): ``"dvc"`` + the dossier code without its non-word characters + the time."""
    return "dvc" + _NON_WORD.sub("", mahoso) + thoi_gian


# ---------------------------------------------------------------- outbound messages


@dataclass(frozen=True)
class Party:
    """Who the gateway is on the platform: partner code, checksum secret, protocol version."""

    partner_code: str
    secret: str
    version: str = "1.0.6"


@dataclass(frozen=True)
class FeeLine:
    """One fee line of a payment request; ``kind`` "1" = phí (fee), "2" = lệ phí (charge); VND."""

    kind: str
    code: str
    name: str
    amount: int


@dataclass(frozen=True)
class Payer:
    """The payer as printed on the receipt (personal data: never logged)."""

    name: str
    id_number: str = ""
    address: str = ""


@dataclass(frozen=True)
class ReceiptContext:
    """What ``ThongTinBienLai`` says about the dossier's procedure and unit (§6.2); "" when unknown."""

    ma_tthc: str = ""
    ten_tthc: str = ""
    ma_don_vi: str = ""
    ten_don_vi: str = ""


@dataclass(frozen=True)
class InitRequest:
    """Everything an INIT carries that is not the gateway's own configuration."""

    reference: str
    mahoso: str
    lines: tuple[FeeLine, ...]
    payer: Payer
    context: ReceiptContext
    thoi_gian: str
    ip: str

    @property
    def amount(self) -> int:
        return sum(line.amount for line in self.lines)


def description(mahoso: str) -> str:
    """``ThongTinGiaoDich`` and ``NoiDungThanhToan`` (TH's text)."""
    return f"THANH TOAN HO SO {mahoso}"


def _service_name(ten_tthc: str) -> str:
    """``TenDVC``: TH shortens a procedure name above 250 characters to 200 and an ellipsis."""
    return ten_tthc[:200] + "..." if len(ten_tthc) > 250 else ten_tthc


def _receipt(req: InitRequest, fee_types: Mapping[str, str]) -> dict[str, Any]:
    """``ThongTinBienLai`` for a dossier fee (MaDichVu 2); every unused field is "" (§6.2, POLICY)."""
    ctx, text = req.context, description(req.mahoso)
    return {
        "MaDichVu": "2", "MaDVC": f"{ctx.ma_tthc}.01" if ctx.ma_tthc else "", "TenDVC": _service_name(ctx.ten_tthc),
        "MaTTHC": ctx.ma_tthc, "TenTTHC": _service_name(ctx.ten_tthc), "MaDonVi": ctx.ma_don_vi,
        "TenDonVi": ctx.ten_don_vi, "MaHoSo": req.mahoso, "TKThuHuong": "", "MaNHThuHuong": "", "TenTKThuHuong": "",
        "TaiKhoanThuNSNN": "", "NoiDungThanhToan": text, "HoTenNguoiNop": req.payer.name,
        "SoCMNDNguoiNop": req.payer.id_number, "DiaChiNguoiNop": req.payer.address, "HuyenNguoiNop": "",
        "TinhNguoiNop": "",
        "PhiLePhi": [{"LoaiPhiLePhi": fee_types.get(x.kind, x.kind), "MaPhiLePhi": x.code, "TenPhiLePhi": x.name,
                      "SoTien": str(x.amount)} for x in req.lines],
        "DSKhoanNop": [{"NoiDung": x.name, "SoTien": str(x.amount)} for x in req.lines],
        "MaLoaiHinhThuPhat": "", "TenLoaiHinhThuPhat": "", "MaCoQuanQD": "", "TenCoQuanQD": "", "KhoBac": "",
        "NgayQD": "", "SoQD": "", "ThoiGianViPham": "", "DiaDiemViPham": "", "TenNguoiViPham": "",
    }


def build_init(party: Party, req: InitRequest, *, fee_types: Mapping[str, str] | None = None,
               extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The INIT message (§6). ``fee_types`` maps a line's kind ("1"/"2") to the ``LoaiPhiLePhi`` sent;
    ``extra`` adds top-level fields outside the checksum (the return URL). Raises PaymentInvalid for
    an amount that is not a positive whole number of VND."""
    for i, line in enumerate(req.lines):
        if isinstance(line.amount, bool) or not isinstance(line.amount, int) or line.amount <= 0:
            raise PaymentInvalid(f"items[{i}].SoTien", "expected a positive whole number of VND", operation="INIT")
    msg: dict[str, Any] = {
        "LoaiBanTin": "INIT", "PhienBan": party.version, "MaDoiTac": party.partner_code,
        "MaThamChieu": req.reference, "SoTien": str(req.amount), **INIT_FIXED,
        "ThongTinGiaoDich": description(req.mahoso), "ThoiGianGD": req.thoi_gian, "Ip": req.ip,
    }
    msg["MaXacThuc"] = message_checksum(msg, INIT_ORDER, party.secret)
    msg["ThongTinBienLai"] = _receipt(req, fee_types or {})
    msg.update(extra or {})
    return msg


def _lookup(kind: str, party: Party, ref: str, thoi_gian: str) -> dict[str, Any]:
    msg: dict[str, Any] = {"LoaiBanTin": kind, "PhienBan": party.version, "MaDoiTac": party.partner_code,
                           "MaThamChieu": ref, "ThoiGianGD": thoi_gian}
    msg["MaXacThuc"] = message_checksum(msg, QUERY_ORDER, party.secret)
    return msg


def build_query(party: Party, ref: str, thoi_gian: str) -> dict[str, Any]:
    """The QUERY message (§7)."""
    return _lookup("QUERY", party, ref, thoi_gian)


def build_get_bill(party: Party, ref: str, thoi_gian: str) -> dict[str, Any]:
    """The GET_BILL message (§9)."""
    return _lookup("GET_BILL", party, ref, thoi_gian)


# ---------------------------------------------------------------- replies


def _json_object(body: bytes, operation: str) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PaymentUnavailable(f"{operation}: the reply is not JSON", operation=operation) from exc
    if not isinstance(data, dict):
        raise PaymentUnavailable(f"{operation}: the reply is not a JSON object", operation=operation)
    return data


def parse_init_reply(body: bytes) -> tuple[str, str]:
    """``(UrlThanhToan, message as received)`` of a successful INIT reply (§6.4). Raises
    PaymentRefused for a non-zero ``error_code``, PaymentUnavailable for a reply that cannot be read."""
    data = _json_object(body, "INIT")
    code, message = str(data.get("error_code", "")), data.get("message")
    if code != "0":
        raise PaymentRefused(code or "(none)", message if isinstance(message, str) else str(message))
    try:  # message holds a JSON-encoded string: parsed a second time
        inner = orjson.loads(message) if isinstance(message, str) else message
    except orjson.JSONDecodeError as exc:
        raise PaymentUnavailable("INIT: the reply's message is not JSON", operation="INIT") from exc
    url = inner.get("UrlThanhToan") if isinstance(inner, dict) else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise PaymentUnavailable("INIT: the reply has no UrlThanhToan", operation="INIT")
    return url, message if isinstance(message, str) else orjson.dumps(message).decode()


@dataclass(frozen=True)
class QueryReply:
    """A QUERY reply (§7), as read. ``amount`` is None when ``SoTien`` is absent or not a whole number."""

    ma_loi: str
    trang_thai: str
    amount: int | None
    ma_giao_dich: str
    ma_ngan_hang: str
    thoi_gian: str


def _amount(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def parse_query_reply(body: bytes) -> QueryReply:
    """Read a QUERY reply; raises PaymentUnavailable when it is not a JSON object with a ``MaLoi``.
    Its ``MaXacThuc`` is not checked: no source gives the reply's field order (§14)."""
    data = _json_object(body, "QUERY")
    if "MaLoi" not in data:
        raise PaymentUnavailable("QUERY: the reply has no MaLoi", operation="QUERY")
    text = {k: "" if data.get(k) is None else str(data.get(k))
            for k in ("MaLoi", "TrangThaiGD", "MaGiaoDich", "MaNganHang", "ThoiGianGD")}
    return QueryReply(text["MaLoi"], text["TrangThaiGD"], _amount(data.get("SoTien")), text["MaGiaoDich"],
                      text["MaNganHang"], text["ThoiGianGD"])


def check_pdf(body: bytes) -> bytes:
    """A GET_BILL body: the receipt PDF. Raises BillNotReady when empty, PaymentInvalid when it does
    not start with ``%PDF-`` (§9)."""
    if not body:
        raise BillNotReady("GET_BILL: the platform has no receipt yet")
    if not body.startswith(b"%PDF-"):
        raise PaymentInvalid("GET_BILL", "the reply is not a PDF", operation="GET_BILL")
    return body


# ---------------------------------------------------------------- the CONFIRM callback


@dataclass(frozen=True)
class Confirm:
    """A CONFIRM callback as received: ``fields`` holds each §8.1 field's exact text."""

    fields: Mapping[str, str]
    amount: int

    def __getitem__(self, name: str) -> str:
        return self.fields[name]

    @property
    def paid(self) -> bool:
        return self.fields["MaLoi"] == PAID


def parse_confirm(body: Any) -> Confirm | str:
    """A CONFIRM, or the reason it cannot be one (a missing field, a type that has no exact text)."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    fields: dict[str, str] = {}
    for name in (*CONFIRM_ORDER, "MaXacThuc"):
        if name not in body:
            return f"{name} is missing"
        try:
            fields[name] = field_text(body, name)
        except PaymentInvalid as exc:
            return str(exc)
    amount = _amount(body["SoTien"])
    if amount is None:
        return "SoTien: expected a whole number of VND"
    return Confirm(fields, amount)


def confirm_ack(received: Any, partner_code: str, ok: bool) -> dict[str, str]:
    """The acknowledgement (§8.2): MaLoi "00" processed / "99" rejected; ``MaThamChieu``,
    ``ThoiGianGD`` and ``MaXacThuc`` echoed as received (TH echoes the checksum; POLICY)."""
    src = received if isinstance(received, dict) else {}

    def echo(name: str) -> str:
        value = src.get(name)
        return value if isinstance(value, str) else "" if value is None else str(value)

    return {"MaLoi": PAID if ok else REJECTED, "MoTaLoi": "Thành công" if ok else "Các lỗi khác",
            "MaDoiTac": partner_code, "MaThamChieu": echo("MaThamChieu"), "ThoiGianGD": echo("ThoiGianGD"),
            "MaXacThuc": echo("MaXacThuc")}


def confirm_message(party: Party, *, ref: str, amount: int, ma_loi: str, ma_giao_dich: str, ma_ngan_hang: str,
                    thoi_gian: str, thong_tin: str, loai_ban_tin: str = "CONFIRM") -> dict[str, Any]:
    """A CONFIRM as the platform would send it (the sandbox and tests); ``SoTien`` an integer (TH's model)."""
    msg: dict[str, Any] = {"LoaiBanTin": loai_ban_tin, "MaLoi": ma_loi, "MaDoiTac": party.partner_code,
                           "MaThamChieu": ref, "SoTien": amount, "MaTienTe": "VND", "MaGiaoDich": ma_giao_dich,
                           "MaNganHang": ma_ngan_hang, "ThoiGianGD": thoi_gian, "ThongTinGiaoDich": thong_tin}
    msg["MaXacThuc"] = message_checksum(msg, CONFIRM_ORDER, party.secret)
    return msg
