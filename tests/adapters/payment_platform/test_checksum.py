"""The MaXacThuc checksum reproduces every worked example of payment-platform.md §10 exactly, and the
envelopes put the fields in each message type's order."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from adapters.payment_platform import envelope as env
from adapters.payment_platform.envelope import (
    CONFIRM_ORDER,
    INIT_ORDER,
    QUERY_ORDER,
    FeeLine,
    InitRequest,
    Party,
    Payer,
    ReceiptContext,
)

SECRET = "FAKE-SECRET-FOR-DOCS-ONLY"
PARTY = Party("DOITAC-DEMO", SECRET, "1.0.6")
REF = "dvc0000001H562403150001220240315093000"
MAHOSO = "000.00.01.H56-240315-00012"
TEXT = "THANH TOAN HO SO 000.00.01.H56-240315-00012"

INIT_INPUT = ("INIT|1.0.6|DOITAC-DEMO|dvc0000001H562403150001220240315093000|25000|PAY|1|1|vi-VN|VND|PAYMENT|"
              "THANH TOAN HO SO 000.00.01.H56-240315-00012|20240315093000|203.0.113.10|FAKE-SECRET-FOR-DOCS-ONLY")
INIT_DIGEST = "83d8f2093209d3eae3e73bbf1b09cdb3573aff7bfa9def8a13b58e8cfc264ac6"
CONFIRM_INPUT = ("CONFIRM|00|DOITAC-DEMO|dvc0000001H562403150001220240315093000|25000|VND|PG240315000123|DEMOBANK|"
                 "20240315093512|THANH TOAN HO SO 000.00.01.H56-240315-00012|FAKE-SECRET-FOR-DOCS-ONLY")
CONFIRM_DIGEST = "fd887adb850085a1a3f4550756682f669071a9c597f38b9c39cb5ccec249553c"
TAMPERED_DIGEST = "113ed9d2f098fc600c1fd61c189cf5402c9a931cb37a88c34efcc736e201ac00"
QUERY_INPUT = ("QUERY|1.0.6|DOITAC-DEMO|dvc0000001H562403150001220240315093000|20240315094500|"
               "FAKE-SECRET-FOR-DOCS-ONLY")
QUERY_DIGEST = "46c5ec092d83ee7ad86998aeed965c8124e86d6331f32efd28197124b5120d44"


def _confirm(**changes: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"LoaiBanTin": "CONFIRM", "MaLoi": "00", "MaDoiTac": "DOITAC-DEMO", "MaThamChieu": REF,
                           "SoTien": 25000, "MaTienTe": "VND", "MaGiaoDich": "PG240315000123",
                           "MaNganHang": "DEMOBANK", "ThoiGianGD": "20240315093512", "ThongTinGiaoDich": TEXT,
                           "MaXacThuc": CONFIRM_DIGEST}
    msg.update(changes)
    return msg


def _init_request() -> InitRequest:
    return InitRequest(reference=REF, mahoso=MAHOSO, lines=(FeeLine("2", "LP01", "Lệ phí", 25000),),
                       payer=Payer("Người nộp thử"), context=ReceiptContext(), thoi_gian="20240315093000",
                       ip="203.0.113.10")


@pytest.mark.parametrize(("text", "digest"), [(INIT_INPUT, INIT_DIGEST), (CONFIRM_INPUT, CONFIRM_DIGEST),
                                              (QUERY_INPUT, QUERY_DIGEST)])
def test_the_spec_digests_are_sha256_of_the_input_strings(text: str, digest: str) -> None:
    """§10.2-10.4: each worked input string hashes to the digest the spec prints (printf | sha256sum)."""
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == digest


def test_init_worked_example_10_2() -> None:
    """§10.2: build_init joins the INIT fields in INIT order, secret last, and signs with that digest."""
    msg = env.build_init(PARTY, _init_request())
    assert env.checksum_input([msg[k] for k in INIT_ORDER], SECRET) == INIT_INPUT
    assert msg["MaXacThuc"] == INIT_DIGEST
    assert msg["SoTien"] == "25000" and msg["ThongTinGiaoDich"] == TEXT


def test_init_reference_and_time_follow_5_and_4() -> None:
    """§5: dvc + the code without its non-word characters + ThoiGianGD; §4: 24-hour clock in UTC+7."""
    assert env.reference(MAHOSO, "20240315093000") == REF
    # 2024-03-15 14:30:00 UTC is 21:30 in Hanoi: HH gives 213000, never TH's 12-hour 093000
    assert env.timestamp(1710513000) == "20240315213000"


def test_confirm_worked_example_10_3() -> None:
    """§10.3: the CONFIRM order (ThoiGianGD before ThongTinGiaoDich) gives the printed digest; an
    integer SoTien is written in plain decimal."""
    msg = _confirm()
    assert env.checksum_input([env.field_text(msg, k) for k in CONFIRM_ORDER], SECRET) == CONFIRM_INPUT
    assert env.message_checksum(msg, CONFIRM_ORDER, SECRET) == CONFIRM_DIGEST
    assert env.verify(msg, CONFIRM_ORDER, SECRET)
    built = env.confirm_message(PARTY, ref=REF, amount=25000, ma_loi="00", ma_giao_dich="PG240315000123",
                                ma_ngan_hang="DEMOBANK", thoi_gian="20240315093512", thong_tin=TEXT)
    assert built["MaXacThuc"] == CONFIRM_DIGEST


def test_confirm_tampered_amount_10_3() -> None:
    """§10.3: SoTien tampered to 250000 gives the printed other digest, and verification fails."""
    tampered = _confirm(SoTien=250000)
    assert env.message_checksum(tampered, CONFIRM_ORDER, SECRET) == TAMPERED_DIGEST
    assert not env.verify(tampered, CONFIRM_ORDER, SECRET)


def test_query_worked_example_10_4() -> None:
    """§10.4: the QUERY (and GET_BILL) order gives the printed digest."""
    msg = env.build_query(PARTY, REF, "20240315094500")
    assert env.checksum_input([msg[k] for k in QUERY_ORDER], SECRET) == QUERY_INPUT
    assert msg["MaXacThuc"] == QUERY_DIGEST
    bill = env.build_get_bill(PARTY, REF, "20240315094500")
    assert bill["LoaiBanTin"] == "GET_BILL"
    assert bill["MaXacThuc"] == env.checksum(["GET_BILL", "1.0.6", "DOITAC-DEMO", REF, "20240315094500"], SECRET)


@pytest.mark.parametrize("change", [
    {"ThoiGianGD": "20240315093512 "},  # whitespace is never trimmed
    {"SoTien": "25000.0"}, {"SoTien": 25000.0}, {"MaLoi": "0"}, {"MaXacThuc": CONFIRM_DIGEST[:-1]},
    {"MaXacThuc": 12}, {"LoaiBanTin": "confirm"}, {"MaXacThuc": CONFIRM_DIGEST[:-1] + "é"},
])
def test_any_change_breaks_verification(change: dict[str, Any]) -> None:
    """Values are hashed exactly as received: a changed space, a decimal point or a case is a failure,
    and a checksum that is not ASCII is a failure, not an exception."""
    assert not env.verify(_confirm(**change), CONFIRM_ORDER, SECRET)


def test_uppercase_checksum_and_string_amount_are_accepted() -> None:
    """Compare lowercase to lowercase; a SoTien sent as the digit string hashes the same text."""
    assert env.verify(_confirm(MaXacThuc=CONFIRM_DIGEST.upper()), CONFIRM_ORDER, SECRET)
    assert env.verify(_confirm(SoTien="25000"), CONFIRM_ORDER, SECRET)


def test_empty_fields_stay_between_the_pipes() -> None:
    """§10: an empty field is an empty string between two pipes."""
    assert env.checksum_input(["a", "", "c"], "s") == "a||c|s"


def test_ack_echoes_the_received_fields() -> None:
    """§8.2: MaThamChieu, ThoiGianGD and MaXacThuc as received; our MaDoiTac; 00 or 99."""
    ack = env.confirm_ack(_confirm(), "DOITAC-DEMO", ok=True)
    assert ack == {"MaLoi": "00", "MoTaLoi": "Thành công", "MaDoiTac": "DOITAC-DEMO", "MaThamChieu": REF,
                   "ThoiGianGD": "20240315093512", "MaXacThuc": CONFIRM_DIGEST}
    assert env.confirm_ack(None, "X", ok=False)["MaLoi"] == "99"
