"""Validation and normalisation of agency input (spec §6, §7; issue 2 "Validation of PUT")."""

from __future__ import annotations

import copy
import json
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from core.errors import ValidationError
from gateway.dossier import (
    DOSSIER,
    FIELD_LIMITS,
    IS_DELETED_FALSE,
    IS_DELETED_TRUE,
    MAX_PROGRESS_ITEMS,
    PROGRESS,
    Validated,
    dossier_json_schema,
    progress_json_schema,
    truncate,
    validate_progress,
    validate_snapshot,
)
from tests.samples import DEFAULT_MAHOSO, sample_dossier, sample_progress

M = DEFAULT_MAHOSO
Mutation = Callable[[dict[str, Any]], object]


def _errors_of(call: Callable[[], object]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        call()
    return [(e.field, e.message) for e in info.value.errors]


def _fields_of(call: Callable[[], object]) -> list[str]:
    return sorted(field for field, _ in _errors_of(call))


def _set(path: str, value: object) -> Mutation:
    """A mutation setting ``a.b[0].c``-style ``path`` (the last key may be new)."""
    def mutate(d: dict[str, Any]) -> None:
        *parents, last = path.replace("[", ".").replace("]", "").split(".")
        node: Any = d
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
    return mutate


def _drop(path: str) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        *parents, last = path.replace("[", ".").replace("]", "").split(".")
        node: Any = d
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]
    return mutate


def _all(*mutations: Mutation) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        for m in mutations:
            m(d)
    return mutate


_SUPPLEMENT = {
    "HoSoBoSungId": 17, "NgayBoSung": "20240316080000",
    "DanhSachGiayToBoSung": [{"TenTepDinhKem": "Bản vẽ.pdf", "DuongDanTaiTepTin": "https://x.example.com/a"}],
    "DanhSachLePhiBoSung": [{"TenPhiLePhi": "Phí bổ sung", "Gia": 0}],
}

