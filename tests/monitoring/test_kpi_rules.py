"""The 766 rules, one dossier at a time, on the real store (SQLite file) and the real fact
extraction: the end-of-processing rule of kpi-766.md §3.2 (steps 1–5), the sync rule of §3.1,
the period rule, and the score formulas of §4."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitoring.kpi import store
from monitoring.kpi.facts import Facts, event_facts, fold
from monitoring.kpi.indicators import Scoring, unit_rows
from monitoring.kpi.periods import PeriodError, current_periods, make_period, parse_period
from queues.api import Event, EventKind
from tests.monitoring.kpi_helpers import OFFSET_S, UNIT_A, code, document, local, payload, progress_payloads

NOV = make_period("month", 2026, 11, OFFSET_S)
MID_NOV = local("20261120120000")  # "now" for dossiers still in processing
DUE = "20261110170000"


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = store.open_store(tmp_path / "kpi.sqlite3")
    yield c
    store.close(c)


class Dossier:
    """Events of one dossier, as the engine reports them: each delivered ``lag`` seconds after it
    was accepted (accepted at its own local time, or at ``accepted``)."""

    def __init__(self, n: int = 1, **snapshot: Any) -> None:
        self.mahoso = code(UNIT_A, n)
        self.seq = 0
        self.rows: list[Facts] = []
        self.events: list[tuple[Event, float | None]] = []
        self.snapshot(**snapshot)

    def _event(self, kind: EventKind, body: dict[str, Any], accepted: float) -> Event:
        self.seq += 1
        return Event(str(self.seq), self.mahoso, kind, self.seq, body, accepted)

    def _report(self, ev: Event, delivered_at: float | None) -> None:
        """One event reported alone (a row of its own), as the engine reports it after each try."""
        self.events.append((ev, delivered_at))
        self.rows += event_facts(ev, delivered_at)

    def snapshot(self, accepted: float | None = None, lag: float | None = 1.0, **kw: Any) -> Dossier:
        """A snapshot, delivered ``lag`` seconds after it was accepted; ``lag=None``: not delivered
        (still waiting, or dead-lettered: the same to the indicators)."""
        body = payload(self.mahoso, **kw)
        at = accepted if accepted is not None else local(body["NgayTiepNhan"])
        self._report(self._event(EventKind.SNAPSHOT, body, at), None if lag is None else at + lag)
        return self

    def steps(self, *steps: tuple[str, str], lag: float | None = 1.0) -> Dossier:
        for body in progress_payloads(self.mahoso, *steps):
            at = local(body["ThoiDiemXuLy"])
            self._report(self._event(EventKind.PROGRESS, body, at), None if lag is None else at + lag)
        return self

    def deliver(self, seq: int, lag: float = 1.0) -> Dossier:
        """Event ``seq``, reported before as not delivered, now delivered ``lag`` seconds after it
        was accepted."""
        ev = next(ev for ev, _ in self.events if ev.sequence == seq)
        self._report(ev, ev.accepted_at + lag)
        return self

    def folded(self) -> list[Facts]:
        """Every event as one outcome would report them together (one row), each in its last state."""
        last = {ev.sequence: (ev, at) for ev, at in self.events}
        return fold(self.mahoso, [last[seq] for seq in sorted(last)])


def counts(conn: sqlite3.Connection, dossiers: Sequence[Dossier], now: float = MID_NOV,
           **kw: Any) -> store.Counts:
    """The November counts of the file after ``dossiers`` were written (every unit together)."""
    rules = store.Rules(offset_s=OFFSET_S, **kw)
    for d in dossiers:
        store.write(conn, d.rows, rules)
    (got,) = store.aggregate(conn, rules, [(NOV.start, NOV.end)], now)
    total = store.Counts()
    for c in got.values():
        total = store.plus(total, c)
    return total


def on_time(conn: sqlite3.Connection, d: Dossier, now: float = MID_NOV, **rules: Any) -> tuple[int, int]:
    c = counts(conn, [d], now, **rules)
    return c.on_time, c.on_time_total


# ----------------------------------------------------------------------------- §3.2 step 1


@pytest.mark.parametrize(("steps", "expected"), [
    ([("9", "20261110160000")], (1, 1)),  # finished before NgayHenTra
    ([("9", "20261110170000")], (1, 1)),  # exactly at NgayHenTra: on time (<=)
    ([("9", "20261110170001")], (0, 1)),  # a second late
    ([("9", "20261109090000"), ("10", "20261112090000")], (1, 1)),  # 9 wins over a late 10
    ([("10", "20261112090000")], (0, 1)),  # only a late 10
    ([("8", "20261105090000"), ("10", "20261112090000")], (0, 1)),  # 10 ranks before an earlier 8
    ([("3", "20261103090000")], (1, 1)),  # not accepted: an end
    ([("7", "20261104090000"), ("8", "20261111090000")], (0, 1)),  # withdrawal ranks last
    ([("7", "20261111090000")], (0, 1)),  # a late withdrawal alone is the end
])
def test_step1_the_first_terminal_status_by_priority_is_the_end(conn: sqlite3.Connection,
                                                                steps: list[tuple[str, str]],
                                                                expected: tuple[int, int]) -> None:
    """Step 1: the first 9, else the first 10, else the first 8 or 3, else 7, judged against
    NgayHenTra (20261110 17:00)."""
    assert on_time(conn, Dossier(due=DUE).steps(("2", "20261103080000"), *steps)) == expected


def test_step1_falls_back_to_the_snapshots_end_when_no_progress_carries_one(conn: sqlite3.Connection) -> None:
    """GW: a dossier whose history came as a snapshot only (TrangThaiHoSo final, NgayKetThucXuLy
    set) ends at NgayKetThucXuLy."""
    late = Dossier(1, due=DUE, status="10", NgayKetThucXuLy="20261111090000", NgayTra="20261111100000")
    early = Dossier(2, due=DUE, status="9", NgayKetThucXuLy="20261109090000")
    c = counts(conn, [late, early])
    assert (c.on_time, c.on_time_total) == (1, 2)


# ----------------------------------------------------------------------------- §3.2 step 4


def test_step4_the_citizens_supplement_time_is_subtracted(conn: sqlite3.Connection) -> None:
    """Finished 2 days after NgayHenTra, but the citizen took 3 days to supply documents: on time.
    Finished 2 days late with a supplement of 1 day: late."""
    paused = Dossier(1, due=DUE, DanhSachHoSoBoSung=[
        {"HoSoBoSungId": "1", "NgayBoSung": "20261104090000", "NgayTiepNhanBoSung": "20261107090000"}],
    ).steps(("5", "20261104090000"), ("4", "20261107090000"), ("9", "20261112170000"))
    short = Dossier(2, due=DUE, DanhSachHoSoBoSung=[
        {"HoSoBoSungId": "1", "NgayBoSung": "20261104090000", "NgayTiepNhanBoSung": "20261105090000"}],
    ).steps(("5", "20261104090000"), ("4", "20261105090000"), ("9", "20261112170000"))
    c = counts(conn, [paused, short])
    assert (c.on_time, c.on_time_total) == (1, 2)


def test_step4_with_a_terminal_status_two_supplement_rounds_are_subtracted_not_late(
        conn: sqlite3.Connection) -> None:
    """Two rounds and then finished: step 1 applies (the >1 rule is step 2's, for dossiers with no
    end), both pauses are subtracted: 2 + 2 days make a finish 3 days late on time."""
    d = Dossier(due=DUE, DanhSachHoSoBoSung=[
        {"HoSoBoSungId": "1", "NgayBoSung": "20261104090000", "NgayTiepNhanBoSung": "20261106090000"},
        {"HoSoBoSungId": "2", "NgayBoSung": "20261107090000", "NgayTiepNhanBoSung": "20261109090000"},
    ]).steps(("5", "20261104090000"), ("4", "20261106090000"), ("5", "20261107090000"), ("4", "20261109090000"),
             ("9", "20261113170000"))
    assert on_time(conn, d) == (1, 1)


# ----------------------------------------------------------------------------- §3.2 step 2


def test_step2_one_supplement_request_without_an_end_is_the_end(conn: sqlite3.Connection) -> None:
    """No terminal status, one request before NgayHenTra: on time, even though "now" is past
    NgayHenTra; a request after NgayHenTra: late."""
    early = Dossier(1, due=DUE).steps(("4", "20261104090000"), ("5", "20261105090000"))
    late = Dossier(2, due=DUE).steps(("4", "20261104090000"), ("5", "20261111090000"))
    c = counts(conn, [early, late])
    assert (c.on_time, c.on_time_total) == (1, 2)


def test_step2_more_than_one_supplement_request_without_an_end_is_late(conn: sqlite3.Connection) -> None:
    """5, 4, 5 and no end: late, though both requests were early and NgayHenTra is far away."""
    d = Dossier(due="20261130170000").steps(("5", "20261104090000"), ("4", "20261105090000"),
                                            ("5", "20261106090000"))
    assert on_time(conn, d) == (0, 1)


def test_step2_a_repeated_supplement_status_is_one_request(conn: sqlite3.Connection) -> None:
    """5 then 5 again (two steps in the same state, spec §7.2) is one request."""
    d = Dossier(due=DUE).steps(("5", "20261104090000"), ("5", "20261104100000"))
    assert on_time(conn, d) == (1, 1)


def test_step2_supplement_rounds_listed_in_the_snapshot_count_too(conn: sqlite3.Connection) -> None:
    """Two DanhSachHoSoBoSung rounds and no progress at all: more than one request, late. One
    round only: its NgayBoSung is the end."""
    two = Dossier(1, due="20261130170000", DanhSachHoSoBoSung=[
        {"HoSoBoSungId": "1", "NgayBoSung": "20261104090000", "NgayTiepNhanBoSung": "20261105090000"},
        {"HoSoBoSungId": "2", "NgayBoSung": "20261106090000"}])
    one = Dossier(2, due=DUE, DanhSachHoSoBoSung=[{"HoSoBoSungId": "1", "NgayBoSung": "20261109090000"}])
    c = counts(conn, [two, one])
    assert (c.on_time, c.on_time_total) == (1, 2)


# ----------------------------------------------------------------------------- §3.2 step 3


def test_step3_in_progress_within_the_deadline_is_on_time_until_it_passes(conn: sqlite3.Connection) -> None:
    """No end: on time while now <= NgayHenTra (open_dossier_cut = "now"), late after."""
    d = Dossier(due="20261125170000").steps(("4", "20261104090000"))
    assert on_time(conn, d, now=local("20261125165959")) == (1, 1)
    assert on_time(conn, d, now=local("20261125170001")) == (0, 1)


def test_step3_read_literally_judges_at_the_end_of_the_period(conn: sqlite3.Connection) -> None:
    """open_dossier_cut = "period_end": in progress within deadline ⇔ NgayHenTra ≥ period end."""
    d = Dossier(1, due="20261125170000").steps(("4", "20261104090000"))
    after = Dossier(2, due="20261203170000").steps(("4", "20261104090000"))
    c = counts(conn, [d, after], open_dossier_cut="period_end")
    assert (c.on_time, c.on_time_total) == (1, 2)


# ----------------------------------------------------------------------------- §3.2 step 5


@pytest.mark.parametrize(("policy", "expected"), [("on_time", (2, 2)), ("late", (0, 2)), ("exclude", (0, 0))])
def test_step5_no_deadline_follows_the_policy(conn: sqlite3.Connection, policy: str,
                                              expected: tuple[int, int]) -> None:
    """Without NgayHenTra the procedure's statutory time decides (catalogue, not here): the
    [kpi] no_deadline policy counts such dossiers, finished or not."""
    finished = Dossier(1, due="").steps(("9", "20261125090000"))
    open_ = Dossier(2, due="").steps(("4", "20261104090000"))
    c = counts(conn, [finished, open_], no_deadline=policy)
    assert (c.on_time, c.on_time_total) == expected


def test_dead_lettered_progress_is_not_what_the_portal_has(conn: sqlite3.Connection) -> None:
    """A 9 the portal refused (dead letter) is not an end; the late 10 it has is."""
    d = Dossier(due=DUE).steps(("9", "20261109090000"), lag=None).steps(("10", "20261112090000"))
    assert on_time(conn, d) == (0, 1)


def test_a_step_counts_once_the_portal_has_it(conn: sqlite3.Connection) -> None:
    """A 9 still waiting is not an end (the dossier is judged at the cut, on time while NgayHenTra
    is ahead); delivered later, it is, with its own ThoiDiemXuLy."""
    d = Dossier(due="20261125170000").steps(("9", "20261126090000"), lag=None)
    assert on_time(conn, d) == (1, 1)
    d.deliver(2, lag=86400.0)
    store.write(conn, d.rows[-1:], store.Rules(offset_s=OFFSET_S))
    c = counts(conn, [])
    assert (c.on_time, c.on_time_total) == (0, 1)


def test_a_waiting_snapshot_replaces_the_figures_once_delivered(conn: sqlite3.Connection) -> None:
    """The figures are the newest snapshot's the portal has: a newer one waiting does not replace
    them until it is delivered."""
    rules = store.Rules(offset_s=OFFSET_S)
    d = Dossier(KenhThucHien="2").snapshot(KenhThucHien="1", lag=None)
    assert counts(conn, [d]).online == 1
    d.deliver(2)
    store.write(conn, d.rows[-1:], rules)
    c = counts(conn, [])
    assert (c.received, c.online) == (1, 0)


def test_runs_of_supplement_requests_join_across_writes(conn: sqlite3.Connection) -> None:
    """A 5 that follows a 5 written before is the same request; a 5 after a 4 written before is
    another (late: more than one)."""
    rules = store.Rules(offset_s=OFFSET_S)
    one = Dossier(1, due=DUE).steps(("5", "20261104090000"))
    two = Dossier(2, due="20261130170000").steps(("5", "20261104090000"), ("4", "20261105090000"))
    for d in (one, two):
        store.write(conn, d.rows, rules)
    one.steps(("5", "20261104100000"))
    two.steps(("5", "20261106090000"))
    store.write(conn, one.rows[-1:] + two.rows[-1:], rules)
    assert conn.execute("SELECT asks FROM dossier ORDER BY mahoso").fetchall() == [(1,), (2,)]
    c = counts(conn, [])
    assert (c.on_time, c.on_time_total) == (1, 2)
    store.write(conn, one.rows + two.rows, rules)  # reported again: the same
    assert counts(conn, []) == c


def test_a_step_earlier_than_one_the_portal_has_does_not_start_a_run(conn: sqlite3.Connection) -> None:
    """The documented limit of the runs (docs/kpi.md): a 5 whose ThoiDiemXuLy is earlier than a
    step delivered before it lowers the first 5's time but starts no run; with no end and no run
    the dossier is judged at the cut (NgayHenTra is ahead: on time)."""
    d = Dossier(due="20261130170000").steps(("4", "20261106090000"), ("5", "20261105090000"))
    assert on_time(conn, d) == (1, 1)
    assert conn.execute("SELECT asks, t5 IS NOT NULL FROM dossier").fetchone() == (0, 1)


@pytest.mark.parametrize("make", [
    lambda: Dossier(1, due=DUE).steps(("5", "20261104090000"), ("4", "20261105090000"), ("5", "20261106090000")),
    lambda: Dossier(2, due=DUE).steps(("5", "20261104090000"), ("5", "20261104100000"), ("9", "20261109090000")),
    lambda: Dossier(3, due=DUE).steps(("8", "20261105090000"), ("10", "20261112090000")),
    lambda: Dossier(4, due=DUE).steps(("9", "20261109090000"), lag=None).steps(("10", "20261112090000")),
    lambda: Dossier(5, KenhThucHien="2").snapshot(KenhThucHien="1", lag=None),
    lambda: Dossier(6, lag=None).snapshot(lag=7200.0).steps(("4", "20261104090000"), lag=None),
    lambda: Dossier(7, due=DUE).steps(("9", "20261109090000"), lag=None).deliver(2, lag=5000.0),
], ids=["5-4-5", "5-5-9", "8-10", "dead-9", "waiting-snapshot", "carried-and-waiting", "redelivered"])
def test_one_row_per_outcome_counts_as_one_row_per_event(tmp_path: Path, make: Any) -> None:
    """The engine reports a claimed dossier's events together (one row, facts.fold); the same
    events reported one by one give the same counts."""
    rules, now = store.Rules(offset_s=OFFSET_S), local("20261120120000")
    got = []
    for name, rows in (("apart", make().rows), ("together", make().folded())):
        conn = store.open_store(tmp_path / f"{name}.sqlite3")
        try:
            store.write(conn, rows, rules)
            got.append(store.aggregate(conn, rules, [(NOV.start, NOV.end)], now))
        finally:
            store.close(conn)
    assert got[0] == got[1] and got[0][0][UNIT_A].received == 1


# ----------------------------------------------------------------------------- §3.1 and periods


def test_sync_late_delivered_late_or_still_waiting_past_the_slo(conn: sqlite3.Connection) -> None:
    """DOSSIER_SYNC: every event within the SLO counts; one delivered after it, or one still
    undelivered that long after it was accepted, makes the dossier not synced in time; one
    undelivered for less than the SLO does not (yet)."""
    now = local("20261120120000")
    ok = Dossier(1).steps(("4", "20261104090000"), lag=3599.0)
    late = Dossier(2).steps(("4", "20261104090000"), lag=3601.0)
    waiting = Dossier(3, accepted=now - 4000, lag=None)
    fresh = Dossier(4, accepted=now - 100, lag=None)
    c = counts(conn, [ok, late, waiting, fresh], now=now, sync_lag_slo=3600.0)
    assert (c.sync_ok, c.received) == (2, 4)


def test_a_dossier_the_portal_refused_still_counts_unsynced(conn: sqlite3.Connection) -> None:
    """Its only snapshot dead-lettered: the dossier exists in the provincial system, so it counts
    (with that snapshot's figures), and is late for DOSSIER_SYNC once the SLO has passed. A newer
    snapshot refused after an older one was delivered does not replace the older one's figures."""
    now = local("20261120120000")
    refused = Dossier(1, accepted=now - 4000, lag=None, KenhThucHien="2")
    kept = Dossier(2, KenhThucHien="2").snapshot(KenhThucHien="1", accepted=now - 100, lag=None)
    c = counts(conn, [refused, kept], now=now)
    assert (c.received, c.online, c.sync_ok) == (2, 2, 1)


def test_a_delivered_snapshot_carries_the_older_ones(conn: sqlite3.Connection) -> None:
    """An older snapshot seen waiting is delivered with the newer one that superseded it: the lag
    counts from the older one's acceptance."""
    now = local("20261120120000")
    quick = Dossier(1, accepted=now - 600, lag=None).snapshot(accepted=now - 300, lag=300.0)
    slow = Dossier(2, accepted=now - 7200, lag=None).snapshot(accepted=now - 300, lag=300.0)
    c = counts(conn, [quick, slow], now=now)
    assert (c.sync_ok, c.received) == (1, 2)


def test_a_dossier_belongs_to_the_period_of_its_reception_in_local_time(conn: sqlite3.Connection) -> None:
    """NgayTiepNhan 2026-11-01 00:00 local (31 Oct 17:00 UTC) is in November; 30 Nov 23:59:59 too;
    1 Dec 00:00 is not."""
    inside = [Dossier(1, received="20261101000000"), Dossier(2, received="20261130235959")]
    outside = [Dossier(3, received="20261201000000"), Dossier(4, received="20261031235959")]
    assert counts(conn, inside + outside).received == 2


def test_one_pass_counts_each_period_with_its_own_rows_and_cut(conn: sqlite3.Connection) -> None:
    """The month, quarter and year counted together (one query over the year's rows, as the
    periodic computation does) give each period its own dossiers and, read literally
    (open_dossier_cut = "period_end"), judge a dossier in processing at each period's own end:
    due 15 Dec is on time for November (ends 1 Dec), late for Q4 and 2026 (end 1 Jan)."""
    rules = store.Rules(offset_s=OFFSET_S, open_dossier_cut="period_end")
    october = Dossier(1, received="20261015080000", due="20261020170000").steps(("9", "20261019090000"))
    open_ = Dossier(2, due="20261215170000").steps(("4", "20261104090000"))
    for d in (october, open_):
        store.write(conn, d.rows, rules)
    periods = [parse_period(pid, OFFSET_S) for pid in ("2026-11", "2026-Q4", "2026")]
    together = store.aggregate(conn, rules, [(p.start, p.end) for p in periods], MID_NOV)
    figures = [(c[UNIT_A].received, c[UNIT_A].on_time, c[UNIT_A].on_time_total) for c in together]
    assert figures == [(1, 1, 1), (2, 1, 2), (2, 1, 2)]
    assert together == [store.aggregate(conn, rules, [(p.start, p.end)], MID_NOV)[0] for p in periods]


# the third layout (schema 3), as written before schema 4: tables keyed by MaHoSo
SCHEMA_3 = """
CREATE TABLE ev (
    mahoso TEXT NOT NULL, seq INTEGER NOT NULL, kind INTEGER NOT NULL,
    accepted_at REAL NOT NULL, delivered_at REAL, dead INTEGER NOT NULL DEFAULT 0,
    status INTEGER, at INTEGER, PRIMARY KEY (mahoso, seq)) WITHOUT ROWID;
CREATE TABLE dossier (mahoso TEXT PRIMARY KEY, unit TEXT NOT NULL, received INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema', '3');
"""


@pytest.mark.parametrize("version", ["1", "2", "3", "4"])
def test_a_file_of_an_older_layout_is_refused_untouched(tmp_path: Path, version: str) -> None:
    """A file of schemas 1-4 (never shipped in a release) does not open: the error names the file
    and what to do (delete it), and the file is left as it was."""
    from core.errors import ConfigError

    path = tmp_path / "kpi.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA_3.replace("'3'", f"'{version}'"))
    old.execute("INSERT INTO dossier VALUES (?, ?, 1)", (code(UNIT_A, 9), UNIT_A))
    old.commit()
    old.close()
    before = path.read_bytes()
    for opener in (store.open_store, store.open_reader):  # the daemon, and the dvcgw kpi command
        with pytest.raises(ConfigError) as caught:
            opener(path)
        assert caught.value.key == "kpi.path"
        assert str(path) in str(caught.value) and "delete the file" in str(caught.value)
        assert f"schema {version}" in str(caught.value)
        assert path.read_bytes() == before


def test_a_file_of_this_layout_opens_again_as_it_is(tmp_path: Path) -> None:
    """Schema 4 written, closed and opened again: the same counts, and new facts are written."""
    path = tmp_path / "kpi.sqlite3"
    conn = store.open_store(path)
    try:
        assert counts(conn, [Dossier(1)]).received == 1
    finally:
        store.close(conn)
    conn = store.open_store(path)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (str(store.SCHEMA_VERSION),)
        assert counts(conn, [Dossier(2)]).received == 2
    finally:
        store.close(conn)


def test_periods_parse_and_the_current_ones() -> None:
    """Month, quarter and year ids; bad ids raise; local midnight bounds."""
    q4 = parse_period("2026-Q4", OFFSET_S)
    assert (q4.kind, q4.start, q4.end) == ("quarter", local("20261001000000"), local("20270101000000"))
    assert parse_period("2026", OFFSET_S).end == local("20270101000000")
    assert parse_period("2026-02", OFFSET_S).end == local("20260301000000")
    for bad in ("2026-13", "2026-Q5", "26", "2026-1", "1999", "2026-q4", "２０２６"):
        with pytest.raises(PeriodError):
            parse_period(bad, OFFSET_S)
    now = local("20261231235959")
    assert {k: p.id for k, p in current_periods(now, OFFSET_S).items()} == {
        "month": "2026-12", "quarter": "2026-Q4", "year": "2026"}
    assert current_periods(now + 1, OFFSET_S)["year"].id == "2027"


# ----------------------------------------------------------------------------- §4 scores


def test_score_formulas() -> None:
    """RE linear formulas, the 80 % thresholds, formula 3.3 (× the sync rate, full at 50 %),
    the A part of payment, and the gateway-only VNeID share without points."""
    c = store.Counts(received=10, sync_ok=5, on_time=7, on_time_total=10, online=3, finished=4, result_link=2,
                     so_hoa=6, reused=6, kho=1, fee=4, paid_online=3, citizen_data=9, vneid=8)
    rows = {r.indicator: r for r in unit_rows("u", "month", "2026-11", c, Scoring(), {})}
    expect = {
        "DOSSIER_SYNC": (0.5, 6 * 0.5), "ON_TIME": (0.7, 20 * 0.7), "ONLINE_SHARE": (0.3, 12 * 0.3 * 0.5 / 0.5),
        "ORIGINAL_RESULT_AVAILABLE": (0.5, 3.0), "SO_HOA_GIAY_TO_GIAI_QUYET": (0.6, 4 * 0.6),
        "REUSED_DIGITIZED_DATA": (0.6, 2 * 0.6 / 0.8), "SYNCED_WITH_DVCQG_PERSONAL_STORAGE": (0.1, 0.4),
        "ONLINE_PAYMENT_A": (0.75, 6 * 0.75), "CITIZEN_DATA_CONNECTED_DOSSIER": (0.9, 1.8), "VNEID_SHARE": (0.8, 0.0),
    }
    for name, (rate, points) in expect.items():
        assert (rows[name].ratio, rows[name].score) == pytest.approx((rate, points), abs=1e-12), name
    assert rows["SO_HOA_GIAY_TO_GIAI_QUYET"].basis == "re" and rows["VNEID_SHARE"].basis == "gw"
    desc = {r.indicator: r for r in unit_rows("u", "month", "2026-11", c, Scoring(so_hoa_full_at=0.8), {})}
    assert desc["SO_HOA_GIAY_TO_GIAI_QUYET"].score == pytest.approx(3.0)
    assert desc["SO_HOA_GIAY_TO_GIAI_QUYET"].basis == "desc"
    full = store.Counts(received=10, sync_ok=10, online=6, reused=9)
    capped = {r.indicator: r.score for r in unit_rows("u", "month", "x", full, Scoring(), {})}
    assert (capped["ONLINE_SHARE"], capped["REUSED_DIGITIZED_DATA"]) == (12.0, 2.0)
    empty = {r.indicator: (r.ratio, r.score) for r in unit_rows("u", "month", "x", store.Counts(), Scoring(), {})}
    assert set(empty.values()) == {(0.0, 0.0)}


def test_the_observer_never_raises_into_the_engine(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A payload orjson cannot write (a backend that keeps no JSON text) is logged and skipped (a
    fault in the indicators must not become a delivery retry); a good one is buffered; an outcome
    that teaches nothing adds nothing."""
    from config.loader import build
    from config.schema import Settings
    from monitoring.kpi import KpiService
    from queues.api import Outcome, Work

    svc = KpiService(build(Settings, {"storage": {"path": str(tmp_path / "gw.sqlite3")}}, ""))
    mahoso = code(UNIT_A, 1)
    bad = Event("1", mahoso, EventKind.SNAPSHOT, 1, {"MaHoSo": mahoso, "NgayTiepNhan": object()}, 1.0)
    good = Event("2", mahoso, EventKind.SNAPSHOT, 2, payload(mahoso), 1.0)
    svc.observe(Work(mahoso, "l", bad, (), False, 0, None), [(Outcome(delivered=("1",)), 2.0)])
    assert svc.buffered == 0 and "could not read the facts" in caplog.text
    svc.observe(Work(mahoso, "l", good, (), False, 0, None), [(Outcome(known_on_portal=True), 2.0)])
    assert svc.buffered == 0
    svc.observe(Work(mahoso, "l", good, (), False, 0, None), [(Outcome(delivered=("2",)), 2.0)])
    assert svc.buffered == 1


@pytest.mark.parametrize("odd", [{"TaiLieuNop": "not a list"}, {"TaiLieuNop": ["a string"], "DanhSachLePhi": [1]},
                                 {"TrangThaiHoSo": "99x", "NgayHenTra": "tomorrow"},
                                 {"DanhSachHoSoBoSung": [{"NgayBoSung": "x"}], "DSKetNoiCSDL": {"MaCSDL": "1"}}])
def test_a_payload_of_an_odd_shape_reads_as_absent_figures_and_never_fails_a_write(
        conn: sqlite3.Connection, odd: dict[str, Any]) -> None:
    """SQLite reads the figures from the JSON text on the writer's thread: a field of another
    shape than the validated payloads have is read as absent (a list of something other than
    objects, a code or date that is not one), and the other dossiers of the same write still
    count."""
    good = Dossier(1, KenhThucHien="2", due=DUE).steps(("9", "20261109090000"))
    mahoso = code(UNIT_A, 2)
    body = {**payload(mahoso, due=DUE, TaiLieuNop=[document()]), **odd}
    odd_one = Dossier(2)
    odd_one.rows = fold(mahoso, [(Event("1", mahoso, EventKind.SNAPSHOT, 1, body, local(body["NgayTiepNhan"])),
                                  local(body["NgayTiepNhan"]) + 1)])
    c = counts(conn, [odd_one, good])
    assert c.received == 2 and c.online == 1
    flags, status, due = conn.execute("SELECT flags, status, due FROM dossier WHERE mahoso = ?", (mahoso,)).fetchone()
    assert flags & 0b11 == (0 if "TaiLieuNop" in odd else 2)  # no fee; the file, unless its list is odd
    assert (status is None) == ("TrangThaiHoSo" in odd) and (due is None) == ("NgayHenTra" in odd)


def test_a_rounds_outcomes_for_a_dossier_give_a_row_per_event() -> None:
    """The engine records a dossier's snapshot and its progress apart and tells the observer of
    both after the round: a row per event, with its delivery time. A snapshot delivered by the
    first outcome stays delivered when the second schedules a retry; the progress left waits. The
    JSON text is the queue's own when the event carries it."""
    from monitoring.kpi.facts import EVENT_WIDTH, KIND_PROGRESS, KIND_SNAPSHOT, outcome_facts
    from queues.api import Outcome, Work

    mahoso = code(UNIT_A, 1)
    snap = Event("s", mahoso, EventKind.SNAPSHOT, 1, payload(mahoso), 1.0, raw=b'{"as": "stored"}')
    steps = tuple(Event(f"p{i}", mahoso, EventKind.PROGRESS, i, body, 1.5)
                  for i, body in enumerate(progress_payloads(mahoso, ("2", "20261103090000"), ("4", "20261104090000")),
                                           start=2))
    work = Work(mahoso, "l", snap, steps, False, 0, None)
    rows = outcome_facts(work, [(Outcome(delivered=("s", "p2")), 10.0), (Outcome(retry_at=99.0), 11.0)])
    assert [r[:5] for r in rows] == [(mahoso, 1, KIND_SNAPSHOT, 1.0, 10.0), (mahoso, 2, KIND_PROGRESS, 1.5, 10.0),
                                     (mahoso, 3, KIND_PROGRESS, 1.5, None)]
    assert {len(r) for r in rows} == {EVENT_WIDTH} and rows[0][5] == b'{"as": "stored"}'
    assert orjson.loads(rows[2][5]) == steps[1].payload
    assert outcome_facts(work, [(Outcome(known_on_portal=True), 10.0)]) == []


def test_prune_forgets_old_dossiers_with_their_waiting_events(conn: sqlite3.Connection) -> None:
    """The yearly prune drops the dossiers received before the cut with their events still
    waiting, and the dossiers never placed in a period whose last event was accepted before it; a
    later event of a forgotten dossier starts it afresh."""
    old = Dossier(1, received="20241103080000").steps(("9", "20241104090000")).steps(("10", "20241105090000"),
                                                                                       lag=None)
    kept = Dossier(2).steps(("4", "20261104090000")).steps(("5", "20261105090000"), lag=None)
    unplaced = Dossier(3)
    unplaced.rows = []  # a progress item only, accepted in 2024: its dossier never had a snapshot
    unplaced.steps(("4", "20241104090000"))
    rules = store.Rules(offset_s=OFFSET_S)
    for d in (old, kept, unplaced):
        store.write(conn, d.rows, rules)
    assert conn.execute("SELECT COUNT(*) FROM dossier").fetchone() == (3,)
    assert store.prune(conn, int(local("20250101000000"))) == 1
    assert conn.execute("SELECT mahoso FROM dossier").fetchall() == [(kept.mahoso,)]
    assert conn.execute("SELECT mahoso, seq FROM waiting").fetchall() == [(kept.mahoso, 3)]
    assert store.units_in(conn) == {UNIT_A: 1}
    again = Dossier(1, received="20241103080000")
    store.write(conn, again.rows, rules)
    assert conn.execute("SELECT COUNT(*) FROM dossier").fetchone() == (2,)
    assert store.units_in(conn) == {UNIT_A: 2}


def test_a_write_of_many_rows_counts_as_the_same_rows_written_one_dossier_at_a_time(tmp_path: Path) -> None:
    """A write binds its rows in statements of store.CHUNK rows, the last one filled up: a batch
    past a chunk in every row width (snapshots, progress, covers), a dossier's events split across
    chunks and an event repeated (waiting, then delivered) gives the counts of the same dossiers
    written one by one."""
    now = local("20261120120000")
    dossiers = []
    for n in range(store.CHUNK + 40):
        d = Dossier(n, accepted=now - 7200 if n % 3 else None, lag=None if n % 3 else 1.0,
                    KenhThucHien="2" if n % 2 else "1")
        if n % 3:
            d.snapshot(accepted=now - 600, lag=60.0)  # delivers the first one, late when it waited
        d.steps(("4", "20261104090000"), ("9", "20261109090000" if n % 5 else "20261112090000"))
        dossiers.append(d)
    rules = store.Rules(offset_s=OFFSET_S)
    together = store.open_store(tmp_path / "together.sqlite3")
    apart = store.open_store(tmp_path / "apart.sqlite3")
    try:
        rows = [row for d in dossiers for row in d.rows]
        store.write(together, rows[1::2] + rows[::2] + rows[:5], rules)  # out of order, some twice
        for d in dossiers:
            store.write(apart, d.rows, rules)
        (a,) = store.aggregate(together, rules, [(NOV.start, NOV.end)], now)
        (b,) = store.aggregate(apart, rules, [(NOV.start, NOV.end)], now)
        assert a == b
        assert a[UNIT_A].received == store.CHUNK + 40 and 0 < a[UNIT_A].sync_ok < a[UNIT_A].received
    finally:
        store.close(together)
        store.close(apart)


@pytest.mark.parametrize("cut", ["now", "period_end"])
def test_periods_apart_overlapping_or_with_gaps_count_as_each_one_alone(conn: sqlite3.Connection, cut: str) -> None:
    """The one scan cuts time into buckets at every period's start and end; periods that overlap
    (a month inside its quarter), leave gaps (September, then November) or lie apart still get
    exactly the counts each one gets when counted alone, for both readings of the cut."""
    rules = store.Rules(offset_s=OFFSET_S, open_dossier_cut=cut)
    received = ["20260815080000", "20260910080000", "20261015080000", "20261103080000", "20261125080000"]
    for n, when in enumerate(received, start=1):
        d = Dossier(n, received=when, due="20261215170000")
        store.write(conn, (d.steps(("9", "20261104090000")) if n % 2 else d.steps(("4", when))).rows, rules)
    periods = [parse_period(pid, OFFSET_S) for pid in ("2026-09", "2026-11", "2026-Q4", "2026-Q3", "2026")]
    together = store.aggregate(conn, rules, [(p.start, p.end) for p in periods], MID_NOV)
    assert [c[UNIT_A].received for c in together] == [1, 2, 3, 2, 5]
    assert together == [store.aggregate(conn, rules, [(p.start, p.end)], MID_NOV)[0] for p in periods]


def local_seconds(text: str) -> int:
    """Seconds from 1970-01-01 00:00 to a local ``yyyyMMddHHmmss`` date, by datetime's calendar."""
    when = dt.datetime.strptime(text, "%Y%m%d%H%M%S")
    return (when.date().toordinal() - dt.date(1970, 1, 1).toordinal()) * 86400 + when.hour * 3600 \
        + when.minute * 60 + when.second


@pytest.mark.parametrize("text", ["19700101000000", "19991231235959", "20000229120000", "20000301000000",
                                  "20240229235959", "20250101000001", "20261120120000", "21000228120000",
                                  "21000301000000"])
def test_the_store_turns_a_date_into_the_seconds_python_reads(text: str) -> None:
    """A row's dates go to the store as ``yyyyMMddHHmmss`` integers; its SQL arithmetic gives the
    Unix seconds that ``local_seconds`` (datetime's calendar) less the zone's offset gives, across
    month ends, leap days and century years; NULL stays NULL."""
    sql = store._unix(":d").replace(":offset", str(OFFSET_S))
    conn = sqlite3.connect(":memory:")
    assert conn.execute(f"SELECT {sql}", {"d": int(text)}).fetchone()[0] == local_seconds(text) - OFFSET_S
    assert conn.execute(f"SELECT {sql}", {"d": None}).fetchone()[0] is None


def test_a_write_keeps_the_payloads_in_memory_and_leaves_none_behind(conn: sqlite3.Connection) -> None:
    """A write puts whole payloads (names, ID numbers) in the writer's temporary table: in memory,
    never in a temporary file, and emptied when the write ends; the file keeps only the figures."""
    d = Dossier(1, ChuHoSo="Nguyễn Văn Mẫu").steps(("9", "20261109090000"))
    store.write(conn, d.rows, store.Rules(offset_s=OFFSET_S))
    assert conn.execute("PRAGMA temp_store").fetchone() == (2,)  # MEMORY
    assert conn.execute("SELECT COUNT(*) FROM temp.batch").fetchone() == (0,)
    stored = " ".join(str(v) for row in conn.execute("SELECT * FROM dossier") for v in row)
    assert d.mahoso in stored and "Nguyễn" not in stored
