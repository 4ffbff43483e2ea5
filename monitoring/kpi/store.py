"""The indicators' own SQLite file: the facts of every event and one derived row per dossier.

Three tables:

* ``ev``: one row per event the delivery engine recorded (:mod:`monitoring.kpi.facts`), keyed by
  (``MaHoSo``, sequence): its sync facts, and a progress item's status and time;
* ``snap``: one row per snapshot with the figures the indicators count;
* ``dossier``: one row per dossier with a ``NgayTiepNhan``, derived from its rows whenever one of
  them changes (:data:`DERIVE`): the figures of its newest snapshot that was not dead-lettered
  (else of its newest snapshot: the dossier exists in the provincial system even when the portal
  refused it, and counts, unsynced), its end-of-processing verdict (kpi-766.md §3.2 steps 1, 2
  and 4), and its sync summary (the worst delivery lag, the oldest event not delivered).

The figures are counted from the ``dossier`` rows, at the moment of the computation, by one
query (:func:`aggregate`): one pass over the rows received in the periods asked (the current
month, quarter and year together: the year's rows), the same for the service's periodic
computation, ``GET /v1/kpi`` and the ``dvcgw kpi`` command. Nothing is counted ahead, so a change
of ``[kpi]`` (the SLO, the no-deadline policy, the population-database codes) applies to the
next computation as it is.

Every write is one transaction (:func:`write`): a crash loses at most the batch not yet written,
never leaves a dossier's row out of step with its events. The file is in WAL mode, so the
command can read it while the daemon writes. The work is SQL, run by SQLite without the GIL, so a
write costs the event loop little.
"""

from __future__ import annotations

import contextlib
import operator
import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import orjson

from monitoring.kpi.facts import KIND_SNAPSHOT, Facts

#: 1: issue 14's first layout, with running counts per unit and month (``tally``) and the
#: dossier's month; 2: without them; 3: ``snap``'s rows narrower (its yes/no figures as one
#: bitmask, no unit or MaTTHC) and ``snap`` and ``dossier`` without a rowid (one B-tree a table
#: instead of a table and its key's index: a file 17 % smaller, one lookup where the derivation
#: made two; a write touches about as many pages either way, measured). :func:`open_store` brings
#: an older file to 3.
SCHEMA_VERSION = 3

