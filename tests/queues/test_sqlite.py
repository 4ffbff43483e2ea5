"""SQLite-specific guarantees: durability across reopen, group commit, one owner per file."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from core.errors import QueueUnavailable
from queues.api import EventKind, NewEvent, Outcome
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
    """Two daemons on one SQLite file would break ordering: the second one is refused."""
    q = SQLiteQueue(tmp_path / "q.sqlite3")
    await q.start()
    try:
        with pytest.raises(QueueUnavailable, match="another dvcgw process"):
            await SQLiteQueue(tmp_path / "q.sqlite3", owner_wait=0.2).start()
    finally:
        await q.close()


async def test_unwritable_store_is_a_queue_error(tmp_path: Path) -> None:
    """A store path that cannot be created is reported as QueueUnavailable, naming the path."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(QueueUnavailable, match="cannot open"):
        await SQLiteQueue(blocker / "sub" / "q.sqlite3").start()
