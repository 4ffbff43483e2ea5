"""Validation and normalisation of agency input against the §6 tables (:mod:`.spec`).

:func:`validate_snapshot` and :func:`validate_progress` return the payload exactly as it will be
sent to DVCQG, or raise :class:`core.errors.ValidationError` listing the problems, one
:class:`FieldError` each, with paths such as ``TaiLieuNop[0].TenTepDinhKem`` or ``[3].ThoiDiemXuLy``:
the first :data:`MAX_LISTED_ERRORS`, the others counted in ``more_errors``; past
:data:`MAX_COUNTED_ERRORS` no further rows are examined (``stopped``). Pure functions, no I/O.

Normalisation (§6.0): every scalar becomes a JSON string (except ``DanhSachTepDinhKemKhac``
``SoLuong``/``LoaiGiayTo``, which stay integers), codes sent as JSON integers become strings, text
is NFC, texts over :data:`FIELD_LIMITS` are cut at a character boundary and end in ``"..."``,
absent optional scalars become ``""`` and absent lists ``[]`` (see docs/decisions.md,
"dossier validation", for the exceptions).

Bounds (issue 13): a text, identifier or URL longer than ``[dossiers] max_text_chars``, or with more
than ``max_combining_marks`` combining marks in a row, is an error found before normalising
(normalisation costs the square of a run of marks); the §6.0 truncation applies below the bound.

Error messages never repeat the value of a free-text, identifier or URL field, nor of any field in
:data:`PERSONAL_FIELDS`: they name what was expected and the JSON type that came.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from config.schema import DossierSettings
from core.errors import FieldError, ValidationError
from gateway.dossier.spec import (
    DOSSIER,
    ELLIPSIS,
    FIELD_LIMITS,
    IS_DELETED_FALSE,
    IS_DELETED_TRUE,
    LOCAL_ONLY_FIELD,
    MAHOSO_KHAC,
    MAX_NUMBER_DIGITS,
    MAX_PROGRESS_ITEMS,
    PERSONAL_FIELDS,
    PROGRESS,
    Kind,
    Spec,
    Table,
)


@dataclass(frozen=True)
class Validated:
    """One validated event, ready to send to the portal.

    ``payload``: §6.1 dossier or §6.9 progress item, every scalar a JSON string, lists never null.
    ``truncated``: the *names* of the fields that were cut (one entry per cut value, in document
    order), for a metric label; never values.
    ``mahoso_khac``: the agency's alternative dossier code (§8 step 2), "" if none. It is not in
    ``payload`` because it is never forwarded to the portal; when the code rule is on
    (``[portal] province_code``) the acceptor stores it beside the payload for
    :mod:`gateway.portalcode`, which drops it on the way out.
    """

    payload: Mapping[str, Any]
    truncated: tuple[str, ...] = ()
    mahoso_khac: str = ""


# --------------------------------------------------------------------------- checking
#
# One checker per field, built once from its Spec by the builder of its Kind:
# ``check(value, prefix, col)`` returns the field's outgoing value (``_OMIT``: leave the key out),
# where ``value`` is ``_MISSING`` when the key is absent and ``prefix`` is the row's path. A checker
# tests for the well-formed value first and hands anything else to ``_reject``, which is where
# blanks become defaults or "required" errors; paths are built only when a problem is recorded.
# A JSON integer is ``type(value) is int`` (a boolean is not one).


class _Missing:
    """Marks a key absent from the body (as opposed to JSON null)."""


_MISSING = _Missing()
_OMIT = object()  # a checker's answer meaning "leave the key out of the payload"


#: At most this many problems are listed in one answer; the rest are counted (``more_errors``):
#: 100,000 unknown keys made a 9.9 MB answer (issue 13).
MAX_LISTED_ERRORS = 50
#: Once this many problems are found, no further list rows or progress items are examined (the
#: answer says the check stopped): 300,000 empty rows cost seconds to walk, for nobody's benefit.
#: Unknown keys of an object already being examined are still all counted (one set operation).
MAX_COUNTED_ERRORS = 1000
#: At most this many unknown keys per request get a "did you mean" (each search costs difflib time).
MAX_SUGGESTIONS = 5
#: Unknown keys are named by at most this many characters in an error's ``field``.
MAX_KEY_SHOWN = 64


# --------------------------------------------------------------------------- text bounds
#
# unicodedata.normalize puts each run of combining marks in canonical order by insertion sort, so
# NFC costs the square of the longest run: "a" + 64,000 marks took 6.6 s (issue 13). A text is
# therefore measured before it is normalised, and a run of marks is bounded. A "mark" here is a
# code point whose canonical decomposition is only combining marks (canonical combining class not
# 0): the marks themselves and the few letters such as U+0F73 that decompose into marks only, so
# a run cannot hide behind them. Every such code point is below U+20000 (a test checks it).

_MARK_SCAN_END = 0x20000
_ASTRAL = "\\U00010000-\\U0010ffff"


def _is_mark(ch: str) -> bool:
    if unicodedata.combining(ch):
        return True
    d = unicodedata.decomposition(ch)
    return bool(d) and not d.startswith("<") and all(unicodedata.combining(c)
                                                     for c in unicodedata.normalize("NFD", ch))


def _class_body(points: list[int]) -> str:
    """The body of a regex character class matching ``points`` (sorted), as ranges of escapes."""
    ranges: list[list[int]] = []
    for cp in points:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


_MARK_POINTS = [cp for cp in range(_MARK_SCAN_END) if _is_mark(chr(cp))]  # ~40 ms once, at import
# Split at the BMP: re compiles a class of BMP characters to a bitmap (one lookup per character),
# but a class with any character above it to a list of ranges tried one by one (~20x slower).
_BMP_MARKS = _class_body([cp for cp in _MARK_POINTS if cp < 0x10000])
_ASTRAL_MARKS = _class_body([cp for cp in _MARK_POINTS if cp >= 0x10000])
_MARK_OR_ASTRAL_RE = re.compile(f"[{_BMP_MARKS}{_ASTRAL}]")
_ASTRAL_RE = re.compile(f"[{_ASTRAL}]")


@dataclass(frozen=True)
class _TextBounds:
    max_chars: int
    max_marks: int
    bmp_run: re.Pattern[str]  # a run of more than max_marks marks, in a text without astral characters
    any_run: re.Pattern[str]  # the same in any text (slower)

    def too_many_marks(self, text: str) -> bool:
        """Whether ``text`` has more than ``max_marks`` marks in a row; linear in its length, and
        under a microsecond for a line of NFC Vietnamese (no marks at all)."""
        if not _MARK_OR_ASTRAL_RE.search(text):
            return False
        run = self.any_run if _ASTRAL_RE.search(text) else self.bmp_run
        return run.search(text) is not None


@functools.lru_cache(maxsize=8)
def _text_bounds(settings: DossierSettings) -> _TextBounds:
    n = settings.max_combining_marks + 1
    any_mark = f"(?:[{_BMP_MARKS}]|(?=[{_ASTRAL}])[{_ASTRAL_MARKS}])"
    return _TextBounds(settings.max_text_chars, settings.max_combining_marks,
                       re.compile(f"[{_BMP_MARKS}]{{{n}}}"), re.compile(f"{any_mark}{{{n}}}"))


_DEFAULT_SETTINGS = DossierSettings()


class _Collector:
    """The problems and truncations found while walking one request, and the text bounds it is
    held to. Past MAX_LISTED_ERRORS a problem is only counted (callers test :attr:`full` first and
    skip building its message); past MAX_COUNTED_ERRORS :attr:`stopped` tells the list walkers to
    look no further."""

    def __init__(self, settings: DossierSettings = _DEFAULT_SETTINGS) -> None:
        self.bounds = _text_bounds(settings)
        self.errors: list[FieldError] = []
        self.more = 0
        self.full = False
        self.stopped = False
        self.suggestions = 0
        self.truncated: list[str] = []

    def error(self, path: str, message: str) -> None:
        if self.full:
            self.count()
            return
        self.errors.append(FieldError(path, message))
        self.full = len(self.errors) >= MAX_LISTED_ERRORS

    def count(self, n: int = 1) -> None:
        """Count ``n`` problems beyond the listed ones."""
        self.more += n
        self.stopped = MAX_LISTED_ERRORS + self.more >= MAX_COUNTED_ERRORS

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationError(list(self.errors), more_errors=self.more, stopped=self.stopped)


#: ``check(value, prefix, col)``: the outgoing value of one field (see above).
Checker = Callable[[object, str, _Collector], object]

#: ``check_row(obj, prefix, col)``: the outgoing row (every field of the table, in table order).
RowChecker = Callable[[Mapping[str, Any], str, _Collector], dict[str, Any]]

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
    text = json.dumps(value[:40] if isinstance(value, str) else value, ensure_ascii=False)
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
    Kind.AMOUNT: "a non-negative whole amount in VND of at most 18 digits, as a string of digits or an integer, "
                 "e.g. \"50000\"",
    Kind.COUNT: "a non-negative integer of at most 18 digits (or a string of digits)",
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


def _reject(spec: Spec, value: object, prefix: str, col: _Collector, why: str = "") -> object:
    """``value`` is not a well-formed value of ``spec``: a blank (absent, null, "", white space) is
    the default of an optional field and an error for a required one; anything else is an
    "expected …; got …" error. Returns the outgoing value (None as a placeholder after an error)."""
    if col.full and (spec.req == "R" or not _is_blank(value)):
        col.count()
        return None
    if not _is_blank(value):
        message = f"expected {_expected(spec)}; got {_came(spec, value)}{why}"
    elif spec.req != "R":
        return _default(spec)
    else:
        how = "missing" if value is _MISSING else "null" if value is None else "empty"
        message = f"required field is {how}; expected {_expected(spec)}"
    col.error(_join(prefix, spec.name), message)
    return None


def _nfc(spec: Spec, value: str, prefix: str, col: _Collector) -> str | None:
    """``value`` in NFC, if it is within the text bounds; else None, with the problem recorded.
    The bounds are checked first: normalising costs the square of a run of marks."""
    bounds = col.bounds
    if len(value) > bounds.max_chars:
        problem = f"is {len(value)} characters long; the gateway takes at most {bounds.max_chars} in one field"
    elif value.isascii():
        return value
    elif bounds.too_many_marks(value):
        problem = (f"has more than {bounds.max_marks} combining marks (accents) in a row; "
                   f"a Vietnamese letter needs at most 2")
    else:
        return unicodedata.normalize("NFC", value)
    if col.full:
        col.count()
    else:
        col.error(_join(prefix, spec.name), problem)
    return None


def _text_checker(spec: Spec) -> Checker:
    """A string, not blank, within the text bounds; sent in NFC, cut to its FIELD_LIMITS entry
    (recorded in ``truncated``)."""
    limit = FIELD_LIMITS.get(spec.name)

    def check(value: object, prefix: str, col: _Collector) -> object:
        if not isinstance(value, str) or not value or value.isspace():
            return _reject(spec, value, prefix, col)
        text = _nfc(spec, value, prefix, col)
        if text is None:
            return None
        if limit is not None and len(text) > limit:
            col.truncated.append(spec.name)
            return truncate(text, limit)
        return text

    return check


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


def _id_checker(spec: Spec) -> Checker:
    """A string (not blank, within the text bounds, sent in NFC) or an integer (sent as its digits)."""
    def check(value: object, prefix: str, col: _Collector) -> object:
        if isinstance(value, str) and value and not value.isspace():
            return _nfc(spec, value, prefix, col)
        if type(value) is int:
            return str(value)
        return _reject(spec, value, prefix, col)

    return check


def _date_checker(spec: Spec) -> Checker:
    """A 14-digit string yyyyMMddHHmmss that is a real time; sent as it came."""
    def check(value: object, prefix: str, col: _Collector) -> object:
        if not (isinstance(value, str) and len(value) == 14 and value.isascii() and value.isdigit()):
            return _reject(spec, value, prefix, col)
        problem = _time_problem(int(value))
        return _reject(spec, value, prefix, col, problem) if problem else value

    return check


def _time_problem(digits: int) -> str:
    """Why yyyyMMddHHmmss, read as one number, is not a real time ("" if it is)."""
    rest, second = divmod(digits, 100)  # one int() and divmod: half the cost of six slices
    rest, minute = divmod(rest, 100)
    rest, hour = divmod(rest, 100)
    rest, day = divmod(rest, 100)
    year, month = divmod(rest, 100)
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        return f", which is not a real time ({exc})"
    return ""


def _code_checker(spec: Spec) -> Checker:
    """One of the table's codes, as a string or an integer; sent as a string."""
    codes = frozenset(spec.codes)

    def check(value: object, prefix: str, col: _Collector) -> object:
        code = value if isinstance(value, str) else str(value) if type(value) is int else None
        if code in codes:
            return code
        return _reject(spec, value, prefix, col)

    return check


