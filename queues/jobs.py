"""Durable jobs: the outbox of deliveries that are not a dossier's sync to the portal.

The provincial system's copy of an inbound dossier and an e-receipt's issue are each one call to a
counterpart that must happen at least once, survive a restart, be retried through an outage and,
when it cannot succeed, wait in a dead letter an operator can replay. They have no per-dossier
ordering of snapshots and progress to keep, so they do not go through the dossier queue
(:mod:`queues.api`): each is a *job* in its own SQLite file (``[jobs] path``, default
``jobs.sqlite3`` beside ``[storage] path``), run by a handler registered for its topic.

Guarantees (tests/queues/test_jobs.py):

* :meth:`Jobs.put` returns only when the job is committed (WAL, ``synchronous = FULL``);
* the jobs of one (topic, key) run one at a time, in put order; a later job waits while an
  earlier one is retried, and passes it once it is dead-lettered;
* ``dedupe``: a put whose value equals that of the newest job of its (topic, key) that is not
  dead-lettered enqueues nothing ("pulled twice, delivered once unless it changed");
* a handler's :class:`~core.errors.TransientError` schedules a retry on the ``[retry]`` ladder
  (``retry_after`` honoured) until ``[retry] give_up_after``; any
  :class:`~core.errors.PermanentError`, the ladder running out, or an unexpected exception
  (logged with its traceback) dead-letters the job with a code and a message;
* a job is done when its handler returns; a crash during the call runs it again at start-up
  (handlers are idempotent: fkeys, MaHoSo).

All file work runs on one worker thread with one connection, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from config.schema import RetrySettings
from core.errors import PermanentError, QueueUnavailable, TransientError
from core.filework import FileWorker
from core.sqlitefile import open_private

log = logging.getLogger("dvcgw.jobs")
T = TypeVar("T")

#: the topics the gateway runs (label values of the jobs' metrics): an inbound dossier's delivery to
#: the provincial system, an e-receipt's issue or cancellation, a certified copy's link added to its dossier
PROVINCIAL, RECEIPT, CERTIFICATION = "provincial", "receipt", "certification"
TOPICS = (PROVINCIAL, RECEIPT, CERTIFICATION)
PENDING, DONE, DEAD = "pending", "done", "dead"
STATES = (PENDING, DONE, DEAD)
#: the ``outcome`` of a job run (``dvcgw_job_runs_total``)
RUN_OUTCOMES = ("ok", "retry", "dead")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL, key TEXT NOT NULL, dedupe TEXT,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,                -- pending | done | dead
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at REAL NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    first_failure_at REAL,
    error_code TEXT, error_message TEXT,
    replayed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_key ON jobs (topic, key, id);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (due_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS jobs_dead ON jobs (id) WHERE state = 'dead';
"""

#: pending jobs that are due and first of their (topic, key) among the pending ones
_DUE = """
SELECT id, topic, key, payload, attempts, created_at, first_failure_at FROM jobs j
WHERE state = 'pending' AND due_at <= ? AND topic IN ({topics})
  AND NOT EXISTS (SELECT 1 FROM jobs k
                  WHERE k.topic = j.topic AND k.key = j.key AND k.state = 'pending' AND k.id < j.id)
ORDER BY due_at LIMIT ?
"""


@dataclass(frozen=True)
class Job:
    """One job as its handler sees it."""

    id: str
    topic: str
    key: str
    payload: Mapping[str, Any]
    attempts: int
    created_at: float


@dataclass(frozen=True)
class DeadJob:
    """A dead-lettered job, as the operator routes show it."""

    id: str
    topic: str
    key: str
    code: str
    message: str
    attempts: int
    dead_at: float
    created_at: float
    replayed: bool

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "topic": self.topic, "key": self.key, "code": self.code, "message": self.message,
                "attempts": self.attempts, "dead_at": self.dead_at, "created_at": self.created_at,
                "replayed": self.replayed}