# (case id, mutation of a valid sample dossier, the exact field paths reported)
SNAPSHOT_CASES: list[tuple[str, Mutation, list[str]]] = [
    ("required MaTTHC missing", _drop("MaTTHC"), ["MaTTHC"]),
    ("ChuHoSo required by policy", _drop("ChuHoSo"), ["ChuHoSo"]),
    ("ChuHoSo null", _set("ChuHoSo", None), ["ChuHoSo"]),
    ("MaHoSo missing", _drop("MaHoSo"), ["MaHoSo"]),
    ("NgayTiepNhan 30 February", _set("NgayTiepNhan", "20240230120000"), ["NgayTiepNhan"]),
    ("NgayHenTra hour 25", _set("NgayHenTra", "20240315250000"), ["NgayHenTra"]),
    ("NgayTra ISO form", _set("NgayTra", "2024-03-15T09:30:00"), ["NgayTra"]),
    ("NgayKetThucXuLy as integer", _set("NgayKetThucXuLy", 20240315093000), ["NgayKetThucXuLy"]),
    ("NgayNopHoSo minute 60", _set("NgayNopHoSo", "20240315096000"), ["NgayNopHoSo"]),
    ("NgayTuChoi 13 digits", _set("NgayTuChoi", "2024031509300"), ["NgayTuChoi"]),
    ("TrangThaiHoSo 11", _set("TrangThaiHoSo", "11"), ["TrangThaiHoSo"]),
    ("TrangThaiHoSo 0 as int", _set("TrangThaiHoSo", 0), ["TrangThaiHoSo"]),
    ("TrangThaiHoSo boolean", _set("TrangThaiHoSo", True), ["TrangThaiHoSo"]),
    ("TrangThaiHoSo float", _set("TrangThaiHoSo", 4.0), ["TrangThaiHoSo"]),
    ("KenhThucHien 4", _set("KenhThucHien", 4), ["KenhThucHien"]),
    ("LoaiDoiTuong 5", _set("LoaiDoiTuong", "5"), ["LoaiDoiTuong"]),
    ("HinhThuc 2", _set("HinhThuc", "2"), ["HinhThuc"]),
    ("DuocThanhToanTrucTuyen 4", _set("DuocThanhToanTrucTuyen", "4"), ["DuocThanhToanTrucTuyen"]),
    ("flag 2", _set("HoSoCoThanhPhanSoHoa", "2"), ["HoSoCoThanhPhanSoHoa"]),
    ("flag boolean", _set("TaiKhoanDuocXacThucVoiVNeID", False), ["TaiKhoanDuocXacThucVoiVNeID"]),
    ("unknown top-level field (typo)", _set("TrichYeuHoso", "x"), ["TrichYeuHoso"]),
    ("body MaHoSo differs from path", _set("MaHoSo", "000.00.01.H55-240315-00013"), ["MaHoSo"]),
    ("text as number", _set("TenTTHC", 12), ["TenTTHC"]),
    ("TenTepDinhKem missing", _drop("TaiLieuNop[0].TenTepDinhKem"), ["TaiLieuNop[0].TenTepDinhKem"]),
    ("download URL ftp", _set("TaiLieuNop[1].DuongDanTaiTepTin", "ftp://motcua.example.com/a.pdf"),
     ["TaiLieuNop[1].DuongDanTaiTepTin"]),
    ("download URL relative", _set("TaiLieuNop[0].DuongDanTaiTepTin", "/tep/f-0001.pdf"),
     ["TaiLieuNop[0].DuongDanTaiTepTin"]),
    ("download URL without host", _set("TaiLieuNop[0].DuongDanTaiTepTin", "https:///a.pdf"),
     ["TaiLieuNop[0].DuongDanTaiTepTin"]),
    ("download URL with a space", _set("TaiLieuNop[0].DuongDanTaiTepTin", "https://a.example.com/b c.pdf"),
     ["TaiLieuNop[0].DuongDanTaiTepTin"]),
    ("IsDeleted yes", _set("TaiLieuNop[0].IsDeleted", "yes"), ["TaiLieuNop[0].IsDeleted"]),
    ("DuocTaiSuDung 3", _set("TaiLieuNop[1].DuocTaiSuDung", "3"), ["TaiLieuNop[1].DuocTaiSuDung"]),
    ("unknown field in TaiLieuNop", _set("TaiLieuNop[1].TenTep", "a.pdf"), ["TaiLieuNop[1].TenTep"]),
    ("TaiLieuNop row not an object", _set("TaiLieuNop[1]", "a.pdf"), ["TaiLieuNop[1]"]),
    ("TaiLieuNop an object", _set("TaiLieuNop", {"TenTepDinhKem": "a"}), ["TaiLieuNop"]),
    ("Gia negative", _set("DanhSachLePhi[0].Gia", -1), ["DanhSachLePhi[0].Gia"]),
    ("Gia with thousands dot", _set("DanhSachLePhi[0].Gia", "100.000"), ["DanhSachLePhi[0].Gia"]),
    ("Gia fractional", _set("DanhSachLePhi[0].Gia", 1.5), ["DanhSachLePhi[0].Gia"]),
    ("Gia missing", _drop("DanhSachLePhi[0].Gia"), ["DanhSachLePhi[0].Gia"]),
    ("SoLuong in words", _set("DanhSachTepDinhKemKhac[0].SoLuong", "hai"),
     ["DanhSachTepDinhKemKhac[0].SoLuong"]),
    ("LoaiDinhDanh 3 in second row", _set("DinhDanhCHS", [
        {"LoaiDinhDanh": "1", "SoDinhDanh": "079199000001"},
        {"LoaiDinhDanh": "3", "SoDinhDanh": "B1234567"}]), ["DinhDanhCHS[1].LoaiDinhDanh"]),
    ("SoDinhDanh missing", _set("DinhDanhCHS", [{"LoaiDinhDanh": 1}]), ["DinhDanhCHS[0].SoDinhDanh"]),
    ("MaCSDL row not an object", _set("DSKetNoiCSDL", ["7"]), ["DSKetNoiCSDL[0]"]),
    ("supplement: bad date and nested URL", _set("DanhSachHoSoBoSung", [
        {**_SUPPLEMENT, "NgayBoSung": "20241301000000",
         "DanhSachGiayToBoSung": [{"TenTepDinhKem": "a", "DuongDanTaiTepTin": "mailto:a@b"}]}]),
     ["DanhSachHoSoBoSung[0].DanhSachGiayToBoSung[0].DuongDanTaiTepTin", "DanhSachHoSoBoSung[0].NgayBoSung"]),
    ("supplement fee missing Gia", _set("DanhSachHoSoBoSung", [
        {**_SUPPLEMENT, "DanhSachLePhiBoSung": [{"TenPhiLePhi": "Phí"}]}]),
     ["DanhSachHoSoBoSung[0].DanhSachLePhiBoSung[0].Gia"]),
    ("result document without link", _set("DanhSachGiayToKetQua", [{"TenGiayTo": "Giấy chứng nhận"}]),
     ["DanhSachGiayToKetQua[0].DuongDanTepTinKetQua"]),
    ("MaHoSoKhac an object", _set("MaHoSoKhac", {"a": 1}), ["MaHoSoKhac"]),
    ("several problems, all listed", _all(
        _drop("ChuHoSo"), _set("NgayTiepNhan", "20240431000000"), _set("TaiLieuNop[0].DuocSoHoa", "x"),
        _set("Ghichu", "typo"), _set("MaHoSo", "other"), _set("DanhSachLePhi[0].Gia", "-5")),
     ["ChuHoSo", "DanhSachLePhi[0].Gia", "Ghichu", "MaHoSo", "NgayTiepNhan", "TaiLieuNop[0].DuocSoHoa"]),
]


