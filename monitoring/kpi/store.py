"""The indicators' own SQLite file: one row per dossier, folded from its events as they come.

Two tables, each unique by ``MaHoSo``:

* ``dossier``: one row per dossier, updated in place by the events each delivery round reports
  of it (:mod:`monitoring.kpi.facts`: a row per event with its payload's JSON text; :func:`write`
  reads the figures from the text and merges each event by one upsert). Each column keeps what
  the rules need of all its events so far, in a form that new events merge into without reading
  the others (a newest, a minimum, a maximum, a count):

  - the figures of its *chosen snapshot*: the newest one the portal has (delivered), else the
    newest reported (waiting or dead-lettered: the dossier exists in the provincial system even
    when the portal refused it, and counts, unsynced); ``pick`` ranks them;
  - the progress the portal has (delivered items with a ``ThoiDiemXuLy``), kpi-766.md §3.2: the
    first time of each terminal status, whether processing finished, the first supplement
    request and the runs of supplement requests (status 5) in time order;
  - the worst delivery lag (accepted -> delivered) of its events.

  Its unit, its end-of-processing verdict (steps 1, 2 and 4) and whether it finished are stored
  generated columns, which SQLite computes as it writes the row (computed at every count
  instead, they made the count a third slower); the yes/no figures are bits of ``flags``.
* ``waiting``: the events not delivered (still waiting, or dead-lettered): one row each until
  its delivery, with when the gateway accepted it, which is what makes a dossier late for
  DOSSIER_SYNC once the SLO has passed. A delivered snapshot takes the older snapshots it
  superseded with it (delivered when it was).

The figures are counted from the ``dossier`` rows, at the moment of the computation, by one
query (:func:`aggregate`): one pass over the rows received in the periods asked (the current
month, quarter and year together: the year's rows), the same for the service's periodic
computation, ``GET /v1/kpi`` and the ``dvcgw kpi`` command. Nothing is counted ahead, so a change
of ``[kpi]`` (the SLO, the no-deadline policy, the population-database codes) applies to the
next computation as it is.

Every write is one transaction (:func:`write`): a crash loses at most the batch not yet written.
The file is in WAL mode, so the command can read it while the daemon writes. The work, the
payloads' figures included, is SQL, run by SQLite without the GIL, so a write costs the event loop
little.
"""

from __future__ import annotations

import contextlib
import operator
import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import NamedTuple

import orjson

from core.errors import ConfigError
from monitoring.kpi.facts import (
    COMP_FILE,
    DELIVERED_RANK,
    EVENT_WIDTH,
    FEE,
    KHO,
    KIND_PROGRESS,
    KIND_SNAPSHOT,
    RESULT_LINK,
    SOHOA,
    VNEID,
    Facts,
    Row,
)

#: 1: issue 14's first layout (running counts); 2: without them; 3: narrower rows, tables without
#: a rowid; 4: every table keyed by an integer id per dossier, a row per event (``ev``) from
#: which each write re-derived its dossiers' rows; 5: no row per event: each event is folded into
#: its dossier's row as it is written (one upsert instead of some ten B-tree operations and a
#: derivation).
#: Files of schemas 1-4 are refused (:class:`~core.errors.ConfigError`): no release shipped them.
SCHEMA_VERSION = 5

