"""The embedded queue: one SQLite file in WAL mode, written by the daemon alone, group commit.

Every operation is a function of a connection (``queues.sqlstate``). Callers submit operations;
one flusher task runs everything that has gathered since the last commit in one transaction and
commits it. Reads go the same way, so there is one connection and one order of events.

**Durability is SQLite's own.** The connection runs with ``PRAGMA synchronous = FULL`` (the
default, ``[storage] synchronous = "full"``): in WAL mode SQLite syncs the WAL inside ``COMMIT``,
so a commit that returned survives a power loss, and a 202 is sent only after its commit
returned. With ``"normal"`` a committed transaction survives a crash of the process (it is in the
operating system's page cache) but the last ones may be lost on power loss; the database is never
corrupted either way (https://sqlite.org/pragma.html#pragma_synchronous, https://sqlite.org/wal.html).

**Group commit.** One flusher task runs, in one transaction on the event-loop thread, every
operation submitted since its last run (handlers and the delivery engine submit theirs and wait),
then commits: one sync serves all of them, and a 202 leaves only after its commit returned.
COMMIT runs on the loop thread too: on this kind of machine a sync takes ~0.4 ms, and handing it
to a thread made every commit wait for the GIL on the way back (measured: commits of 1.7 ms at
the median and 9 ms at p90 instead of ~0.5 ms, and twice the accept latency; docs/decisions.md).
The price is that the loop does nothing else during a sync, so on a disk whose syncs are slow
every request waits that long once more. If one operation of a batch fails, the batch is rolled
back and run again with each operation inside its own SAVEPOINT, so one failing operation cannot
undo another's work. SQLite checkpoints the WAL itself (``wal_autocheckpoint``), inside a commit.

**Personal data at rest.** ``PRAGMA secure_delete`` (``[storage] secure_delete``, on by default)
makes SQLite zero what a delete or an update frees, so the payloads :meth:`prune` empties (and the
copies that earlier state changes of the same rows left in free space) are gone from the file once
the WAL is checkpointed, which :meth:`SQLiteQueue.prune` does after a batch that pruned anything.

**One owner.** The connection uses ``PRAGMA locking_mode = EXCLUSIVE`` and takes the write lock at
start-up, so SQLite itself refuses the file to a second daemon (and to any other process) while
this one runs; the operating system drops the lock when the process exits, however it exits.

:class:`MemoryQueue` runs the same operations on an in-memory database, inline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from config.schema import Settings
from core.errors import ConfigError, QueueUnavailable
from queues import sqlstate
from queues.api import (
    Accepted,
    DeadLetter,
    DeadLetterPage,
    DossierStatus,
    NewestSnapshot,
    NewEvent,
    Outcome,
    QueueStats,
    ReplayResult,
    Work,
)

T = TypeVar("T")
log = logging.getLogger("dvcgw.queue")
Op = Callable[[sqlite3.Connection], Any]
BUSY_TIMEOUT_MS = 2000  # how long start-up waits for a store another process holds


class _SqlQueueBase:
    """The QueueBackend methods, expressed as operations on a connection; subclasses run them."""

    def __init__(self, *, lease_s: float = 120.0, clock: Callable[[], float] | None = None) -> None:
        self._lease_s = lease_s
        self._clock = clock or time.time
        self._wakeup = asyncio.Event()

    async def _run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    def notify(self) -> None:
        """Wake :meth:`wait_for_work`: there may be new work."""
        self._wakeup.set()

    async def enqueue(self, events: Sequence[NewEvent],
                      check: Callable[[str | None], None] | None = None) -> list[Accepted]:
        now = self._clock()
        result = await self._run(lambda c: sqlstate.enqueue(c, events, now, check))
        self.notify()
        return result

    async def claim(self, limit: int, now: float) -> list[Work]:
        return await self._run(lambda c: sqlstate.claim(c, limit, now, self._lease_s))

    async def record(self, work: Work, outcome: Outcome, now: float, *, release: bool = True) -> None:
        await self._run(lambda c: sqlstate.record(c, work, outcome, now, release, self._lease_s))
        if release:
            self.notify()

    async def wait_for_work(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout=max(timeout, 0.0))
        except TimeoutError:
            pass
        self._wakeup.clear()

    async def next_due_at(self) -> float | None:
        return await self._run(sqlstate.next_due_at)

    async def status(self, mahoso: str) -> DossierStatus | None:
        now = self._clock()
        return await self._run(lambda c: sqlstate.status(c, mahoso, now))

    async def accepted_state(self, mahoso: str) -> str | None:
        return await self._run(lambda c: sqlstate.accepted_state(c, mahoso))

    async def newest_snapshot(self, mahoso: str) -> NewestSnapshot | None:
        return await self._run(lambda c: sqlstate.newest_snapshot(c, mahoso))

    async def unpark(self, mahoso: str) -> None:
        now = self._clock()
        await self._run(lambda c: sqlstate.unpark(c, mahoso, now))
        self.notify()

    async def dead_letters(self, cursor: str | None, limit: int) -> DeadLetterPage:
        return await self._run(lambda c: sqlstate.dead_letters(c, cursor, limit))

    async def dead_letter(self, dl_id: str) -> DeadLetter | None:
        return await self._run(lambda c: sqlstate.dead_letter(c, dl_id))

    async def replay(self, dl_id: str, now: float) -> ReplayResult:
        result = await self._run(lambda c: sqlstate.replay(c, dl_id, now))
        self.notify()
        return result

    async def drop(self, dl_id: str) -> bool:
        return await self._run(lambda c: sqlstate.drop(c, dl_id))

    async def stats(self, now: float) -> QueueStats:
        return await self._run(lambda c: sqlstate.stats(c, now))

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1").fetchone())

    async def prune(self, before: float, limit: int) -> int:
        """See :meth:`queues.api.QueueBackend.prune`: one transaction of the store's own flusher."""
        return await self._run(lambda c: sqlstate.prune(c, before, limit))


