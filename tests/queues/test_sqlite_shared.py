"""Several writers on one SQLite store (the daemon and its HTTP acceptors and delivery worker,
``queues.sqlite.SharedSQLiteQueue``): appends stay atomic and ordered per dossier, the WAL keeps
starting over under continuous writes, and a new owner waits for the old owner's children."""

from __future__ import annotations

import asyncio
import itertools
import struct
import sys
import time
from pathlib import Path

from queues.api import EventKind, NewEvent
from queues.sqlite import SharedSQLiteQueue, SQLiteQueue


def ev(m: str, i: int) -> NewEvent:
    return NewEvent(m, EventKind.PROGRESS, {"MaHoSo": m, "NoiDungXuLy": str(i)}, "A")


def wal_frames(store: Path) -> int:
    """``mxFrame`` of the WAL index header (``<store>-shm``, offset 16, native byte order): the
    frames the WAL holds now. It falls back to 0 when a writer starts the WAL over."""
    with open(str(store) + "-shm", "rb") as f:
        head = f.read(24)
    return int(struct.unpack_from("=I", head, 16)[0])


async def test_two_writers_keep_each_dossier_consecutive(tmp_path: Path) -> None:
    """Appends from the owner and a shared writer, interleaved on the same dossiers, each take
    the next sequence inside their own transaction: every dossier gets 1..N, nothing lost or doubled."""
    store = tmp_path / "q.sqlite3"
    owner = SQLiteQueue(store, commit_window=0.001)
    await owner.start()
    woken: list[int] = []
    shared = SharedSQLiteQueue(store, on_write=lambda: woken.append(1), commit_window=0.001)
    await shared.start()
    try:
        dossiers = [f"D{i}" for i in range(5)]
        calls = [(owner if n % 2 else shared).enqueue([ev(m, n)]) for n in range(60) for m in dossiers]
        results = await asyncio.gather(*calls)
        for m in dossiers:
            status = await owner.status(m)
            assert status is not None and status.pending_progress == 60
        seqs: dict[str, list[int]] = {}
        for (_n, m), accepted in zip(((n, m) for n in range(60) for m in dossiers), results, strict=True):
            seqs.setdefault(m, []).append(accepted[0].sequence)
        assert all(sorted(s) == list(range(1, 61)) for s in seqs.values())
        assert len(woken) == 150  # the shared writer reported each append (the daemon wakes its engine)
    finally:
        await shared.close()
        await owner.close()


async def test_the_wal_starts_over_under_continuous_writes(tmp_path: Path) -> None:
    """Two writers appending without pause for 1.5 s: the owner's checkpoints catch up while
    holding the write lock, so the WAL starts over again and again instead of growing for as long
    as the writes go on."""
    store = tmp_path / "q.sqlite3"
    owner = SQLiteQueue(store, synchronous="normal")
    await owner.start()
    shared = SharedSQLiteQueue(store, synchronous="normal")
    await shared.start()
    stop = time.monotonic() + 1.5

    async def hammer(q: SQLiteQueue, tag: str) -> None:
        n = 0
        while time.monotonic() < stop:
            await asyncio.gather(*(q.enqueue([ev(f"{tag}{n}-{k}", 1)]) for k in range(8)))
            n += 1

    samples: list[int] = []

    async def sample() -> None:
        while time.monotonic() < stop:
            samples.append(wal_frames(store))
            await asyncio.sleep(0.01)

    try:
        await asyncio.gather(hammer(owner, "a"), hammer(shared, "b"), sample())
    finally:
        await shared.close()
        await owner.close()
    restarts = sum(1 for before, after in itertools.pairwise(samples) if after < before)
    assert restarts >= 3, (restarts, samples[-5:])


async def test_a_new_owner_waits_for_the_old_owners_children(tmp_path: Path) -> None:
    """A child holding the inherited ownership lock keeps a new owner out until it exits; then the
    new owner starts."""
    store = tmp_path / "q.sqlite3"
    owner = SQLiteQueue(store)
    await owner.start()
    fd = owner.owner_fd
    assert fd is not None
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(60)", pass_fds=(fd,))
    await owner.close()  # the daemon is gone; its child still holds the lock
    successor = SQLiteQueue(store, owner_wait=10)
    starting = asyncio.create_task(successor.start())
    try:
        await asyncio.sleep(0.5)
        assert not starting.done()
        child.kill()
        await child.wait()
        await asyncio.wait_for(starting, timeout=5)
        await successor.enqueue([ev("D1", 1)])
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        if starting.done() and starting.exception() is None:
            await successor.close()
