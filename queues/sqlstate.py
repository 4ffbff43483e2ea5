"""The delivery state machine in SQL: one set of operations shared by the SQLite and memory backends.

Every public function here takes an open ``sqlite3.Connection`` and runs inside the caller's
transaction. ``record`` is the one function that changes delivery state after a claim.

Tables:

* ``events``: every accepted event with its per-dossier ``seq`` and its :class:`EventState`;
* ``dossiers``: one row per ``MaHoSo``: sequences, what the portal has, the claim (lease), the
  retry ladder position, cached counts of pending and parked events;
* ``dead_letters``: one row per dead event, with the error exactly as the portal sent it;
* ``retention`` (version 2, :data:`RETENTION_SCHEMA`): one row per dossier whose final state was
  delivered: when (restarted by every later delivery), and whether its payloads are pruned yet.

Schema versions: the store's ``PRAGMA user_version`` is its version (:data:`SCHEMA_VERSION`);
:func:`init` applies the missing steps of :data:`MIGRATIONS` at open, in one transaction, and
refuses a store written by a newer version (core/sqlschema.py). Version 0 is a file from before
versions were kept; version 1 is :data:`SCHEMA_V1`; version 2 adds :data:`RETENTION_SCHEMA`.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from core.sqlschema import Step, migrate, statements
from queues.api import (
    FINAL_STATES,
    PRUNED_PAYLOAD,
    Accepted,
    DeadLetter,
    DeadLetterPage,
    DeliveryState,
    DossierStatus,
    ErrorInfo,
    Event,
    EventKind,
    EventState,
    NewestSnapshot,
    NewEvent,
    Outcome,
    OutcomeClass,
    QueueStats,
    ReplayResult,
    Work,
    state_of,
)

#: Version 1 of the store, as it was when versions began (``PRAGMA user_version``; queues/sqlite.py).
#: Shipped steps are never edited: a change is a new step appended to :data:`MIGRATIONS`.
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY,
    mahoso      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    agency      TEXT NOT NULL,
    UNIQUE (mahoso, seq)
);
CREATE INDEX IF NOT EXISTS events_open ON events (mahoso, seq) WHERE state IN ('pending', 'parked');
CREATE TABLE IF NOT EXISTS dossiers (
    mahoso           TEXT PRIMARY KEY,
    last_seq         INTEGER NOT NULL DEFAULT 0,
    accepted_state   TEXT,
    delivered_state  TEXT,
    delivered_seq    INTEGER NOT NULL DEFAULT 0,
    known_on_portal  INTEGER NOT NULL DEFAULT 0,
    pending          INTEGER NOT NULL DEFAULT 0,
    parked           INTEGER NOT NULL DEFAULT 0,
    due_at           REAL,
    oldest_open_at   REAL,
    lease            TEXT,
    lease_until      REAL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    first_failure_at REAL,
    last_error       TEXT,
    last_dead_seq    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS dossiers_due ON dossiers (due_at) WHERE pending > 0;
CREATE TABLE IF NOT EXISTS dead_letters (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id INTEGER NOT NULL,
    mahoso   TEXT NOT NULL,
    kind     TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    cls      TEXT NOT NULL,
    code     TEXT NOT NULL,
    message  TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    dead_at  REAL NOT NULL,
    replayed INTEGER NOT NULL DEFAULT 0
);
"""

#: Personal data at rest (docs/security.md): the dossiers whose final state was delivered, since
#: when, and whether :func:`prune` has emptied their payloads. A table of its own (the others'
#: definitions are left as they are); the partial index keeps the pass's scan to the unpruned.
RETENTION_SCHEMA = """
CREATE TABLE IF NOT EXISTS retention (
    mahoso   TEXT PRIMARY KEY,
    final_at REAL NOT NULL,
    pruned   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS retention_due ON retention (final_at) WHERE pruned = 0;
"""