_DOSSIER = """
CREATE TABLE IF NOT EXISTS dossier (
    mahoso TEXT NOT NULL UNIQUE,
    seen REAL NOT NULL,         -- the latest accepted_at of its events (retention)
    worst_lag REAL,             -- the longest accepted -> delivered of its delivered events
    -- the chosen snapshot's figures (monitoring/kpi/facts.py); pick: its rank (facts.DELIVERED_RANK)
    pick INTEGER, status INTEGER, received INTEGER, due INTEGER, ended INTEGER, channel INTEGER,
    paid INTEGER, flags INTEGER, csdl TEXT, supp_rows INTEGER, supp_req INTEGER, supp_pause INTEGER,
    -- the progress the portal has (steps): the first 9, 10, 3 or 8, 7 and 5; finished (9 or 10
    -- seen); the runs of 5 in time order; the first step and the newest in that order (time,
    -- sequence, status each)
    t9 INTEGER, t10 INTEGER, t38 INTEGER, t7 INTEGER, t5 INTEGER, done INTEGER, asks INTEGER,
    first_at INTEGER, first_seq INTEGER, first_status INTEGER, last_at INTEGER, last_seq INTEGER,
    last_status INTEGER,
    unit TEXT AS (substr(mahoso, 1, instr(mahoso, '-') - 1)) STORED,
    fee INTEGER AS (flags & 1), comp_file INTEGER AS ((flags >> 1) & 1),
    result_link INTEGER AS ((flags >> 2) & 1), sohoa INTEGER AS ((flags >> 3) & 1),
    kho INTEGER AS ((flags >> 4) & 1), vneid INTEGER AS ((flags >> 5) & 1),
    finished INTEGER AS (COALESCE(done, 0) OR status IN (9, 10)) STORED,
    -- kpi-766.md §3.2, steps applied in order: 1. the end is the first 9, else the first 10, else
    -- the first 8 or 3, else the first 7 (withdrawal ranked last, [UNCERTAIN]); without one, the
    -- snapshot's NgayKetThucXuLy when its TrangThaiHoSo is final (history sent as a snapshot
    -- only); 4. the supplement time is subtracted from it; 2. no end and more than one supplement
    -- request: late; exactly one: its time is the end; 3. no end, no request: NULL, judged at the
    -- computation's cut (due >= cut); 5. no NgayHenTra: NULL, the no_deadline policy decides.
    -- Supplement requests: the more of the runs of 5 and the snapshot's DanhSachHoSoBoSung rows.
    t_end INTEGER AS (COALESCE(t9, t10, t38, t7, CASE WHEN status IN (3, 7, 8, 9, 10) THEN ended END)) STORED,
    verdict INTEGER AS (CASE WHEN due IS NULL THEN NULL
                             WHEN t_end IS NOT NULL THEN t_end - COALESCE(supp_pause, 0) <= due
                             WHEN max(COALESCE(asks, 0), COALESCE(supp_rows, 0)) > 1 THEN 0
                             WHEN max(COALESCE(asks, 0), COALESCE(supp_rows, 0)) = 1
                                 THEN COALESCE(t5, supp_req) <= due END) STORED
);
"""
_WAITING = """
CREATE TABLE IF NOT EXISTS waiting (
    mahoso TEXT NOT NULL, seq INTEGER NOT NULL, kind INTEGER NOT NULL, accepted_at REAL NOT NULL,
    PRIMARY KEY (mahoso, seq)
) WITHOUT ROWID;
"""

SCHEMA = f"""
{_DOSSIER}{_WAITING}
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('schema', '{SCHEMA_VERSION}');
"""


#: Rows one statement carries (:func:`_values`). A write binds its rows to a prepared statement of
#: ``CHUNK`` rows of ``?`` (``VALUES (?, …), …``), the last one filled up with NULL rows, which
#: the statement skips: one prepared statement, reused by every write (a statement of another
#: size costs ~9 µs a row to prepare), and a write of 13,000 events hands the GIL over some 25
#: times, not once a row as executemany did (each re-take waited for the busy event loop).
CHUNK = 512


def _values(width: int) -> str:
    """SQL: a table ``v`` of ``CHUNK`` rows of ``width`` parameters (columns ``column1`` …)."""
    row = f"({', '.join('?' * width)})"
    return f"(VALUES {', '.join([row] * CHUNK)}) AS v"


def _chunks(rows: Sequence[Row], width: int) -> list[list[object]]:
    """The parameters of ``rows`` for statements of :func:`_values`, ``CHUNK`` rows each, the last
    filled up with NULLs (its first column NULL: no event). Flattened by C loops
    (``chain.from_iterable``): the writer holds the GIL, which the event loop needs, meanwhile."""
    out = []
    for first in range(0, len(rows), CHUNK):
        part = rows[first:first + CHUNK]
        params: list[object] = list(chain.from_iterable(part))
        params += [None] * (width * (CHUNK - len(part)))
        out.append(params)
    return out


#: A write's events (monitoring/kpi/facts.py), as bound, with the payload's JSON text as TEXT
#: (orjson's bytes come as a BLOB, which SQLite's JSON functions refuse). A temporary table of
#: the writer's connection (:func:`open_store`), emptied at the end of each write.
_BATCH = ("CREATE TEMP TABLE batch (mahoso TEXT NOT NULL, seq INTEGER NOT NULL, kind INTEGER NOT NULL,"
          " accepted REAL NOT NULL, at REAL, body TEXT NOT NULL)")