_DIGITS_RE = re.compile(r"[0-9]+")

_NUMBER_BOUND = 10**MAX_NUMBER_DIGITS
_TOO_LONG = f" with more than {MAX_NUMBER_DIGITS} digits"


def _whole_number(value: object) -> int | None:
    """``value`` as a non-negative integer of at most MAX_NUMBER_DIGITS digits, if it is one (JSON
    integer or string of digits); the length is checked before converting."""
    if type(value) is int:
        return value if 0 <= value < _NUMBER_BOUND else None
    if isinstance(value, str) and len(value) <= MAX_NUMBER_DIGITS and _DIGITS_RE.fullmatch(value):
        return int(value)
    return None


def _number_problem(value: object) -> str:
    """Why ``value``, refused by :func:`_whole_number`, was: "" unless it is too long."""
    if type(value) is int and value >= _NUMBER_BOUND:
        return _TOO_LONG
    if isinstance(value, str) and len(value) > MAX_NUMBER_DIGITS and value.isascii() and value.isdigit():
        return _TOO_LONG
    return ""


def _amount_checker(spec: Spec) -> Checker:
    """A non-negative whole number (digits or integer, at most 18 digits); sent as canonical digits
    ("007" → "7")."""
    def check(value: object, prefix: str, col: _Collector) -> object:
        number = _whole_number(value)
        return _reject(spec, value, prefix, col, _number_problem(value)) if number is None else str(number)

    return check


