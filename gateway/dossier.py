"""The dossier model (spec §6), its validation and its normalisation for the portal.

Pure functions, no I/O. The HTTP layer calls :func:`validate_snapshot` for
``PUT /v1/dossiers/{MaHoSo}`` and :func:`validate_progress` for ``POST …/progress``; both return
the payload exactly as it will be sent to DVCQG, or raise
:class:`core.errors.ValidationError` listing *every* problem, one :class:`FieldError` each,
with paths such as ``TaiLieuNop[0].TenTepDinhKem`` or ``[3].ThoiDiemXuLy``.

Normalisation (§6.0): every scalar becomes a JSON string (except ``DanhSachTepDinhKemKhac``
``SoLuong``/``LoaiGiayTo``, which stay integers), codes sent as JSON integers become strings, text
is NFC, texts over :data:`FIELD_LIMITS` are cut at a character boundary and end in ``"..."``,
absent optional scalars become ``""`` and absent lists ``[]`` (see docs/decisions.md,
"dossier validation", for the exceptions).

Error messages never repeat the value of a free-text, identifier or URL field, nor of any field in
:data:`PERSONAL_FIELDS`: they name what was expected and the JSON type that came.
"""

from __future__ import annotations

import difflib
import json
import linecache
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from core.errors import FieldError, ValidationError
from gateway.transitions import STATE_CODES, TransitionClass, classify_transition

__all__ = [
    "FIELD_LIMITS",
    "IS_DELETED_FALSE",
    "IS_DELETED_TRUE",
    "MAX_PROGRESS_ITEMS",
    "PERSONAL_FIELDS",
    "Normalised",
    "TransitionClass",
    "classify_transition",
    "dossier_json_schema",
    "progress_json_schema",
    "validate_progress",
    "validate_snapshot",
]

#: §6.0 text limits (characters, after NFC). Longer texts end in ``ELLIPSIS`` within the limit.
FIELD_LIMITS: Mapping[str, int] = MappingProxyType(
    {"TrichYeuHoSo": 1000, "NguoiXuLy": 50, "TenTepDinhKem": 4000}
)
ELLIPSIS = "..."

#: Outgoing form of ``TaiLieuNop.IsDeleted`` [UNCERTAIN in the spec: OC "True"/"False", TH "0"/"1"].
#: TH's form is used, matching every other §7.8 flag; change both constants to switch.
IS_DELETED_TRUE = "1"
IS_DELETED_FALSE = "0"

#: Upper bound on the items of one progress request.
MAX_PROGRESS_ITEMS = 500

#: Fields whose values are personal data: never echoed in an error message.
PERSONAL_FIELDS: frozenset[str] = frozenset(
    {"ChuHoSo", "SoGiayToChuHoSo", "SoDinhDanh", "Email", "SoDienThoai", "Fax", "MaDoiTuong"}
)

#: Accepted beside §6.1 at the dossier's top level, kept locally, never forwarded (§8).
LOCAL_ONLY_FIELD = "MaHoSoKhac"


@dataclass(frozen=True)
class Normalised:
    """A validated event, ready to send to the portal.

    ``payload``: §6.1 dossier or §6.9 progress item, every scalar a JSON string, lists never null.
    ``truncated``: the *names* of the fields that were cut (one entry per cut value, in document
    order), for a metric label; never values.
    ``mahoso_khac``: the agency's alternative dossier code (§8 step 2), "" if none; it is not in
    ``payload`` because it is never forwarded.
    """

    payload: dict[str, Any]
    truncated: tuple[str, ...]
    mahoso_khac: str = ""


# --------------------------------------------------------------------------- field tables


class Kind(Enum):
    """How a field's value is checked and normalised."""

    TEXT = "text"  # free text: a string; NFC; truncated when over FIELD_LIMITS
    ID = "id"  # identifier or code of an unknown table: string or integer in, string out
    DATE = "date"  # yyyyMMddHHmmss, a real time
    CODE = "code"  # a code from a §7 table: string or integer in, string out
    AMOUNT = "amount"  # non-negative integer VND: string or integer in, string out
    COUNT = "count"  # non-negative integer: string or integer in, *integer* out (§6.0 exception)
    URL = "url"  # absolute http(s) URL
    DELETED = "deleted"  # IsDeleted: "True"/"False"/"0"/"1" (or JSON true/false) in
    LIST = "list"  # list of rows of a sub-table


Req = Literal["R", "S", "O"]


@dataclass(frozen=True)
class Spec:
    """One field of a §6 table."""

    name: str
    kind: Kind
    req: Req = "O"
    codes: tuple[str, ...] = ()
    ref: str = ""  # where the code table is, for messages ("§7.1")
    item: Table | None = None


class Table:
    """A §6 table: its title (for messages) and its fields, in the spec's order."""

    def __init__(self, title: str, fields: tuple[Spec, ...]) -> None:
        self.title = title
        self.fields = fields
        self.index: Mapping[str, Spec] = MappingProxyType({f.name: f for f in fields})
        self.names: frozenset[str] = frozenset(self.index)
        #: (name, checker) per field, in table order, and the row checker made of them; both are
        #: set by ``_compile_table`` below.
        self.checks: tuple[tuple[str, Checker], ...] = ()
        self.check_row: RowChecker = _not_compiled