_FILL = (f"INSERT INTO batch SELECT column1, column2, column3, column4, column5, CAST(column6 AS TEXT)"
         f" FROM {_values(EVENT_WIDTH)} WHERE v.column1 IS NOT NULL")

#: The dossier's columns, as stored (one upsert an event, :func:`_upsert`).
COLUMNS = ("mahoso", "seen", "worst_lag", "pick", "status", "received", "due", "ended", "channel",
           "paid", "flags", "csdl", "supp_rows", "supp_req", "supp_pause", "t9", "t10", "t38", "t7", "t5", "done",
           "asks", "first_at", "first_seq", "first_status", "last_at", "last_seq", "last_status")
#: local ``yyyyMMddHHmmss`` dates in a row (read as integers), stored as Unix seconds (:func:`_unix`;
#: ``:offset``, seconds east of UTC, is substituted by :func:`upsert`)
_DATES = {"received", "due", "ended", "supp_req", "t9", "t10", "t38", "t7", "t5", "first_at", "last_at"}
_FIGURES = ("status", "received", "due", "ended", "channel", "paid", "flags", "csdl", "supp_rows", "supp_req",
            "supp_pause")
#: The newest step (in time order) before this event's, or NULL: the event's step comes after it.
_LATER = ("excluded.first_at IS NOT NULL AND"
          " (last_at IS NULL OR (excluded.first_at, excluded.first_seq) > (last_at, last_seq))")


def _code(x: str) -> str:
    """SQL: one of the payloads' codes (TrangThai, KenhThucHien …: the validated enumerations of
    spec §7, all below 100) as an integer; NULL when absent or not one of them."""
    return f"CASE WHEN {x} GLOB '[0-9]' OR {x} GLOB '[1-9][0-9]' THEN CAST({x} AS INTEGER) END"


def _date(x: str) -> str:
    """SQL: a local ``yyyyMMddHHmmss`` date as one integer (which orders as the times do); NULL
    when absent or not 14 digits."""
    return f"CASE WHEN {x} GLOB '{'[0-9]' * 14}' THEN CAST({x} AS INTEGER) END"


def _any(array: str, test: str) -> str:
    """SQL: the largest value of ``test`` (on ``e.value``, the object's JSON text) over the objects
    of the payload's list ``array``: for a yes/no test, 1 when one passes; 0 when none does, or
    there is no list, or its elements are not objects (skipped)."""
    return (f"(SELECT COALESCE(max(CASE WHEN e.type = 'object' THEN {test} END), 0)"
            f" FROM json_each({_list(array)}) AS e)")


def _list(name: str) -> str:
    """SQL: a list of the event's payload (``b.body``) as its own JSON text (``->``: JSON even
    for a string, which ``json_each`` then reads as one element that is not an object). It comes
    from the payload SQLite parsed once for the statement's other fields, and ``json_each`` parses
    only the list; given the payload and a path, it parsed the whole payload again for each list
    (the read of a batch: 11.8 → 8.4 µs an event of the writer's CPU)."""
    return f"b.body -> '$.{name}'"


def _given(x: str) -> str:
    """SQL: a value read with ``->>`` is given, as Python's truth reads it: not NULL, not ''."""
    return f"COALESCE({x}, '') <> ''"


def _field(name: str) -> str:
    """SQL: a field of the event's payload (``b.body``), as SQL text for a JSON string."""
    return f"b.body ->> '$.{name}'"