def _count_checker(spec: Spec) -> Checker:
    """A non-negative whole number (digits or integer, at most 18 digits); sent as a JSON integer
    (§6.0 exception)."""
    def check(value: object, prefix: str, col: _Collector) -> object:
        number = _whole_number(value)
        return _reject(spec, value, prefix, col, _number_problem(value)) if number is None else number

    return check


#: Exactly the characters that are white space (``str.isspace``) or control characters (Cc).
_SPACE_OR_CONTROL_RE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def _url_problem(value: str) -> str:
    """Why ``value`` is not an absolute http(s) URL ("" if it is). Never repeats the URL."""
    if _SPACE_OR_CONTROL_RE.search(value):
        return " containing white space or control characters"
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


def _url_checker(spec: Spec) -> Checker:
    """An absolute http(s) URL with a host, no white space or control characters, within the text
    bounds; sent in NFC."""
    def check(value: object, prefix: str, col: _Collector) -> object:
        if not isinstance(value, str) or _is_blank(value):
            return _reject(spec, value, prefix, col)
        url = _nfc(spec, value, prefix, col)
        if url is None:
            return None
        problem = _url_problem(url)
        return _reject(spec, value, prefix, col, problem) if problem else url

    return check


_DELETED_IN: Mapping[str, str] = MappingProxyType({
    "True": IS_DELETED_TRUE, "False": IS_DELETED_FALSE, "1": IS_DELETED_TRUE, "0": IS_DELETED_FALSE,
})


