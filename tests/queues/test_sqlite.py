"""SQLite-specific guarantees: durability across reopen, group commit, one owner per file."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from core.errors import QueueUnavailable
from queues import sqlstate
from queues.api import ErrorInfo, EventKind, NewEvent, Outcome, OutcomeClass
from queues.sqlite import SQLiteQueue


def ev(m: str, i: int) -> NewEvent:
    return NewEvent(m, EventKind.PROGRESS, {"MaHoSo": m, "NoiDungXuLy": str(i)}, "A")


async def test_events_survive_close_and_reopen(tmp_path: Path) -> None:
    """What enqueue acknowledged is on disk: a fresh process on the same file sees it."""
    q = SQLiteQueue(tmp_path / "q.sqlite3")
    await q.start()
    await q.enqueue([ev("D1", 1), ev("D1", 2)])
    await q.close()
    q2 = SQLiteQueue(tmp_path / "q.sqlite3")
    await q2.start()
    works = await q2.claim(10, time.time())
    await q2.close()
    assert [p.payload["NoiDungXuLy"] for p in works[0].progress] == ["1", "2"]


async def test_group_commit_shares_fsyncs(tmp_path: Path) -> None:
    """Many concurrent accepts share far fewer commits than there are requests."""
    q = SQLiteQueue(tmp_path / "q.sqlite3", synchronous="full")
    await q.start()
    await asyncio.gather(*(q.enqueue([ev(f"D{i}", 1)]) for i in range(300)))
    commits = q.commits
    await q.close()
    assert commits < 100, commits


async def test_leases_of_a_dead_process_are_released_at_start(tmp_path: Path) -> None:
    """A claim held by a crashed process does not block its dossier after restart."""
    q = SQLiteQueue(tmp_path / "q.sqlite3", lease_s=3600)
    await q.start()
    await q.enqueue([ev("D1", 1)])
    assert len(await q.claim(10, time.time())) == 1
    await q.close()
    q2 = SQLiteQueue(tmp_path / "q.sqlite3", lease_s=3600)
    await q2.start()
    works = await q2.claim(10, time.time())
    await q2.record(works[0], Outcome(delivered=(works[0].progress[0].event_id,)), time.time())
    await q2.close()
    assert len(works) == 1


async def test_second_owner_is_refused(tmp_path: Path) -> None:
    """Two daemons on one SQLite file would break ordering: SQLite's exclusive lock refuses the
    second one, and the file is free again once the first has closed it."""
    q = SQLiteQueue(tmp_path / "q.sqlite3")
    await q.start()
    try:
        with pytest.raises(QueueUnavailable, match="another process is using"):
            await SQLiteQueue(tmp_path / "q.sqlite3").start()
    finally:
        await q.close()
    again = SQLiteQueue(tmp_path / "q.sqlite3")
    await again.start()
    await again.close()


@pytest.mark.parametrize(("setting", "expected"), [(None, 2), ("full", 2), ("normal", 1)])
async def test_durability_is_sqlites_own_synchronous_setting(tmp_path: Path, setting: str | None,
                                                              expected: int) -> None:
    """The store runs in WAL mode with SQLite's own PRAGMA synchronous: FULL (2) by default and for
    "full", NORMAL (1) for "normal"; nothing of our own stands in for it."""
    kwargs = {} if setting is None else {"synchronous": setting}
    q = SQLiteQueue(tmp_path / "q.sqlite3", **kwargs)
    await q.start()
    try:
        sync, mode = await q._run(lambda c: (c.execute("PRAGMA synchronous").fetchone()[0],
                                             c.execute("PRAGMA journal_mode").fetchone()[0]))
    finally:
        await q.close()
    assert (sync, mode) == (expected, "wal")


def test_no_hand_made_durability_or_locking_in_queues() -> None:
    """Durability and single ownership are SQLite's (issue 12): no module under queues/ syncs
    files, takes file locks or maps memory itself."""
    found = [f"{p.name}: {word}" for p in sorted((Path(__file__).resolve().parents[2] / "queues").glob("*.py"))
             for word in ("fdatasync", "fsync", "flock", "lockf", "mmap") if word in p.read_text(encoding="utf-8")]
    assert found == []


async def test_unwritable_store_is_a_queue_error(tmp_path: Path) -> None:
    """A store path that cannot be created is reported as QueueUnavailable, naming the path."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(QueueUnavailable, match="cannot open"):
        await SQLiteQueue(blocker / "sub" / "q.sqlite3").start()


