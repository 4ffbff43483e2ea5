"""Store schema versions (PRAGMA user_version) and the migrations applied at open."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from core.sqlschema import migrate, version_of
from queues import sqlstate
from queues.api import ErrorInfo, EventKind, NewEvent, Outcome, OutcomeClass
from queues.sqlite import SQLiteQueue

#: The store's first layout (commits 6f063c2..d760208), recovered with `git log -p
#: queues/sqlstate.py`: dead-letter ids without AUTOINCREMENT. No user_version was kept (0).
FIRST_LAYOUT_DEAD_LETTERS = sqlstate.SCHEMA_V1.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER PRIMARY KEY")
#: The layout on main before versions began (3523363 on): version 1's tables, user_version 0.
UNVERSIONED_LAYOUT = sqlstate.SCHEMA_V1
T0 = 1_760_000_000.0


def snap(m: str, state: str, n: int) -> NewEvent:
    return NewEvent(m, EventKind.SNAPSHOT, {"MaHoSo": m, "TrangThaiHoSo": state, "n": n}, "000.00.01.H55")


def prog(m: str, n: int) -> NewEvent:
    return NewEvent(m, EventKind.PROGRESS, {"MaHoSo": m, "NoiDungXuLy": f"step {n}"}, "000.00.01.H55")


def _tx(conn: sqlite3.Connection, op: Any) -> Any:
    conn.execute("BEGIN IMMEDIATE")
    out = op(conn)
    conn.execute("COMMIT")
    return out


def write_old_store(path: Path, layout: str) -> None:
    """A store as the previous code left it: every delivery state present (delivered, pending behind
    a delivered snapshot, parked progress, retrying, dead, a replayed and a dropped dead letter)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")  # as the daemon kept it
    conn.executescript(layout)
    assert version_of(conn) == 0
    # today's writer notes finished dossiers in the retention table (version 2): a temporary one,
    # of this connection only, leaves the file in the old layout
    conn.execute("CREATE TEMP TABLE retention (mahoso TEXT PRIMARY KEY, final_at REAL NOT NULL, pruned INTEGER)")
    enq = [[snap("D1", "1", 1), prog("D1", 1)], [snap("D2", "1", 1)], [prog("D3", 1), prog("D3", 2)],
           [snap("D4", "1", 1)], [snap("D1", "2", 2), prog("D1", 2)], [snap("D5", "1", 1)], [snap("D6", "1", 1)]]
    for i, batch in enumerate(enq):
        _tx(conn, lambda c, b=batch, i=i: sqlstate.enqueue(c, b, T0 + i))
    works = {w.mahoso: w for w in _tx(conn, lambda c: sqlstate.claim(c, 10, T0 + 10, 60))}
    rejected = ErrorInfo(OutcomeClass.REJECTED, "-5", "MaHoSo không hợp lệ")
    outcomes = {
        "D1": Outcome(delivered=(works["D1"].snapshot.event_id,)),  # type: ignore[union-attr]
        "D2": Outcome(dead=(works["D2"].snapshot.event_id,), error=rejected),  # type: ignore[union-attr]
        "D3": Outcome(parked=tuple(p.event_id for p in works["D3"].progress)),
        "D4": Outcome(retry_at=T0 + 100, error=ErrorInfo(OutcomeClass.RETRYABLE, "503", "busy")),
        "D5": Outcome(dead=(works["D5"].snapshot.event_id,), error=rejected),  # type: ignore[union-attr]
        "D6": Outcome(dead=(works["D6"].snapshot.event_id,), error=rejected),  # type: ignore[union-attr]
    }
    for m, outcome in outcomes.items():
        _tx(conn, lambda c, w=works[m], o=outcome: sqlstate.record(c, w, o, T0 + 11, True, 60))
    letters = [d.id for d in _tx(conn, lambda c: sqlstate.dead_letters(c, None, 10)).items]
    _tx(conn, lambda c: sqlstate.replay(c, letters[0], T0 + 12))
    _tx(conn, lambda c: sqlstate.drop(c, letters[2]))
    conn.close()


def rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("events", "dossiers",
                                                                                       "dead_letters")}
    finally:
        conn.close()