@pytest.mark.parametrize(("mutation", "expected"), [(m, e) for _, m, e in SNAPSHOT_CASES],
                         ids=[c for c, _, _ in SNAPSHOT_CASES])
def test_bad_snapshot_reports_exact_field_paths(mutation: Mutation, expected: list[str]) -> None:
    """Each bad input yields one error per problem, on exactly the offending field's path."""
    body = sample_dossier(M)
    mutation(body)
    assert _fields_of(lambda: validate_snapshot(M, body)) == sorted(expected)


def test_table_has_at_least_25_cases() -> None:
    """The bad-input table is broad enough to be worth trusting (issue: ≥ 25 cases)."""
    assert len(SNAPSHOT_CASES) >= 25


@pytest.mark.parametrize("body", [[], "dossier", 3, None, True])
def test_snapshot_body_must_be_an_object(body: object) -> None:
    """A snapshot body that is not a JSON object is one error, on field ""."""
    assert _fields_of(lambda: validate_snapshot(M, body)) == [""]


def _progress_case(mutate: Callable[[list[Any]], object], n: int = 5) -> list[Any]:
    items: list[Any] = sample_progress(M, n)
    mutate(items)
    return items


PROGRESS_CASES: list[tuple[str, object, list[str]]] = [
    ("single item, ThoiDiemXuLy missing",
     {k: v for k, v in sample_progress(M, 1)[0].items() if k != "ThoiDiemXuLy"}, ["ThoiDiemXuLy"]),
    ("single item, NguoiXuLy empty", {**sample_progress(M, 1)[0], "NguoiXuLy": ""}, ["NguoiXuLy"]),
    ("list, fourth ThoiDiemXuLy unreal",
     _progress_case(lambda xs: xs[3].update(ThoiDiemXuLy="20230229100000")), ["[3].ThoiDiemXuLy"]),
    ("list, second MaHoSo of another dossier",
     _progress_case(lambda xs: xs[1].update(MaHoSo="000.00.01.H55-240315-00099")), ["[1].MaHoSo"]),
    ("list, third item not an object", _progress_case(lambda xs: xs.__setitem__(2, "x")), ["[2]"]),
    ("list, TrangThai 0", _progress_case(lambda xs: xs[0].update(TrangThai=0)), ["[0].TrangThai"]),
    ("list, MaHoSoKhac is not a progress field",
     _progress_case(lambda xs: xs[4].update(MaHoSoKhac="A-1")), ["[4].MaHoSoKhac"]),
    ("list, several problems in several items",
     _progress_case(lambda xs: (xs[0].update(TrangThai="12"), xs[2].pop("NguoiXuLy"),
                                xs[2].update(NgayBatDau="x"))),
     ["[0].TrangThai", "[2].NgayBatDau", "[2].NguoiXuLy"]),
    ("empty list", [], [""]),
    ("too many items", sample_progress(M, 1) * (MAX_PROGRESS_ITEMS + 1), [""]),
    ("a string", "progress", [""]),
]


