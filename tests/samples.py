"""Reusable, realistic, *fictitious* agency input for tests (spec §6.1 dossier, §6.9 progress).

Every call returns fresh dicts, so a test may mutate what it gets. Both factories produce input
that :func:`gateway.dossier.validate_snapshot` / ``validate_progress`` accept as is. Names, ID
numbers, phones and addresses are invented; URLs use ``example.com``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

DEFAULT_MAHOSO = "000.00.01.H55-240315-00012"

#: Reception time of the sample dossier; progress items start here, one hour apart.
SAMPLE_RECEIVED = "20240315093000"

_FMT = "%Y%m%d%H%M%S"


def sample_dossier(mahoso: str = DEFAULT_MAHOSO, **overrides: Any) -> dict[str, Any]:
    """A complete dossier snapshot (state "4", đang xử lý) as an agency would PUT it.

    ``overrides`` replace top-level fields (pass ``None`` to send JSON null). It carries every
    sub-table once, a 12-digit owner number and no ``DinhDanhCHS`` (the gateway derives it).
    """
    dossier: dict[str, Any] = {
        "MaHoSo": mahoso,
        "MaTTHC": "1.001612.000.00.00.H55",
        "TenTTHC": "Cấp giấy chứng nhận đăng ký hộ kinh doanh",
        "MaLinhVuc": "G09-TL02",
        "TenLinhVuc": "Thành lập và hoạt động của hộ kinh doanh",
        "SoBienNhan": "BN-2024-000123",
        "KenhThucHien": "2",
        "ChuHoSo": "Trần Thị Mẫu",
        "SoGiayToChuHoSo": "079199000001",
        "LoaiDoiTuong": "1",
        "MaDoiTuong": "",
        "ThongTinKhac": "",
        "Email": "tran.thi.mau@example.com",
        "Fax": "",
        "SoDienThoai": "0912000001",
        "TrichYeuHoSo": "Đăng ký thành lập hộ kinh doanh tạp hóa tại phường Mẫu Sơn",
        "NgayTiepNhan": SAMPLE_RECEIVED,
        "NgayHenTra": "20240320170000",
        "TrangThaiHoSo": "4",
        "NgayTra": "",
        "ThongTinTra": "",
        "HinhThuc": "0",
        "NgayKetThucXuLy": "",
        "DonViXuLy": "Phòng Tài chính - Kế hoạch huyện Mẫu Sơn",
        "GhiChu": "Hồ sơ thử nghiệm, dữ liệu hư cấu",
        "NgayNopHoSo": "20240315090512",
        "NgayTuChoi": "",
        "NoiNopHoSo": "2",
        "HoSoCoThanhPhanSoHoa": "1",
        "TaiKhoanDuocXacThucVoiVNeID": "1",
        "DuocThanhToanTrucTuyen": "0",
        "TaiLieuNop": [
            {
                "TepDinhKemId": "f-0001",
                "TenTepDinhKem": "Giấy đề nghị đăng ký hộ kinh doanh.pdf",
                "IsDeleted": "False",
                "MaThanhPhanHoSo": "GT-001",
                "DuongDanTaiTepTin": "https://motcua.example.com/tep/f-0001.pdf",
                "DuocSoHoa": "1",
                "DuocTaiSuDung": "0",
                "DuocLayTuKhoDMQG": "0",
                "MaKetQuaThayThe": "",
            },
            {
                "TepDinhKemId": "f-0002",
                "TenTepDinhKem": "Bản sao hợp đồng thuê địa điểm kinh doanh.pdf",
                "IsDeleted": "False",
                "MaThanhPhanHoSo": "GT-002",
                "DuongDanTaiTepTin": "https://motcua.example.com/tep/f-0002.pdf",
                "DuocSoHoa": "1",
                "DuocTaiSuDung": "1",
                "DuocLayTuKhoDMQG": "0",
            },
        ],
        "DanhSachLePhi": [
            {"TenPhiLePhi": "Lệ phí đăng ký hộ kinh doanh", "MaPhiLePhi": "1", "HinhThucThu": "1",
             "Gia": "100000", "LoaiPhiLePhi": "2"},
        ],
        "DanhSachTepDinhKemKhac": [
            {"TenGiayTo": "Bản sao căn cước của chủ hộ", "SoLuong": 1, "LoaiGiayTo": 1},
        ],
        "DanhSachHoSoBoSung": [],
        "DanhSachGiayToKetQua": [],
        "DSKetNoiCSDL": [{"MaCSDL": "7"}],
    }
    dossier.update(overrides)
    return dossier


_STEPS = [
    ("2", "Tiếp nhận hồ sơ", "Bộ phận Một cửa"),
    ("4", "Chuyển hồ sơ đến phòng chuyên môn", "Bộ phận Một cửa"),
    ("4", "Thẩm định hồ sơ", "Phòng Tài chính - Kế hoạch"),
    ("4", "Trình lãnh đạo phê duyệt", "Phòng Tài chính - Kế hoạch"),
]


def sample_progress(mahoso: str = DEFAULT_MAHOSO, n: int = 3) -> list[dict[str, Any]]:
    """``n`` progress items (§6.9) in the order they happened, one hour apart from reception.

    The first is "2" (Tiếp nhận hồ sơ); the middle ones are "4"; when ``n >= 3`` the last is "9"
    (Đã xử lý xong). Every state change is "normal" under §7.2.
    """
    start = datetime.strptime(SAMPLE_RECEIVED, _FMT)
    items: list[dict[str, Any]] = []
    for i in range(n):
        state, what, department = _STEPS[min(i, len(_STEPS) - 1)]
        if n >= 3 and i == n - 1:
            state, what = "9", "Đã xử lý xong, chờ trả kết quả"
        at = start + timedelta(hours=i)
        items.append({
            "MaHoSo": mahoso,
            "NguoiXuLy": f"Lê Văn Thử {i + 1}",
            "ChucDanh": "Chuyên viên",
            "ThoiDiemXuLy": at.strftime(_FMT),
            "PhongBanXuLy": department,
            "NoiDungXuLy": what,
            "TrangThai": state,
            "NgayBatDau": at.strftime(_FMT),
            "NgayKetThucTheoQuyDinh": (at + timedelta(days=1)).strftime(_FMT),
        })
    return items