def _figures() -> dict[str, str]:
    """SQL over a snapshot event ``b`` of the batch: its figures (kpi-766.md §3), read from its
    JSON text. A submitted document (``TaiLieuNop`` row not deleted) is a file: its
    ``DuongDanTaiTepTin`` is required (spec §6.2). Supplements: the rows listed, the request time
    when there is exactly one, and the seconds the citizen took over the completed rounds
    (Σ NgayTiepNhanBoSung − NgayBoSung, kpi-766 §3.2)."""
    # a document kept is a file, and from Kho DMQG if it says so: the largest of 0, COMP_FILE and
    # COMP_FILE | KHO over the list is both bits at once, in one pass over it
    kept = (f"CASE WHEN e.value ->> 'IsDeleted' IS '1' THEN 0 WHEN e.value ->> 'DuocLayTuKhoDMQG' IS '1'"
            f" THEN {COMP_FILE | KHO} ELSE {COMP_FILE} END")
    fee = "COALESCE(e.value ->> 'Gia', '') NOT IN ('', '0')"
    link = _given("e.value ->> 'DuongDanTepTinKetQua'")
    flags = " | ".join([
        _any('TaiLieuNop', kept),
        f"{FEE} * {_any('DanhSachLePhi', fee)}",
        f"{RESULT_LINK} * {_any('DanhSachGiayToKetQua', link)}",
        f"{SOHOA} * ({_field('HoSoCoThanhPhanSoHoa')} IS '1')",
        f"{VNEID} * ({_field('TaiKhoanDuocXacThucVoiVNeID')} IS '1')",
    ])
    code = "e.value ->> 'MaCSDL'"
    csdl = (f"(SELECT ',' || group_concat({code}, ',') || ',' FROM json_each({_list('DSKetNoiCSDL')}) AS e"
            f" WHERE e.type = 'object' AND {_given(code)})")
    asked, answered = _date("e.value ->> 'NgayBoSung'"), _date("e.value ->> 'NgayTiepNhanBoSung'")
    pause = (f"(SELECT COALESCE(sum(max({_unix('d')} - {_unix('a')}, 0)), 0) FROM (SELECT {asked} AS a,"
             f" {answered} AS d FROM json_each({_list('DanhSachHoSoBoSung')}) AS e WHERE e.type = 'object')"
             " WHERE a IS NOT NULL AND d IS NOT NULL)")
    rows = "COALESCE(json_array_length(b.body, '$.DanhSachHoSoBoSung'), 0)"
    first_request = _date(_field("DanhSachHoSoBoSung[0].NgayBoSung"))
    return {
        "status": _code(_field("TrangThaiHoSo")),
        "received": _date(_field("NgayTiepNhan")),
        "due": _date(_field("NgayHenTra")),
        "ended": _date(_field("NgayKetThucXuLy")),
        "channel": _code(_field("KenhThucHien")),
        "paid": _code(_field("DuocThanhToanTrucTuyen")),
        "flags": f"({flags})",
        "csdl": csdl,
        "supp_rows": rows,
        "supp_req": f"CASE WHEN {rows} = 1 THEN {first_request} END",
        "supp_pause": pause,
    }


#: The step columns a status's first time goes to: 9, 10, 3 or 8, 7, 5 (kpi-766.md §3.2).
_FIRST = {"t9": "(9)", "t10": "(10)", "t38": "(3, 8)", "t7": "(7)", "t5": "(5)"}


def _event_row() -> str:
    """SQL: each event of the batch (``b``) as a dossier row (:data:`COLUMNS`), in sequence order
    per dossier, in the form :func:`_upsert` merges into the dossier's row:

    * when accepted, and its delivery lag (accepted -> delivered) when delivered;
    * a snapshot's figures and its rank (``pick``: delivered ones above the others, then the
      newest); a snapshot without NgayTiepNhan has none;
    * a delivered progress item with a ``ThoiDiemXuLy`` is a *step*: its time in the column of its
      status (:data:`_FIRST`), finished (9 or 10), a supplement request (5) as a run of one, and
      itself as the first step and the last (time, sequence, status). The merge joins it to the
      dossier's steps so far.

    The payloads are read once per event into ``s`` (dates as local ``yyyyMMddHHmmss``
    integers), then the dates are turned into Unix seconds (:func:`_unix`).
    """
    snapshot = f"s.kind = {KIND_SNAPSHOT} AND s.received IS NOT NULL"
    step = f"s.kind = {KIND_PROGRESS} AND s.at IS NOT NULL AND s.t IS NOT NULL"
    delivered = f"CASE WHEN s.at IS NULL THEN 0 ELSE {DELIVERED_RANK} END"
    cols = {"mahoso": "s.mahoso", "seen": "s.accepted", "worst_lag": "s.at - s.accepted",
            "pick": f"CASE WHEN {snapshot} THEN {delivered} + s.seq END"}
    cols |= {name: f"CASE WHEN {snapshot} THEN s.{name} END" for name in _FIGURES}
    cols |= {name: f"CASE WHEN {step} AND s.st IN {statuses} THEN s.t END" for name, statuses in _FIRST.items()}
    cols |= {"done": f"COALESCE({step} AND s.st IN (9, 10), 0)", "asks": f"COALESCE({step} AND s.st = 5, 0)"}
    for end in ("first", "last"):
        cols |= {f"{end}_at": f"CASE WHEN {step} THEN s.t END", f"{end}_seq": f"CASE WHEN {step} THEN s.seq END",
                 f"{end}_status": f"CASE WHEN {step} THEN s.st END"}
    assert tuple(cols) == COLUMNS
    snap, prog = f"b.kind = {KIND_SNAPSHOT}", f"b.kind = {KIND_PROGRESS}"
    figures = ", ".join(f"CASE WHEN {snap} THEN {expr} END AS {name}" for name, expr in _figures().items())
    read = (f"SELECT b.mahoso, b.seq, b.kind, b.accepted, b.at, {figures},"
            f" CASE WHEN {prog} THEN {_code(_field('TrangThai'))} END AS st,"
            f" CASE WHEN {prog} THEN {_date(_field('ThoiDiemXuLy'))} END AS t FROM batch b")
    values = ", ".join(_unix(f"({expr})") if name in _DATES else expr for name, expr in cols.items())
    # MATERIALIZED: each payload read once, not once per use of its columns in the dates' arithmetic
    return f"WITH s AS MATERIALIZED ({read}) SELECT {values} FROM s WHERE true ORDER BY s.mahoso, s.seq"


