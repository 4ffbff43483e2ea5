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

This runs on the event loop, so it is kept to dictionary reads (a few µs a snapshot): dates go
out as sent and SQLite turns them into Unix seconds (monitoring/kpi/store.py). The payloads are
the gateway's validated ones (every scalar a string, lists of objects); the caller catches
anything else (logged and skipped, never a delivery error).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from queues.api import Event, EventKind, Outcome, Work

KIND_SNAPSHOT, KIND_PROGRESS = 0, 1

#: An ``ev`` row: (MaHoSo, sequence, kind, accepted_at, delivered_at, dead, TrangThai or
#: TrangThaiHoSo as sent, ThoiDiemXuLy as sent).
Row = tuple[Any, ...]
#: An event's ``ev`` row and, for a snapshot, its ``snap`` row (store.SNAP_COLUMNS, dates as sent).
Facts = tuple[Row, Row | None]


def _seconds(text: str) -> int:
    """Seconds of a ``yyyyMMddHHmmss`` date since an arbitrary origin (differences only)."""
    day = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8])).toordinal()
    return day * 86400 + int(text[8:10]) * 3600 + int(text[10:12]) * 60 + int(text[12:14])


def _supplements(rows: Sequence[Mapping[str, Any]]) -> tuple[int, str | None, int]:
    """(supplement rounds listed, the request time when there is exactly one, seconds the citizen
    took over the completed rounds: Σ NgayTiepNhanBoSung − NgayBoSung, kpi-766 §3.2)."""
    pause = 0
    for r in rows:
        asked, done = r.get("NgayBoSung") or "", r.get("NgayTiepNhanBoSung") or ""
        if len(asked) == 14 and len(done) == 14:
            pause += max(_seconds(done) - _seconds(asked), 0)
    return len(rows), (rows[0].get("NgayBoSung") if len(rows) == 1 else None), pause


def snapshot_row(mahoso: str, seq: int, p: Mapping[str, Any]) -> Row:
    """The ``snap`` row of one validated dossier snapshot. A submitted document (``TaiLieuNop``
    row not deleted) is a file: its ``DuongDanTaiTepTin`` is required (spec §6.2)."""
    comp_file = kho = False
    for r in p.get("TaiLieuNop") or ():
        if r.get("IsDeleted") != "1":
            comp_file = True
            kho = kho or r.get("DuocLayTuKhoDMQG") == "1"
    fee = any(r.get("Gia") not in (None, "", "0") for r in p.get("DanhSachLePhi") or ())
    result_link = any(r.get("DuongDanTepTinKetQua") for r in p.get("DanhSachGiayToKetQua") or ())
    codes = [str(r["MaCSDL"]) for r in p.get("DSKetNoiCSDL") or () if r.get("MaCSDL")]
    supplements = p.get("DanhSachHoSoBoSung")
    supp = _supplements(supplements) if supplements else (0, None, 0)
    return (mahoso, seq, p.get("TrangThaiHoSo"), p.get("MaTTHC"), p.get("NgayTiepNhan"), p.get("NgayHenTra"),
            p.get("NgayKetThucXuLy"), p.get("KenhThucHien"), p.get("DuocThanhToanTrucTuyen"), fee, comp_file,
            result_link, p.get("HoSoCoThanhPhanSoHoa") == "1", kho, p.get("TaiKhoanDuocXacThucVoiVNeID") == "1",
            f",{','.join(codes)}," if codes else None, *supp)


def event_facts(ev: Event, delivered_at: float | None, dead: bool) -> Facts:
    """The ``ev`` row of one event and, for a snapshot, its ``snap`` row."""
    p = ev.payload
    if ev.kind is EventKind.SNAPSHOT:
        return ((ev.mahoso, ev.sequence, KIND_SNAPSHOT, ev.accepted_at, delivered_at, int(dead),
                 p.get("TrangThaiHoSo"), None), snapshot_row(ev.mahoso, ev.sequence, p))
    return ((ev.mahoso, ev.sequence, KIND_PROGRESS, ev.accepted_at, delivered_at, int(dead),
             p.get("TrangThai"), p.get("ThoiDiemXuLy")), None)


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
