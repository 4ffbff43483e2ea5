"""The sandbox's field checks for dossiers (§6.1) and progress items (§6.9). Pure and cheap.

Each check returns a Vietnamese message naming the field, or None when the object is acceptable.
Rules enforced (as strictly as the spec allows):

* required fields present and non-empty;
* every scalar is a JSON string, except ``DanhSachTepDinhKemKhac[].SoLuong`` / ``LoaiGiayTo``,
  which may also be integers (§6.0);
* list fields are arrays of objects (never ``null``);
* dates are ``yyyyMMddHHmmss`` (a real calendar date), or ``""`` when optional;
* ``KenhThucHien`` ∈ 1–3, ``TrangThaiHoSo`` / ``TrangThai`` ∈ 1–10;
* text limits: ``TrichYeuHoSo`` ≤ 1000, ``NguoiXuLy`` ≤ 50, ``TenTepDinhKem`` ≤ 4000 characters.

Unknown keys are tolerated (the portal's behaviour for them is not known).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from typing import Any

DOSSIER_REQUIRED = ("MaHoSo", "MaTTHC", "TenTTHC", "KenhThucHien", "ChuHoSo", "NgayTiepNhan", "TrangThaiHoSo")
PROGRESS_REQUIRED = ("MaHoSo", "NguoiXuLy", "ThoiDiemXuLy", "TrangThai")

DATE_FIELDS = frozenset(
    {
        "NgayTiepNhan", "NgayHenTra", "NgayTra", "NgayKetThucXuLy", "NgayNopHoSo", "NgayTuChoi",
        "NgayBoSung", "NgayTiepNhanBoSung", "NgayHenTraTruoc", "NgayHenTraMoi",
        "ThoiDiemXuLy", "NgayBatDau", "NgayKetThucTheoQuyDinh",
    }
)  # fmt: skip
_CODES: dict[str, frozenset[str]] = {
    "KenhThucHien": frozenset({"1", "2", "3"}),
    "TrangThaiHoSo": frozenset(str(n) for n in range(1, 11)),
    "TrangThai": frozenset(str(n) for n in range(1, 11)),
}
_MAX_LEN = {"TrichYeuHoSo": 1000, "NguoiXuLy": 50, "TenTepDinhKem": 4000}
_CHECKED_TEXT = DATE_FIELDS | _CODES.keys() | _MAX_LEN.keys()
_INT_OK = {"DanhSachTepDinhKemKhac": frozenset({"SoLuong", "LoaiGiayTo"})}
_DATE = re.compile(r"(\d{4})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])([01]\d|2[0-3])[0-5]\d[0-5]\d")


def is_portal_date(value: str) -> bool:
    """True for a real ``yyyyMMddHHmmss`` timestamp (calendar-checked)."""
    m = _DATE.fullmatch(value)
    if m is None:
        return False
    day = int(m.group(3))
    return day <= 28 or day <= calendar.monthrange(int(m.group(1)), int(m.group(2)))[1]


def dossier_problem(dossier: Any) -> str | None:
    """What is wrong with one ``DongBoHoSoMC`` dossier object, or None."""
    return _object_problem(dossier, DOSSIER_REQUIRED, "")


def progress_problem(item: Any) -> str | None:
    """What is wrong with one ``CapNhatTienDoHoSoMC`` progress item, or None."""
    return _object_problem(item, PROGRESS_REQUIRED, "")


def _object_problem(obj: Any, required: tuple[str, ...], parent: str) -> str | None:
    if not isinstance(obj, dict):
        return f"Phần tử {parent or 'data'} phải là một đối tượng JSON"
    for name in required:
        value = obj.get(name)
        if not isinstance(value, str) or not value.strip():
            return f"Thiếu trường bắt buộc {name}"
    for name, value in obj.items():
        problem = _value_problem(name, value, parent)
        if problem is not None:
            return problem
    return None


def _value_problem(name: str, value: Any, parent: str) -> str | None:
    if type(value) is str:  # the common case first: most fields are plain text
        return _text_problem(name, value, parent) if name in _CHECKED_TEXT else None
    if isinstance(value, list):
        return _list_problem(name, value)
    if isinstance(value, int) and not isinstance(value, bool) and name in _INT_OK.get(parent, ()):
        return None
    if not isinstance(value, str):
        return f"Trường {_path(parent, name)} phải là chuỗi (string)"
    return _text_problem(name, value, parent)


def _list_problem(name: str, items: list[Any]) -> str | None:
    for item in items:
        problem = _object_problem(item, (), name)
        if problem is not None:
            return problem
    return None


def _text_problem(name: str, value: str, parent: str) -> str | None:
    if name in DATE_FIELDS and value != "" and not is_portal_date(value):
        return f"Trường {_path(parent, name)} không đúng định dạng yyyyMMddHHmmss"
    codes = _CODES.get(name)
    if codes is not None and value not in codes:
        return f"Trường {_path(parent, name)} có giá trị không hợp lệ"
    limit = _MAX_LEN.get(name)
    if limit is not None and len(value) > limit:
        return f"Trường {_path(parent, name)} vượt quá {limit} ký tự"
    return None


def _path(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def code_of(obj: Mapping[str, Any] | Any) -> str | None:
    """The ``MaHoSo`` of an object when it is a non-empty string, else None."""
    if isinstance(obj, dict):
        code = obj.get("MaHoSo")
        if isinstance(code, str) and code:
            return code
    return None