def _not_compiled(obj: Mapping[str, Any], prefix: str, col: _Collector) -> dict[str, Any]:
    raise RuntimeError("table used before _compile_table")


FLAG = ("0", "1")


def _text(name: str, req: Req = "O") -> Spec:
    return Spec(name, Kind.TEXT, req)


def _id(name: str, req: Req = "O") -> Spec:
    return Spec(name, Kind.ID, req)


def _date(name: str, req: Req = "O") -> Spec:
    return Spec(name, Kind.DATE, req)


def _code(name: str, codes: tuple[str, ...], ref: str, req: Req = "O") -> Spec:
    return Spec(name, Kind.CODE, req, codes=codes, ref=ref)


def _list(name: str, item: Table) -> Spec:
    return Spec(name, Kind.LIST, "O", item=item)


TAI_LIEU_NOP = Table("§6.2 TaiLieuNop", (
    _id("TepDinhKemId"),
    _text("TenTepDinhKem", "R"),
    Spec("IsDeleted", Kind.DELETED),
    _id("MaThanhPhanHoSo"),
    Spec("DuongDanTaiTepTin", Kind.URL, "R"),
    _code("DuocSoHoa", FLAG, "§7.8"),
    _code("DuocTaiSuDung", ("0", "1", "2"), "§7.8"),
    _code("DuocLayTuKhoDMQG", FLAG, "§7.8"),
    _id("MaKetQuaThayThe"),
))

LE_PHI = Table("§6.3 DanhSachLePhi", (
    _text("TenPhiLePhi", "R"),
    _id("MaPhiLePhi"),
    _id("HinhThucThu"),
    Spec("Gia", Kind.AMOUNT, "R"),
    _id("LoaiPhiLePhi"),
))

TEP_DINH_KEM_KHAC = Table("§6.4 DanhSachTepDinhKemKhac", (
    _text("TenGiayTo", "R"),
    Spec("SoLuong", Kind.COUNT),
    Spec("LoaiGiayTo", Kind.COUNT),
))

HO_SO_BO_SUNG = Table("§6.5 DanhSachHoSoBoSung", (
    _id("HoSoBoSungId", "R"),
    _text("NguoiYeuCauBoSung"),
    _text("NoiDungBoSung"),
    _date("NgayBoSung", "R"),
    _text("NguoiTiepNhanBoSung"),
    _text("ThongTinTiepNhan"),
    _date("NgayTiepNhanBoSung"),
    _code("TrangThaiBoSung", FLAG, "§7.8"),
    _list("DanhSachGiayToBoSung", TAI_LIEU_NOP),
    _list("DanhSachLePhiBoSung", LE_PHI),
    _date("NgayHenTraTruoc"),
    _date("NgayHenTraMoi"),
))

GIAY_TO_KET_QUA = Table("§6.6 DanhSachGiayToKetQua", (
    _text("TenGiayTo", "R"),
    _id("MaThanhPhanHoSo"),
    _id("GiayToId"),
    Spec("DuongDanTepTinKetQua", Kind.URL, "R"),
    _id("MaGiayToKetQua", "S"),
))

DINH_DANH_CHS = Table("§6.7 DinhDanhCHS", (
    _code("LoaiDinhDanh", ("1", "2"), "§7.5", "R"),
    _text("SoDinhDanh", "R"),
))

KET_NOI_CSDL = Table("§6.8 DSKetNoiCSDL", (
    _id("MaCSDL", "R"),
))

DOSSIER = Table("§6.1 dossier", (
    _id("MaHoSo", "R"),
    _id("MaTTHC", "R"),
    _text("TenTTHC", "R"),
    _id("MaLinhVuc", "S"),
    _text("TenLinhVuc", "S"),
    _id("SoBienNhan"),
    _code("KenhThucHien", ("1", "2", "3"), "§7.3", "R"),
    _text("ChuHoSo", "R"),
    _text("SoGiayToChuHoSo"),
    _code("LoaiDoiTuong", ("1", "2", "3", "4"), "§7.4", "S"),
    _text("MaDoiTuong"),
    _text("ThongTinKhac"),
    _text("Email", "S"),
    _text("Fax"),
    _text("SoDienThoai", "S"),
    _text("TrichYeuHoSo", "S"),
    _date("NgayTiepNhan", "R"),
    _date("NgayHenTra", "S"),
    _code("TrangThaiHoSo", STATE_CODES, "§7.1", "R"),
    _date("NgayTra"),
    _text("ThongTinTra"),
    _code("HinhThuc", ("0", "1"), "§7.6", "S"),
    _date("NgayKetThucXuLy"),
    _text("DonViXuLy", "S"),
    _text("GhiChu"),
    _date("NgayNopHoSo"),
    _date("NgayTuChoi"),
    _id("NoiNopHoSo"),
    _code("HoSoCoThanhPhanSoHoa", FLAG, "§7.8"),
    _code("TaiKhoanDuocXacThucVoiVNeID", FLAG, "§7.8"),
    _code("DuocThanhToanTrucTuyen", ("0", "1", "2", "3"), "§7.7"),
    _list("TaiLieuNop", TAI_LIEU_NOP),
    _list("DanhSachLePhi", LE_PHI),
    _list("DanhSachTepDinhKemKhac", TEP_DINH_KEM_KHAC),
    _list("DanhSachHoSoBoSung", HO_SO_BO_SUNG),
    _list("DanhSachGiayToKetQua", GIAY_TO_KET_QUA),
    _list("DinhDanhCHS", DINH_DANH_CHS),
    _list("DSKetNoiCSDL", KET_NOI_CSDL),
))

