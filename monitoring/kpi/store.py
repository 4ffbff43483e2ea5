"""The indicators' own SQLite file: the facts of every event and one derived row per dossier.

Three tables, each keyed by the integer id a dossier gets on first sight (``code``), so that the
rows of new dossiers append at the end of each table (keys by ``MaHoSo``, which starts with the
unit, put every write's rows at the end of each unit's range: with 500 units a write re-wrote
~4,800 pages for ~300 KB of rows; docs/kpi.md, Cost):

* ``code``: ``MaHoSo`` -> id, the one table (its unique index) a write still touches in every
  unit's range;
* ``ev``: one row per event the delivery engine recorded (:mod:`monitoring.kpi.facts`), keyed by
  (id, sequence): its sync facts, a progress item's status and time, and a snapshot's figures;
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
from itertools import chain
from pathlib import Path
from typing import NamedTuple

import orjson

from core.errors import ConfigError
from monitoring.kpi.facts import PROGRESS_WIDTH, SNAPSHOT_WIDTH, Facts, Row

#: 1: issue 14's first layout (running counts); 2: without them; 3: narrower rows, tables without
#: a rowid; 4: every table keyed by an integer id given to a dossier on first sight (``code``),
#: a snapshot's figures in its ``ev`` row (no ``snap`` table). Keys by MaHoSo, which starts with
#: the unit, put each write's new rows at the end of every unit's range: with 500 units a write
#: re-wrote ~4,800 pages (19 MB) for ~500 KB of rows; new ids append at the end of each table.
#: Files of schemas 1-3 are refused (:class:`~core.errors.ConfigError`): no release shipped them.
SCHEMA_VERSION = 4

_CODE = """
CREATE TABLE IF NOT EXISTS code (
    id INTEGER PRIMARY KEY,     -- given on first sight, in order: a dossier's rows append
    mahoso TEXT NOT NULL UNIQUE
);
"""
_EV = """
CREATE TABLE IF NOT EXISTS ev (
    id INTEGER NOT NULL, seq INTEGER NOT NULL, kind INTEGER NOT NULL,
    accepted_at REAL NOT NULL, delivered_at REAL, dead INTEGER NOT NULL DEFAULT 0,
    status INTEGER, at INTEGER,  -- TrangThai, ThoiDiemXuLy (a snapshot's TrangThaiHoSo)
    -- a snapshot's figures (NULL in a progress item's row): monitoring/kpi/facts.py
    received INTEGER, due INTEGER, ended INTEGER, channel INTEGER, paid INTEGER,
    flags INTEGER,              -- facts.FEE | COMP_FILE | RESULT_LINK | SOHOA | KHO | VNEID
    csdl TEXT, supp_rows INTEGER, supp_req INTEGER, supp_pause INTEGER,
    PRIMARY KEY (id, seq)
) WITHOUT ROWID;
"""
_DOSSIER = """
CREATE TABLE IF NOT EXISTS dossier (
    id INTEGER PRIMARY KEY,     -- code.id
    unit TEXT NOT NULL, received INTEGER NOT NULL,
    verdict INTEGER,        -- ON_TIME decided: 1 on time, 0 late; NULL: judged at the cut (or no deadline)
    due INTEGER,            -- NgayHenTra; NULL: none (§3.2 step 5)
    finished INTEGER NOT NULL,  -- processing finished or result returned (9 or 10)
    channel INTEGER, paid INTEGER, fee INTEGER, comp_file INTEGER, result_link INTEGER, sohoa INTEGER,
    kho INTEGER, vneid INTEGER, csdl TEXT,
    worst_lag REAL,         -- the longest accepted -> delivered of its events
    open_since REAL         -- accepted_at of its oldest event not delivered (dead letters included)
);
"""

SCHEMA = f"""
{_CODE}{_EV}{_DOSSIER}
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('schema', '{SCHEMA_VERSION}');
-- the dossiers of the write under way: MaHoSo (the batch's rows name their dossier by it) and id
CREATE TEMP TABLE IF NOT EXISTS dirty (mahoso TEXT PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;
"""


#: Rows one statement carries (:func:`_values`). A write binds its rows to a prepared statement of
#: ``CHUNK`` rows of ``?`` (``VALUES (?, …), …``), the last one filled up with NULL rows, which
#: the join with ``dirty`` drops: one prepared statement a row width, reused by every write (a
#: statement of another size costs ~9 µs a row to prepare), and a write of 4,250 dossiers hands
#: the GIL over some 30 times, not once a row as executemany did (each re-take waited for the busy
#: event loop). Rows used to go as one JSON text unpacked by json_each: SQLite 3.40 re-parses a
#: row's JSON for every column it reads, ~0.7 µs a column (measured: upserts 6-9 -> ~2 µs an event).
CHUNK = 512


def _values(width: int) -> str:
    """SQL: a table ``v`` of ``CHUNK`` rows of ``width`` parameters (columns ``column1`` …)."""
    row = f"({', '.join('?' * width)})"
    return f"(VALUES {', '.join([row] * CHUNK)}) AS v"


def _chunks(rows: Sequence[Row], width: int) -> list[list[object]]:
    """The parameters of ``rows`` for statements of :func:`_values`, ``CHUNK`` rows each, the last
    filled up with NULLs (its first column NULL: no dossier). Flattened by C loops
    (``chain.from_iterable``): the writer holds the GIL, which the event loop needs, meanwhile."""
    out = []
    for first in range(0, len(rows), CHUNK):
        part = rows[first:first + CHUNK]
        params: list[object] = list(chain.from_iterable(part))
        params += [None] * (width * (CHUNK - len(part)))
        out.append(params)
    return out


def _col(i: int) -> str:
    """SQL: column ``i`` (0-based) of the rows of :func:`_values`."""
    return f"v.column{i + 1}"


#: Column order of a batch's ``ev`` row (monitoring/kpi/facts.py's rows, as they are): a progress
#: item's first 8, a snapshot's all; MaHoSo first, which the statements turn into the dossier's id.
EV_COLUMNS = ("mahoso", "seq", "kind", "accepted_at", "delivered_at", "dead", "status", "at",
              "received", "due", "ended", "channel", "paid", "flags", "csdl", "supp_rows", "supp_req", "supp_pause")
assert len(EV_COLUMNS) == SNAPSHOT_WIDTH
#: local seconds (:func:`monitoring.kpi.facts.local_seconds`), stored as Unix seconds (``:offset``,
#: seconds east of UTC, is substituted by :func:`statements`)
_DATES = {"at", "received", "due", "ended", "supp_req"}


def _upsert_ev(width: int) -> str:
    """The upsert of ``CHUNK`` ``ev`` rows of ``width`` columns: a progress item's 8 in its own
    statement (two events of three), a snapshot's all. A snapshot's figures are those of its first
    report (an event's payload never changes); a repeat only adds its outcome."""
    columns = EV_COLUMNS[:width]
    values = ", ".join("d.id" if c == "mahoso" else f"{_col(i)} - :offset" if c in _DATES else _col(i)
                       for i, c in enumerate(columns))
    return (f"INSERT INTO ev (id, {', '.join(columns[1:])}) SELECT {values}"
            f" FROM {_values(width)} CROSS JOIN dirty d ON d.mahoso = v.column1 WHERE true"
            " ON CONFLICT (id, seq) DO UPDATE SET"
            " delivered_at = COALESCE(ev.delivered_at, excluded.delivered_at),"
            " dead = CASE WHEN excluded.delivered_at IS NOT NULL THEN 0 WHEN excluded.dead = 1 THEN 1 ELSE ev.dead END")


# The batch's dossiers: ids for the new codes (appended: the rowid after the largest), then each
# code and its id in ``dirty``. ?1: the batch's distinct codes, a JSON array.
_NEW_CODES = "INSERT OR IGNORE INTO code (mahoso) SELECT value FROM json_each(?1)"
_DIRTY = ("INSERT INTO dirty (mahoso, id)"
          " SELECT c.mahoso, c.id FROM json_each(?1) AS j CROSS JOIN code c ON c.mahoso = j.value")

# A delivered snapshot carries every older state of its dossier to the portal (the queue
# supersedes the older ones): they count as delivered when it was. Rows: (delivered_at, MaHoSo, seq).
# (JOIN, not CROSS JOIN: with it, SQLite 3.40 put ev first and scanned it whole.)
COVER_WIDTH = 3
_COVER = (f"UPDATE ev SET delivered_at = v.column1, dead = 0 FROM {_values(COVER_WIDTH)}"
          " JOIN dirty d ON d.mahoso = v.column2"
          " WHERE ev.id = d.id AND ev.seq < v.column3 AND ev.kind = 0 AND ev.delivered_at IS NULL")

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
#: portal has: it is left out of the steps. CROSS JOIN keeps SQLite starting from ``dirty``. The
#: sync summary is two lookups in the dossier's few ``ev`` rows, not a grouped CTE that SQLite
#: materialised, sorted and indexed at every write (measured: the derivation 3.25 -> 2.98 µs an
#: event, the same rows).
DERIVE = """
WITH pick AS (
    SELECT d.id, d.mahoso, (SELECT e.seq FROM ev e
                            WHERE e.id = d.id AND e.kind = 0 AND e.received IS NOT NULL
                            ORDER BY e.dead, e.seq DESC LIMIT 1) AS seq
    FROM dirty d
), steps AS (
    SELECT e.id, e.status, e.at,
           LAG(e.status) OVER (PARTITION BY e.id ORDER BY e.at, e.seq) AS prev
    FROM dirty d CROSS JOIN ev e
    WHERE e.id = d.id AND e.kind = 1 AND e.dead = 0 AND e.at IS NOT NULL
), prog AS (
    SELECT id,
           COALESCE(MIN(at) FILTER (WHERE status = 9), MIN(at) FILTER (WHERE status = 10),
                    MIN(at) FILTER (WHERE status IN (3, 8)), MIN(at) FILTER (WHERE status = 7)) AS t_end,
           MAX(status IN (9, 10)) AS done,
           COUNT(*) FILTER (WHERE status = 5 AND (prev IS NULL OR prev <> 5)) AS asks,
           MIN(at) FILTER (WHERE status = 5) AS t_ask
    FROM steps GROUP BY id
), joined AS (
    SELECT k.mahoso, s.*,
           (SELECT MAX(e.delivered_at - e.accepted_at) FROM ev e WHERE e.id = k.id) AS worst_lag,
           (SELECT MIN(e.accepted_at) FROM ev e WHERE e.id = k.id AND e.delivered_at IS NULL) AS open_since,
           COALESCE(p.t_end, CASE WHEN s.status IN (3, 7, 8, 9, 10) THEN s.ended END) AS t_end,
           MAX(COALESCE(p.asks, 0), COALESCE(s.supp_rows, 0)) AS asks,
           COALESCE(p.t_ask, s.supp_req) AS t_ask,
           COALESCE(p.done, 0) OR s.status IN (9, 10) AS finished
    FROM pick k CROSS JOIN ev s ON s.id = k.id AND s.seq = k.seq LEFT JOIN prog p ON p.id = k.id
)
INSERT INTO dossier
SELECT id, substr(mahoso, 1, instr(mahoso, '-') - 1), received,
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

    upsert_progress: str
    upsert_snapshot: str
    derive: str


@lru_cache(maxsize=8)
def statements(rules: Rules) -> Statements:
    offset = str(int(rules.offset_s))
    return Statements(
        upsert_progress=_upsert_ev(PROGRESS_WIDTH).replace(":offset", offset),
        upsert_snapshot=_upsert_ev(SNAPSHOT_WIDTH).replace(":offset", offset),
        derive=DERIVE.replace(":offset", offset),
    )


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
            f"{selected} FROM dossier WHERE received >= :b0 AND received < :b{buckets} GROUP BY unit, bucket)")


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


def _batch(facts: Sequence[Facts]) -> tuple[list[str], list[Row], list[Row], list[Row]]:
    """A batch's distinct codes (its dossiers, in order), and its progress rows, snapshot rows
    (:data:`EV_COLUMNS`) and covers (``_COVER``), in the batch's order; C loops but for the covers."""
    codes = list(dict.fromkeys(map(operator.itemgetter(0), facts)))
    progress = [row for row in facts if len(row) == PROGRESS_WIDTH]
    snapshots = [row for row in facts if len(row) != PROGRESS_WIDTH]
    covers = [(row[4], row[0], row[1]) for row in snapshots if row[4] is not None]
    return codes, progress, snapshots, covers


def write(conn: sqlite3.Connection, facts: Sequence[Facts], rules: Rules) -> None:
    """Apply a batch of facts and re-derive the dossiers they touch, in one transaction."""
    if not facts:
        return
    sql = statements(rules)
    codes, progress, snapshots, covers = _batch(facts)
    conn.execute("BEGIN IMMEDIATE")
    try:
        codes_json = orjson.dumps(codes).decode()
        conn.execute(_NEW_CODES, (codes_json,))
        conn.execute(_DIRTY, (codes_json,))
        for params in _chunks(snapshots, SNAPSHOT_WIDTH):
            conn.execute(sql.upsert_snapshot, params)
        for params in _chunks(progress, PROGRESS_WIDTH):
            conn.execute(sql.upsert_progress, params)
        for params in _chunks(covers, COVER_WIDTH):
            conn.execute(_COVER, params)
        conn.execute("DELETE FROM dossier WHERE id IN (SELECT id FROM dirty)")
        conn.execute(sql.derive)
        conn.execute("DELETE FROM dirty")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def prune(conn: sqlite3.Connection, before: int) -> int:
    """Forget the dossiers received before ``before`` (Unix seconds), their events and codes
    included; returns how many dossiers went."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DELETE FROM ev WHERE id IN (SELECT id FROM dossier WHERE received < ?)", (before,))
        n = conn.execute("DELETE FROM dossier WHERE received < ?", (before,)).rowcount
        # events of dossiers never placed in a period (no NgayTiepNhan seen), as old
        conn.execute("DELETE FROM ev WHERE accepted_at < ? AND id NOT IN (SELECT id FROM dossier)", (before,))
        conn.execute("DELETE FROM code WHERE NOT EXISTS (SELECT 1 FROM ev WHERE ev.id = code.id)")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(n)


# ------------------------------------------------------------------------------------------ files


#: The writer's page cache (KiB). ``code``'s index is keyed by MaHoSo, so a write touches the end
#: of every unit's range in it (some 500-600 pages with 500 units), the same pages every time,
#: beside the ends of the tables: the cache holds them between writes instead of re-reading them.
CACHE_KIB = 16_384
#: WAL pages between checkpoints. A write re-dirties mostly the same pages (the ends of the
#: tables and of each unit's range in ``code``'s index): SQLite's default (1,000) would copy them
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
    return dict(conn.execute("SELECT unit, COUNT(*) FROM dossier GROUP BY unit").fetchall())
