"""What the indicators keep of each outcome the delivery engine records: one row per dossier.

After each delivery round the sync engine calls the observer
(:meth:`~monitoring.kpi.service.KpiService.observe`) once per dossier of the round, with the
claimed :class:`~queues.api.Work` (one dossier's events) and each :class:`~queues.api.Outcome`
``queue.record`` recorded for it, with its time. That is the one place every event passes on both
queue backends. The events the outcomes mention are folded into one row for their dossier
(:func:`fold`), in the form monitoring/kpi/store.py merges into the dossier's row in one upsert:

* when the gateway accepted them (``Event.accepted_at``), and the worst lag of those delivered
  (accepted -> the record's time);
* a snapshot's figures (kpi-766.md §3): unit, dates, channel, payment, fee, the ``TaiLieuNop`` /
  result / supplement flags, never a name or an ID number; and its rank (delivered first, then
  the newest);
* its delivered progress items with a ``ThoiDiemXuLy`` (*steps*): the first time of each terminal
  status, whether processing finished, and the runs of supplement requests (5) in time order with
  the first and the last step, which the store joins to the dossier's runs so far.

An event not delivered (still waiting, or dead-lettered: the portal does not have it) also gets a
row of its own (:data:`WAITING_WIDTH`: MaHoSo, sequence, kind, accepted_at): it keeps its dossier
late for DOSSIER_SYNC once the SLO has passed, until it is delivered.

This runs on the event loop, so it is kept to dictionary reads and a few integer conversions (a
few µs a snapshot). The rows are tuples in the very shape the store binds to its statements
(monitoring/kpi/store.py: ``COLUMNS``, MaHoSo first): codes as integers, the yes/no figures as
one bitmask (:data:`FEE` …), dates as the payload's local ``yyyyMMddHHmmss`` read as one integer
(:func:`_date`: SQLite turns it into Unix seconds by integer arithmetic, on the writer's thread
without the GIL, where in Python on the loop it cost twice as much). The writer thread then only
flattens the rows into parameters (C loops), instead of re-arranging them in Python while holding
the GIL the event loop needs. The payloads are the gateway's validated ones (every scalar a
string, lists of objects); the caller catches anything else (logged and skipped, never a delivery
error).
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

#: A dossier's row (monitoring/kpi/store.py's ``COLUMNS``, :data:`FOLD_WIDTH` bound columns):
#: MaHoSo, the latest accepted_at, the worst delivery lag; the snapshot's rank
#: (:data:`DELIVERED_RANK`) and figures (:data:`SNAPSHOT_FIGURES`); the steps' first times of 9,
#: 10, 3 or 8, 7 and 5, finished, the runs of 5, the first step and the last one (time, sequence,
#: status each); then, not bound, the sequences delivered, the delivered snapshot's and the
#: delivery time (monitoring/kpi/store.py clears the dossier's events waiting with them).
Row = tuple[Any, ...]
Facts = Row
FOLD_WIDTH = 28
WAITING_WIDTH = 4
#: Ranks a snapshot: delivered ones above the others, then the newest (sequence).
DELIVERED_RANK = 1 << 40
#: A snapshot's figures: TrangThaiHoSo, NgayTiepNhan, NgayHenTra, NgayKetThucXuLy, KenhThucHien,
#: DuocThanhToanTrucTuyen, the flags, the population-database codes (``,a,b,``), supplement rounds
#: listed, the request time when there is exactly one, and the citizen's supplement seconds.
SNAPSHOT_FIGURES = 11
_NO_SNAPSHOT: tuple[Any, ...] = (None,) * (1 + SNAPSHOT_FIGURES)

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


def _date(text: str | None) -> int | None:
    """A validated local ``yyyyMMddHHmmss`` date as one integer (which orders as the times do);
    None when absent. The store turns it into Unix seconds (monitoring/kpi/store.py ``_unix``),
    in SQLite, off the event loop."""
    return int(text) if text else None


#: The codes the payloads carry (TrangThai, KenhThucHien …: the validated enumerations of spec
#: §7, all below 100) as integers.
_CODES: dict[str | None, int] = {str(n): n for n in range(100)}
#: A code as an integer; None when absent or not one of them.
_code = _CODES.get


def _supplements(rows: Sequence[Mapping[str, Any]]) -> tuple[int, int | None, int]:
    """(supplement rounds listed, the request time when there is exactly one, seconds the citizen
    took over the completed rounds: Σ NgayTiepNhanBoSung − NgayBoSung, kpi-766 §3.2)."""
    pause = 0
    for r in rows:
        asked, done = local_seconds(r.get("NgayBoSung")), local_seconds(r.get("NgayTiepNhanBoSung"))
        if asked is not None and done is not None:
            pause += max(done - asked, 0)
    return len(rows), (_date(rows[0].get("NgayBoSung")) if len(rows) == 1 else None), pause


def snapshot_figures(p: Mapping[str, Any]) -> tuple[Any, ...]:
    """The figures of one validated dossier snapshot (:data:`SNAPSHOT_FIGURES`). A submitted
    document (``TaiLieuNop`` row not deleted) is a file: its ``DuongDanTaiTepTin`` is required
    (spec §6.2)."""
    flags = 0
    for r in p.get("TaiLieuNop") or ():
        if r.get("IsDeleted") != "1":
            flags |= COMP_FILE | (KHO if r.get("DuocLayTuKhoDMQG") == "1" else 0)
    for r in p.get("DanhSachLePhi") or ():
        if r.get("Gia") not in (None, "", "0"):
            flags |= FEE
            break
    for r in p.get("DanhSachGiayToKetQua") or ():
        if r.get("DuongDanTepTinKetQua"):
            flags |= RESULT_LINK
            break
    if p.get("HoSoCoThanhPhanSoHoa") == "1":
        flags |= SOHOA
    if p.get("TaiKhoanDuocXacThucVoiVNeID") == "1":
        flags |= VNEID
    codes = [str(r["MaCSDL"]) for r in p.get("DSKetNoiCSDL") or () if r.get("MaCSDL")]
    supplements = p.get("DanhSachHoSoBoSung")
    supp = _supplements(supplements) if supplements else (0, None, 0)
    return (_code(p.get("TrangThaiHoSo")), _date(p.get("NgayTiepNhan")), _date(p.get("NgayHenTra")),
            _date(p.get("NgayKetThucXuLy")), _code(p.get("KenhThucHien")),
            _code(p.get("DuocThanhToanTrucTuyen")), flags, f",{','.join(codes)}," if codes else None, *supp)


_SNAPSHOT = EventKind.SNAPSHOT
#: The step columns a status's first time goes to: 9, 10, 3 or 8, 7, 5 (kpi-766.md §3.2).
_FIRST = {9: 0, 10: 1, 3: 2, 8: 2, 7: 3, 5: 4}


def _steps(progress: Sequence[Event]) -> tuple[Any, ...]:
    """The step columns of delivered progress items (in sequence order): the first times, finished,
    the runs of 5, the first step and the last (time, sequence, status each). A step earlier in
    time (ThoiDiemXuLy, then sequence) than the one before it does not start or break a run
    (delivery follows the sequence, so only an agency's out-of-order times can do that)."""
    firsts: list[int | None] = [None] * 5
    done = asks = 0
    first: tuple[Any, ...] = (None, None, None)
    last: tuple[Any, ...] = (None, None, None)
    for ev in progress:
        p = ev.payload
        at = _date(p.get("ThoiDiemXuLy"))
        if at is None:
            continue
        status = _code(p.get("TrangThai"))
        slot = _FIRST.get(status)  # type: ignore[arg-type]
        if slot is not None:
            known = firsts[slot]
            firsts[slot] = at if known is None or at < known else known
            done |= slot < 2
        step = (at, ev.sequence, status)
        if last[0] is None:
            first = step
        elif step < last:
            continue
        asks += status == 5 and last[2] != 5
        last = step
    return (*firsts, done, asks, *first, *last)


def fold(mahoso: str, events: Sequence[tuple[Event, float | None]]) -> list[Facts]:
    """The rows of one dossier's events (in sequence order), each with its delivery time (None:
    not delivered): its :data:`FOLD_WIDTH` row, then one :data:`WAITING_WIDTH` row per event not
    delivered."""
    seen = 0.0
    worst = delivered_at = cover = None
    snapshot = _NO_SNAPSHOT
    delivered: list[int] = []
    progress: list[Event] = []
    waiting: list[Facts] = []
    for ev, at_portal in events:
        accepted = ev.accepted_at
        if accepted > seen:
            seen = accepted
        is_snapshot = ev.kind is _SNAPSHOT
        if is_snapshot:
            figures = snapshot_figures(ev.payload)
            rank = None if figures[1] is None else (DELIVERED_RANK if at_portal is not None else 0) + ev.sequence
            if rank is not None and (snapshot[0] is None or rank > snapshot[0]):
                snapshot = (rank, *figures)
        if at_portal is None:
            waiting.append((mahoso, ev.sequence, KIND_SNAPSHOT if is_snapshot else KIND_PROGRESS, accepted))
            continue
        delivered.append(ev.sequence)
        lag = at_portal - accepted
        worst = lag if worst is None or lag > worst else worst
        delivered_at = at_portal
        if is_snapshot:
            cover = ev.sequence
        else:
            progress.append(ev)
    row = (mahoso, seen, worst, *snapshot, *_steps(progress), tuple(delivered), cover, delivered_at)
    return [row, *waiting]


def event_facts(ev: Event, delivered_at: float | None) -> list[Facts]:
    """The rows of one event alone (:func:`fold`); ``delivered_at`` None: not delivered."""
    return fold(ev.mahoso, ((ev, delivered_at),))


def outcome_facts(work: Work, recorded: Sequence[tuple[Outcome, float]]) -> list[Facts]:
    """The rows a delivery round's recorded outcomes for one dossier teach (:func:`fold`): its
    events delivered (at their record's time), dead-lettered, or, when an outcome scheduled a
    retry or parked progress, still waiting (their ``accepted_at`` is what makes them late once
    the SLO has passed). An event delivered by one outcome is delivered, whatever a later one
    says of the rest of the work."""
    at: dict[str, float | None] = {}
    waiting = False
    for outcome, now in recorded:
        for eid in outcome.delivered:
            at[eid] = now
        for eid in outcome.dead:
            at.setdefault(eid, None)
        waiting = waiting or outcome.retry_at is not None or bool(outcome.parked)
    events = work.progress if work.snapshot is None else (work.snapshot, *work.progress)
    told = [(ev, at.get(ev.event_id)) for ev in events if waiting or ev.event_id in at]
    return fold(work.mahoso, told) if told else []