_SNAP = """
CREATE TABLE IF NOT EXISTS snap (
    mahoso TEXT NOT NULL, seq INTEGER NOT NULL, status INTEGER,
    received INTEGER, due INTEGER, ended INTEGER, channel INTEGER, paid INTEGER,
    flags INTEGER NOT NULL,  -- facts.FEE | COMP_FILE | RESULT_LINK | SOHOA | KHO | VNEID
    csdl TEXT, supp_rows INTEGER, supp_req INTEGER, supp_pause INTEGER,
    PRIMARY KEY (mahoso, seq)
) WITHOUT ROWID;
"""
_DOSSIER = """
CREATE TABLE IF NOT EXISTS dossier (
    mahoso TEXT PRIMARY KEY, unit TEXT NOT NULL, received INTEGER NOT NULL,
    verdict INTEGER,        -- ON_TIME decided: 1 on time, 0 late; NULL: judged at the cut (or no deadline)
    due INTEGER,            -- NgayHenTra; NULL: none (§3.2 step 5)
    finished INTEGER NOT NULL,  -- processing finished or result returned (9 or 10)
    channel INTEGER, paid INTEGER, fee INTEGER, comp_file INTEGER, result_link INTEGER, sohoa INTEGER,
    kho INTEGER, vneid INTEGER, csdl TEXT,
    worst_lag REAL,         -- the longest accepted -> delivered of its events
    open_since REAL         -- accepted_at of its oldest event not delivered (dead letters included)
) WITHOUT ROWID;
"""
DOSSIER_COLUMNS = ("mahoso", "unit", "received", "verdict", "due", "finished", "channel", "paid", "fee", "comp_file",
                   "result_link", "sohoa", "kho", "vneid", "csdl", "worst_lag", "open_since")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS ev (
    mahoso TEXT NOT NULL, seq INTEGER NOT NULL, kind INTEGER NOT NULL,
    accepted_at REAL NOT NULL, delivered_at REAL, dead INTEGER NOT NULL DEFAULT 0,
    status INTEGER, at INTEGER,  -- TrangThai, ThoiDiemXuLy (a snapshot's TrangThaiHoSo)
    PRIMARY KEY (mahoso, seq)
) WITHOUT ROWID;
{_SNAP}{_DOSSIER}
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('schema', '{SCHEMA_VERSION}');
CREATE TEMP TABLE IF NOT EXISTS dirty (mahoso TEXT PRIMARY KEY) WITHOUT ROWID;
"""


def _v(i: int) -> str:
    """SQL: element ``i`` of the current row of a batch (a JSON array of arrays, ``json_each``)."""
    return f"(value ->> {i})"


def _unix(i: int) -> str:
    """SQL: element ``i`` (local seconds, :func:`monitoring.kpi.facts.local_seconds`) as Unix
    seconds (``:offset``, seconds east of UTC, is substituted by :func:`statements`)."""
    return f"({_v(i)} - :offset)"


# Each write passes its rows as one JSON text and SQLite unpacks them (json_each): one statement,
# one release of the GIL, where executemany released and re-took it around every row, and each
# re-take waited for the busy event loop to let go (the writer starved; every hand-over cost the
# loop a thread switch). The rows hold the values as stored (monitoring/kpi/facts.py): SQLite
# 3.40 re-parses a row's JSON for each column read, so every column is read once.
_UPSERT_EV = (
    "INSERT INTO ev (mahoso, seq, kind, accepted_at, delivered_at, dead, status, at)"
    f" SELECT {_v(0)}, {_v(1)}, {_v(2)}, {_v(3)}, {_v(4)}, {_v(5)}, {_v(6)}, {_unix(7)} FROM json_each(?1) WHERE true"
    " ON CONFLICT (mahoso, seq) DO UPDATE SET"
    " delivered_at = COALESCE(ev.delivered_at, excluded.delivered_at),"
    " dead = CASE WHEN excluded.delivered_at IS NOT NULL THEN 0 WHEN excluded.dead = 1 THEN 1 ELSE ev.dead END"
)

#: Column order of a ``snap`` row (monitoring/kpi/facts.py gives the dates in local seconds).
SNAP_COLUMNS = ("mahoso", "seq", "status", "received", "due", "ended", "channel", "paid", "flags", "csdl",
                "supp_rows", "supp_req", "supp_pause")
_DATES = {"received", "due", "ended", "supp_req"}

_INSERT_SNAP = (
    f"INSERT OR IGNORE INTO snap ({', '.join(SNAP_COLUMNS)}) SELECT "
    + ", ".join(_unix(i) if c in _DATES else _v(i) for i, c in enumerate(SNAP_COLUMNS))
    + " FROM json_each(?1)"
)

# A delivered snapshot carries every older state of its dossier to the portal (the queue
# supersedes the older ones): they count as delivered when it was. Rows: [delivered_at, MaHoSo, seq].
_COVER = ("UPDATE ev SET delivered_at = c.value ->> 0, dead = 0 FROM json_each(?1) AS c"
          " WHERE ev.mahoso = c.value ->> 1 AND ev.seq < c.value ->> 2 AND ev.kind = 0 AND ev.delivered_at IS NULL")

_DIRTY = "INSERT OR IGNORE INTO dirty SELECT value ->> 0 FROM json_each(?1)"

#: The derived row of every dossier in ``dirty`` (kpi-766.md §3.2, steps applied in order):
#: 1. end = the first 9, else the first 10, else the first 8 or 3, else the first 7 (withdrawal
#:    ranked last, [UNCERTAIN]); without a terminal progress item, the snapshot's NgayKetThucXuLy
#:    when its TrangThaiHoSo is final (GW: history sent as a snapshot only);
#: 2. no end and more than one supplement request: late; exactly one: its time is the end;
#: 3. no end and no supplement request: judged at the computation's cut (``due >= cut``);
#: 4. the supplement time (Σ completed − requested) is subtracted from a step-1 end;
#: 5. no NgayHenTra: ``verdict`` NULL and ``due`` NULL, the [kpi] no_deadline policy decides.
#: Supplement requests = max(runs of consecutive status-5 items, DanhSachHoSoBoSung rows). The
#: snapshot is the newest one not dead-lettered, else the newest (the dossier exists in the
#: provincial system even when the portal refused it). Dead-lettered progress is not what the
#: portal has: it is left out of the steps. CROSS JOIN keeps SQLite starting from ``dirty``.
DERIVE = """
WITH pick AS (
    SELECT d.mahoso, (SELECT e.seq FROM ev e JOIN snap s ON s.mahoso = e.mahoso AND s.seq = e.seq
                      WHERE e.mahoso = d.mahoso AND e.kind = 0 AND s.received IS NOT NULL
                      ORDER BY e.dead, e.seq DESC LIMIT 1) AS seq
    FROM dirty d
), steps AS (
    SELECT e.mahoso, e.status, e.at,
           LAG(e.status) OVER (PARTITION BY e.mahoso ORDER BY e.at, e.seq) AS prev
    FROM dirty d CROSS JOIN ev e
    WHERE e.mahoso = d.mahoso AND e.kind = 1 AND e.dead = 0 AND e.at IS NOT NULL
), prog AS (
    SELECT mahoso,
           COALESCE(MIN(at) FILTER (WHERE status = 9), MIN(at) FILTER (WHERE status = 10),
                    MIN(at) FILTER (WHERE status IN (3, 8)), MIN(at) FILTER (WHERE status = 7)) AS t_end,
           MAX(status IN (9, 10)) AS done,
           COUNT(*) FILTER (WHERE status = 5 AND (prev IS NULL OR prev <> 5)) AS asks,
           MIN(at) FILTER (WHERE status = 5) AS t_ask
    FROM steps GROUP BY mahoso
), sync AS (
    SELECT e.mahoso, MAX(e.delivered_at - e.accepted_at) AS worst_lag,
           MIN(CASE WHEN e.delivered_at IS NULL THEN e.accepted_at END) AS open_since
    FROM dirty d CROSS JOIN ev e WHERE e.mahoso = d.mahoso GROUP BY e.mahoso
), joined AS (
    SELECT s.*, y.worst_lag, y.open_since,
           COALESCE(p.t_end, CASE WHEN s.status IN (3, 7, 8, 9, 10) THEN s.ended END) AS t_end,
           MAX(COALESCE(p.asks, 0), COALESCE(s.supp_rows, 0)) AS asks,
           COALESCE(p.t_ask, s.supp_req) AS t_ask,
           COALESCE(p.done, 0) OR s.status IN (9, 10) AS finished
    FROM pick k CROSS JOIN snap s ON s.mahoso = k.mahoso AND s.seq = k.seq
    JOIN sync y ON y.mahoso = k.mahoso LEFT JOIN prog p ON p.mahoso = k.mahoso
)
INSERT INTO dossier
SELECT mahoso, substr(mahoso, 1, instr(mahoso, '-') - 1), received,
       CASE WHEN due IS NULL THEN NULL
            WHEN t_end IS NOT NULL THEN t_end - COALESCE(supp_pause, 0) <= due
            WHEN asks > 1 THEN 0
            WHEN asks = 1 THEN t_ask <= due
       END,
       due, finished, channel, paid, flags & 1, (flags >> 1) & 1, (flags >> 2) & 1, (flags >> 3) & 1,
       (flags >> 4) & 1, (flags >> 5) & 1, csdl, worst_lag, open_since
FROM joined
"""


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


@dataclass(frozen=True)
class Statements:
    """The statements of a write for one set of rules (built once: :func:`statements`)."""

    upsert_ev: str
    insert_snap: str
    derive: str


@lru_cache(maxsize=8)
def statements(rules: Rules) -> Statements:
    offset = str(int(rules.offset_s))
    return Statements(
        upsert_ev=_UPSERT_EV.replace(":offset", offset),
        insert_snap=_INSERT_SNAP.replace(":offset", offset),
        derive=DERIVE.replace(":offset", offset),
    )


@lru_cache(maxsize=8)
def _scan(rules: Rules, periods: int) -> str:
    """The query of :func:`aggregate` for ``periods`` periods: over the dossiers received in
    [``:lo``, ``:hi``), per unit, every count of each period ``i`` (received in [``:start<i>``,
    ``:end<i>``), judged at ``:now`` and ``:cut<i>``), as one row holding a JSON array of
    [unit, counts…]: one step of SQLite, where fetching row by row would take the GIL back once
    per unit."""
    counts = _counts(rules)
    columns = [f"{expr.replace(':cut', f':cut{i}')} FILTER (WHERE received >= :start{i} AND received < :end{i})"
               for i in range(periods) for expr in counts.values()]
    names = ", ".join(f"c{j}" for j in range(len(columns)))
    selected = ", ".join(f"{expr} AS c{j}" for j, expr in enumerate(columns))
    return (f"SELECT json_group_array(json_array(unit, {names})) FROM (SELECT unit, {selected}"
            " FROM dossier WHERE received >= :lo AND received < :hi GROUP BY unit)")


def aggregate(conn: sqlite3.Connection, rules: Rules, periods: Sequence[tuple[int, int]],
              now: float) -> list[dict[str, Counts]]:
    """For each period (``start``, ``end``): Unix seconds, ``end`` excluded), the counts per unit
    (as stored: the first segment of MaHoSo) of the dossiers received in it; ``now`` judges what
    is still open (the SLO, dossiers in processing, :meth:`Rules.cut`). One query over the
    dossier rows of all the periods together."""
    if not periods:
        return []
    params: dict[str, float] = {"now": now, "lo": min(p[0] for p in periods), "hi": max(p[1] for p in periods)}
    for i, (start, end) in enumerate(periods):
        params |= {f"start{i}": start, f"end{i}": end, f"cut{i}": rules.cut(end, now)}
    (text,) = conn.execute(_scan(rules, len(periods)), params).fetchone()
    n = len(COUNT_NAMES)
    out: list[dict[str, Counts]] = [{} for _ in periods]
    for unit, *values in orjson.loads(text):
        for i, by_unit in enumerate(out):
            counts = Counts._make(int(v or 0) for v in values[i * n:(i + 1) * n])
            if counts.received:
                by_unit[str(unit)] = counts
    return out


# ------------------------------------------------------------------------------------------ writes


def write(conn: sqlite3.Connection, facts: Sequence[Facts], rules: Rules) -> None:
    """Apply a batch of facts and re-derive the dossiers they touch, in one transaction."""
    if not facts:
        return
    sql = statements(rules)
    events = [ev for ev, _ in facts]
    snaps = [snap for _, snap in facts if snap is not None]
    covers = [(ev[4], ev[0], ev[1]) for ev in events if ev[2] == KIND_SNAPSHOT and ev[4] is not None]
    events_json = orjson.dumps(events).decode()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(sql.upsert_ev, (events_json,))
        if snaps:
            conn.execute(sql.insert_snap, (orjson.dumps(snaps).decode(),))
        if covers:
            conn.execute(_COVER, (orjson.dumps(covers).decode(),))
        conn.execute(_DIRTY, (events_json,))
        conn.execute("DELETE FROM dossier WHERE mahoso IN (SELECT mahoso FROM dirty)")
        conn.execute(sql.derive)
        conn.execute("DELETE FROM dirty")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def prune(conn: sqlite3.Connection, before: int) -> int:
    """Forget the dossiers received before ``before`` (Unix seconds), their events included;
    returns how many dossiers went."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        old = "SELECT mahoso FROM dossier WHERE received < ?"
        conn.execute(f"DELETE FROM ev WHERE mahoso IN ({old})", (before,))
        conn.execute(f"DELETE FROM snap WHERE mahoso IN ({old})", (before,))
        n = conn.execute("DELETE FROM dossier WHERE received < ?", (before,)).rowcount
        # events of dossiers never placed in a period (no NgayTiepNhan seen), as old
        conn.execute("DELETE FROM ev WHERE accepted_at < ? AND mahoso NOT IN (SELECT mahoso FROM dossier)",
                     (before,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(n)


# ------------------------------------------------------------------------------------------ files


#: The writer's page cache (KiB). Dossier codes start with their unit, so a write lands at the
#: end of every unit's range in each table: with 500 units, some 4,000 pages (16 MB) a write of
#: 2 s of deliveries, the same pages every time. SQLite's default 2 MB re-read most of them from
#: the file at each write (measured: 40 -> 27-34 us an event at 1,600 dossiers a write).
CACHE_KIB = 16_384
#: WAL pages between checkpoints. A write re-dirties mostly the same pages (the end of each unit's
#: range): SQLite's default (1,000) copied all ~4,000 of them back into the file after every write;
#: at 16,384 (a WAL of at most 64 MB) a checkpoint comes every few writes and copies each page once.
CHECKPOINT_PAGES = 16_384


def open_store(path: Path) -> sqlite3.Connection:
    """Open (or create) the file for writing: folder 0700, file 0600 (it names dossiers), WAL."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        conn.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
        conn.executescript(SCHEMA)
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if version == "1":  # the running counts and the month they were kept by are no longer kept
            conn.executescript("BEGIN IMMEDIATE; DROP TABLE IF EXISTS tally; DROP INDEX IF EXISTS dossier_open;"
                               " ALTER TABLE dossier DROP COLUMN month;"
                               " UPDATE meta SET value = '2' WHERE key = 'schema'; COMMIT;")
            version = "2"
        if version == "2":
            _to_schema_3(conn)
    except sqlite3.Error:
        conn.close()
        raise
    return conn


#: Schema 2's ``snap`` columns as schema 3 keeps them (its unit and MaTTHC went: unused).
_SNAP_FROM_2 = ", ".join([
    "mahoso", "seq", "status", "received", "due", "ended", "channel", "paid",
    # (SQLite ranks | and << alike, left to right: hence the parentheses)
    "coalesce(fee, 0) | (coalesce(comp_file, 0) << 1) | (coalesce(result_link, 0) << 2)"
    " | (coalesce(sohoa, 0) << 3) | (coalesce(kho, 0) << 4) | (coalesce(vneid, 0) << 5)",
    "csdl", "supp_rows", "supp_req", "supp_pause"])


def _to_schema_3(conn: sqlite3.Connection) -> None:
    """Copy ``dossier`` and ``snap`` (when it has schema 2's columns: a file of schema 1 may lack
    it, then it was just created) into their schema-3 tables, in one transaction."""
    snap_columns = {row[1] for row in conn.execute("PRAGMA table_info(snap)")}
    script = ["BEGIN IMMEDIATE;", "ALTER TABLE dossier RENAME TO dossier_2;", _DOSSIER,
              f"INSERT INTO dossier SELECT {', '.join(DOSSIER_COLUMNS)} FROM dossier_2;", "DROP TABLE dossier_2;"]
    if "fee" in snap_columns:
        script += ["ALTER TABLE snap RENAME TO snap_2;", _SNAP,
                   f"INSERT INTO snap ({', '.join(SNAP_COLUMNS)}) SELECT {_SNAP_FROM_2} FROM snap_2;",
                   "DROP TABLE snap_2;"]
    script += [f"UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema';", "COMMIT;"]
    try:
        conn.executescript("\n".join(script))
    except sqlite3.Error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def open_reader(path: Path) -> sqlite3.Connection:
    """Open the file read-only (the ``dvcgw kpi`` command, while the daemon may be writing)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def close(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def units_in(conn: sqlite3.Connection) -> Mapping[str, int]:
    """Dossiers per stored unit (tests, diagnostics)."""
    return dict(conn.execute("SELECT unit, COUNT(*) FROM dossier GROUP BY unit").fetchall())