def _deleted_checker(spec: Spec) -> Checker:
    """OC's "True"/"False", TH's "1"/"0", JSON true/false or 1/0; sent as IS_DELETED_TRUE/FALSE."""
    def check(value: object, prefix: str, col: _Collector) -> object:
        form = str(value) if isinstance(value, int) else value  # true → "True", 1 → "1"
        sent = _DELETED_IN.get(form) if isinstance(form, str) else None
        return _reject(spec, value, prefix, col) if sent is None else sent

    return check


def _list_checker(spec: Spec) -> Checker:
    """An array of rows of ``spec.item``, each checked by that table's row checker."""
    item = spec.item
    assert item is not None
    check_row = _row_checker(item)

    def check(value: object, prefix: str, col: _Collector) -> object:
        if not isinstance(value, list):
            return _reject(spec, value, prefix, col, f" (rows of {item.title})")
        path = _join(prefix, spec.name)
        rows: list[dict[str, Any]] = []
        for i, row in enumerate(value):
            if col.stopped:
                break
            if isinstance(row, dict):
                rows.append(check_row(row, f"{path}[{i}]", col))
            else:
                col.error(f"{path}[{i}]", f"expected an object (a {item.title} row); got {_json_type(row)}")
        return rows

    return check


_CHECKER_OF_KIND: Mapping[Kind, Callable[[Spec], Checker]] = MappingProxyType({
    Kind.TEXT: _text_checker,
    Kind.ID: _id_checker,
    Kind.DATE: _date_checker,
    Kind.CODE: _code_checker,
    Kind.AMOUNT: _amount_checker,
    Kind.COUNT: _count_checker,
    Kind.URL: _url_checker,
    Kind.DELETED: _deleted_checker,
    Kind.LIST: _list_checker,
})