PROGRESS = Table("§6.9 progress item", (
    _id("MaHoSo", "R"),
    _text("NguoiXuLy", "R"),
    _text("ChucDanh"),
    _date("ThoiDiemXuLy", "R"),
    _text("PhongBanXuLy"),
    _text("NoiDungXuLy", "S"),
    _code("TrangThai", STATE_CODES, "§7.1", "R"),
    _date("NgayBatDau"),
    _date("NgayKetThucTheoQuyDinh"),
))

_MAHOSO_KHAC_SPEC = _id(LOCAL_ONLY_FIELD)

# --------------------------------------------------------------------------- checking


class _Missing:
    """Marks a key absent from the body (as opposed to JSON null)."""


_MISSING = _Missing()
_OMIT = object()  # a checker's answer meaning "leave the key out of the payload"


class _Collector:
    """The problems and truncations found while walking one request."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.truncated: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationError(list(self.errors))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _json_type(value: object) -> str:
    """The JSON type of ``value``, with its article, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _came(spec: Spec, value: object) -> str:
    """What came, for a message: the JSON type, plus the value when it is safe to repeat."""
    shown = spec.kind in (Kind.CODE, Kind.DATE, Kind.AMOUNT, Kind.COUNT, Kind.DELETED)
    if not shown or spec.name in PERSONAL_FIELDS or isinstance(value, (list, dict)):
        return _json_type(value)
    text = json.dumps(value, ensure_ascii=False)
    return f"{_json_type(value)} {text if len(text) <= 40 else text[:37] + '...'}"


def _expected(spec: Spec) -> str:
    """What the field accepts, in words."""
    kind = spec.kind
    if kind is Kind.CODE:
        listed = ", ".join(f'"{c}"' for c in spec.codes)
        return f"one of {listed} ({spec.ref} {spec.name}), as a string or an integer"
    return _EXPECTED[kind]


_EXPECTED: Mapping[Kind, str] = MappingProxyType({
    Kind.TEXT: "a string",
    Kind.ID: "a string (or an integer)",
    Kind.DATE: "a date-time string yyyyMMddHHmmss in Asia/Ho_Chi_Minh time, e.g. \"20240315093000\"",
    Kind.AMOUNT: "a non-negative whole amount in VND, as a string of digits or an integer, e.g. \"50000\"",
    Kind.COUNT: "a non-negative integer (or a string of digits)",
    Kind.URL: "an absolute http(s) URL that DVCQG can download from, e.g. \"https://host/path/file.pdf\"",
    Kind.DELETED: "one of \"True\", \"False\", \"0\", \"1\" (or true/false)",
    Kind.LIST: "an array of objects",
})


def _is_blank(value: object) -> bool:
    return value is _MISSING or value is None or (isinstance(value, str) and not value.strip())


def _default(spec: Spec) -> object:
    """What an absent optional field is sent as (§6.0 policy)."""
    if spec.kind is Kind.LIST:
        return []
    if spec.kind is Kind.COUNT:
        return _OMIT
    if spec.kind is Kind.DELETED:
        return IS_DELETED_FALSE
    return ""


def _check_field(spec: Spec, value: object, path: str, col: _Collector) -> object:
    """Check one field; return its outgoing value (``_OMIT`` to leave it out)."""
    if _is_blank(value):
        if spec.req == "R":
            how = "missing" if value is _MISSING else "null" if value is None else "empty"
            col.error(path, f"required field is {how}; expected {_expected(spec)}")
            return None
        return _default(spec)
    return _CHECKERS[spec.kind](spec, value, path, col)


def _bad(spec: Spec, value: object, path: str, col: _Collector, why: str = "") -> object:
    """Record "expected …; got …" for ``path``; return None, the placeholder outgoing value."""
    col.error(path, f"expected {_expected(spec)}; got {_came(spec, value)}{why}")
    return None