class JobRefused(PermanentError):
    """A handler's verdict that retrying cannot help, with a code for the dead letter."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


Handler = Callable[[Job], Awaitable[None]]
#: (topic, outcome) after each run: the metrics hook
RunObserver = Callable[[str, str], None]


def _error_code(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return str(code) if code else type(exc).__name__


class Jobs(FileWorker):
    """The durable jobs of one gateway instance (see the module docstring)."""

    def __init__(self, path: Path, retry: RetrySettings, *, concurrency: int = 8, poll_interval: float = 1.0,
                 clock: Callable[[], float] = time.time, observer: RunObserver | None = None) -> None:
        super().__init__("dvcgw-jobs")
        self.path = path
        self._retry = retry
        self._concurrency = concurrency
        self._poll = poll_interval
        self._clock = clock
        self._observer = observer
        self._handlers: dict[str, Handler] = {}
        self._wake = asyncio.Event()
        self._rng = random.random

    # ------------------------------------------------------------------ set-up

    def handle(self, topic: str, handler: Handler) -> None:
        """Run ``handler`` for the jobs of ``topic`` (register before :meth:`run` or :meth:`drain`)."""
        self._handlers[topic] = handler

    async def start(self) -> None:
        """Open (or create) the file. Raises QueueUnavailable if it cannot be used."""
        try:
            self._conn = await self._in_thread(lambda: _open(self.path))
        except (sqlite3.Error, OSError) as exc:
            raise QueueUnavailable(f"jobs file {self.path}: {exc}") from exc

    def start_worker(self) -> None:
        """Run due jobs in the background until :meth:`close`."""
        self._start_task(self._run(), "dvcgw-jobs")

    # ------------------------------------------------------------------ the contract

    async def put(self, topic: str, key: str, payload: Mapping[str, Any], *, dedupe: str | None = None) -> bool:
        """Enqueue a job, durable when this returns; False if ``dedupe`` equals the newest live job's."""
        text = orjson.dumps(payload).decode()
        now = self._clock()
        added = await self._write(lambda c: _put(c, topic, key, text, dedupe, now))
        if added:
            self._wake.set()
        return added

    async def drain(self, timeout: float = 60.0) -> None:
        """Run every due job, and what they make due, until nothing is due (tests)."""
        deadline = time.monotonic() + timeout
        while await self._run_due():
            if time.monotonic() > deadline:
                raise TimeoutError("jobs still due after drain timeout")

    async def counts(self) -> dict[tuple[str, str], int]:
        """Jobs per (topic, state)."""
        rows = await self._read(lambda c: c.execute("SELECT topic, state, COUNT(*) FROM jobs GROUP BY 1, 2").fetchall())
        return {(t, s): n for t, s, n in rows}

    async def oldest_pending(self) -> float | None:
        """When the oldest pending job was put."""
        rows = await self._read(lambda c: c.execute("SELECT MIN(created_at) FROM jobs WHERE state = 'pending'")
                                .fetchone())
        return rows[0] if rows else None

    async def history(self, topic: str, key: str) -> list[tuple[str, Job]]:
        """Every job of (topic, key), oldest first, with its state."""
        rows = await self._read(lambda c: c.execute(
            "SELECT state, id, topic, key, payload, attempts, created_at FROM jobs"
            " WHERE topic = ? AND key = ? ORDER BY id", (topic, key)).fetchall())
        return [(s, Job(str(i), t, k, orjson.loads(p), a, c)) for s, i, t, k, p, a, c in rows]

    async def dead_letters(self, cursor: str | None, limit: int, topic: str | None = None
                           ) -> tuple[list[DeadJob], str | None]:
        """A page of dead-lettered jobs, oldest first, and the cursor of the next page."""
        after = _int(cursor) if cursor else 0
        rows = await self._read(lambda c: c.execute(
            f"{_DEAD} AND id > ? AND (? IS NULL OR topic = ?) ORDER BY id LIMIT ?",
            (after, topic, topic, limit + 1)).fetchall())
        items = [_dead_job(r) for r in rows[:limit]]
        return items, (items[-1].id if len(rows) > limit else None)

    async def dead_letter(self, job_id: str) -> DeadJob | None:
        """One dead-lettered job, or None."""
        row = await self._read(lambda c: c.execute(f"{_DEAD} AND id = ?", (_int(job_id),)).fetchone())
        return None if row is None else _dead_job(row)

    async def replay(self, job_id: str) -> bool:
        """Make a dead-lettered job pending again, due now, its attempts reset; False if no such dead job."""
        now = self._clock()
        done = await self._write(lambda c: c.execute(
            "UPDATE jobs SET state = 'pending', attempts = 0, due_at = ?, updated_at = ?, first_failure_at = NULL,"
            " replayed = 1 WHERE id = ? AND state = 'dead'", (now, now, _int(job_id))).rowcount == 1)
        if done:
            self._wake.set()
        return bool(done)

    async def drop(self, job_id: str) -> bool:
        """Forget a dead-lettered job; False if no such dead job."""
        return bool(await self._write(lambda c: c.execute(
            "DELETE FROM jobs WHERE id = ? AND state = 'dead'", (_int(job_id),)).rowcount == 1))

    async def prune(self, before: float) -> int:
        """Forget done jobs finished before ``before``, but the newest of each (topic, key): dedupe needs it."""
        return int(await self._write(lambda c: c.execute(
            "DELETE FROM jobs WHERE state = 'done' AND updated_at < ? AND id < "
            "(SELECT MAX(k.id) FROM jobs k WHERE k.topic = jobs.topic AND k.key = jobs.key)", (before,)).rowcount))

    # ------------------------------------------------------------------ running

    async def _run(self) -> None:
        while True:
            try:
                ran = await self._run_due()
            except QueueUnavailable as exc:
                log.error("jobs: %s", exc)
                ran = 0
            if not ran:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), await self._idle_for())

    async def _idle_for(self) -> float:
        """Seconds until the next job is due (at most the poll interval)."""
        row = await self._read(lambda c: c.execute("SELECT MIN(due_at) FROM jobs WHERE state = 'pending'").fetchone())
        if row is None or row[0] is None:
            return self._poll
        return min(max(float(row[0]) - self._clock(), 0.01), self._poll)

    async def _run_due(self) -> int:
        """Run one round of due jobs (at most ``concurrency``, distinct keys); how many ran."""
        topics = tuple(self._handlers)
        if not topics:
            return 0
        now = self._clock()
        sql = _DUE.format(topics=", ".join("?" * len(topics)))
        rows = await self._read(lambda c: c.execute(sql, (now, *topics, self._concurrency)).fetchall())
        if rows:
            await asyncio.gather(*(self._run_one(row) for row in rows))
        return len(rows)

    async def _run_one(self, row: Sequence[Any]) -> None:
        jid, topic, key, payload, attempts, created, first_failure = row
        job = Job(str(jid), topic, key, orjson.loads(payload), attempts, created)
        try:
            await self._handlers[topic](job)
        except TransientError as exc:
            await self._failed(job, exc, first_failure)
        except PermanentError as exc:
            await self._dead(job, _error_code(exc), str(exc))
        except Exception as exc:  # a bug in a handler: parked for an operator, never lost
            log.exception("jobs: the %s handler failed on job %s", topic, jid)
            await self._dead(job, "internal_error", f"{type(exc).__name__}: {exc}")
        else:
            now = self._clock()
            await self._write(lambda c: c.execute(
                "UPDATE jobs SET state = 'done', attempts = attempts + 1, updated_at = ?, error_code = NULL,"
                " error_message = NULL WHERE id = ?", (now, jid)))
            self._observe(topic, "ok")

    async def _failed(self, job: Job, exc: TransientError, first_failure: float | None) -> None:
        now = self._clock()
        first = first_failure if first_failure is not None else now
        if now - first >= float(self._retry.give_up_after):
            await self._dead(job, "gave_up", f"retried for {now - first:.0f} s: {exc}")
            return
        delay = exc.retry_after if exc.retry_after is not None else self._ladder(job.attempts)
        log.warning("jobs: %s job %s failed (attempt %d), retry in %.0f s: %s", job.topic, job.id,
                    job.attempts + 1, delay, exc)
        await self._write(lambda c: c.execute(
            "UPDATE jobs SET attempts = attempts + 1, due_at = ?, updated_at = ?, first_failure_at = ?,"
            " error_code = ?, error_message = ? WHERE id = ?",
            (now + delay, now, first, _error_code(exc), str(exc), int(job.id))))
        self._observe(job.topic, "retry")

    async def _dead(self, job: Job, code: str, message: str) -> None:
        now = self._clock()
        log.error("jobs: %s job %s dead-lettered (%s): %s", job.topic, job.id, code, message)
        await self._write(lambda c: c.execute(
            "UPDATE jobs SET state = 'dead', attempts = attempts + 1, updated_at = ?, error_code = ?,"
            " error_message = ? WHERE id = ?", (now, code, message, int(job.id))))
        self._observe(job.topic, "dead")

    def _ladder(self, attempts: int) -> float:
        delays = self._retry.delays
        base = float(delays[min(attempts, len(delays) - 1)])
        jitter = self._retry.jitter
        return base * (1 - jitter + 2 * jitter * self._rng()) if jitter else base

    def _observe(self, topic: str, outcome: str) -> None:
        if self._observer is not None:
            self._observer(topic, outcome)

    # ------------------------------------------------------------------ the file


    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connection()
        try:
            return await self._in_thread(lambda: fn(conn))
        except sqlite3.Error as exc:
            raise QueueUnavailable(f"jobs file {self.path}: {exc}") from exc

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connection()

        def tx() -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        try:
            return await self._in_thread(tx)
        except sqlite3.Error as exc:
            raise QueueUnavailable(f"jobs file {self.path}: {exc}") from exc

    def _not_started(self) -> Exception:
        return QueueUnavailable("jobs: not started")


