"""The embedded queue: SQLite in WAL mode, group commit.

Every operation is a function of a connection (``queues.sqlstate``). Callers submit operations;
one flusher task runs everything that has gathered since the last commit in one transaction on
the event-loop thread (if one operation fails, the batch is rolled back and run again with each
operation inside its own SAVEPOINT, so one failing operation cannot undo another's work) and
commits it. With ``synchronous = "full"`` a syncer task then makes the WAL durable with one
``fdatasync`` in a committer thread and resolves the callers' futures after it returns. The
flusher does not wait for the sync: the next batch commits while this one syncs, and one sync
serves every batch committed before it began. So a 202 is sent only after the event is on disk,
and many concurrent accepts share one sync. Keeping the Python work on one thread avoids a GIL hand-off per
operation (bench/bench_gateway measured it). :class:`MemoryQueue` runs the same operations on an
in-memory database, inline.

**The sync happens after the write lock is released.** SQLite's own ``synchronous = FULL`` syncs
the WAL inside COMMIT, while the writer holds the write lock, so writers in different processes
would queue behind each other's fsyncs (measured: 2.3 ms of lock wait per batch at 1,000 accepts/s
with two acceptors). Instead, writer connections run at ``NORMAL`` (in WAL mode: never corrupt;
the WAL is synced before every checkpoint) and the committer syncs the WAL file (``fdatasync``) after
COMMIT, outside the lock, before anyone is answered. Every frame written before that sync began,
the batch's commit frame included, is then on disk: the same promise as ``FULL``, while another
process's commit and sync overlap ours.

Several processes of one daemon may write one store (:class:`SharedSQLiteQueue`): the daemon
(operator actions), its HTTP acceptors (appends) and its delivery worker (claims, outcomes).
Writers take turns through an advisory ``flock`` on ``<store>.write-lock`` around each batch's
transaction, so a waiting writer is woken the moment the lock is free instead of polling SQLite's
busy handler (1, 2, 5 … ms sleeps). The daemon's ownership lock (``<store>.lock``) is inherited by
those children: a new daemon cannot take the store while any process of the old one still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from config.schema import Settings
from core.errors import QueueUnavailable
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
CHECKPOINT_EVERY_S = 0.25
YIELD_MAX_S = 0.05  # how long a writer holds back for a waiting checkpointer, at most
OWNER_WAIT_S = 15.0  # how long a starting daemon waits for the previous one's processes to exit
Op = Callable[[sqlite3.Connection], Any]


class _SqlQueueBase:
    """The QueueBackend methods, expressed as operations on a connection; subclasses run them."""

    def __init__(self, *, lease_s: float = 120.0, clock: Callable[[], float] | None = None) -> None:
        self._lease_s = lease_s
        self._clock = clock or time.time
        self._wakeup = asyncio.Event()

    async def _run(self, op: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        raise NotImplementedError

    async def _read_now(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """A small indexed read; backends may serve it without queueing behind writes."""
        return await self._run(op, write=False)

    def notify(self) -> None:
        """Wake :meth:`wait_for_work`: there may be new work (this queue wrote it, or another
        process, an HTTP acceptor, appended to the store)."""
        self._wakeup.set()

    async def enqueue(self, events: Sequence[NewEvent]) -> list[Accepted]:
        return await self.enqueue_checked(events, None)

    async def enqueue_checked(self, events: Sequence[NewEvent],
                              check: Callable[[str | None], None] | None) -> list[Accepted]:
        """:meth:`enqueue`, after ``check`` (if any) has seen the dossier's last accepted state inside
        the same transaction (so a check and its append are atomic); what ``check`` raises, this raises."""
        now = self._clock()
        result = await self._run(lambda c: sqlstate.enqueue(c, events, now, check), write=True)
        self.notify()
        return result

    async def claim(self, limit: int, now: float) -> list[Work]:
        return await self._run(lambda c: sqlstate.claim(c, limit, now, self._lease_s), write=True)

    async def record(self, work: Work, outcome: Outcome, now: float, *, release: bool = True) -> None:
        await self._run(lambda c: sqlstate.record(c, work, outcome, now, release, self._lease_s), write=True)
        if release:
            self.notify()

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
        self.notify()

    async def dead_letters(self, cursor: str | None, limit: int) -> DeadLetterPage:
        return await self._run(lambda c: sqlstate.dead_letters(c, cursor, limit), write=False)

    async def dead_letter(self, dl_id: str) -> DeadLetter | None:
        return await self._run(lambda c: sqlstate.dead_letter(c, dl_id), write=False)

    async def replay(self, dl_id: str, now: float) -> ReplayResult:
        result = await self._run(lambda c: sqlstate.replay(c, dl_id, now), write=True)
        self.notify()
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


class _WriteLock:
    """The store's cross-process write turn: ``flock`` on ``<store>.write-lock``. Taken without
    blocking when free (the common case, no thread hand-off); otherwise waited for in ``pool``.

    ``flock`` is not fair: writers that keep taking the lock the moment it is free could keep the
    owner's checkpointer out for as long as the load lasts. So the first byte of the lock file,
    mapped into every writer, says "the checkpointer is waiting": writers then hold back (for at
    most :data:`YIELD_MAX_S`, in case the owner died with the flag up) until it has had its turn."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(str(path) + ".write-lock", os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < mmap.PAGESIZE:
            os.ftruncate(self._fd, mmap.PAGESIZE)
        self._flag = mmap.mmap(self._fd, mmap.PAGESIZE)

    async def acquire(self, loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor) -> bool:
        """Take the turn; True if another writer had it first (the store is busy)."""
        if self._flag[0]:
            deadline = loop.time() + YIELD_MAX_S
            # the flag lives in another process's memory too: polled, no asyncio.Event can carry it
            while self._flag[0] and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            await loop.run_in_executor(pool, fcntl.flock, self._fd, fcntl.LOCK_EX)
            return True

    async def acquire_first(self, loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor) -> None:
        """Take the next turn ahead of the writers (the checkpointer)."""
        self._flag[0] = 1
        try:
            await loop.run_in_executor(pool, fcntl.flock, self._fd, fcntl.LOCK_EX)
        finally:
            self._flag[0] = 0

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._flag.close()
        os.close(self._fd)