def _newer(column: str) -> str:
    """SQL: ``column`` taken from the new row when its snapshot ranks above the chosen one."""
    return f"{column} = CASE WHEN excluded.pick > COALESCE(pick, -1) THEN excluded.{column} ELSE {column} END"


def _unix(column: str) -> str:
    """SQL: a row's date (the payload's local ``yyyyMMddHHmmss`` read as one integer, :data:`_DATES`)
    as Unix seconds: the days from 1970-01-01 by integer arithmetic (H. Hinnant's
    ``days_from_civil``), the time of day, less the zone's offset; NULL stays NULL. SQLite does
    this on the writer's thread without the GIL (~0.4 µs a date); on the event loop, in Python,
    it cost ~0.5 µs a date measured apart and twice that in a busy daemon."""
    x = column
    month = f"({x} / 100000000 % 100)"
    year = f"({x} / 10000000000 - ({month} <= 2))"  # the year from March on
    day_of_year = f"((153 * ({month} + CASE WHEN {month} > 2 THEN -3 ELSE 9 END) + 2) / 5 + {x} / 1000000 % 100 - 1)"
    days = (f"({year} / 400 * 146097 + {year} % 400 * 365 + {year} % 400 / 4 - {year} % 400 / 100"
            f" + {day_of_year} - 719468)")
    return (f"CASE WHEN {x} IS NULL THEN NULL ELSE {days} * 86400 + {x} / 10000 % 100 * 3600"
            f" + {x} / 100 % 100 * 60 + {x} % 100 - :offset END")


def _merged(column: str, fn: str) -> str:
    """SQL: ``column`` merged with the new row's by ``fn`` (min | max; either may be NULL)."""
    return f"{column} = COALESCE({fn}({column}, excluded.{column}), {column}, excluded.{column})"


def _upsert() -> str:
    """The fold of the batch's events (:func:`_event_row`, in sequence order per dossier) into
    their dossiers' rows (a new dossier's row is its first event's row as it is):

    * when accepted and the worst lag: the latest, the worst;
    * the snapshot's figures: the new row's when its snapshot ranks above the chosen one;
    * the steps' first times: the earlier; finished: either;
    * the runs of 5: when the new row's step comes after the newest step so far (time, then
      sequence), its run is added, less one when it is a 5 that continues the newest step's run;
      the newest step becomes the row's. Steps that come before it do not change the runs
      (delivery follows the sequence; only an agency's out-of-order times can).
    """
    sets = [_merged("seen", "max"), _merged("worst_lag", "max"), *map(_newer, _FIGURES), _newer("pick"),
            *(_merged(c, "min") for c in ("t9", "t10", "t38", "t7", "t5")), _merged("done", "max"),
            f"asks = CASE WHEN {_LATER} THEN asks + excluded.asks - (excluded.first_status = 5 AND last_status IS 5)"
            " ELSE asks END",
            *(f"{c} = COALESCE({c}, excluded.{c})" for c in ("first_at", "first_seq", "first_status")),
            *(f"{c} = CASE WHEN {_LATER} THEN excluded.{c} ELSE {c} END"
              for c in ("last_at", "last_seq", "last_status"))]
    return (f"INSERT INTO dossier ({', '.join(COLUMNS)}) {_event_row()}"
            f" ON CONFLICT (mahoso) DO UPDATE SET {', '.join(sets)}")