@pytest.mark.parametrize(("body", "expected"), [(b, e) for _, b, e in PROGRESS_CASES],
                         ids=[c for c, _, _ in PROGRESS_CASES])
def test_bad_progress_reports_exact_field_paths(body: object, expected: list[str]) -> None:
    """Progress errors name the item index for a list ("[3].X") and the bare field for one item."""
    assert _fields_of(lambda: validate_progress(M, copy.deepcopy(body))) == sorted(expected)


# --------------------------------------------------------------------------- normalisation


def test_sample_dossier_is_accepted_and_fully_keyed() -> None:
    """The sample passes; the payload carries every §6.1 key (optional ones filled), lists not null."""
    result = validate_snapshot(M, sample_dossier(M))
    assert isinstance(result, Validated)
    assert list(result.payload) == [spec.name for spec in DOSSIER.fields]
    assert result.truncated == ()
    for row in result.payload["TaiLieuNop"]:
        assert row["MaKetQuaThayThe"] == row.get("MaKetQuaThayThe", "")
    assert result.payload["DanhSachHoSoBoSung"] == [] and result.payload["DanhSachGiayToKetQua"] == []


def _scalars(value: object, path: str = "") -> list[tuple[str, object]]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _scalars(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _scalars(v, f"{path}[{i}]")]
    return [(path, value)]


def test_every_scalar_goes_out_as_string_except_counts() -> None:
    """§6.0: every outgoing scalar is a JSON string; only SoLuong/LoaiGiayTo stay integers."""
    body = sample_dossier(M, KenhThucHien=2, TrangThaiHoSo=10, LoaiDoiTuong=1, HinhThuc=0,
                          DuocThanhToanTrucTuyen=3, HoSoCoThanhPhanSoHoa=1, NoiNopHoSo=2)
    body["DanhSachLePhi"][0].update(Gia=50000, MaPhiLePhi=1)
    body["DanhSachTepDinhKemKhac"][0].update(SoLuong="2", LoaiGiayTo=3)
    body["DSKetNoiCSDL"] = [{"MaCSDL": 7}]
    payload = validate_snapshot(M, body).payload
    for path, value in _scalars(payload):
        if path.endswith((".SoLuong", ".LoaiGiayTo")):
            assert type(value) is int, path
        else:
            assert type(value) is str, path
    assert (payload["KenhThucHien"], payload["TrangThaiHoSo"], payload["HinhThuc"]) == ("2", "10", "0")
    assert payload["DanhSachLePhi"][0]["Gia"] == "50000"
    assert payload["DanhSachTepDinhKemKhac"][0] == {"TenGiayTo": "Bản sao căn cước của chủ hộ",
                                                    "SoLuong": 2, "LoaiGiayTo": 3}
    assert payload["DSKetNoiCSDL"] == [{"MaCSDL": "7"}]


