"""The typed receipt request and the fkey rule (spec ``e-receipts.md`` §1, §6, §8). Pure: no I/O.

One payment becomes one receipt per fee kind: the phí (fee) lines on one receipt, the lệ phí
(charge) lines on another, each with its own fkey ``<MaHoSo>-<PHI|LEPHI>-<k>`` [POLICY §8]. ``k``
starts at 1 and grows only when a new receipt of the same kind is needed for the same dossier (a
reissue after a cancellation, or a second payment request of that kind); the caller, who stores
fkeys durably, says which ``k`` to use. A cancelled fkey is never sent again.

Everything is checked when the objects are made, so an invalid request never reaches VNPT:
amounts are positive integers of VND (amount ≤ 0 is refused locally, as TH does), an fkey has only
letters, digits, ``.`` and ``-`` (``,``, ``;``, ``_`` separate items in VNPT's result strings) and
at most 100 characters, texts carry no control characters.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from adapters.vnpt_receipts.errors import ReceiptInvalid

FKEY_MAX = 100
CUS_CODE_MAX = 50  # G1's limit for CusCode, where the dossier code goes
_FKEY = re.compile(r"^[A-Za-z0-9.\-]+$")
# XML 1.0 allows tab, LF and CR among the C0 controls; nothing else below 0x20, and not 0x7F-0x9F
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class FeeKind(enum.Enum):
    """Phí (a fee) or lệ phí (a charge); the value is the fkey's middle segment."""

    PHI = "PHI"
    LEPHI = "LEPHI"

    @classmethod
    def from_loai(cls, loai: str) -> FeeKind:
        """``LoaiPhiLePhi`` of the payment protocol: ``"1"`` = phí, ``"2"`` = lệ phí (spec §6.3 of
        payment-platform.md). Raises ReceiptInvalid for anything else."""
        kind = _LOAI.get(str(loai).strip())
        if kind is None:
            raise ReceiptInvalid("LoaiPhiLePhi", f'expected "1" (phí) or "2" (lệ phí), got {loai!r}')
        return kind

    @property
    def extra2(self) -> str:
        """The line's ``Extra2``: ``0`` = phí, ``1`` = lệ phí (TH)."""
        return "0" if self is FeeKind.PHI else "1"


_LOAI = {"1": FeeKind.PHI, "2": FeeKind.LEPHI}


class PaymentMethod(enum.Enum):
    """How the payer paid (spec §6.4); the value is VNPT's code, ``label`` the printed text."""

    CASH = "TM"
    TRANSFER = "CK"
    ONLINE = "TTO"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {PaymentMethod.CASH: "Tiền mặt", PaymentMethod.TRANSFER: "Chuyển khoản",
           PaymentMethod.ONLINE: "Trực tuyến"}


def check_text(name: str, value: str) -> None:
    """Raise ReceiptInvalid if ``value`` is not a str or holds a character XML 1.0 cannot carry."""
    if not isinstance(value, str):
        raise ReceiptInvalid(name, f"expected text, got {type(value).__name__}")
    if _CONTROL.search(value):
        raise ReceiptInvalid(name, "contains a control character")


def check_fkey(fkey: str) -> None:
    """The §8 character rule: letters, digits, ``.`` and ``-``; 1..100 characters."""
    if not isinstance(fkey, str) or not fkey or len(fkey) > FKEY_MAX or not _FKEY.match(fkey):
        raise ReceiptInvalid("fkey", f"expected 1..{FKEY_MAX} letters, digits, '.' or '-'")


def fkey_for(dossier_code: str, kind: FeeKind, k: int = 1) -> str:
    """``<MaHoSo>-<PHI|LEPHI>-<k>`` (spec §8); ReceiptInvalid when the result breaks the rule."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ReceiptInvalid("k", f"expected an integer from 1, got {k!r}")
    key = f"{dossier_code}-{kind.value}-{k}"
    check_fkey(key)
    return key


@dataclass(frozen=True)
class FeeLine:
    """One fee item of a payment: ``TenPhiLePhi``, ``SoTien`` (VND), ``LoaiPhiLePhi`` and
    ``MaPhiLePhi`` (kept for the caller's records; VNPT's line ``Code`` is the procedure code)."""

    kind: FeeKind
    name: str
    amount: int
    code: str = ""

    def __post_init__(self) -> None:
        check_text("name", self.name)
        check_text("code", self.code)
        if not self.name.strip():
            raise ReceiptInvalid("name", "a fee line needs its name (printed on the receipt)")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount <= 0:
            raise ReceiptInvalid("amount", f"expected a positive integer of VND, got {self.amount!r}")


@dataclass(frozen=True)
class Payer:
    """The payer (người nộp tiền) printed on the receipt. Personal data: never logged."""

    name: str
    address: str = ""
    tax_code: str = ""  # sent only when known
    email: str = ""  # sent only when known

    def __post_init__(self) -> None:
        for name in ("name", "address", "tax_code", "email"):
            check_text(name, getattr(self, name))
        if not self.name.strip():
            raise ReceiptInvalid("payer.name", "the payer's name is required (CusName)")


@dataclass(frozen=True)
class ReceiptRequest:
    """One receipt: one fee kind of one payment, under its fkey."""

    fkey: str
    kind: FeeKind
    dossier_code: str  # MaHoSo: CusCode and Extra1
    procedure_code: str  # MaTTHC: each line's Code (TH)
    payer: Payer
    lines: tuple[FeeLine, ...]
    method: PaymentMethod = PaymentMethod.ONLINE
    total: int = field(init=False)

    def __post_init__(self) -> None:
        check_fkey(self.fkey)
        check_text("dossier_code", self.dossier_code)
        check_text("procedure_code", self.procedure_code)
        if not self.dossier_code.strip() or len(self.dossier_code) > CUS_CODE_MAX:
            raise ReceiptInvalid("dossier_code", f"expected 1..{CUS_CODE_MAX} characters (CusCode)")
        if not self.lines:
            raise ReceiptInvalid("lines", "a receipt needs at least one fee line")
        wrong = [i for i, line in enumerate(self.lines) if line.kind is not self.kind]
        if wrong:
            raise ReceiptInvalid(f"lines[{wrong[0]}].kind", f"a {self.kind.value} receipt holds {self.kind.value} "
                                 "lines only (one receipt per fee kind)")
        object.__setattr__(self, "total", sum(line.amount for line in self.lines))


def receipt_requests(
    dossier_code: str,
    procedure_code: str,
    payer: Payer,
    lines: Iterable[FeeLine],
    method: PaymentMethod = PaymentMethod.ONLINE,
    *,
    k: Mapping[FeeKind, int] | None = None,
) -> tuple[ReceiptRequest, ...]:
    """The receipts of one payment (spec §1 step 2, §8): one per fee kind present, phí first, each
    with its own fkey. ``k`` gives the sequence number per kind (default 1: the first receipt of
    that kind for the dossier). Raises ReceiptInvalid (no lines, amount ≤ 0, a bad code …)."""
    lines = tuple(lines)
    if not lines:
        raise ReceiptInvalid("lines", "a payment needs at least one fee line")
    out = []
    for kind in FeeKind:
        mine = tuple(line for line in lines if line.kind is kind)
        if mine:
            key = fkey_for(dossier_code, kind, (k or {}).get(kind, 1))
            out.append(ReceiptRequest(key, kind, dossier_code, procedure_code, payer, mine, method))
    return tuple(out)