# The events not delivered: (MaHoSo, seq, kind, accepted_at).
_WAIT = "INSERT OR IGNORE INTO waiting SELECT mahoso, seq, kind, accepted FROM batch WHERE at IS NULL"
# A delivered snapshot takes the older snapshots waiting with it (the queue superseded them):
# their lag, from their own acceptance to its delivery, joins the dossier's.
_COVERS = (f"(SELECT mahoso, max(seq) AS seq, at AS delivered_at FROM batch WHERE at IS NOT NULL"
           f" AND kind = {KIND_SNAPSHOT} GROUP BY mahoso)")
_CARRIED = (f"SELECT d.mahoso, max(d.delivered_at - w.accepted_at) AS lag FROM {_COVERS} d"
            f" JOIN waiting w ON w.mahoso = d.mahoso AND w.seq < d.seq AND w.kind = {KIND_SNAPSHOT}"
            " GROUP BY d.mahoso")
_COVER = (f"UPDATE dossier SET worst_lag = COALESCE(max(worst_lag, c.lag), worst_lag, c.lag) FROM ({_CARRIED}) c"
          " WHERE dossier.mahoso = c.mahoso")
_UNCOVER = (f"DELETE FROM waiting WHERE kind = {KIND_SNAPSHOT} AND (mahoso, seq) IN"
            f" (SELECT w.mahoso, w.seq FROM {_COVERS} d JOIN waiting w ON w.mahoso = d.mahoso AND w.seq < d.seq)")
_DELIVERED = "DELETE FROM waiting WHERE (mahoso, seq) IN (SELECT mahoso, seq FROM batch WHERE at IS NOT NULL)"


class Counts(NamedTuple):
    """One unit's counts for one period (the numerators and denominators of every indicator)."""

    received: int = 0
    sync_ok: int = 0
    on_time: int = 0
    on_time_total: int = 0
    online: int = 0
    finished: int = 0
    result_link: int = 0
    so_hoa: int = 0
    reused: int = 0
    kho: int = 0
    fee: int = 0
    paid_online: int = 0
    citizen_data: int = 0
    vneid: int = 0


def plus(a: Counts, b: Counts) -> Counts:
    """The counts of both (``+`` of a tuple would concatenate)."""
    return Counts._make(map(operator.add, a, b))


COUNT_NAMES = Counts._fields


@dataclass(frozen=True)
class Rules:
    """The settings the computation applies (``[kpi]``, docs/kpi.md), and the portal's time zone."""

    sync_lag_slo: float = 3600.0
    open_dossier_cut: str = "now"  # "now" | "period_end"
    no_deadline: str = "on_time"  # "on_time" | "late" | "exclude"
    population_db_codes: tuple[str, ...] = ()
    offset_s: int = 7 * 3600

    @property
    def no_due(self) -> int | None:
        """What a dossier without NgayHenTra counts: 1 on time, 0 late, None left out."""
        return {"on_time": 1, "late": 0, "exclude": None}[self.no_deadline]

    def cut(self, end: int, now: float) -> float:
        """When a dossier still in processing is judged, for a period ending at ``end``."""
        return min(now, end) if self.open_dossier_cut == "now" else end


def _sql_literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _counts(rules: Rules) -> dict[str, str]:
    """SQL per count over ``dossier`` rows, evaluated at ``:now`` / ``:cut`` (the full rule)."""
    nd, slo = _sql_literal(rules.no_due), _sql_literal(rules.sync_lag_slo)
    codes = [f"coalesce(instr(csdl, {_sql_literal(f',{c},')}), 0) > 0" for c in rules.population_db_codes]
    return {
        "received": "COUNT(*)",
        "sync_ok": f"SUM(COALESCE(worst_lag, 0) <= {slo} AND (open_since IS NULL OR :now - open_since <= {slo}))",
        "on_time": f"SUM(CASE WHEN verdict IS NOT NULL THEN verdict WHEN due IS NULL THEN {nd} ELSE due >= :cut END)",
        "on_time_total": f"SUM(CASE WHEN verdict IS NULL AND due IS NULL AND {nd} IS NULL THEN 0 ELSE 1 END)",
        "online": "SUM(channel = 2)",
        "finished": "SUM(finished)",
        "result_link": "SUM(finished AND result_link = 1)",
        "so_hoa": "SUM(comp_file = 1 AND result_link = 1)",
        "reused": "SUM(sohoa = 1)",
        "kho": "SUM(kho = 1)",
        "fee": "SUM(fee = 1)",
        "paid_online": "SUM(fee = 1 AND paid IN (1, 2))",
        # VNeID, a document from the citizen's store, or a population-database connection (§3.6)
        "citizen_data": f"SUM({' OR '.join(['vneid = 1', 'kho = 1', *codes])})",
        "vneid": "SUM(vneid = 1)",
    }