@pytest.mark.parametrize("layout", [FIRST_LAYOUT_DEAD_LETTERS, UNVERSIONED_LAYOUT], ids=["first", "unversioned"])
async def test_a_store_of_the_previous_version_is_migrated_with_its_data_intact(tmp_path: Path, layout: str) -> None:
    """A store from before versions (user_version 0, either earlier layout) opens as version 1: every
    event (payload, sequence, state, order), dossier state and dead letter (ids included) is kept,
    and the queue goes on from where it was."""
    path = tmp_path / "gw.sqlite3"
    write_old_store(path, layout)
    before = rows(path)
    assert len(before["events"]) == 10 and len(before["dead_letters"]) == 2
    q = SQLiteQueue(path, clock=lambda: T0 + 20)
    await q.start()
    try:
        d1 = await q.status("D1")
        assert d1 is not None
        assert (d1.delivered_state, d1.delivered_sequence, d1.last_sequence, d1.pending_progress) == ("2", 3, 4, 2)
        d3 = await q.status("D3")
        assert d3 is not None and d3.delivery.value == "parked"
        dead = (await q.dead_letters(None, 10)).items
        assert [(d.mahoso, d.error.code) for d in dead] == [("D5", "-5")]
        works = await q.claim(10, T0 + 200)
        assert {w.mahoso: [e.sequence for e in ([w.snapshot] if w.snapshot else []) + list(w.progress)]
                for w in works} == {"D1": [2, 4], "D2": [1], "D4": [1]}
    finally:
        await q.close()
    after = rows(path)
    # the claim above only leased; compare everything but the lease columns
    strip = [r[:10] + r[12:] for r in after["dossiers"]]
    assert after["events"] == before["events"]
    assert strip == [r[:10] + r[12:] for r in before["dossiers"]]
    assert after["dead_letters"] == before["dead_letters"]
    conn = sqlite3.connect(path)
    assert version_of(conn) == sqlstate.SCHEMA_VERSION >= 1
    assert "AUTOINCREMENT" in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'dead_letters'").fetchone()[0]
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


async def test_a_new_store_starts_at_the_current_version(tmp_path: Path) -> None:
    """A new file runs every step and says so in its user_version."""
    q = SQLiteQueue(tmp_path / "new.sqlite3")
    await q.start()
    await q.close()
    conn = sqlite3.connect(tmp_path / "new.sqlite3")
    assert version_of(conn) == sqlstate.SCHEMA_VERSION
    conn.close()


async def test_a_store_written_by_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    """An older dvcgw never writes into a layout it does not know: ConfigError naming storage.path
    and both versions, and the file's bytes are unchanged."""
    path = tmp_path / "gw.sqlite3"
    write_old_store(path, UNVERSIONED_LAYOUT)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {sqlstate.SCHEMA_VERSION + 1}")
    conn.close()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    v = sqlstate.SCHEMA_VERSION
    with pytest.raises(ConfigError, match=rf"storage\.path: .* schema version {v + 1}, but this version of dvcgw "
                                          rf"knows schema versions up to {v}"):
        await SQLiteQueue(path).start()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    q = SQLiteQueue(path)  # the lock was released: nothing of the refused open lingers
    with pytest.raises(ConfigError):
        await q.start()


def test_the_steps_run_in_one_transaction(tmp_path: Path) -> None:
    """A step that fails rolls back the steps before it and the version: the file is as it was."""
    conn = sqlite3.connect(tmp_path / "x.sqlite3", isolation_level=None)
    migrate(conn, ["CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);"], key="k", what="x")
    steps = ["CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);", "ALTER TABLE a ADD COLUMN y TEXT",
             "INSERT INTO missing VALUES (1)"]
    with pytest.raises(sqlite3.OperationalError, match="missing"):
        migrate(conn, steps, key="k", what="x")
    assert version_of(conn) == 1 and not conn.in_transaction
    assert [r[1] for r in conn.execute("PRAGMA table_info(a)")] == ["x"]


async def test_an_additive_step_is_one_more_entry(tmp_path: Path) -> None:
    """What the next change looks like: a current store + one SQL string = the next version, data kept."""
    path = tmp_path / "gw.sqlite3"
    write_old_store(path, UNVERSIONED_LAYOUT)
    q = SQLiteQueue(path)
    await q.start()
    await q.close()
    before = rows(path)
    conn = sqlite3.connect(path, isolation_level=None)
    steps = (*sqlstate.MIGRATIONS, "CREATE TABLE IF NOT EXISTS example (mahoso TEXT PRIMARY KEY, at REAL NOT NULL);")
    v = sqlstate.SCHEMA_VERSION
    assert migrate(conn, steps, key="storage.path", what="t") == (v, v + 1)
    assert migrate(conn, steps, key="storage.path", what="t") == (v + 1, v + 1)
    conn.close()
    assert rows(path) == before