def _unknown_message(key: str, table: Table, allowed: frozenset[str], col: _Collector) -> str:
    """The message for unknown ``key``: with a "did you mean" for the first MAX_SUGGESTIONS keys of
    the request that are near a field name (keys longer than any name are not searched)."""
    hint = ""
    if col.suggestions < MAX_SUGGESTIONS and len(key) <= MAX_KEY_SHOWN:
        names = [*table.index, *allowed]
        close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
        if not close:
            close = [n for n in names if n.lower() == key.lower()]
        if close:
            col.suggestions += 1
            hint = f"; did you mean {close[0]!r}?"
    return f"unknown field: not in {table.title} (field names are case-sensitive){hint}"


def _shown_key(key: str) -> str:
    return key if len(key) <= MAX_KEY_SHOWN else key[:MAX_KEY_SHOWN - 3] + "..."


def _report_unknown(obj: Mapping[str, Any], table: Table, prefix: str, col: _Collector,
                    known: frozenset[str]) -> None:
    """One error per key of ``obj`` not in ``known`` (the table's fields and the allowed extras);
    once the collector is full the remaining keys are counted in one set operation."""
    allowed = known - table.names
    listed = 0
    for key in obj:
        if key not in known:
            if col.full:
                col.count(len(obj.keys() - known) - listed)
                return
            col.error(_join(prefix, _shown_key(key)), _unknown_message(key, table, allowed, col))
            listed += 1


def _row_checker(table: Table, allowed: frozenset[str] = frozenset()) -> RowChecker:
    """The checker of one row of ``table``: unknown keys (other than ``allowed``) are errors, then
    every field is checked, in table order."""
    checks = tuple((spec.name, _CHECKER_OF_KIND[spec.kind](spec)) for spec in table.fields)
    known = table.names | allowed

    def check_row(obj: Mapping[str, Any], prefix: str, col: _Collector) -> dict[str, Any]:
        if not obj.keys() <= known:
            _report_unknown(obj, table, prefix, col, known)
        out: dict[str, Any] = {}
        for name, check in checks:
            value = check(obj.get(name, _MISSING), prefix, col)
            if value is not _OMIT:
                out[name] = value
        return out

    return check_row