def _check_text(spec: Spec, value: object, path: str, col: _Collector) -> object:
    if not isinstance(value, str):
        return _bad(spec, value, path, col)
    text = unicodedata.normalize("NFC", value)
    limit = FIELD_LIMITS.get(spec.name)
    if limit is not None and len(text) > limit:
        col.truncated.append(spec.name)
        return truncate(text, limit)
    return text


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, ending in "...", never splitting a character.

    A base letter and the combining marks after it stay together (NFC leaves some Vietnamese
    letters decomposed when no precomposed form exists).
    """
    if len(text) <= limit:
        return text
    cut = max(limit - len(ELLIPSIS), 0)
    while cut > 0 and unicodedata.combining(text[cut]):
        cut -= 1
    return text[:cut] + ELLIPSIS


def _check_id(spec: Spec, value: object, path: str, col: _Collector) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    return _bad(spec, value, path, col)


_DATE_RE = re.compile(r"[0-9]{14}")


def _check_date(spec: Spec, value: object, path: str, col: _Collector) -> object:
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        return _bad(spec, value, path, col)
    try:
        datetime(int(value[0:4]), int(value[4:6]), int(value[6:8]),
                 int(value[8:10]), int(value[10:12]), int(value[12:14]))
    except ValueError as exc:
        return _bad(spec, value, path, col, f", which is not a real time ({exc})")
    return value


def _check_code(spec: Spec, value: object, path: str, col: _Collector) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        code: object = str(value)
    else:
        code = value
    if not isinstance(code, str) or code not in spec.codes:
        return _bad(spec, value, path, col)
    return code


_DIGITS_RE = re.compile(r"[0-9]+")


def _whole_number(value: object) -> int | None:
    """``value`` as a non-negative integer, if it is one (JSON integer or string of digits)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, str) and _DIGITS_RE.fullmatch(value):
        return int(value)
    return None


def _check_amount(spec: Spec, value: object, path: str, col: _Collector) -> object:
    number = _whole_number(value)
    if number is None:
        return _bad(spec, value, path, col)
    return str(number)


def _check_count(spec: Spec, value: object, path: str, col: _Collector) -> object:
    number = _whole_number(value)
    if number is None:
        return _bad(spec, value, path, col)
    return number


def _url_problem(value: str) -> str:
    """Why ``value`` is not an absolute http(s) URL ("" if it is). Never repeats the URL."""
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in value):
        return " containing white space or control characters"
    return _url_shape_problem(value)