_DEAD = ("SELECT id, topic, key, error_code, error_message, attempts, updated_at, created_at, replayed"
         " FROM jobs WHERE state = 'dead'")


def _dead_job(r: Sequence[Any]) -> DeadJob:
    return DeadJob(str(r[0]), r[1], r[2], r[3] or "", r[4] or "", r[5], r[6], r[7], bool(r[8]))


def _int(job_id: str | None) -> int:
    """A job id from a path or cursor; -1 (matches nothing) when it is not a number."""
    return int(job_id) if job_id and job_id.isdigit() else -1


def _put(conn: sqlite3.Connection, topic: str, key: str, payload: str, dedupe: str | None, now: float) -> bool:
    if dedupe is not None:
        row = conn.execute("SELECT dedupe FROM jobs WHERE topic = ? AND key = ? AND state != 'dead'"
                           " ORDER BY id DESC LIMIT 1", (topic, key)).fetchone()
        if row is not None and row[0] == dedupe:
            return False
    conn.execute("INSERT INTO jobs (topic, key, dedupe, payload, state, due_at, created_at, updated_at)"
                 " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)", (topic, key, dedupe, payload, now, now, now))
    return True


def _open(path: Path) -> sqlite3.Connection:
    """Open (or create) the file: 0600 (payloads name people), WAL, FULL sync."""
    return open_private(path, SCHEMA, synchronous="full")