def test_amount_string_is_canonical_digits() -> None:
    """Amounts come out as plain decimal digits (leading zeros dropped), zero allowed."""
    body = sample_dossier(M)
    body["DanhSachLePhi"].append({"TenPhiLePhi": "Phí", "Gia": "000"})
    body["DanhSachLePhi"][0]["Gia"] = "0050000"
    fees = validate_snapshot(M, body).payload["DanhSachLePhi"]
    assert [fee["Gia"] for fee in fees] == ["50000", "0"]


def test_absent_optionals_are_filled() -> None:
    """Absent or null optional scalars go out as "", lists as [], IsDeleted as the "false" form;
    absent SoLuong/LoaiGiayTo are left out (an integer field cannot be "")."""
    minimal = {k: sample_dossier(M)[k] for k in
               ("MaHoSo", "MaTTHC", "KenhThucHien", "ChuHoSo", "NgayTiepNhan", "TrangThaiHoSo")}
    minimal["Email"] = None
    minimal["TaiLieuNop"] = [{"TenTepDinhKem": "a.pdf", "DuongDanTaiTepTin": "http://h.example.com/a"}]
    minimal["DanhSachTepDinhKemKhac"] = [{"TenGiayTo": "Bản sao"}]
    minimal["DanhSachLePhi"] = None
    payload = validate_snapshot(M, minimal).payload
    assert payload["Email"] == "" and payload["NgayHenTra"] == "" and payload["SoGiayToChuHoSo"] == ""
    assert payload["DanhSachLePhi"] == [] and payload["DinhDanhCHS"] == [] and payload["DSKetNoiCSDL"] == []
    assert payload["TaiLieuNop"][0]["IsDeleted"] == IS_DELETED_FALSE
    assert payload["TaiLieuNop"][0]["DuocSoHoa"] == ""
    assert payload["DanhSachTepDinhKemKhac"] == [{"TenGiayTo": "Bản sao"}]
    # TenTTHC: "S" since the catalogue fills it; the accept path refuses it when nobody can (tests/catalogue)
    assert payload["TenTTHC"] == ""


@pytest.mark.parametrize(("given", "sent"), [
    ("True", IS_DELETED_TRUE), ("False", IS_DELETED_FALSE), ("1", IS_DELETED_TRUE),
    ("0", IS_DELETED_FALSE), (True, IS_DELETED_TRUE), (False, IS_DELETED_FALSE), (1, IS_DELETED_TRUE),
])
def test_is_deleted_forms_converge(given: object, sent: str) -> None:
    """IsDeleted accepts OC's and TH's forms and always sends the one module constant form."""
    body = sample_dossier(M)
    body["TaiLieuNop"][0]["IsDeleted"] = given
    assert validate_snapshot(M, body).payload["TaiLieuNop"][0]["IsDeleted"] == sent


def test_text_is_nfc_everywhere() -> None:
    """Decomposed (NFD) Vietnamese text, top-level and nested, goes out in NFC."""
    nfd = unicodedata.normalize("NFD", "Trần Thị Mẫu")
    body = sample_dossier(M, ChuHoSo=nfd, TenTTHC=unicodedata.normalize("NFD", "Cấp giấy phép"))
    body["TaiLieuNop"][0]["TenTepDinhKem"] = unicodedata.normalize("NFD", "Tờ khai.pdf")
    payload = validate_snapshot(M, body).payload
    assert nfd != "Trần Thị Mẫu"
    assert payload["ChuHoSo"] == "Trần Thị Mẫu"
    assert payload["TenTTHC"] == "Cấp giấy phép"
    assert payload["TaiLieuNop"][0]["TenTepDinhKem"] == "Tờ khai.pdf"


