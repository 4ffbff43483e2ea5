"""What the indicators keep of each event the delivery engine records: one row per event.

The sync engine calls :meth:`FactRecorder.observe` after each successful ``queue.record`` with the
claimed :class:`~queues.api.Work`, the :class:`~queues.api.Outcome` and the time. That is the one
place every event passes on both queue backends. Each event the outcome mentions becomes a row:

* sync facts: the dossier code, the event's sequence, when the gateway accepted it
  (``Event.accepted_at``), when the portal accepted it (the record's time, for a delivered event),
  and whether it was dead-lettered;
* a progress item's ``TrangThai`` and ``ThoiDiemXuLy``;
* a snapshot's figures: unit, dates, channel, payment, fee, the ``TaiLieuNop`` / result / supplement
  flags the indicators count (kpi-766.md §3), never a name or an ID number.

The work is a few dictionary reads per event, on the event loop; the rows go to the store in
batches (:mod:`monitoring.kpi.service`). Nothing here raises on odd payloads: a field that is
missing or malformed counts as absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from monitoring.kpi.periods import local_epoch
from queues.api import Event, EventKind, Outcome, Work

#: Column order of one ``ev`` row (monitoring/kpi/store.py).
COLUMNS = ("mahoso", "seq", "kind", "accepted_at", "delivered_at", "dead", "status", "at",
           "unit", "tthc", "received", "due", "ended", "channel", "paid", "fee", "comp_file",
           "result_link", "sohoa", "kho", "vneid", "csdl", "supp_rows", "supp_req", "supp_pause")

KIND_SNAPSHOT, KIND_PROGRESS = 0, 1
_PROGRESS_TAIL = (None,) * (len(COLUMNS) - 8)

Row = tuple[Any, ...]


def _int(value: object) -> int | None:
    if isinstance(value, str) and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def _rows(value: object) -> Sequence[Mapping[str, Any]]:
    return [r for r in value if isinstance(r, Mapping)] if isinstance(value, list) else ()


def _documents(rows: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """(a submitted document carries a file, one was taken from the citizen's store on DVCQG)."""
    comp_file = kho = 0
    for r in rows:
        if r.get("IsDeleted") == "1":
            continue
        if r.get("DuongDanTaiTepTin"):
            comp_file = 1
        if r.get("DuocLayTuKhoDMQG") == "1":
            kho = 1
    return comp_file, kho


def _supplements(rows: Sequence[Mapping[str, Any]], offset_s: int) -> tuple[int, int | None, int]:
    """(supplement rounds listed, the request time when there is exactly one, seconds the citizen
    took over the rounds that were completed: Σ NgayTiepNhanBoSung − NgayBoSung, kpi-766 §3.2)."""
    pause = 0
    first: int | None = None
    for r in rows:
        asked = local_epoch(r.get("NgayBoSung"), offset_s)
        done = local_epoch(r.get("NgayTiepNhanBoSung"), offset_s)
        first = asked if first is None else first
        if asked is not None and done is not None and done > asked:
            pause += done - asked
    return len(rows), (first if len(rows) == 1 else None), pause


def snapshot_facts(p: Mapping[str, Any], offset_s: int) -> Row:
    """The indicator columns (``unit`` .. ``supp_pause``) of one dossier snapshot."""
    mahoso = str(p.get("MaHoSo") or "")
    comp_file, kho = _documents(_rows(p.get("TaiLieuNop")))
    fee = int(any((_int(r.get("Gia")) or 0) > 0 for r in _rows(p.get("DanhSachLePhi"))))
    result_link = int(any(r.get("DuongDanTepTinKetQua") for r in _rows(p.get("DanhSachGiayToKetQua"))))
    codes = [str(r.get("MaCSDL")) for r in _rows(p.get("DSKetNoiCSDL")) if r.get("MaCSDL")]
    supp_rows, supp_req, supp_pause = _supplements(_rows(p.get("DanhSachHoSoBoSung")), offset_s)
    return (
        mahoso.split("-", 1)[0], p.get("MaTTHC") or None,
        local_epoch(p.get("NgayTiepNhan"), offset_s), local_epoch(p.get("NgayHenTra"), offset_s),
        local_epoch(p.get("NgayKetThucXuLy"), offset_s),
        _int(p.get("KenhThucHien")), _int(p.get("DuocThanhToanTrucTuyen")), fee, comp_file, result_link,
        int(p.get("HoSoCoThanhPhanSoHoa") == "1"), kho, int(p.get("TaiKhoanDuocXacThucVoiVNeID") == "1"),
        f",{','.join(codes)}," if codes else None, supp_rows, supp_req, supp_pause,
    )


def event_row(ev: Event, delivered_at: float | None, dead: bool, offset_s: int) -> Row:
    """One ``ev`` row (see :data:`COLUMNS`)."""
    p = ev.payload
    if ev.kind is EventKind.SNAPSHOT:
        head = (ev.mahoso, ev.sequence, KIND_SNAPSHOT, ev.accepted_at, delivered_at, int(dead),
                _int(p.get("TrangThaiHoSo")), None)
        return head + snapshot_facts(p, offset_s)
    return (ev.mahoso, ev.sequence, KIND_PROGRESS, ev.accepted_at, delivered_at, int(dead),
            _int(p.get("TrangThai")), local_epoch(p.get("ThoiDiemXuLy"), offset_s), *_PROGRESS_TAIL)


def outcome_rows(work: Work, outcome: Outcome, now: float, offset_s: int) -> list[Row]:
    """The rows one recorded outcome teaches: its delivered events (at ``now``), its dead ones,
    and, when it scheduled a retry or parked progress, the events still waiting (their
    ``accepted_at`` is what makes them late once the SLO has passed)."""
    delivered, dead = outcome.delivered, outcome.dead
    waiting = outcome.retry_at is not None or bool(outcome.parked)
    if not (delivered or dead or waiting):
        return []
    out: list[Row] = []
    snap = work.snapshot
    for ev in ((snap, *work.progress) if snap is not None else work.progress):
        eid = ev.event_id
        if eid in delivered:
            out.append(event_row(ev, now, False, offset_s))
        elif eid in dead:
            out.append(event_row(ev, None, True, offset_s))
        elif waiting:
            out.append(event_row(ev, None, False, offset_s))
    return out