@lru_cache(maxsize=8)
def upsert(rules: Rules) -> str:
    """The fold statement (:func:`_upsert`) in the rules' time zone (built once)."""
    return _upsert().replace(":offset", str(int(rules.offset_s)))


@lru_cache(maxsize=8)
def _layout(rules: Rules, cuts: int) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]:
    """The columns of :func:`_scan` for ``cuts`` distinct cuts: every count once, a count that
    depends on the cut once per cut ``j`` (``:cut<j>``); and for each count (in
    :data:`COUNT_NAMES` order) its column for cut ``j``, ``j`` = 0 … ``cuts`` - 1."""
    columns: list[str] = []
    places: list[tuple[int, ...]] = []
    for expr in _counts(rules).values():
        if ":cut" in expr:
            places.append(tuple(range(len(columns), len(columns) + cuts)))
            columns += [expr.replace(":cut", f":cut{j}") for j in range(cuts)]
        else:
            places.append((len(columns),) * cuts)
            columns.append(expr)
    return tuple(columns), tuple(places)



#: SQL: per dossier with events not delivered, when the oldest was accepted (DOSSIER_SYNC).
_OPEN = "(SELECT mahoso, min(accepted_at) AS open_since FROM waiting GROUP BY mahoso)"


@lru_cache(maxsize=8)
def _scan(rules: Rules, buckets: int, cuts: int) -> str:
    """The query of :func:`aggregate`: over the dossiers received in [``:b0``, ``:b<buckets>``),
    per unit and per bucket ``k`` (received in [``:b<k>``, ``:b<k+1>``)), every column of
    :func:`_layout` judged at ``:now``; as one row holding a JSON array of [unit, bucket,
    columns…]: one step of SQLite, where fetching row by row would take the GIL back once per
    group."""
    columns, _ = _layout(rules, cuts)
    bucket = "CASE " + " ".join(f"WHEN received < :b{k + 1} THEN {k}" for k in range(buckets)) + " END"
    names = ", ".join(f"c{j}" for j in range(len(columns)))
    selected = ", ".join(f"{expr} AS c{j}" for j, expr in enumerate(columns))
    return (f"SELECT json_group_array(json_array(unit, bucket, {names})) FROM (SELECT unit, {bucket} AS bucket, "
            f"{selected} FROM dossier LEFT JOIN {_OPEN} USING (mahoso)"
            f" WHERE received >= :b0 AND received < :b{buckets} GROUP BY unit, bucket)")


def aggregate(conn: sqlite3.Connection, rules: Rules, periods: Sequence[tuple[int, int]],
              now: float) -> list[dict[str, Counts]]:
    """For each period (``start``, ``end``): Unix seconds, ``end`` excluded), the counts per unit
    (as stored: the first segment of MaHoSo) of the dossiers received in it; ``now`` judges what
    is still open (the SLO, dossiers in processing, :meth:`Rules.cut`).

    One scan of the dossier rows of all the periods together, each row counted once: the periods'
    starts and ends cut the time into disjoint buckets (the current month, the rest of its
    quarter, the rest of its year), the query counts per unit and bucket, and a period adds up
    the buckets it covers. Every count is a sum, so the totals are the same as counting each
    period apart; only ON_TIME depends on the period (its cut), and is counted once per distinct
    cut."""
    if not periods:
        return []
    bounds = sorted({t for period in periods for t in period})
    cuts = sorted({rules.cut(end, now) for _, end in periods})
    params: dict[str, float] = {"now": now} | {f"b{k}": t for k, t in enumerate(bounds)}
    params |= {f"cut{j}": cut for j, cut in enumerate(cuts)}
    (text,) = conn.execute(_scan(rules, len(bounds) - 1, len(cuts)), params).fetchone()
    _, places = _layout(rules, len(cuts))
    covering = [[i for i, (start, end) in enumerate(periods) if start <= bounds[k] and bounds[k + 1] <= end]
                for k in range(len(bounds) - 1)]
    picks = [[place[cuts.index(rules.cut(end, now))] for place in places] for _, end in periods]
    out: list[dict[str, Counts]] = [{} for _ in periods]
    for unit, bucket, *values in orjson.loads(text):
        for i in covering[bucket]:
            counts = Counts._make(int(values[j] or 0) for j in picks[i])
            if counts.received:
                by_unit = out[i]
                key = str(unit)
                by_unit[key] = plus(by_unit[key], counts) if key in by_unit else counts
    return out