@pytest.mark.parametrize("field", ["TrichYeuHoSo"])
def test_summary_truncation_boundary(field: str) -> None:
    """A text exactly at its limit is kept; one character more is cut to the limit, ending "..."."""
    limit = FIELD_LIMITS[field]
    exact = "ố" * limit
    kept = validate_snapshot(M, sample_dossier(M, **{field: exact}))
    assert kept.payload[field] == exact and kept.truncated == ()
    over = "ố" * (limit + 1)
    cut = validate_snapshot(M, sample_dossier(M, **{field: over}))
    assert cut.payload[field] == "ố" * (limit - 3) + "..."
    assert len(cut.payload[field]) == limit
    assert cut.truncated == (field,)


def test_limit_counts_characters_after_nfc() -> None:
    """The limit is in NFC characters: an NFD text whose NFC form fits is not cut."""
    text = unicodedata.normalize("NFD", "ệ" * 1000)
    assert len(text) > 1000
    result = validate_snapshot(M, sample_dossier(M, TrichYeuHoSo=text))
    assert result.payload["TrichYeuHoSo"] == "ệ" * 1000 and result.truncated == ()


def test_file_name_truncation_in_nested_lists_is_recorded_per_value() -> None:
    """TenTepDinhKem over 4000 is cut in TaiLieuNop and in supplement lists; each cut is recorded."""
    body = sample_dossier(M)
    body["TaiLieuNop"][0]["TenTepDinhKem"] = "a" * 4001
    body["TaiLieuNop"][1]["TenTepDinhKem"] = "b" * 4000
    body["DanhSachHoSoBoSung"] = [{**_SUPPLEMENT, "DanhSachGiayToBoSung": [
        {"TenTepDinhKem": "c" * 5000, "DuongDanTaiTepTin": "https://x.example.com/c"}]}]
    result = validate_snapshot(M, body)
    assert result.payload["TaiLieuNop"][0]["TenTepDinhKem"] == "a" * 3997 + "..."
    assert result.payload["TaiLieuNop"][1]["TenTepDinhKem"] == "b" * 4000
    nested = result.payload["DanhSachHoSoBoSung"][0]["DanhSachGiayToBoSung"][0]["TenTepDinhKem"]
    assert nested == "c" * 3997 + "..."
    assert result.truncated == ("TenTepDinhKem", "TenTepDinhKem")


def test_progress_person_truncated_at_50() -> None:
    """NguoiXuLy: 50 characters kept, 51 cut to 47 + "...", reported on that item only."""
    items = sample_progress(M, 2)
    items[0]["NguoiXuLy"] = "Đ" * 50
    items[1]["NguoiXuLy"] = "Đ" * 51
    first, second = validate_progress(M, items)
    assert first.payload["NguoiXuLy"] == "Đ" * 50 and first.truncated == ()
    assert second.payload["NguoiXuLy"] == "Đ" * 47 + "..." and second.truncated == ("NguoiXuLy",)


def test_truncation_never_splits_a_letter_from_its_combining_mark() -> None:
    """When the cut would fall between a letter and a combining mark (no precomposed form exists),
    the whole letter goes, so the result is still within the limit and well-formed."""
    split = "a" * 46 + "x\u0301" + "b" * 10     # index 47, where the cut falls, is the mark
    assert unicodedata.normalize("NFC", split) == split    # x + acute has no precomposed form
    assert truncate(split, 50) == "a" * 46 + "..."
    whole = "a" * 45 + "x\u0301" + "b" * 10     # the mark is at 46: letter and mark both fit
    assert truncate(whole, 50) == "a" * 45 + "x\u0301" + "..."


def test_owner_identifier_derived_from_12_and_9_digit_numbers() -> None:
    """§7.5: no DinhDanhCHS sent → derived from a 12-digit (type "1") or 9-digit (type "2") number."""
    twelve = validate_snapshot(M, sample_dossier(M, SoGiayToChuHoSo="079199000001")).payload
    assert twelve["DinhDanhCHS"] == [{"LoaiDinhDanh": "1", "SoDinhDanh": "079199000001"}]
    nine = validate_snapshot(M, sample_dossier(M, SoGiayToChuHoSo=" 123456789 ", DinhDanhCHS=[])).payload
    assert nine["DinhDanhCHS"] == [{"LoaiDinhDanh": "2", "SoDinhDanh": "123456789"}]