def _to_v1(conn: sqlite3.Connection) -> None:
    """Version 0 → 1: a new file gets the tables. A file from before versions (user_version 0)
    already has them, in one of two layouts: the current one, or the first one, whose dead-letter
    ids were not AUTOINCREMENT and could give a dropped letter's id to the next one; that table is
    copied into one that never reuses an id (rows and ids kept)."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'dead_letters'").fetchone()
    if row is not None and "AUTOINCREMENT" not in row[0].upper():
        conn.execute("ALTER TABLE dead_letters RENAME TO dead_letters_old")
        for statement in statements(SCHEMA_V1):
            conn.execute(statement)
        conn.execute("INSERT INTO dead_letters SELECT * FROM dead_letters_old")
        conn.execute("DROP TABLE dead_letters_old")
        return
    for statement in statements(SCHEMA_V1):
        conn.execute(statement)


#: ``MIGRATIONS[i]`` takes a store from version i to i + 1 (core/sqlschema.py): the store's
#: version is ``len(MIGRATIONS)``. An additive change (a table, an index, a column with a
#: default) is one more SQL string here.
MIGRATIONS: tuple[Step, ...] = (_to_v1, RETENTION_SCHEMA)
SCHEMA_VERSION = len(MIGRATIONS)

_SNAP = EventKind.SNAPSHOT.value
_PROG = EventKind.PROGRESS.value
_PENDING = EventState.PENDING.value
_PARKED = EventState.PARKED.value


def init(conn: sqlite3.Connection, *, key: str = "storage.path", what: str = "the queue store") -> tuple[int, int]:
    """Create the tables, or bring an older store's up to date, in one transaction (outside any
    transaction of the caller's). Returns (the version found, the version now); raises ConfigError
    for a store of a newer version than :data:`SCHEMA_VERSION`, leaving it untouched."""
    return migrate(conn, MIGRATIONS, key=key, what=what)


def release_all_leases(conn: sqlite3.Connection) -> int:
    """At start-up of the daemon that owns the file (no process of the previous one still runs),
    every old claim is void."""
    return conn.execute("UPDATE dossiers SET lease = NULL, lease_until = NULL WHERE lease IS NOT NULL").rowcount


def enqueue(conn: sqlite3.Connection, events: Sequence[NewEvent], now: float,
            check: Callable[[str | None], None] | None = None) -> list[Accepted]:
    """Append ``events`` (one dossier, in order). A new snapshot un-parks waiting progress, which then
    follows it.

    The common case is two statements per event: one upsert that takes the next sequence and keeps
    the cached counts current (one more pending event; due now unless the ladder set a later time;
    the oldest open event stays the oldest), and the event's insert. Only un-parking recounts.
    ``check``, if given, sees the dossier's last accepted state first, in the same transaction."""
    if check is not None and events:  # what it raises undoes nothing: nothing was written yet
        check(accepted_state(conn, events[0].mahoso))
    out: list[Accepted] = []
    recount = False
    for ev in events:
        state = state_of(ev.kind, ev.payload)
        seq, parked = conn.execute(
            "INSERT INTO dossiers (mahoso, last_seq, accepted_state, pending, due_at, oldest_open_at)"
            " VALUES (:m, 1, :state, 1, :now, :now)"
            " ON CONFLICT (mahoso) DO UPDATE SET last_seq = last_seq + 1,"
            " accepted_state = COALESCE(:state, accepted_state), pending = pending + 1,"
            " due_at = COALESCE(due_at, :now), oldest_open_at = MIN(COALESCE(oldest_open_at, :now), :now)"
            " RETURNING last_seq, parked",
            {"m": ev.mahoso, "state": state, "now": now},
        ).fetchone()
        cur = conn.execute(
            "INSERT INTO events (mahoso, seq, kind, payload, state, accepted_at, agency)"
            " VALUES (?, ?, ?, ?, 'pending', ?, ?)",
            (ev.mahoso, seq, ev.kind.value, _json_text(ev.payload), now, ev.agency),
        )
        if state is not None and parked:  # ``parked`` is the cached count every state change refreshes
            conn.execute(
                "UPDATE events SET state = 'pending' WHERE mahoso = ? AND state = 'parked'", (ev.mahoso,)
            )
            recount = True
        out.append(Accepted(event_id=str(cur.lastrowid), sequence=seq))
    if recount:
        _refresh(conn, events[0].mahoso, now)
    return out