_CHECK_DOSSIER = _row_checker(DOSSIER, frozenset({LOCAL_ONLY_FIELD}))
_CHECK_PROGRESS = _row_checker(PROGRESS)
_CHECK_MAHOSO_KHAC = _id_checker(MAHOSO_KHAC)


def _check_same_code(payload: Mapping[str, Any], path_mahoso: str, field: str,
                     col: _Collector) -> None:
    """The body's ``MaHoSo`` (already checked) must be the URL path's."""
    body_code = payload.get("MaHoSo")
    if isinstance(body_code, str) and body_code != unicodedata.normalize("NFC", path_mahoso):
        col.error(field, f"must equal the dossier code in the URL path: the path has {_shown_key(path_mahoso)!r}, "
                         f"the body has {_shown_key(body_code)!r}")


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


def validate_snapshot(path_mahoso: str, body: object, settings: DossierSettings = _DEFAULT_SETTINGS) -> Validated:
    """Validate and normalise one dossier snapshot (§6.1) for ``PUT /v1/dossiers/{path_mahoso}``.

    Raises :class:`ValidationError` listing the problems: a body that is not an object (field
    ``""``), unknown fields, missing required fields (``ChuHoSo`` included), unreal dates, codes
    outside their tables, bad amounts or URLs, a body ``MaHoSo`` that differs from the path.
    ``MaHoSoKhac`` is checked, returned in ``mahoso_khac`` and left out of the payload (never
    forwarded); it is not stored.
    """
    if not isinstance(body, dict):
        raise ValidationError([FieldError("", f"expected a JSON object (one dossier, spec §6.1); "
                                              f"got {_json_type(body)}")])
    col = _Collector(settings)
    payload = _CHECK_DOSSIER(body, "", col)
    alt = _CHECK_MAHOSO_KHAC(body.get(LOCAL_ONLY_FIELD, _MISSING), "", col)
    _check_same_code(payload, path_mahoso, "MaHoSo", col)
    col.raise_if_any()
    if not payload["DinhDanhCHS"]:
        payload["DinhDanhCHS"] = derive_dinh_danh(payload["SoGiayToChuHoSo"])
    return Validated(payload, tuple(col.truncated), alt if isinstance(alt, str) else "")


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


def validate_progress(path_mahoso: str, body: object,
                      settings: DossierSettings = _DEFAULT_SETTINGS) -> list[Validated]:
    """Validate and normalise progress for ``POST /v1/dossiers/{path_mahoso}/progress`` (§6.9).

    ``body`` is one item (errors on ``ThoiDiemXuLy``…) or a non-empty list of at most
    :data:`MAX_PROGRESS_ITEMS` items (errors on ``[3].ThoiDiemXuLy``…). An item without
    ``MaHoSo`` takes the path's; one with another code is an error. Returns one
    :class:`Validated` per item, in the order given. Raises :class:`ValidationError` listing
    the problems of every item (the first 50, the others counted).
    """
    items, single = _progress_items(body)
    col = _Collector(settings)
    results: list[Validated] = []
    for i, item in enumerate(items):
        if col.stopped:
            break
        prefix = "" if single else f"[{i}]"
        if not isinstance(item, dict):
            col.error(prefix, f"expected an object (a §6.9 progress item); got {_json_type(item)}")
            continue
        if _is_blank(item.get("MaHoSo", _MISSING)):
            item = {**item, "MaHoSo": path_mahoso}
        first_cut = len(col.truncated)
        payload = _CHECK_PROGRESS(item, prefix, col)
        _check_same_code(payload, path_mahoso, _join(prefix, "MaHoSo"), col)
        results.append(Validated(payload, tuple(col.truncated[first_cut:])))
    col.raise_if_any()
    return results
