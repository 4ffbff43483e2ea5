"""The embedded queue: SQLite in WAL mode, group commit.

Every operation is a function of a connection (``queues.sqlstate``). Callers submit operations;
one flusher task runs everything that has gathered since the last commit in one transaction on
the event-loop thread (if one operation fails, the batch is rolled back and run again with each
operation inside its own SAVEPOINT, so one failing operation cannot undo another's work), then
hands only the COMMIT — one fsync with ``synchronous = FULL`` — to a committer thread, and
resolves the callers' futures after it returns. Operations arriving during the fsync form the next
batch. Keeping the Python work on one thread avoids a GIL hand-off per operation
(bench/bench_gateway measured it). So a 202 is sent only after the event is on disk, and many
concurrent accepts share one sync. :class:`MemoryQueue` runs the same operations on an in-memory
database, inline.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gateway.errors import QueueUnavailable
from queues import sqlstate
from queues.api import (
    Accepted,
    DeadLetter,
    DeadLetterPage,
    DossierStatus,
    NewEvent,
    Outcome,
    QueueStats,
    ReplayResult,
    Work,
)

T = TypeVar("T")
log = logging.getLogger("dvcgw.queue")
CHECKPOINT_EVERY_S = 0.5
Op = Callable[[sqlite3.Connection], Any]


class _SqlQueueBase:
    """The QueueBackend methods, expressed as operations on a connection; subclasses run them."""

    def __init__(self, *, lease_s: float = 120.0, clock: Callable[[], float] | None = None) -> None:
        import time

        self._lease_s = lease_s
        self._clock = clock or time.time
        self._wakeup = asyncio.Event()

    async def _run(self, op: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        raise NotImplementedError

    async def _read_now(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """A small indexed read; backends may serve it without queueing behind writes."""
        return await self._run(op, write=False)

    def _notify(self) -> None:
        self._wakeup.set()

    async def enqueue(self, events: Sequence[NewEvent]) -> list[Accepted]:
        now = self._clock()
        result = await self._run(lambda c: sqlstate.enqueue(c, events, now), write=True)
        self._notify()
        return result

    async def enqueue_checked(self, events: Sequence[NewEvent], check: Callable[[str | None], None]) -> list[Accepted]:
        """:meth:`enqueue`, after ``check`` has seen the dossier's last accepted state inside the
        same transaction (so a check and its append are atomic); what ``check`` raises, this raises."""
        now = self._clock()
        result = await self._run(lambda c: sqlstate.enqueue(c, events, now, check), write=True)
        self._notify()
        return result

    async def claim(self, limit: int, now: float) -> list[Work]:
        return await self._run(lambda c: sqlstate.claim(c, limit, now, self._lease_s), write=True)

    async def record(self, work: Work, outcome: Outcome, now: float, *, release: bool = True) -> None:
        await self._run(lambda c: sqlstate.record(c, work, outcome, now, release, self._lease_s), write=True)
        if release:
            self._notify()

    async def wait_for_work(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout=max(timeout, 0.0))
        except TimeoutError:
            pass
        self._wakeup.clear()

    async def next_due_at(self) -> float | None:
        return await self._read_now(sqlstate.next_due_at)

    async def status(self, mahoso: str) -> DossierStatus | None:
        now = self._clock()
        return await self._read_now(lambda c: sqlstate.status(c, mahoso, now))

    async def accepted_state(self, mahoso: str) -> str | None:
        return await self._read_now(lambda c: sqlstate.accepted_state(c, mahoso))

    async def unpark(self, mahoso: str) -> None:
        now = self._clock()
        await self._run(lambda c: sqlstate.unpark(c, mahoso, now), write=True)
        self._notify()

    async def dead_letters(self, cursor: str | None, limit: int) -> DeadLetterPage:
        return await self._run(lambda c: sqlstate.dead_letters(c, cursor, limit), write=False)

    async def dead_letter(self, dl_id: str) -> DeadLetter | None:
        return await self._run(lambda c: sqlstate.dead_letter(c, dl_id), write=False)

    async def replay(self, dl_id: str, now: float) -> ReplayResult:
        result = await self._run(lambda c: sqlstate.replay(c, dl_id, now), write=True)
        self._notify()
        return result

    async def drop(self, dl_id: str) -> bool:
        return await self._run(lambda c: sqlstate.drop(c, dl_id), write=True)

    async def stats(self, now: float) -> QueueStats:
        return await self._run(lambda c: sqlstate.stats(c, now), write=False)

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1").fetchone(), write=False)


class MemoryQueue(_SqlQueueBase):
    """Non-durable backend for tests and experiments: the same state machine, in memory, inline."""

    async def start(self) -> None:
        self._conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        sqlstate.init(self._conn)

    async def close(self) -> None:
        self._conn.close()

    async def _run(self, op: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        self._conn.execute("BEGIN")
        try:
            result = op(self._conn)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return result


class SQLiteQueue(_SqlQueueBase):
    """Durable embedded backend; one process owns the file (an advisory lock enforces it)."""

    def __init__(self, path: str | Path, *, synchronous: str = "full", lease_s: float = 120.0,
                 clock: Callable[[], float] | None = None, max_batch: int = 512,
                 commit_window: float = 0.0) -> None:
        super().__init__(lease_s=lease_s, clock=clock)
        self._window = commit_window
        self._last_batch = 0
        self._path = Path(path)
        self._synchronous = synchronous.upper()
        self._max_batch = max_batch
        self._pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dvcgw-sqlite-commit")
        self._closing = False
        self._lock_fd: int | None = None
        self.commits = 0  # how many fsync'd transactions: group commit is visible in tests/bench

    async def start(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._take_file_lock()
            conn = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=5000")
            # checkpoints run beside the commits (see _checkpoints), never inside one: an automatic
            # checkpoint copies megabytes and fsyncs the database while that commit's accepts wait
            conn.execute("PRAGMA wal_autocheckpoint=0")
            sqlstate.init(conn)
            sqlstate.release_all_leases(conn)
        except (OSError, sqlite3.Error) as exc:
            raise QueueUnavailable(f"cannot open the queue store {self._path}: {exc}") from exc
        self._conn = conn
        self._reader = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        self._reader.execute("PRAGMA busy_timeout=100")
        self._ckpt_conn = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        self._ckpt_conn.execute(f"PRAGMA synchronous={self._synchronous}")
        self._ckpt_conn.execute("PRAGMA busy_timeout=1000")
        self._checkpointer = asyncio.create_task(self._checkpoints(), name="dvcgw-sqlite-checkpoint")

    async def _checkpoints(self) -> None:
        """Every :data:`CHECKPOINT_EVERY_S`, copy committed WAL pages into the database file from a
        connection and thread of their own (PASSIVE: it never blocks the writer, which keeps
        appending). Once a checkpoint has caught up, the writer starts the WAL file over."""
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dvcgw-sqlite-checkpoint") as pool:
            while not self._closing:
                await asyncio.sleep(CHECKPOINT_EVERY_S)
                try:
                    await loop.run_in_executor(pool, self._ckpt_conn.execute, "PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # busy or I/O trouble: the next round tries again
                    log.warning("WAL checkpoint failed: %s", exc)

    def _take_file_lock(self) -> None:
        fd = os.open(str(self._path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise OSError(f"another dvcgw process is using {self._path}") from exc
        self._lock_fd = fd

    async def close(self) -> None:
        self._closing = True
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        self._committer.shutdown(wait=True)
        self._checkpointer.cancel()
        await asyncio.gather(self._checkpointer, return_exceptions=True)
        with contextlib.suppress(sqlite3.Error):  # leave a short WAL behind for the next start
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._ckpt_conn.close()
        self._reader.close()
        self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def _run(self, op: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        if self._closing:
            raise QueueUnavailable("the queue store is shutting down")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((op, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await fut

    async def _read_now(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run a small indexed read inline, on a read connection of its own. In WAL mode it never
        waits for the writer and sees every committed write (a 202 leaves only after its commit).
        If the read fails, it is retried through the writer."""
        try:
            return op(self._reader)
        except sqlite3.Error:
            return await self._run(op, write=False)

    async def _flush(self) -> None:
        """Group commit: run every operation gathered so far in one transaction on this thread, then
        COMMIT (the fsync) in the committer thread; operations arriving meanwhile form the next batch."""
        loop = asyncio.get_running_loop()
        while self._pending:
            if self._window and self._last_batch > 1 and len(self._pending) < self._max_batch:
                # under concurrent load, gather a little longer: one fsync and one set of page
                # writes then serve more accepts (an idle store commits a lone op at once)
                await asyncio.sleep(self._window)
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch:]
            self._last_batch = len(batch)
            try:
                results = await self._commit_batch(loop, batch)
            except BaseException:  # cancelled mid-commit: nobody may wait forever
                for _, fut in batch + self._pending:
                    _settle(fut, False, QueueUnavailable("the queue store is shutting down"))
                self._pending = []
                raise
            for (_, fut), (ok, value) in zip(batch, results, strict=True):
                _settle(fut, ok, value)

    async def _commit_batch(self, loop: asyncio.AbstractEventLoop,
                            batch: list[tuple[Op, asyncio.Future[Any]]]) -> list[tuple[bool, Any]]:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = self._run_plain(conn, batch)
            if results is None:  # one operation failed: redo the batch, each operation in a savepoint
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                results = [self._run_op(conn, op) for op, _ in batch]
            await loop.run_in_executor(self._committer, conn.execute, "COMMIT")
            self.commits += 1
            return results
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(False, QueueUnavailable(f"queue store commit failed: {exc}"))] * len(batch)

    @staticmethod
    def _run_plain(conn: sqlite3.Connection,
                   batch: list[tuple[Op, asyncio.Future[Any]]]) -> list[tuple[bool, Any]] | None:
        """Run the batch without savepoints (two statements fewer per operation); None if any
        operation raised, after which the caller rolls back and isolates each one."""
        try:
            return [(True, op(conn)) for op, _ in batch]
        except Exception:
            return None

    @staticmethod
    def _run_op(conn: sqlite3.Connection, op: Op) -> tuple[bool, Any]:
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


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)