@pytest.mark.parametrize("number", ["1234567890", "B1234567", "07919900000X", ""])
def test_no_placeholder_identifier_is_invented(number: str) -> None:
    """§7.5 policy: any other number (or none) gives DinhDanhCHS [] — never TH's placeholder."""
    payload = validate_snapshot(M, sample_dossier(M, SoGiayToChuHoSo=number)).payload
    assert payload["DinhDanhCHS"] == []


def test_agency_identifier_is_kept_not_overwritten() -> None:
    """A DinhDanhCHS the agency sent wins over the derived one (codes still normalised)."""
    sent = [{"LoaiDinhDanh": 2, "SoDinhDanh": "123456789"}]
    payload = validate_snapshot(M, sample_dossier(M, DinhDanhCHS=sent)).payload
    assert payload["DinhDanhCHS"] == [{"LoaiDinhDanh": "2", "SoDinhDanh": "123456789"}]


def test_unknown_field_message_suggests_the_right_name() -> None:
    """An unknown field is an error (never silently dropped) and the message suggests the spelling."""
    errors = _errors_of(lambda: validate_snapshot(M, sample_dossier(M, TrichYeuHoso="x")))
    assert errors[0][0] == "TrichYeuHoso"
    assert "unknown field" in errors[0][1] and "'TrichYeuHoSo'" in errors[0][1]


def test_alternative_code_is_accepted_but_not_forwarded() -> None:
    """MaHoSoKhac (§8) is accepted, returned aside, and absent from the portal payload."""
    result = validate_snapshot(M, sample_dossier(M, MaHoSoKhac="HS-2024-77"))
    assert "MaHoSoKhac" not in result.payload
    assert result.mahoso_khac == "HS-2024-77"
    assert validate_snapshot(M, sample_dossier(M)).mahoso_khac == ""


def test_progress_fills_mahoso_from_path_and_accepts_one_object() -> None:
    """A single progress object gives one result; an item without MaHoSo takes the path's."""
    item = sample_progress(M, 1)[0]
    del item["MaHoSo"]
    [result] = validate_progress(M, item)
    assert result.payload["MaHoSo"] == M
    assert list(result.payload) == [spec.name for spec in PROGRESS.fields]
    results = validate_progress(M, sample_progress(M, 4))
    assert [r.payload["TrangThai"] for r in results] == ["2", "4", "4", "9"]


def test_progress_codes_as_integers_become_strings() -> None:
    """TrangThai sent as a JSON integer goes out as a string; absent optionals as ""."""
    item = {"NguoiXuLy": "Chuyên viên", "ThoiDiemXuLy": "20240315093000", "TrangThai": 4}
    [result] = validate_progress(M, [item])
    assert result.payload["TrangThai"] == "4"
    assert result.payload["NoiDungXuLy"] == "" and result.payload["NgayBatDau"] == ""


# --------------------------------------------------------------------------- messages


def test_messages_say_what_was_expected_and_what_came() -> None:
    """A code error names the accepted codes and the value that came."""
    [(field, message)] = _errors_of(lambda: validate_snapshot(M, sample_dossier(M, TrangThaiHoSo="11")))
    assert field == "TrangThaiHoSo"
    assert '"1"' in message and '"10"' in message and "§7.1" in message and '"11"' in message
    [(_, date_message)] = _errors_of(
        lambda: validate_snapshot(M, sample_dossier(M, NgayTiepNhan="20240230120000")))
    assert "yyyyMMddHHmmss" in date_message and "20240230120000" in date_message


SECRET_NAME = "Bí Mật Tên Người"
SECRET_NUMBER = 987654321098


