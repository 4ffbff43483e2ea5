"""Helpers of the 766 tests: dossiers as agencies send them (validated by the gateway's own
validator, so the payloads have the exact shape the engine carries) and local dates."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gateway.dossier import validate_progress, validate_snapshot
from tests.samples import sample_dossier

OFFSET_S = 7 * 3600
UNIT_A = "000.00.01.H55"
UNIT_B = "000.00.02.H55"


def local(text: str) -> float:
    """Unix seconds of a local (UTC+7) ``yyyyMMddHHmmss`` time."""
    return dt.datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=dt.timezone(dt.timedelta(hours=7))).timestamp()


def code(unit: str, n: int) -> str:
    return f"{unit}-261103-{n:05d}"


def dossier(mahoso: str, *, received: str = "20261103080000", due: str = "20261110170000", status: str = "4",
            **fields: Any) -> dict[str, Any]:
    """A valid snapshot body: the sample dossier with a neutral 766 profile (in person, no fee, no
    digitisation flags, no VNeID, no result) unless ``fields`` say otherwise."""
    neutral: dict[str, Any] = {
        "NgayTiepNhan": received, "NgayNopHoSo": received, "NgayHenTra": due, "TrangThaiHoSo": status,
        "KenhThucHien": "1", "DuocThanhToanTrucTuyen": "0", "HoSoCoThanhPhanSoHoa": "0",
        "TaiKhoanDuocXacThucVoiVNeID": "0", "TaiLieuNop": [], "DanhSachLePhi": [], "DSKetNoiCSDL": [],
        "DanhSachGiayToKetQua": [], "DanhSachHoSoBoSung": [],
    }
    return sample_dossier(mahoso, **{**neutral, **fields})


def payload(mahoso: str, **kw: Any) -> dict[str, Any]:
    return dict(validate_snapshot(mahoso, dossier(mahoso, **kw)).payload)


def step(mahoso: str, status: str, at: str) -> dict[str, Any]:
    """One progress item body."""
    return {"MaHoSo": mahoso, "NguoiXuLy": "Chuyên viên", "ThoiDiemXuLy": at, "TrangThai": status,
            "NoiDungXuLy": "bước xử lý"}


def progress_payloads(mahoso: str, *steps: tuple[str, str]) -> list[dict[str, Any]]:
    return [dict(v.payload) for v in validate_progress(mahoso, [step(mahoso, s, at) for s, at in steps])]


def document(**flags: str) -> dict[str, Any]:
    """One TaiLieuNop row (its file link is required, so a row is a submitted file)."""
    return {"TenTepDinhKem": "Tờ khai.pdf", "DuongDanTaiTepTin": "https://motcua.example.com/t/1.pdf",
            "DuocSoHoa": "1", **flags}


def result(link: str = "https://motcua.example.com/kq/1.pdf") -> dict[str, Any]:
    return {"TenGiayTo": "Giấy chứng nhận", "DuongDanTepTinKetQua": link}


def fee(amount: str) -> dict[str, Any]:
    return {"TenPhiLePhi": "Lệ phí", "Gia": amount}


def supplement(asked: str, done: str = "") -> dict[str, Any]:
    return {"HoSoBoSungId": "bs-1", "NgayBoSung": asked, "NgayTiepNhanBoSung": done}