def _url_shape_problem(value: str) -> str:
    """Why ``value``, free of white space and control characters, is not an absolute http(s) URL
    ("" if it is). Never repeats the URL."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return " that does not parse as a URL"
    if not parts.scheme:
        return " that is a relative reference (no scheme)"
    if parts.scheme.lower() not in ("http", "https"):
        return f" with scheme {parts.scheme[:10]!r}"
    if not host:
        return " without a host"
    return ""


def _check_url(spec: Spec, value: object, path: str, col: _Collector) -> object:
    if not isinstance(value, str):
        return _bad(spec, value, path, col)
    url = unicodedata.normalize("NFC", value)
    problem = _url_problem(url)
    if problem:
        return _bad(spec, value, path, col, problem)
    return url


_DELETED_IN: Mapping[object, str] = MappingProxyType({
    "True": IS_DELETED_TRUE, "False": IS_DELETED_FALSE, "1": IS_DELETED_TRUE, "0": IS_DELETED_FALSE,
})


def _check_deleted(spec: Spec, value: object, path: str, col: _Collector) -> object:
    if isinstance(value, bool):
        return IS_DELETED_TRUE if value else IS_DELETED_FALSE
    if isinstance(value, int) and value in (0, 1):
        value = str(value)
    if isinstance(value, str) and value in _DELETED_IN:
        return _DELETED_IN[value]
    return _bad(spec, value, path, col)


def _check_list(spec: Spec, value: object, path: str, col: _Collector) -> object:
    assert spec.item is not None
    if not isinstance(value, list):
        return _bad(spec, value, path, col, f" (rows of {spec.item.title})")
    return _check_rows(value, spec.item, path, col)


def _check_rows(value: list[object], item: Table, path: str, col: _Collector) -> list[dict[str, Any]]:
    """Check each row of the list at ``path``; return the outgoing rows (bad rows left out)."""
    rows: list[dict[str, Any]] = []
    names, check_row = item.names, item.check_row
    for i, row in enumerate(value):
        row_path = f"{path}[{i}]"
        if isinstance(row, dict):
            if not row.keys() <= names:  # _check_object, inlined: one call less per row
                _report_unknown(row, item, row_path, col, frozenset())
            rows.append(check_row(row, row_path, col))
        else:
            col.error(row_path, f"expected an object (a {item.title} row); got {_json_type(row)}")
    return rows


_CHECKERS: Mapping[Kind, Callable[[Spec, object, str, _Collector], object]] = MappingProxyType({
    Kind.TEXT: _check_text,
    Kind.ID: _check_id,
    Kind.DATE: _check_date,
    Kind.CODE: _check_code,
    Kind.AMOUNT: _check_amount,
    Kind.COUNT: _check_count,
    Kind.URL: _check_url,
    Kind.DELETED: _check_deleted,
    Kind.LIST: _check_list,
})


def _unknown_message(key: str, table: Table, allowed: frozenset[str]) -> str:
    names = [*table.index, *allowed]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
    if not close:
        close = [n for n in names if n.lower() == key.lower()]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown field: not in {table.title} (field names are case-sensitive){hint}"


def _report_unknown(obj: Mapping[str, Any], table: Table, prefix: str, col: _Collector,
                    allowed: frozenset[str]) -> None:
    """One error per key of ``obj`` that is neither a field of ``table`` nor in ``allowed``."""
    for key in obj:
        if key not in table.index and key not in allowed:
            col.error(_join(prefix, key), _unknown_message(key, table, allowed))


def _check_object(obj: Mapping[str, Any], table: Table, prefix: str, col: _Collector) -> dict[str, Any]:
    """Check one row of ``table`` (unknown keys, then every field); return the outgoing row."""
    if not obj.keys() <= table.names:
        _report_unknown(obj, table, prefix, col, frozenset())
    return table.check_row(obj, prefix, col)


# --------------------------------------------------------------------------- compiled checkers
#
# The hot path. Each field of each table gets one closure, built once at import, that settles the
# common well-formed value itself and hands anything else to ``_check_field`` above, which stays
# the single definition of the rules and of every message. A fast path may therefore only accept
# values that ``_check_field`` accepts, returning what it returns; it never records an error.
# Paths are built only on the slow path, so a valid row costs no string formatting.

#: ``checker(value, prefix, col)``: the outgoing value of one field (``_OMIT``: leave it out);
#: ``value`` is ``_MISSING`` when the key is absent; ``prefix`` is the row's path.
Checker = Callable[[object, str, _Collector], object]

#: ``check_row(obj, prefix, col)``: the outgoing row (every field of the table, in table order).
RowChecker = Callable[[Mapping[str, Any], str, _Collector], dict[str, Any]]

_nfc = unicodedata.normalize

#: Dates certainly real: year 0001-9999, day 01-28 of any month, 29-30 of any month but February,
#: 31 of the 31-day months. February 29 and everything else is left to ``_check_date``.
_REAL_DATE_RE = re.compile(
    r"(?!0000)[0-9]{4}"
    r"(?:(?:0[1-9]|1[0-2])(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])(?:29|30)|(?:0[13578]|1[02])31)"
    r"(?:[01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]"
)

#: In an ASCII string, exactly the characters that are white space or control (Cc) characters.
_ASCII_SPACE_OR_CONTROL_RE = re.compile(r"[\x00-\x20\x7f]")

#: A URL that ``urlsplit`` certainly reads as http(s) with a non-empty host, all printable ASCII
#: (no white space, no control characters): scheme, a plain host name or IPv4 address, an optional
#: port, then optionally a path, query or fragment. Other URLs go through urlsplit.
_PLAIN_HTTP_URL_RE = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.\-]+(?::[0-9]*)?(?:[/?#][\x21-\x7e]*)?")


def _slow(spec: Spec) -> Checker:
    name = spec.name

    def check(value: object, prefix: str, col: _Collector) -> object:
        return _check_field(spec, value, _join(prefix, name), col)

    return check


def _compile_text(spec: Spec, slow: Checker, optional: bool) -> Checker:
    limit = FIELD_LIMITS.get(spec.name)

    def check(value: object, prefix: str, col: _Collector) -> object:
        if isinstance(value, str):
            if value and not value.isspace():
                if not value.isascii():
                    value = _nfc("NFC", value)
                if limit is None or len(value) <= limit:
                    return value
            elif optional:
                return ""
        elif optional and (value is _MISSING or value is None):
            return ""
        return slow(value, prefix, col)

    return check


def _compile_id(spec: Spec, slow: Checker, optional: bool) -> Checker:
    def check(value: object, prefix: str, col: _Collector) -> object:
        if isinstance(value, str):
            if value and not value.isspace():
                return value if value.isascii() else _nfc("NFC", value)
            if optional:
                return ""
        elif type(value) is int:
            return str(value)
        elif optional and (value is _MISSING or value is None):
            return ""
        return slow(value, prefix, col)

    return check


def _compile_date(spec: Spec, slow: Checker, optional: bool) -> Checker:
    real = _REAL_DATE_RE.fullmatch

    def check(value: object, prefix: str, col: _Collector) -> object:
        if isinstance(value, str):
            if real(value):
                return value
            if optional and not value:
                return ""
        elif optional and (value is _MISSING or value is None):
            return ""
        return slow(value, prefix, col)

    return check


def _compile_code(spec: Spec, slow: Checker, optional: bool) -> Checker:
    codes = frozenset(spec.codes)

    def check(value: object, prefix: str, col: _Collector) -> object:
        if isinstance(value, str):
            if value in codes:
                return value
            if optional and not value:
                return ""
        elif type(value) is int:
            code = str(value)
            if code in codes:
                return code
        elif optional and (value is _MISSING or value is None):
            return ""
        return slow(value, prefix, col)

    return check


def _compile_whole(spec: Spec, slow: Checker, optional: bool) -> Checker:
    as_text = spec.kind is Kind.AMOUNT

    def check(value: object, prefix: str, col: _Collector) -> object:
        if type(value) is int:
            if value >= 0:
                return str(value) if as_text else value
        elif isinstance(value, str) and value.isascii() and value.isdigit():
            number = int(value)
            return str(number) if as_text else number
        return slow(value, prefix, col)

    return check


def _compile_url(spec: Spec, slow: Checker, optional: bool) -> Checker:
    plain = _PLAIN_HTTP_URL_RE.fullmatch

    def check(value: object, prefix: str, col: _Collector) -> object:
        if isinstance(value, str) and (
                plain(value) or (value.isascii() and not _ASCII_SPACE_OR_CONTROL_RE.search(value)
                                 and not _url_shape_problem(value))):
            return value
        return slow(value, prefix, col)

    return check


def _compile_deleted(spec: Spec, slow: Checker, optional: bool) -> Checker:
    forms = dict(_DELETED_IN)

    def check(value: object, prefix: str, col: _Collector) -> object:
        if isinstance(value, str):
            sent = forms.get(value)
            if sent is not None:
                return sent
        return slow(value, prefix, col)

    return check


def _compile_list(spec: Spec, slow: Checker, optional: bool) -> Checker:
    item = spec.item
    assert item is not None
    name = spec.name

    def check(value: object, prefix: str, col: _Collector) -> object:
        if isinstance(value, list):
            return _check_rows(value, item, _join(prefix, name), col) if value else []
        if optional and (value is _MISSING or value is None):
            return []
        return slow(value, prefix, col)

    return check


_COMPILERS: Mapping[Kind, Callable[[Spec, Checker, bool], Checker]] = MappingProxyType({
    Kind.TEXT: _compile_text,
    Kind.ID: _compile_id,
    Kind.DATE: _compile_date,
    Kind.CODE: _compile_code,
    Kind.AMOUNT: _compile_whole,
    Kind.COUNT: _compile_whole,
    Kind.URL: _compile_url,
    Kind.DELETED: _compile_deleted,
    Kind.LIST: _compile_list,
})


def _compile_field(spec: Spec) -> Checker:
    """The checker of one field: a fast path for well-formed values, else ``_check_field``."""
    return _COMPILERS[spec.kind](spec, _slow(spec), spec.req != "R")


#: Per kind, ``(condition on v, outgoing value)`` for a well-formed value: the first test of the
#: field's checker, inlined in the row checker so that such a value costs no call. ``{i}`` is the
#: field's number (``s{i}``: its codes, ``t{i}``: its row table), ``{limit}`` its FIELD_LIMITS entry,
#: ``{key}``/``{dotted}`` its name quoted, bare or after a dot. Kinds not listed
#: always call their checker (unless blank and optional, see ``_field_block``).
_INLINE_ACCEPT: Mapping[Kind, tuple[str, str]] = MappingProxyType({
    Kind.TEXT: ("v.__class__ is str and v and not v.isspace()", "v if v.isascii() else _nfc('NFC', v)"),
    Kind.ID: ("v.__class__ is str and v and not v.isspace()", "v if v.isascii() else _nfc('NFC', v)"),
    Kind.CODE: ("v.__class__ is str and v in s{i}", "v"),
    Kind.DATE: ("v.__class__ is str and _real_date(v)", "v"),
    Kind.AMOUNT: ("v.__class__ is str and v.isascii() and v.isdigit()", "str(int(v))"),
    Kind.LIST: ("v.__class__ is list", "_rows(v, t{i}, prefix + {dotted} if prefix else {key}, col) if v else []"),
})
_INLINE_LIMITED_TEXT = (
    "v.__class__ is str and v and not v.isspace() and len(w := (v if v.isascii() else _nfc('NFC', v))) <= {limit}",
    "w",
)


def _field_block(i: int, spec: Spec) -> list[str]:
    """Source lines of ``check_row`` for field number ``i``: an if/elif chain of the inlined
    acceptance test, then (optional fields) absent/null/"" → the default, else the checker ``c{i}``.
    A COUNT checker may answer ``_OMIT``, so its block always calls it and tests for that."""
    key = repr(spec.name)
    if spec.kind is Kind.COUNT:
        return [f"    v = get({key}, _MISSING)", "    if v.__class__ is int and v >= 0:",
                f"        out[{key}] = v", "    else:", f"        v = c{i}(v, prefix, col)",
                "        if v is not _OMIT:", f"            out[{key}] = v"]
    branches: list[tuple[str, str]] = []
    accept = _INLINE_ACCEPT.get(spec.kind)
    if spec.kind is Kind.TEXT and spec.name in FIELD_LIMITS:
        accept = _INLINE_LIMITED_TEXT
    if accept is not None:
        names = {"i": i, "limit": FIELD_LIMITS.get(spec.name), "key": key, "dotted": repr("." + spec.name)}
        branches.append((accept[0].format(**names), accept[1].format(**names)))
    if spec.req != "R":
        default = _default(spec)
        branches.append(("v is _MISSING or v is None or v == ''", "[]" if default == [] else repr(default)))
    lines = [f"    v = get({key}, _MISSING)"]
    for n, (condition, value) in enumerate(branches):
        lines += [f"    {'elif' if n else 'if'} {condition}:", f"        out[{key}] = {value}"]
    if branches:
        return [*lines, "    else:", f"        out[{key}] = c{i}(v, prefix, col)"]
    return [*lines, f"    out[{key}] = c{i}(v, prefix, col)"]


def _row_checker_source(table: Table) -> tuple[str, dict[str, object]]:
    """Source of ``check_row`` for ``table`` (one ``_field_block`` per field, unrolled, in table
    order) and its globals."""
    env: dict[str, object] = {"_MISSING": _MISSING, "_OMIT": _OMIT, "_nfc": _nfc, "_rows": _check_rows,
                              "_real_date": _REAL_DATE_RE.fullmatch}
    lines = ["def check_row(obj, prefix, col):", "    get = obj.get", "    out = {}"]
    for i, (name, check) in enumerate(table.checks):
        spec = table.index[name]
        env[f"c{i}"], env[f"s{i}"], env[f"t{i}"] = check, frozenset(spec.codes), spec.item
        lines += _field_block(i, spec)
    lines.append("    return out")
    return "\n".join(lines) + "\n", env


def _compile_table(table: Table) -> None:
    """Set ``table.checks`` and ``table.check_row`` (generated once, at import).

    The generated function registers its source with :mod:`linecache`, so tracebacks and
    debuggers show it.
    """
    table.checks = tuple((spec.name, _compile_field(spec)) for spec in table.fields)
    source, env = _row_checker_source(table)
    filename = f"<gateway.dossier row checker: {table.title}>"
    exec(compile(source, filename, "exec"), env)  # our own source, made from the tables
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    check_row = env["check_row"]
    assert callable(check_row)
    table.check_row = check_row


for _table in (TAI_LIEU_NOP, LE_PHI, TEP_DINH_KEM_KHAC, HO_SO_BO_SUNG, GIAY_TO_KET_QUA, DINH_DANH_CHS,
               KET_NOI_CSDL, DOSSIER, PROGRESS):
    _compile_table(_table)

_CHECK_MAHOSO_KHAC = _compile_field(_MAHOSO_KHAC_SPEC)

#: Keys a snapshot body may carry.
_SNAPSHOT_KEYS = DOSSIER.names | {LOCAL_ONLY_FIELD}
_SNAPSHOT_EXTRA = frozenset({LOCAL_ONLY_FIELD})


def _check_same_code(payload: Mapping[str, Any], path_mahoso: str, field: str,
                     col: _Collector) -> None:
    """The body's ``MaHoSo`` (already checked) must be the URL path's."""
    body_code = payload.get("MaHoSo")
    if isinstance(body_code, str) and body_code != unicodedata.normalize("NFC", path_mahoso):
        col.error(field, f"must equal the dossier code in the URL path: the path has {path_mahoso!r}, "
                         f"the body has {body_code!r}")


# --------------------------------------------------------------------------- DinhDanhCHS

_ID_NUMBER_TYPES: Mapping[int, str] = MappingProxyType({12: "1", 9: "2"})  # §7.5: CCCD / CMND


def derive_dinh_danh(number: str) -> list[dict[str, str]]:
    """§7.5: ``[{"LoaiDinhDanh", "SoDinhDanh"}]`` for a 9-digit (CMND, "2") or 12-digit (CCCD, "1")
    number, else ``[]``. Never a placeholder."""
    digits = number.strip()
    kind = _ID_NUMBER_TYPES.get(len(digits))
    if kind is None or not _DIGITS_RE.fullmatch(digits):
        return []
    return [{"LoaiDinhDanh": kind, "SoDinhDanh": digits}]


# --------------------------------------------------------------------------- entry points


def validate_snapshot(path_mahoso: str, body: object) -> Normalised:
    """Validate and normalise one dossier snapshot (§6.1) for ``PUT /v1/dossiers/{path_mahoso}``.

    Raises :class:`ValidationError` listing every problem: a body that is not an object (field
    ``""``), unknown fields, missing required fields (``ChuHoSo`` included), unreal dates, codes
    outside their tables, bad amounts or URLs, a body ``MaHoSo`` that differs from the path.
    ``MaHoSoKhac`` is accepted, returned in ``mahoso_khac`` and left out of the payload.
    """
    if not isinstance(body, dict):
        raise ValidationError([FieldError("", f"expected a JSON object (one dossier, spec §6.1); "
                                              f"got {_json_type(body)}")])
    col = _Collector()
    if not body.keys() <= _SNAPSHOT_KEYS:
        _report_unknown(body, DOSSIER, "", col, _SNAPSHOT_EXTRA)
    payload = DOSSIER.check_row(body, "", col)
    alt = _CHECK_MAHOSO_KHAC(body.get(LOCAL_ONLY_FIELD, _MISSING), "", col)
    _check_same_code(payload, path_mahoso, "MaHoSo", col)
    col.raise_if_any()
    if not payload["DinhDanhCHS"]:
        payload["DinhDanhCHS"] = derive_dinh_danh(payload["SoGiayToChuHoSo"])
    return Normalised(payload, tuple(col.truncated), alt if isinstance(alt, str) else "")


def _progress_items(body: object) -> tuple[list[object], bool]:
    """The items of a progress body and whether it was a single object; raises on a bad shape."""
    if isinstance(body, dict):
        return [body], True
    if not isinstance(body, list):
        message = f"expected a progress item (§6.9) or a list of them; got {_json_type(body)}"
    elif not body:
        message = "expected at least one progress item; got an empty array"
    elif len(body) > MAX_PROGRESS_ITEMS:
        message = f"expected at most {MAX_PROGRESS_ITEMS} progress items; got {len(body)}"
    else:
        return list(body), False
    raise ValidationError([FieldError("", message)])


def validate_progress(path_mahoso: str, body: object) -> list[Normalised]:
    """Validate and normalise progress for ``POST /v1/dossiers/{path_mahoso}/progress`` (§6.9).

    ``body`` is one item (errors on ``ThoiDiemXuLy``…) or a non-empty list of at most
    :data:`MAX_PROGRESS_ITEMS` items (errors on ``[3].ThoiDiemXuLy``…). An item without
    ``MaHoSo`` takes the path's; one with another code is an error. Returns one
    :class:`Normalised` per item, in the order given. Raises :class:`ValidationError` listing
    every problem of every item.
    """
    items, single = _progress_items(body)
    col = _Collector()
    results: list[Normalised] = []
    for i, item in enumerate(items):
        prefix = "" if single else f"[{i}]"
        if not isinstance(item, dict):
            col.error(prefix, f"expected an object (a §6.9 progress item); got {_json_type(item)}")
            continue
        if _is_blank(item.get("MaHoSo", _MISSING)):
            item = {**item, "MaHoSo": path_mahoso}
        first_cut = len(col.truncated)
        payload = _check_object(item, PROGRESS, prefix, col)
        _check_same_code(payload, path_mahoso, _join(prefix, "MaHoSo"), col)
        results.append(Normalised(payload, tuple(col.truncated[first_cut:])))
    col.raise_if_any()
    return results


# --------------------------------------------------------------------------- JSON Schema

_NON_BLANK = {"type": "string", "pattern": r"\S"}


def _scalar_schema(spec: Spec) -> dict[str, Any]:
    """JSON Schema of one present, non-blank scalar value."""
    whole = [{"type": "string", "pattern": "^[0-9]+$"}, {"type": "integer", "minimum": 0}]
    schemas: dict[Kind, dict[str, Any]] = {
        Kind.TEXT: dict(_NON_BLANK),
        Kind.ID: {"anyOf": [dict(_NON_BLANK), {"type": "integer"}]},
        Kind.DATE: {"type": "string", "pattern": "^[0-9]{14}$"},
        Kind.CODE: {"enum": [*spec.codes, *(int(c) for c in spec.codes)]},
        Kind.AMOUNT: {"anyOf": whole},
        Kind.COUNT: {"anyOf": whole},
        Kind.URL: {"type": "string", "format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s/?#]+"},
        Kind.DELETED: {"enum": ["True", "False", "0", "1", True, False, 0, 1]},
    }
    return schemas[spec.kind]


def _field_schema(spec: Spec) -> dict[str, Any]:
    if spec.kind is Kind.LIST:
        assert spec.item is not None
        schema: dict[str, Any] = {"type": "array", "items": _object_schema(spec.item)}
    else:
        schema = _scalar_schema(spec)
    if spec.req != "R":
        # Absent, null, "" and white space all mean "not known" for an optional field.
        schema = {"anyOf": [schema, {"type": "null"}, {"type": "string", "pattern": r"^\s*$"}]}
    limit = FIELD_LIMITS.get(spec.name)
    if limit is not None:
        schema["description"] = f"Longer texts are cut to {limit} characters, ending in \"...\"."
    return schema


def _object_schema(table: Table, extra: Mapping[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    properties = {spec.name: _field_schema(spec) for spec in table.fields}
    properties.update(extra or {})
    return {
        "type": "object",
        "title": table.title,
        "properties": properties,
        "required": [spec.name for spec in table.fields if spec.req == "R"],
        "additionalProperties": False,
    }


def dossier_json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12, OpenAPI 3.1 compatible, no ``$ref``) of an accepted snapshot body.

    It describes shapes only: whether a date is a real time and whether the body ``MaHoSo`` is
    the path's are checked by :func:`validate_snapshot` alone.
    """
    alt = _field_schema(_MAHOSO_KHAC_SPEC)
    alt["description"] = "Alternative dossier code (spec §8); kept by the gateway, never forwarded."
    schema = _object_schema(DOSSIER, {LOCAL_ONLY_FIELD: alt})
    schema["description"] = ("One dossier snapshot in DVCQG field names (spec §6.1). Codes may be "
                             "strings or integers; absent optional values are sent as \"\" or [].")
    return schema


def progress_json_schema() -> dict[str, Any]:
    """JSON Schema of an accepted progress body: one §6.9 item or a list of 1–500 of them.

    ``MaHoSo`` may be left out (it is taken from the path), so it is not required here.
    """
    item = _object_schema(PROGRESS)
    item["required"] = [name for name in item["required"] if name != "MaHoSo"]
    return {
        "description": "Progress items (spec §6.9), in the order they happened.",
        "oneOf": [item, {"type": "array", "minItems": 1, "maxItems": MAX_PROGRESS_ITEMS, "items": item}],
    }