class MemoryQueue(_SqlQueueBase):
    """Non-durable backend for tests and experiments: the same state machine, in memory, inline."""

    async def start(self) -> None:
        self._conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        sqlstate.init(self._conn)

    async def close(self) -> None:
        self._conn.close()

    async def _run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        self._conn.execute("BEGIN")
        try:
            result = op(self._conn)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return result


class SQLiteQueue(_SqlQueueBase):
    """Durable embedded backend (module docstring). ``max_batch`` bounds the operations of one
    transaction; ``commits`` counts the commits, so group commit is visible in tests and bench."""

    def __init__(self, path: str | Path, *, synchronous: str = "full", lease_s: float = 120.0,
                 clock: Callable[[], float] | None = None, max_batch: int = 512,
                 secure_delete: bool = True) -> None:
        super().__init__(lease_s=lease_s, clock=clock)
        self._path = Path(path)
        self._secure_delete = secure_delete
        self._synchronous = synchronous.upper()
        self._max_batch = max_batch
        self._pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        self._paused: asyncio.Future[None] | None = None  # set while a backup copies the file
        self.commits = 0

    async def start(self) -> None:
        """Open (or create) the store, take it, and bring its schema up to date (queues/sqlstate.py
        MIGRATIONS, one transaction). Raises QueueUnavailable if another process has it, ConfigError
        (``storage.path``) if a newer dvcgw wrote it."""
        fresh = not self._path.exists() or self._path.stat().st_size == 0
        try:
            _private(self._path)
            conn = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise QueueUnavailable(f"cannot open the queue store {self._path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")  # before WAL: no shared memory, one owner
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute(f"PRAGMA secure_delete={'ON' if self._secure_delete else 'OFF'}")
            # a write: takes the exclusive lock now, held until close; migrates an older store
            found, now = sqlstate.init(conn, what=f"the queue store {self._path}")
            sqlstate.release_all_leases(conn)
        except ConfigError:  # a store of a newer schema: left untouched
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            if "locked" in str(exc):
                raise QueueUnavailable(f"another process is using the queue store {self._path}") from exc
            raise QueueUnavailable(f"cannot open the queue store {self._path}: {exc}") from exc
        if found != now and not fresh:
            log.warning("queue store %s: schema version %d migrated to %d", self._path, found, now)
        self._conn = conn

    async def close(self) -> None:
        """Commit what was submitted, then release the store."""
        self._closing = True
        if self._paused is not None:  # a backup still copies through the connection
            await asyncio.shield(self._paused)
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        with contextlib.suppress(sqlite3.Error):  # leave a short WAL behind for the next start
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()

    async def prune(self, before: float, limit: int) -> int:
        """Prune (a transaction of the flusher), then, if anything was pruned, checkpoint the WAL and
        truncate it: with ``secure_delete`` the emptied payloads were zeroed in the pages, and the
        WAL frames that still held the old pages leave the disk too (docs/security.md)."""
        pruned = await super().prune(before, limit)
        if pruned:
            self.checkpoint()
        return pruned

    def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it (between two transactions: every
        transaction of this connection begins and commits inside one synchronous call)."""
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise QueueUnavailable(f"queue store checkpoint failed: {exc}") from exc

    async def _run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        if self._closing:
            raise QueueUnavailable("the queue store is shutting down")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((op, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        """Group commit: run everything gathered so far in one transaction, commit it, answer the
        callers (at most ``max_batch`` operations a transaction)."""
        while self._pending:
            if self._paused is not None:  # a backup is copying the file: commit after it
                await asyncio.shield(self._paused)
                continue
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch:]
            for (_, fut), (ok, value) in zip(batch, self._commit(batch), strict=True):
                _settle(fut, ok, value)
            await asyncio.sleep(0)  # let the answered callers and others run between transactions

    async def backup_to(self, target: Path, progress: Callable[[int, int], None] | None = None) -> None:
        """Write a consistent copy of the store to ``target`` (a new file) with SQLite's backup API,
        taken between two group commits: what was acknowledged before is in it. The copy runs in a
        worker thread, so the loop keeps serving; operations submitted meanwhile wait for it and
        then commit as usual (none is refused). ``progress(pages_done, pages_total)`` is called
        from that thread. Raises QueueUnavailable if the copy fails."""
        if self._paused is not None:
            raise QueueUnavailable("a backup of the queue store is already running")
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._paused = gate  # no commit runs now: _commit is synchronous, so none is half done
        try:
            await asyncio.to_thread(_copy_database, self._conn, target, progress)
        except (OSError, sqlite3.Error) as exc:
            raise QueueUnavailable(f"backup of the queue store failed: {exc}") from exc
        finally:
            self._paused = None
            gate.set_result(None)

    def _commit(self, batch: list[tuple[Op, asyncio.Future[Any]]]) -> list[tuple[bool, Any]]:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = _run_plain(conn, batch)
            if results is None:  # one operation failed: redo the batch, each operation in a savepoint
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                results = [_run_isolated(conn, op) for op, _ in batch]
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # not committed: nobody may be told it is
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(False, QueueUnavailable(f"queue store commit failed: {exc}"))] * len(batch)
        self.commits += 1
        return results


#: Pages per step of a backup: the progress callback is called after each.
BACKUP_STEP_PAGES = 4096


def _copy_database(source: sqlite3.Connection, target: Path,
                   progress: Callable[[int, int], None] | None) -> None:
    """``source``'s database into the new file ``target`` (0600), page by page."""
    os.close(os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    dst = sqlite3.connect(str(target))
    try:
        source.backup(dst, pages=BACKUP_STEP_PAGES,
                      progress=None if progress is None else lambda _s, left, total: progress(total - left, total))
    finally:
        dst.close()


def _private(path: Path) -> None:
    """The store holds whole dossiers, personal data included: its folder is 0700 and its file
    0600 (SQLite gives the WAL file the database file's mode). Created so; an existing folder or
    file open to others is closed to them, with a warning naming the old mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for target, mode in ((path.parent, 0o700), (path, 0o600)):
        old = stat.S_IMODE(target.stat().st_mode)
        if old & 0o077:
            log.warning("%s was open to other users (mode %o); setting %o", target, old, mode)
            target.chmod(mode)


def _run_plain(conn: sqlite3.Connection, batch: list[tuple[Op, asyncio.Future[Any]]]) -> list[tuple[bool, Any]] | None:
    """Run the batch without savepoints (two statements fewer per operation); None if any
    operation raised, after which the caller rolls back and isolates each one."""
    try:
        return [(True, op(conn)) for op, _ in batch]
    except Exception:
        return None


def _run_isolated(conn: sqlite3.Connection, op: Op) -> tuple[bool, Any]:
    conn.execute("SAVEPOINT op")
    try:
        value = op(conn)
    except Exception as exc:  # isolate this op; translate storage errors at the edge
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        if isinstance(exc, sqlite3.Error):
            return False, QueueUnavailable(f"queue store error: {exc}")
        return False, exc
    conn.execute("RELEASE op")
    return True, value


def store_options(settings: Settings) -> dict[str, Any]:
    """The ``[storage]`` and ``[queue]`` settings the daemon opens its :class:`SQLiteQueue` with."""
    return {"synchronous": settings.storage.synchronous, "lease_s": settings.queue.lease,
            "max_batch": settings.storage.commit_max_batch, "secure_delete": settings.storage.secure_delete}


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)
