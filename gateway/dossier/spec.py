"""The §6 dossier model as data: field tables (§6.1–§6.9) and the §6.0 constants.

No checking here: :mod:`gateway.dossier.validate` and :mod:`gateway.dossier.schema` are both
derived from these tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Literal

from gateway.transitions import STATE_CODES

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

#: Amounts and counts have at most this many digits (string or JSON integer). 18 nines fit in a
#: signed 64-bit integer, whatever the reader; a longer string reached int(), which raises past
#: 4,300 digits (a 500) and costs the square of the length below that.
MAX_NUMBER_DIGITS = 18

#: Fields the procedure catalogue fills when the agency leaves them out (gateway/catalogue/fill.py).
FROM_CATALOGUE: frozenset[str] = frozenset({"TenTTHC", "MaLinhVuc", "TenLinhVuc"})

#: Fields whose values are personal data: never echoed in an error message.
PERSONAL_FIELDS: frozenset[str] = frozenset(
    {"ChuHoSo", "SoGiayToChuHoSo", "SoDinhDanh", "Email", "SoDienThoai", "Fax", "MaDoiTuong"}
)

#: Accepted beside §6.1 at the dossier's top level (§8 step 2): checked, returned to the caller in
#: ``Validated.mahoso_khac``, never forwarded to the portal. With the code rule on (``[portal]
#: province_code``) it is stored in the queued payload and dropped by gateway.portalcode on the way out.
LOCAL_ONLY_FIELD = "MaHoSoKhac"


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
    _text("TenTTHC", "S"),  # R on the portal; filled from the procedure catalogue (gateway/catalogue/fill.py)
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

#: The agency's alternative dossier code, an identifier like MaHoSo (see LOCAL_ONLY_FIELD).
MAHOSO_KHAC = _id(LOCAL_ONLY_FIELD)