async def test_an_older_store_keeps_its_dead_letters_and_stops_reusing_ids(tmp_path: Path) -> None:
    """A store whose dead_letters table predates AUTOINCREMENT is migrated at start: its letters and
    their ids stay, and the id of a dropped last letter is not given out again."""
    path = tmp_path / "q.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(sqlstate.SCHEMA_V1.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER PRIMARY KEY"))
        old.execute("INSERT INTO dead_letters (id, event_id, mahoso, kind, seq, cls, code, message, attempts, dead_at)"
                    " VALUES (7, 1, 'D1', 'snapshot', 1, 'rejected', '-5', 'x', 1, 0)")
    old.close()
    q = SQLiteQueue(path)
    await q.start()
    try:
        assert [d.id for d in (await q.dead_letters(None, 10)).items] == ["7"]
        assert await q.drop("7")
        await q.enqueue([ev("D2", 1)])
        w = (await q.claim(10, time.time() + 1))[0]
        err = ErrorInfo(OutcomeClass.REJECTED, "-5", "x")
        await q.record(w, Outcome(dead=(w.progress[0].event_id,), error=err), time.time() + 1)
        assert [d.id for d in (await q.dead_letters(None, 10)).items] == ["8"]
    finally:
        await q.close()


async def test_the_store_is_private_to_its_user(tmp_path: Path) -> None:
    """The store holds personal data: a new store's folder is 0700 and its files 0600 whatever the
    umask; an existing folder and file open to others are closed to them at start (issue 13)."""
    fresh = tmp_path / "new" / "q.sqlite3"
    old_umask = os.umask(0o022)
    try:
        q = SQLiteQueue(fresh)
        await q.start()
        await q.enqueue([ev("D1", 1)])
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [fresh.parent, *fresh.parent.iterdir()]}
        await q.close()
    finally:
        os.umask(old_umask)
    assert modes["new"] == 0o700 and modes["q.sqlite3"] == 0o600 and modes["q.sqlite3-wal"] == 0o600, modes
    opened = tmp_path / "old"
    opened.mkdir(mode=0o755)
    (opened / "q.sqlite3").touch(mode=0o644)
    q = SQLiteQueue(opened / "q.sqlite3")
    await q.start()
    await q.close()
    assert stat.S_IMODE(opened.stat().st_mode) == 0o700
    assert stat.S_IMODE((opened / "q.sqlite3").stat().st_mode) == 0o600


async def test_a_backup_copy_is_taken_between_commits_and_writes_wait_for_it(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """backup_to copies what was committed; an enqueue submitted while the copy runs is neither
    refused nor half in the copy: it commits right after, in the store only."""
    import queues.sqlite as sqlite_mod

    monkeypatch.setattr(sqlite_mod, "BACKUP_STEP_PAGES", 1)  # many steps: time to submit mid-copy
    q = SQLiteQueue(tmp_path / "q.sqlite3")
    await q.start()
    try:
        for i in range(20):
            await q.enqueue([ev(f"D{i}", n) for n in range(20)])
        loop = asyncio.get_running_loop()
        during: list[Any] = []

        def progress(done: int, total: int) -> None:
            if not during:  # in the copying thread, after the first step
                during.append(asyncio.run_coroutine_threadsafe(q.enqueue([ev("LATE", 1)]), loop))

        await q.backup_to(tmp_path / "copy.sqlite3", progress)
        assert during and not during[0].done()
        await asyncio.wrap_future(during[0])
    finally:
        await q.close()
    copy = sqlite3.connect(tmp_path / "copy.sqlite3")
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert copy.execute("SELECT COUNT(*), SUM(mahoso = 'LATE') FROM events").fetchone() == (400, 0)
    copy.close()
    live = sqlite3.connect(tmp_path / "q.sqlite3")
    assert live.execute("SELECT COUNT(*) FROM events WHERE mahoso = 'LATE'").fetchone() == (1,)
    live.close()