# ------------------------------------------------------------------------------------------ writes


def write(conn: sqlite3.Connection, facts: Sequence[Facts], rules: Rules) -> None:
    """Fold a batch of events (monitoring/kpi/facts.py) into their dossiers' rows, in one
    transaction: the dossiers' rows, then the events not delivered; then, if any event waits,
    those the batch delivered (and the older snapshots its snapshots carried) stop waiting."""
    if not facts:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for params in _chunks(facts, EVENT_WIDTH):
            conn.execute(_FILL, params)
        conn.execute(upsert(rules))
        conn.execute(_WAIT)
        if conn.execute("SELECT 1 FROM waiting LIMIT 1").fetchone():
            conn.execute(_COVER)
            conn.execute(_UNCOVER)
            conn.execute(_DELIVERED)
        conn.execute("DELETE FROM batch")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def prune(conn: sqlite3.Connection, before: int) -> int:
    """Forget the dossiers received before ``before`` (Unix seconds), and those never received
    (no snapshot with NgayTiepNhan) whose last event was accepted before it, with their events
    waiting; returns how many received dossiers went."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        n = conn.execute("DELETE FROM dossier WHERE received < ?", (before,)).rowcount
        conn.execute("DELETE FROM dossier WHERE received IS NULL AND seen < ?", (before,))
        conn.execute("DELETE FROM waiting WHERE mahoso NOT IN (SELECT mahoso FROM dossier)")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(n)


# ------------------------------------------------------------------------------------------ files


#: The writer's page cache (KiB). ``dossier`` is keyed by MaHoSo, which starts with the unit, so a
#: write's new dossiers land at the end of every unit's range (some 500-600 pages with 500 units),
#: the same pages every time: the cache holds them between writes instead of re-reading them.
CACHE_KIB = 16_384
#: WAL pages between checkpoints. A write re-dirties mostly the same pages (the end of each unit's
#: range): SQLite's default (1,000) would copy them
#: back into the file after nearly every write; at 16,384 (a WAL of at most 64 MB) a checkpoint
#: comes every ten writes or so at peak and copies each page once.
CHECKPOINT_PAGES = 16_384


def open_store(path: Path) -> sqlite3.Connection:
    """Open (or create) the file for writing: folder 0700, file 0600 (it names dossiers), WAL.
    Raises :class:`~core.errors.ConfigError` (``kpi.path``) for a file of an older layout
    (schemas 1-3, written before any release), leaving it untouched."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        _refuse_older(conn, path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        conn.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
        conn.executescript(SCHEMA)
        conn.execute("PRAGMA temp_store=MEMORY")  # the batch holds whole payloads: never in a temporary file
        conn.execute(_BATCH)
    except BaseException:
        conn.close()
        raise
    return conn


def _refuse_older(conn: sqlite3.Connection, path: Path) -> None:
    """Raise ConfigError when the file holds another schema than :data:`SCHEMA_VERSION`."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
        return  # a new file
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    version = row[0] if row else "?"
    if version != str(SCHEMA_VERSION):
        raise ConfigError("kpi.path", (
            f"{path} holds the 766 indicators in an older layout (schema {version}; this version reads "
            f"schema {SCHEMA_VERSION}). Stop the gateway and delete the file (and its -wal and -shm): "
            "the figures start again from the next deliveries (docs/kpi.md)"))


def open_reader(path: Path) -> sqlite3.Connection:
    """Open the file read-only (the ``dvcgw kpi`` command, while the daemon may be writing).
    Raises ConfigError for a file of an older layout, as :func:`open_store` does."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        _refuse_older(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def close(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def units_in(conn: sqlite3.Connection) -> Mapping[str, int]:
    """Dossiers per stored unit (tests, diagnostics)."""
    return dict(conn.execute("SELECT unit, COUNT(*) FROM dossier WHERE received IS NOT NULL GROUP BY unit").fetchall())