@pytest.mark.parametrize("mutation", [
    _set("ChuHoSo", {"ten": SECRET_NAME}),
    _set("ChuHoSo", [SECRET_NAME]),
    _set("SoGiayToChuHoSo", SECRET_NUMBER),
    _set("Email", [f"{SECRET_NAME}@example.com"]),
    _set("SoDienThoai", SECRET_NUMBER),
    _set("DinhDanhCHS", [{"LoaiDinhDanh": "1", "SoDinhDanh": SECRET_NUMBER}]),
    _set("TaiLieuNop[0].DuongDanTaiTepTin", f"ftp://{SECRET_NUMBER}.example.com/{SECRET_NAME}"),
])
def test_personal_values_never_appear_in_messages(mutation: Mutation) -> None:
    """Messages about personal fields (and texts, URLs) state the type that came, never the value."""
    body = sample_dossier(M)
    mutation(body)
    errors = _errors_of(lambda: validate_snapshot(M, body))
    assert errors
    dump = json.dumps(errors, ensure_ascii=False)
    assert SECRET_NAME not in dump and str(SECRET_NUMBER) not in dump


# --------------------------------------------------------------------------- JSON Schema


def test_schemas_are_valid_and_accept_the_samples() -> None:
    """The published schemas are valid 2020-12 schemas and accept the sample input."""
    dossier_schema, progress_schema = dossier_json_schema(), progress_json_schema()
    Draft202012Validator.check_schema(dossier_schema)
    Draft202012Validator.check_schema(progress_schema)
    Draft202012Validator(dossier_schema).validate(sample_dossier(M, MaHoSoKhac="HS-1", KenhThucHien=2))
    Draft202012Validator(progress_schema).validate(sample_progress(M, 3))
    Draft202012Validator(progress_schema).validate(sample_progress(M, 1)[0])


def test_schemas_describe_the_same_fields_as_the_validator() -> None:
    """The schema's properties and required lists are the validator's tables (ChuHoSo required)."""
    schema = dossier_json_schema()
    assert set(schema["properties"]) == {s.name for s in DOSSIER.fields} | {"MaHoSoKhac"}
    assert "ChuHoSo" in schema["required"] and schema["additionalProperties"] is False
    item = schema["properties"]["TaiLieuNop"]["anyOf"][0]["items"]
    assert set(item["required"]) == {"TenTepDinhKem", "DuongDanTaiTepTin"}


@pytest.mark.parametrize("mutation", [
    _set("TrichYeuHoso", "x"), _drop("ChuHoSo"), _set("TrangThaiHoSo", "11"), _set("TrangThaiHoSo", True),
    _set("TaiLieuNop[0].DuongDanTaiTepTin", "/tep/a.pdf"), _set("DanhSachLePhi[0].Gia", -1),
])
def test_schema_rejects_what_the_validator_rejects(mutation: Mutation) -> None:
    """For shape errors the schema and the validator agree: both reject."""
    body = sample_dossier(M)
    mutation(body)
    assert list(Draft202012Validator(dossier_json_schema()).iter_errors(body))
    with pytest.raises(ValidationError):
        validate_snapshot(M, body)


def test_progress_schema_rejects_empty_and_oversized_lists() -> None:
    """The progress schema, like the validator, wants 1..500 items."""
    validator = Draft202012Validator(progress_json_schema())
    assert list(validator.iter_errors([]))
    assert list(validator.iter_errors(sample_progress(M, 1) * (MAX_PROGRESS_ITEMS + 1)))


# --------------------------------------------------------------------------- URL check


def test_ascii_space_or_control_class_is_exact() -> None:
    """The URL check's character class is exactly "white space or a Cc control character" (ASCII)."""
    from gateway.dossier.validate import _SPACE_OR_CONTROL_RE
    for code in range(128):
        ch = chr(code)
        expected = ch.isspace() or unicodedata.category(ch) == "Cc"
        assert bool(_SPACE_OR_CONTROL_RE.search(ch)) is expected, code
