"""What the indicators keep of each event the delivery engine records: one row per event.

The sync engine calls the observer (:meth:`~monitoring.kpi.service.KpiService.observe`) after
each successful ``queue.record`` with the claimed :class:`~queues.api.Work`, the
:class:`~queues.api.Outcome` and the time. That is the one place every event passes on both queue
backends. Each event the outcome mentions becomes a row of sync facts: the dossier code, the
event's sequence, when the gateway accepted it (``Event.accepted_at``), when the portal accepted
it (the record's time, for a delivered event), whether it was dead-lettered, and a progress
item's ``TrangThai`` and ``ThoiDiemXuLy``. A snapshot also gives the figures the indicators count
(kpi-766.md §3): unit, dates, channel, payment, fee, the ``TaiLieuNop`` / result / supplement
flags, never a name or an ID number.

This runs on the event loop, so it is kept to dictionary reads and a few integer conversions (a
few µs a snapshot). Each event becomes one tuple in the very shape the store binds to its
statements (monitoring/kpi/store.py: ``EV_COLUMNS``, MaHoSo first): codes as integers, the
yes/no figures as one bitmask (:data:`FEE` …), dates as local seconds (:func:`local_seconds`; the
store subtracts the zone's offset). The writer thread then only flattens the rows into parameters
(C loops), instead of re-arranging them in Python while holding the GIL the event loop needs
(SQLite 3.40 re-parses a row's JSON for every column it reads, so the rows are not JSON). The
payloads are the gateway's validated ones (every scalar a string, lists of objects); the caller
catches anything else (logged and skipped, never a delivery error).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from queues.api import Event, EventKind, Outcome, Work

KIND_SNAPSHOT, KIND_PROGRESS = 0, 1
#: The bits of a snapshot row's ``flags``: a fee is due, a document was submitted as a file, a
#: result links its file, the dossier has digitised components, a document came from the
#: citizen's store (Kho DMQG), the account was verified with VNeID.
FEE, COMP_FILE, RESULT_LINK, SOHOA, KHO, VNEID = 1, 2, 4, 8, 16, 32

#: The facts of one event, as monitoring/kpi/store.py's ``ev`` row (``store.EV_COLUMNS``):
#: (MaHoSo, sequence, kind, accepted_at, delivered_at, dead, TrangThai or TrangThaiHoSo,
#: ThoiDiemXuLy in local seconds), the first :data:`PROGRESS_WIDTH` columns, all a progress item
#: has; a snapshot's row goes on with its figures (received, due, ended, channel, paid, flags,
#: csdl, supp_rows, supp_req, supp_pause: :data:`SNAPSHOT_WIDTH` columns in all).
Row = tuple[Any, ...]
Facts = Row
PROGRESS_WIDTH, SNAPSHOT_WIDTH = 8, 18

@lru_cache(maxsize=1024)
def _day(yyyymmdd: int) -> int | None:
    """Seconds from 1970-01-01 to a day (cached: a day's dates come together); None if no day."""
    try:
        return (dt.date(yyyymmdd // 10000, yyyymmdd // 100 % 100, yyyymmdd % 100).toordinal() - _DAY_ONE) * 86400
    except ValueError:
        return None


_DAY_ONE = dt.date(1970, 1, 1).toordinal()


def local_seconds(text: str | None) -> int | None:
    """Seconds from 1970-01-01 00:00 to a local ``yyyyMMddHHmmss`` date, both read on the same
    local clock (the store subtracts the zone's offset to get Unix seconds); None when absent or
    not a date."""
    if not text or len(text) != 14 or not text.isdigit():
        return None
    day, time_of_day = divmod(int(text), 1_000_000)
    seconds = _day(day)
    if seconds is None:
        return None
    hours, rest = divmod(time_of_day, 10_000)
    return seconds + hours * 3600 + rest // 100 * 60 + rest % 100


def _code(text: str | None) -> int | None:
    """A numeric code (TrangThai, KenhThucHien …) as an integer; None when absent or not a number."""
    return int(text) if text and text.isdigit() else None


def _supplements(rows: Sequence[Mapping[str, Any]]) -> tuple[int, int | None, int]:
    """(supplement rounds listed, the request time when there is exactly one, seconds the citizen
    took over the completed rounds: Σ NgayTiepNhanBoSung − NgayBoSung, kpi-766 §3.2)."""
    pause = 0
    for r in rows:
        asked, done = local_seconds(r.get("NgayBoSung")), local_seconds(r.get("NgayTiepNhanBoSung"))
        if asked is not None and done is not None:
            pause += max(done - asked, 0)
    return len(rows), (local_seconds(rows[0].get("NgayBoSung")) if len(rows) == 1 else None), pause


def snapshot_row(mahoso: str, seq: int, accepted_at: float, delivered_at: float | None, dead: bool,
                 p: Mapping[str, Any]) -> Row:
    """The row of one validated dossier snapshot. A submitted document (``TaiLieuNop`` row not
    deleted) is a file: its ``DuongDanTaiTepTin`` is required (spec §6.2)."""
    flags = 0
    for r in p.get("TaiLieuNop") or ():
        if r.get("IsDeleted") != "1":
            flags |= COMP_FILE | (KHO if r.get("DuocLayTuKhoDMQG") == "1" else 0)
    if any(r.get("Gia") not in (None, "", "0") for r in p.get("DanhSachLePhi") or ()):
        flags |= FEE
    if any(r.get("DuongDanTepTinKetQua") for r in p.get("DanhSachGiayToKetQua") or ()):
        flags |= RESULT_LINK
    if p.get("HoSoCoThanhPhanSoHoa") == "1":
        flags |= SOHOA
    if p.get("TaiKhoanDuocXacThucVoiVNeID") == "1":
        flags |= VNEID
    codes = [str(r["MaCSDL"]) for r in p.get("DSKetNoiCSDL") or () if r.get("MaCSDL")]
    supplements = p.get("DanhSachHoSoBoSung")
    supp = _supplements(supplements) if supplements else (0, None, 0)
    return (mahoso, seq, KIND_SNAPSHOT, accepted_at, delivered_at, int(dead), _code(p.get("TrangThaiHoSo")), None,
            local_seconds(p.get("NgayTiepNhan")), local_seconds(p.get("NgayHenTra")),
            local_seconds(p.get("NgayKetThucXuLy")), _code(p.get("KenhThucHien")),
            _code(p.get("DuocThanhToanTrucTuyen")), flags, f",{','.join(codes)}," if codes else None, *supp)


def event_facts(ev: Event, delivered_at: float | None, dead: bool) -> Facts:
    """The row of one event (:data:`Row`)."""
    p = ev.payload
    if ev.kind is EventKind.SNAPSHOT:
        return snapshot_row(ev.mahoso, ev.sequence, ev.accepted_at, delivered_at, dead, p)
    return (ev.mahoso, ev.sequence, KIND_PROGRESS, ev.accepted_at, delivered_at, int(dead),
            _code(p.get("TrangThai")), local_seconds(p.get("ThoiDiemXuLy")))


def outcome_facts(work: Work, outcome: Outcome, now: float) -> list[Facts]:
    """The facts one recorded outcome teaches: its delivered events (at ``now``), its dead ones,
    and, when it scheduled a retry or parked progress, the events still waiting (their
    ``accepted_at`` is what makes them late once the SLO has passed)."""
    delivered, dead = outcome.delivered, outcome.dead
    waiting = outcome.retry_at is not None or bool(outcome.parked)
    if not (delivered or dead or waiting):
        return []
    out: list[Facts] = []
    snap = work.snapshot
    for ev in ((snap, *work.progress) if snap is not None else work.progress):
        eid = ev.event_id
        if eid in delivered:
            out.append(event_facts(ev, now, False))
        elif eid in dead:
            out.append(event_facts(ev, None, True))
        elif waiting:
            out.append(event_facts(ev, None, False))
    return out