def _json_text(payload: Any) -> str:
    return orjson.dumps(payload).decode()


def accepted_state(conn: sqlite3.Connection, mahoso: str) -> str | None:
    """The newest accepted ``TrangThaiHoSo`` of ``mahoso`` (None: unknown, or no snapshot yet)."""
    row = conn.execute("SELECT accepted_state FROM dossiers WHERE mahoso = ?", (mahoso,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def newest_snapshot(conn: sqlite3.Connection, mahoso: str) -> NewestSnapshot | None:
    """The newest accepted snapshot of ``mahoso`` (events keep their payloads after delivery until
    :func:`prune`; a pruned one is None)."""
    row = conn.execute(
        "SELECT seq, payload, agency FROM events WHERE mahoso = ? AND kind = ? ORDER BY seq DESC LIMIT 1",
        (mahoso, _SNAP)).fetchone()
    if row is None or row[1] == PRUNED_PAYLOAD:
        return None
    return NewestSnapshot(row[0], orjson.loads(row[1]), row[2])


def _refresh(conn: sqlite3.Connection, mahoso: str, now: float) -> None:
    """Recompute the cached counts; a dossier that just got pending work becomes due now unless it
    is waiting on the retry ladder."""
    pending, parked, oldest = conn.execute(
        "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'parked'), 0), MIN(accepted_at)"
        " FROM events WHERE mahoso = ? AND state IN ('pending', 'parked')",
        (mahoso,),
    ).fetchone()
    conn.execute(
        "UPDATE dossiers SET pending = ?, parked = ?, oldest_open_at = ?,"
        " due_at = CASE WHEN ? = 0 THEN NULL ELSE COALESCE(due_at, ?) END WHERE mahoso = ?",
        (pending, parked, oldest, pending, now, mahoso),
    )


def claim(conn: sqlite3.Connection, limit: int, now: float, lease_s: float) -> list[Work]:
    rows = conn.execute(
        "SELECT mahoso FROM dossiers WHERE pending > 0 AND due_at <= ?"
        " AND (lease IS NULL OR lease_until < ?) ORDER BY due_at LIMIT ?",
        (now, now, limit),
    ).fetchall()
    return [_claim_one(conn, mahoso, now, lease_s) for (mahoso,) in rows]


def _claim_one(conn: sqlite3.Connection, mahoso: str, now: float, lease_s: float) -> Work:
    lease = uuid.uuid4().hex
    known, attempts, first_failure, delivered_seq = conn.execute(
        "UPDATE dossiers SET lease = ?, lease_until = ? WHERE mahoso = ?"
        " RETURNING known_on_portal, attempts, first_failure_at, delivered_seq",
        (lease, now + lease_s, mahoso),
    ).fetchone()
    events = [
        _event(r)
        for r in conn.execute(
            "SELECT id, mahoso, kind, seq, CAST(payload AS BLOB), accepted_at FROM events"
            " WHERE mahoso = ? AND state = 'pending' ORDER BY seq",
            (mahoso,),
        )
    ]
    snapshots = [e for e in events if e.kind is EventKind.SNAPSHOT]
    newest = snapshots[-1] if snapshots and snapshots[-1].sequence > delivered_seq else None
    stale = [e.event_id for e in snapshots if e is not newest]
    if stale:
        conn.executemany("UPDATE events SET state = 'superseded' WHERE id = ?", [(i,) for i in stale])
        _refresh(conn, mahoso, now)
    progress = tuple(e for e in events if e.kind is EventKind.PROGRESS)
    return Work(mahoso, lease, newest, progress, bool(known), attempts, first_failure)


def _event(row: tuple[Any, ...]) -> Event:
    eid, mahoso, kind, seq, payload, accepted_at = row
    return Event(str(eid), mahoso, EventKind(kind), seq, orjson.loads(payload), accepted_at, payload)


def record(conn: sqlite3.Connection, work: Work, outcome: Outcome, now: float, release: bool,
           lease_s: float) -> None:
    """Apply one delivery step's outcome atomically (see :class:`queues.api.Outcome`)."""
    m = work.mahoso
    for eid in outcome.delivered:
        _mark_delivered(conn, m, int(eid), now)
    if outcome.dead:
        _mark_dead(conn, m, [int(i) for i in outcome.dead], outcome.error, work.attempts, now)
    if outcome.parked:
        conn.executemany("UPDATE events SET state = 'parked' WHERE id = ? AND state = 'pending'",
                         [(int(i),) for i in outcome.parked])
    if outcome.known_on_portal is not None:
        conn.execute("UPDATE dossiers SET known_on_portal = ? WHERE mahoso = ?", (int(outcome.known_on_portal), m))
    if outcome.retry_at is not None:
        conn.execute(
            "UPDATE dossiers SET due_at = ?, attempts = attempts + ?, last_error = ?,"
            " first_failure_at = CASE WHEN ? THEN COALESCE(first_failure_at, ?) ELSE first_failure_at END"
            " WHERE mahoso = ?",
            (outcome.retry_at, int(outcome.count_attempt), _err_json(outcome.error),
             int(outcome.count_attempt), now, m),
        )
    elif outcome.delivered or outcome.dead:
        conn.execute(
            "UPDATE dossiers SET attempts = 0, first_failure_at = NULL, due_at = NULL,"
            " last_error = CASE WHEN ? IS NULL THEN NULL ELSE ? END WHERE mahoso = ?",
            (_err_json(outcome.error), _err_json(outcome.error), m),
        )
    if release:
        conn.execute("UPDATE dossiers SET lease = NULL, lease_until = NULL WHERE mahoso = ?", (m,))
    else:
        conn.execute("UPDATE dossiers SET lease_until = ? WHERE mahoso = ?", (now + lease_s, m))
    _refresh(conn, m, now)


def _err_json(err: ErrorInfo | None) -> str | None:
    return None if err is None else json.dumps(err.as_json(), ensure_ascii=False)


def _mark_delivered(conn: sqlite3.Connection, mahoso: str, eid: int, now: float) -> None:
    # the state is read in SQL: parsing the whole payload again here cost ~40 µs per delivery
    row = conn.execute(
        "UPDATE events SET state = 'delivered' WHERE id = ?"
        " RETURNING kind, seq, json_extract(payload, '$.TrangThaiHoSo')", (eid,)
    ).fetchone()
    if row is None:
        return
    if row[0] != _SNAP:  # a late progress item of a finished dossier restarts its retention
        conn.execute("UPDATE retention SET final_at = ?, pruned = 0 WHERE mahoso = ?", (now, mahoso))
        return
    _, seq, raw_state = row
    state = str(raw_state) if raw_state is not None else None
    newer = conn.execute(
        "UPDATE dossiers SET delivered_seq = ?, delivered_state = ?, known_on_portal = 1"
        " WHERE mahoso = ? AND delivered_seq < ?",
        (seq, state, mahoso, seq),
    ).rowcount
    if newer:
        _note_final(conn, mahoso, state, now)
    conn.execute(
        "UPDATE events SET state = 'superseded' WHERE mahoso = ? AND kind = 'snapshot'"
        " AND seq < ? AND state = 'pending'",
        (mahoso, seq),
    )


def _note_final(conn: sqlite3.Connection, mahoso: str, state: str | None, now: float) -> None:
    """The dossier's delivered state changed: a final one starts (or restarts) its retention."""
    if state in FINAL_STATES:
        conn.execute("INSERT INTO retention (mahoso, final_at) VALUES (?, ?)"
                     " ON CONFLICT (mahoso) DO UPDATE SET final_at = excluded.final_at, pruned = 0", (mahoso, now))
    else:
        conn.execute("DELETE FROM retention WHERE mahoso = ?", (mahoso,))


def prune(conn: sqlite3.Connection, before: float, limit: int) -> int:
    """Empty the payloads of up to ``limit`` dossiers whose final state was delivered before
    ``before`` and that have nothing pending, parked or claimed (one that has waits for its next
    delivery, which restarts the clock). Dead events are emptied too: the dead-letter rows keep the
    error, the attempts and the sequence (what the list shows), not the payload. Returns how many
    dossiers were pruned."""
    rows = conn.execute(
        "SELECT r.mahoso FROM retention r JOIN dossiers d ON d.mahoso = r.mahoso"
        " WHERE r.pruned = 0 AND r.final_at < ? AND d.pending = 0 AND d.parked = 0 AND d.lease IS NULL"
        " ORDER BY r.final_at LIMIT ?", (before, limit)).fetchall()
    for (mahoso,) in rows:
        conn.execute("UPDATE events SET payload = ? WHERE mahoso = ? AND payload <> ?"
                     " AND state NOT IN ('pending', 'parked')", (PRUNED_PAYLOAD, mahoso, PRUNED_PAYLOAD))
        conn.execute("UPDATE retention SET pruned = 1 WHERE mahoso = ?", (mahoso,))
    return len(rows)


def _mark_dead(conn: sqlite3.Connection, mahoso: str, ids: list[int], error: ErrorInfo | None,
               attempts: int, now: float) -> None:
    err = error or ErrorInfo(OutcomeClass.RETRYABLE, "", "")
    for eid in ids:
        row = conn.execute(
            "UPDATE events SET state = 'dead' WHERE id = ? RETURNING kind, seq", (eid,)
        ).fetchone()
        if row is None:
            continue
        kind, seq = row
        conn.execute(
            "INSERT INTO dead_letters (event_id, mahoso, kind, seq, cls, code, message, attempts, dead_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (eid, mahoso, kind, seq, err.cls, err.code, err.message, max(attempts, 1), now),
        )
        if kind == _SNAP:
            conn.execute("UPDATE dossiers SET last_dead_seq = MAX(last_dead_seq, ?) WHERE mahoso = ?",
                         (seq, mahoso))


def unpark(conn: sqlite3.Connection, mahoso: str, now: float) -> None:
    conn.execute("UPDATE events SET state = 'pending' WHERE mahoso = ? AND state = 'parked'", (mahoso,))
    _refresh(conn, mahoso, now)


# ---------------------------------------------------------------- reads


_DELIVERY_SQL = """
CASE
  WHEN lease IS NOT NULL AND lease_until >= :now THEN 'in_flight'
  WHEN pending > 0 AND last_error IS NOT NULL THEN 'retrying'
  WHEN pending > 0 THEN 'pending'
  WHEN parked > 0 THEN 'parked'
  WHEN last_dead_seq > delivered_seq THEN 'dead'
  ELSE 'delivered'
END
"""


def status(conn: sqlite3.Connection, mahoso: str, now: float) -> DossierStatus | None:
    row = conn.execute(
        f"SELECT accepted_state, delivered_state, {_DELIVERY_SQL}, attempts, due_at, last_error, parked,"
        " pending, last_seq, delivered_seq FROM dossiers WHERE mahoso = :m",
        {"m": mahoso, "now": now},
    ).fetchone()
    if row is None:
        return None
    accepted, delivered, delivery, attempts, due_at, last_error, _parked, pending, last_seq, dseq = row
    (pending_progress,) = conn.execute(
        "SELECT COUNT(*) FROM events WHERE mahoso = ? AND kind = 'progress' AND state IN ('pending', 'parked')",
        (mahoso,),
    ).fetchone()
    err = json.loads(last_error) if last_error else None
    return DossierStatus(
        mahoso=mahoso,
        accepted_state=accepted,
        delivered_state=delivered,
        delivery=DeliveryState(delivery),
        attempts=attempts,
        next_attempt_at=due_at if (pending and last_error) else None,
        last_error=ErrorInfo(OutcomeClass(err["class"]), err["code"], err["message"]) if err else None,
        pending_progress=pending_progress,
        last_sequence=last_seq,
        delivered_sequence=dseq,
    )


def next_due_at(conn: sqlite3.Connection) -> float | None:
    (due,) = conn.execute("SELECT MIN(due_at) FROM dossiers WHERE pending > 0").fetchone()
    return float(due) if due is not None else None


def stats(conn: sqlite3.Connection, now: float) -> QueueStats:
    by_state = {s.value: 0 for s in DeliveryState}
    for state, n in conn.execute(
        f"SELECT {_DELIVERY_SQL} AS s, COUNT(*) FROM dossiers GROUP BY s", {"now": now}
    ):
        by_state[state] = n
    (oldest,) = conn.execute("SELECT MIN(oldest_open_at) FROM dossiers WHERE pending > 0").fetchone()
    dead = dict(conn.execute("SELECT cls, COUNT(*) FROM dead_letters WHERE replayed = 0 GROUP BY cls"))
    return QueueStats(by_state=by_state, oldest_pending_at=oldest, dead_letters_by_reason=dead)


def _dead_letter(row: tuple[Any, ...]) -> DeadLetter:
    dl_id, mahoso, kind, seq, cls, code, message, attempts, dead_at, replayed = row
    return DeadLetter(str(dl_id), mahoso, EventKind(kind), seq, ErrorInfo(OutcomeClass(cls), code, message), attempts,
                      dead_at, bool(replayed))


_DL_COLS = "id, mahoso, kind, seq, cls, code, message, attempts, dead_at, replayed"


def dead_letters(conn: sqlite3.Connection, cursor: str | None, limit: int) -> DeadLetterPage:
    after = int(cursor) if cursor and cursor.isdigit() else 0
    rows = conn.execute(
        f"SELECT {_DL_COLS} FROM dead_letters WHERE id > ? AND replayed = 0 ORDER BY id LIMIT ?",
        (after, limit + 1),
    ).fetchall()
    items = tuple(_dead_letter(r) for r in rows[:limit])
    return DeadLetterPage(items, items[-1].id if len(rows) > limit else None)


def dead_letter(conn: sqlite3.Connection, dl_id: str) -> DeadLetter | None:
    if not dl_id.isdigit():
        return None
    row = conn.execute(f"SELECT {_DL_COLS} FROM dead_letters WHERE id = ?", (int(dl_id),)).fetchone()
    return _dead_letter(row) if row else None


def replay(conn: sqlite3.Connection, dl_id: str, now: float) -> ReplayResult:
    """Re-enter a dead event at the head of the ladder; a snapshot that a newer one has overtaken
    (delivered, or waiting to be) is ``superseded`` and never sent."""
    if not dl_id.isdigit():
        return ReplayResult.NOT_FOUND
    row = conn.execute("SELECT event_id, mahoso, kind, seq, replayed FROM dead_letters WHERE id = ?",
                       (int(dl_id),)).fetchone()
    if row is None:
        return ReplayResult.NOT_FOUND
    eid, mahoso, kind, seq, replayed = row
    if replayed:
        return ReplayResult.ALREADY_REPLAYED
    conn.execute("UPDATE dead_letters SET replayed = 1 WHERE id = ?", (int(dl_id),))
    if (kind == _SNAP and _overtaken(conn, mahoso, seq)) or _pruned(conn, eid):
        conn.execute("UPDATE events SET state = 'superseded' WHERE id = ?", (eid,))
        return ReplayResult.SUPERSEDED
    conn.execute("UPDATE events SET state = 'pending' WHERE id = ?", (eid,))
    conn.execute(
        "UPDATE dossiers SET attempts = 0, first_failure_at = NULL, due_at = ?, last_error = NULL"
        " WHERE mahoso = ?",
        (now, mahoso),
    )
    _refresh(conn, mahoso, now)
    return ReplayResult.REPLAYED


def _pruned(conn: sqlite3.Connection, eid: int) -> bool:
    """Whether the event's payload was pruned (its dossier finished long ago): nothing to send."""
    row = conn.execute("SELECT payload = ? FROM events WHERE id = ?", (PRUNED_PAYLOAD, eid)).fetchone()
    return row is None or bool(row[0])


def _overtaken(conn: sqlite3.Connection, mahoso: str, seq: int) -> bool:
    (newer,) = conn.execute(
        "SELECT COUNT(*) FROM events WHERE mahoso = ? AND kind = 'snapshot' AND seq > ?"
        " AND state IN ('pending', 'delivered')",
        (mahoso, seq),
    ).fetchone()
    return bool(newer)


def drop(conn: sqlite3.Connection, dl_id: str) -> bool:
    if not dl_id.isdigit():
        return False
    return conn.execute("DELETE FROM dead_letters WHERE id = ?", (int(dl_id),)).rowcount > 0