class SQLiteQueue(_SqlQueueBase):
    """Durable embedded backend. One daemon owns the file (an advisory lock enforces it); its child
    processes may write beside it through :class:`SharedSQLiteQueue`. ``commit_window`` is how long
    the flusher gathers operations before a batch under concurrent load; ``yield_window`` is how
    long it gathers instead whenever its last turn had to wait for another writer (the delivery
    worker: while the acceptors are busy, each of its transactions holds up their next commit, so
    it makes fewer, larger ones). ``while_writing``, if given, is entered around each turn holding
    the write lock (the delivery worker raises its CPU priority there, see ``gateway.priority``)."""

    def __init__(self, path: str | Path, *, synchronous: str = "full", lease_s: float = 120.0,
                 clock: Callable[[], float] | None = None, max_batch: int = 512,
                 commit_window: float = 0.0, yield_window: float = 0.0,
                 while_writing: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
                 owner_wait: float = OWNER_WAIT_S) -> None:
        super().__init__(lease_s=lease_s, clock=clock)
        self._owner_wait = owner_wait
        self._while_writing = while_writing or contextlib.nullcontext
        self._window = commit_window
        self._yield_window = yield_window
        self._contended = False  # the last turn had to wait for another writer
        self._last_batch = 0
        self._path = Path(path)
        self._synchronous = synchronous.upper()
        self._wal_fd: int | None = None  # the WAL file, synced after each commit under "full"
        self._max_batch = max_batch
        self._pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        # committed batches whose WAL frames are not yet synced, and the task syncing them
        self._unsynced: list[tuple[list[tuple[Op, asyncio.Future[Any]]], list[tuple[bool, Any]]]] = []
        self._syncer: asyncio.Task[None] | None = None
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dvcgw-sqlite-commit")
        self._locker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dvcgw-sqlite-lock")
        self._closing = False
        self._lock_fd: int | None = None
        self.commits = 0  # how many WAL syncs: group commit is visible in tests/bench

    def _open_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # "full" is kept by _sync_wal after the commit, outside the write lock (module docstring)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        # checkpoints run beside the commits (see _checkpoints), never inside one: an automatic
        # checkpoint copies megabytes and fsyncs the database while that commit's accepts wait
        conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    def _open_reader(self) -> sqlite3.Connection:
        """The connection of small indexed reads (:meth:`_read_now`)."""
        reader = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA busy_timeout=100")
        return reader

    async def start(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            await self._take_file_lock()
            self._write_lock = _WriteLock(self._path)
            conn = self._open_writer()
            sqlstate.init(conn)
            sqlstate.release_all_leases(conn)
        except (OSError, sqlite3.Error) as exc:
            raise QueueUnavailable(f"cannot open the queue store {self._path}: {exc}") from exc
        self._conn = conn
        self._reader = self._open_reader()
        self._ckpt_conn = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        self._ckpt_conn.execute(f"PRAGMA synchronous={self._synchronous}")
        self._ckpt_conn.execute("PRAGMA busy_timeout=1000")
        self._checkpointer = asyncio.create_task(self._checkpoints(), name="dvcgw-sqlite-checkpoint")

    async def _checkpoints(self) -> None:
        """Every :data:`CHECKPOINT_EVERY_S`, copy committed WAL pages into the database file from a
        connection and thread of their own: first without holding anyone up (PASSIVE: writers keep
        appending meanwhile), then, holding the write lock, the few frames appended during that
        copy. The WAL is then wholly in the database, so the next writer starts the WAL file over.
        Without the second step a store that is written every millisecond never catches up: its
        WAL grew by ~30 MB a second at 1,000 accepts/s, and every page read searched it. The
        database file is synced between the steps, so the locked step's own sync is short (it
        took ~10 ms with the whole copy still to sync, while every writer waited)."""
        loop = asyncio.get_running_loop()
        db = os.open(str(self._path), os.O_RDONLY)
        # a lock of its own: flock turns are per open file, and this process's writer has one too
        turn = _WriteLock(self._path)
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dvcgw-sqlite-checkpoint") as pool:
                while not self._closing:
                    await asyncio.sleep(CHECKPOINT_EVERY_S)
                    try:
                        await loop.run_in_executor(pool, self._checkpoint)
                        await loop.run_in_executor(pool, os.fdatasync, db)
                        await turn.acquire_first(loop, pool)
                        try:
                            await loop.run_in_executor(pool, self._checkpoint)
                        finally:
                            turn.release()
                    except (sqlite3.Error, OSError) as exc:  # busy or I/O trouble: the next round tries again
                        log.warning("WAL checkpoint failed: %s", exc)
        finally:  # closing the descriptor also ends a turn a cancelled wait took meanwhile
            turn.close()
            os.close(db)

    def _checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (busy, frames in the WAL, frames copied)."""
        busy, frames, copied = self._ckpt_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(busy), int(frames), int(copied)

    async def _take_file_lock(self) -> None:
        """Own the store. Children that write it inherit this lock (:attr:`owner_fd`), so it is held
        until the last process of this daemon exits; a daemon started right after a crash waits
        up to ``owner_wait`` seconds for the old children to die (they do, with their parent)."""
        fd = os.open(str(self._path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self._owner_wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise OSError(f"another dvcgw process is using {self._path}") from exc
                await asyncio.sleep(0.05)
        self._lock_fd = fd

    @property
    def owner_fd(self) -> int | None:
        """The ownership lock's descriptor, for the children that write the store to inherit."""
        return self._lock_fd

    async def close(self) -> None:
        self._closing = True
        await self._drain()
        self._checkpointer.cancel()
        await asyncio.gather(self._checkpointer, return_exceptions=True)
        with contextlib.suppress(sqlite3.Error):  # leave a short WAL behind for the next start
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._ckpt_conn.close()
        self._close_files()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def _drain(self) -> None:
        """Let the batches in hand commit and sync, then stop the threads."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._syncer is not None:
            await asyncio.gather(self._syncer, return_exceptions=True)
        self._committer.shutdown(wait=True)
        self._locker.shutdown(wait=True)

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
        """Group commit: run every operation gathered so far in one transaction on this thread and
        commit it; the syncer makes it durable while operations arriving meanwhile form the next
        batch."""
        loop = asyncio.get_running_loop()
        while self._pending:
            # under concurrent load, gather a little longer: one fsync and one set of page writes
            # then serve more accepts (an idle store commits a lone op at once); a writer that
            # yields to others gathers longer while they keep the store busy
            wait = self._yield_window if self._yield_window and self._contended else (
                self._window if self._last_batch > 1 else 0.0)
            if wait and len(self._pending) < self._max_batch:
                await asyncio.sleep(wait)
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch:]
            self._last_batch = len(batch)
            try:
                results = await self._commit_batch(loop, batch)
            except BaseException:  # cancelled mid-commit: nobody may wait forever
                for _, fut in batch + self._pending:
                    _settle(fut, False, QueueUnavailable("the queue store is shutting down"))
                self._pending = []
                raise
            if self._synchronous != "FULL":
                _settle_batch(batch, results)
                continue
            self._unsynced.append((batch, results))
            if self._syncer is None or self._syncer.done():
                self._syncer = asyncio.create_task(self._sync(loop))

    async def _sync(self, loop: asyncio.AbstractEventLoop) -> None:
        """Sync the WAL for every batch committed so far, answer their callers, and go on while
        more batches have committed meanwhile (each sync covers all of them at once)."""
        while self._unsynced:
            group, self._unsynced = self._unsynced, []
            failure: QueueUnavailable | None = None
            try:
                await loop.run_in_executor(self._committer, self._sync_wal)
                self.commits += 1
            except OSError as exc:  # not durable: nobody may be told it is
                failure = QueueUnavailable(f"queue store sync failed: {exc}")
            except BaseException:  # cancelled: nobody may wait forever
                for batch, _ in group + self._unsynced:
                    for _, fut in batch:
                        _settle(fut, False, QueueUnavailable("the queue store is shutting down"))
                self._unsynced = []
                raise
            for batch, results in group:
                _settle_batch(batch, results if failure is None else [(False, failure)] * len(batch))

    async def _commit_batch(self, loop: asyncio.AbstractEventLoop,
                            batch: list[tuple[Op, asyncio.Future[Any]]]) -> list[tuple[bool, Any]]:
        with self._while_writing():
            return await self._commit_locked(loop, batch)

    async def _commit_locked(self, loop: asyncio.AbstractEventLoop,
                             batch: list[tuple[Op, asyncio.Future[Any]]]) -> list[tuple[bool, Any]]:
        conn = self._conn
        self._contended = await self._write_lock.acquire(loop, self._locker)
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = self._run_plain(conn, batch)
            if results is None:  # one operation failed: redo the batch, each operation in a savepoint
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                results = [self._run_op(conn, op) for op, _ in batch]
            conn.execute("COMMIT")  # WAL frames written, not yet synced
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(False, QueueUnavailable(f"queue store commit failed: {exc}"))] * len(batch)
        finally:
            self._write_lock.release()
        return results

    def _sync_wal(self) -> None:
        """``fdatasync`` the WAL file: every frame written before this call is on disk afterwards.
        The descriptor is reopened if SQLite replaced the file (all connections closed once)."""
        fd = self._wal_fd
        if fd is None or os.fstat(fd).st_nlink == 0:
            if fd is not None:
                os.close(fd)
            self._wal_fd = fd = os.open(str(self._path) + "-wal", os.O_RDONLY)
        os.fdatasync(fd)

    def _close_files(self) -> None:
        """Close what every writer opens: its connections, the write lock, the WAL descriptor."""
        self._reader.close()
        self._conn.close()
        self._write_lock.close()
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None

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


class SharedSQLiteQueue(SQLiteQueue):
    """A store another process owns and has started (the daemon), written by one of its children:
    an HTTP acceptor appends, the delivery worker claims and records. Each write is durable when
    it returns, commits are grouped as in the owner, and writers take turns through the store's
    write lock. It takes no ownership lock (the child inherits its daemon's), changes no schema,
    and leaves leases and checkpoints to the owner. ``on_write`` is called with every
    :meth:`notify` (after each write that may create work: an append, a released claim), so the
    owner's engine can be woken."""

    def __init__(self, path: str | Path, *, on_write: Callable[[], None] | None = None, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._on_write = on_write

    async def start(self) -> None:
        if not self._path.exists():
            raise QueueUnavailable(f"the queue store {self._path} does not exist; the daemon creates it")
        try:
            self._write_lock = _WriteLock(self._path)
            self._conn = self._open_writer()
            self._reader = self._open_reader()
        except (OSError, sqlite3.Error) as exc:
            raise QueueUnavailable(f"cannot open the queue store {self._path}: {exc}") from exc

    async def close(self) -> None:
        self._closing = True
        await self._drain()
        self._close_files()

    def notify(self) -> None:
        self._wakeup.set()
        if self._on_write is not None:
            self._on_write()


def store_options(settings: Settings) -> dict[str, Any]:
    """The ``[storage]`` and ``[queue]`` settings every writer of the store opens it with (the
    daemon's :class:`SQLiteQueue`, its children's :class:`SharedSQLiteQueue`); a writer may
    override one (the worker's bookkeeping is not synced on its own)."""
    return {"synchronous": settings.storage.synchronous, "lease_s": settings.queue.lease,
            "max_batch": settings.storage.commit_max_batch, "commit_window": settings.storage.commit_window}


def inherited_fds(queue: object) -> tuple[int, ...]:
    """The descriptors a child that writes ``queue``'s store must inherit: its ownership lock."""
    fd = queue.owner_fd if isinstance(queue, SQLiteQueue) else None
    return () if fd is None else (fd,)


def _settle_batch(batch: list[tuple[Op, asyncio.Future[Any]]], results: list[tuple[bool, Any]]) -> None:
    for (_, fut), (ok, value) in zip(batch, results, strict=True):
        _settle(fut, ok, value)


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)
