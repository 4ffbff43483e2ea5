"""The durable jobs (queues/jobs.py) on a real SQLite file: durability, per-key order, dedupe,
the retry ladder, dead letters and replay. Time is a FakeClock moved by the test; the jobs are run
by ``drain()``, the same rounds the background worker runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from config.schema import RetrySettings
from core.errors import PermanentError, TransientError
from queues.jobs import Job, JobRefused, Jobs
from tests.fakes.portal import FakeClock

RETRY = RetrySettings(delays=(5.0, 30.0), give_up_after=100.0, jitter=0.0)  # type: ignore[arg-type]


class Recorder:
    """A handler that records what it ran and fails as told, per key."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, dict[str, object]]] = []
        self.fail: dict[str, list[BaseException]] = {}

    async def __call__(self, job: Job) -> None:
        self.ran.append((job.key, dict(job.payload)))
        errors = self.fail.get(job.key)
        if errors:
            raise errors.pop(0)


@pytest.fixture
async def jobs(tmp_path: Path) -> AsyncIterator[tuple[Jobs, Recorder, FakeClock]]:
    clock = FakeClock(start=1_000_000.0)
    j = Jobs(tmp_path / "jobs.sqlite3", RETRY, clock=clock)
    rec = Recorder()
    j.handle("t", rec)
    await j.start()
    yield j, rec, clock
    await j.close()


async def test_a_put_job_survives_a_restart_and_runs_once(tmp_path: Path) -> None:
    """put() commits: a new Jobs on the same file runs the job; once done, never again."""
    clock = FakeClock(start=1_000_000.0)
    first = Jobs(tmp_path / "jobs.sqlite3", RETRY, clock=clock)
    await first.start()
    assert await first.put("t", "A", {"n": 1})
    await first.close()
    second = Jobs(tmp_path / "jobs.sqlite3", RETRY, clock=clock)
    rec = Recorder()
    second.handle("t", rec)
    await second.start()
    try:
        await second.drain()
        await second.drain()
        assert rec.ran == [("A", {"n": 1})]
        assert await second.counts() == {("t", "done"): 1}
    finally:
        await second.close()


async def test_jobs_of_one_key_run_in_order_and_wait_for_a_retry(jobs: tuple[Jobs, Recorder, FakeClock]) -> None:
    """The second job of a key waits while the first is retried; another key is not held up."""
    j, rec, clock = jobs
    rec.fail["A"] = [TransientError("down")]
    await j.put("t", "A", {"n": 1})
    await j.put("t", "A", {"n": 2})
    await j.put("t", "B", {"n": 3})
    await j.drain()
    assert rec.ran == [("A", {"n": 1}), ("B", {"n": 3})]
    clock.advance(4.9)
    await j.drain()
    assert len(rec.ran) == 2  # the first step of the ladder is 5 s
    clock.advance(0.2)
    await j.drain()
    assert rec.ran[2:] == [("A", {"n": 1}), ("A", {"n": 2})]


async def test_retry_after_is_honoured(jobs: tuple[Jobs, Recorder, FakeClock]) -> None:
    j, rec, clock = jobs
    rec.fail["A"] = [TransientError("busy", retry_after=60.0)]
    await j.put("t", "A", {})
    await j.drain()
    clock.advance(59.0)
    await j.drain()
    assert len(rec.ran) == 1
    clock.advance(1.0)
    await j.drain()
    assert len(rec.ran) == 2 and await j.counts() == {("t", "done"): 1}


async def test_dedupe_skips_an_unchanged_payload_but_not_a_changed_one(jobs: tuple[Jobs, Recorder, FakeClock]) -> None:
    """Same dedupe as the newest live job of the key: nothing enqueued; a change (even back to an
    older value) is enqueued."""
    j, rec, _ = jobs
    assert await j.put("t", "A", {"v": 1}, dedupe="h1")
    assert not await j.put("t", "A", {"v": 1}, dedupe="h1")
    await j.drain()
    assert not await j.put("t", "A", {"v": 1}, dedupe="h1")
    assert await j.put("t", "A", {"v": 2}, dedupe="h2")
    assert await j.put("t", "A", {"v": 1}, dedupe="h1")
    await j.drain()
    assert [p["v"] for _, p in rec.ran] == [1, 2, 1]


async def test_a_dead_lettered_job_does_not_block_dedupe_or_later_jobs(jobs: tuple[Jobs, Recorder, FakeClock]) -> None:
    j, rec, _ = jobs
    rec.fail["A"] = [JobRefused("422", "the province refused it")]
    await j.put("t", "A", {"v": 1}, dedupe="h1")
    await j.put("t", "A", {"v": 2}, dedupe="h2")
    await j.drain()
    assert [p["v"] for _, p in rec.ran] == [1, 2]
    items, nxt = await j.dead_letters(None, 10)
    assert nxt is None and [(d.key, d.code, d.message) for d in items] == [("A", "422", "the province refused it")]
    assert await j.put("t", "A", {"v": 1}, dedupe="h1")  # newest live is h2


async def test_permanent_errors_and_bugs_are_dead_letters_with_a_code(jobs: tuple[Jobs, Recorder, FakeClock]) -> None:
    j, rec, _ = jobs
    rec.fail["P"] = [PermanentError("no")]
    rec.fail["X"] = [KeyError("boom")]
    await j.put("t", "P", {})
    await j.put("t", "X", {})
    await j.drain()
    items, _ = await j.dead_letters(None, 10)
    assert {d.key: d.code for d in items} == {"P": "PermanentError", "X": "internal_error"}


async def test_retries_give_up_after_the_ceiling(jobs: tuple[Jobs, Recorder, FakeClock]) -> None:
    """Transient failures past [retry] give_up_after (100 s here) end in a dead letter, gave_up."""
    j, rec, clock = jobs
    rec.fail["A"] = [TransientError("down") for _ in range(10)]
    await j.put("t", "A", {})
    for _ in range(6):
        await j.drain()
        clock.advance(30.0)
    items, _ = await j.dead_letters(None, 10)
    assert [(d.code, d.attempts) for d in items] == [("gave_up", 5)]
    assert len(rec.ran) == 5  # t = 0, 5(+30 granularity) ... until 100 s had passed since the first failure


async def test_replay_and_drop(jobs: tuple[Jobs, Recorder, FakeClock]) -> None:
    j, rec, _ = jobs
    rec.fail["A"] = [PermanentError("no")]
    rec.fail["B"] = [PermanentError("no")]
    await j.put("t", "A", {})
    await j.put("t", "B", {})
    await j.drain()
    (a, b), _ = await j.dead_letters(None, 10)
    assert await j.replay(a.id)
    assert not await j.replay(a.id)  # no longer dead
    await j.drain()
    assert await j.counts() == {("t", "done"): 1, ("t", "dead"): 1}
    assert await j.drop(b.id) and not await j.drop(b.id)
    assert not await j.replay("nope") and not await j.drop("-1")
    assert await j.counts() == {("t", "done"): 1}


async def test_dead_letter_pages(jobs: tuple[Jobs, Recorder, FakeClock]) -> None:
    j, rec, _ = jobs
    for k in "ABC":
        rec.fail[k] = [PermanentError("no")]
        await j.put("t", k, {})
    await j.drain()
    page, nxt = await j.dead_letters(None, 2)
    assert [d.key for d in page] == ["A", "B"] and nxt is not None
    page, nxt = await j.dead_letters(nxt, 2)
    assert [d.key for d in page] == ["C"] and nxt is None


async def test_prune_keeps_the_newest_job_of_each_key(jobs: tuple[Jobs, Recorder, FakeClock]) -> None:
    """Old done jobs go; the newest of a key stays, so dedupe still sees it."""
    j, _, clock = jobs
    await j.put("t", "A", {"v": 1}, dedupe="h1")
    await j.put("t", "A", {"v": 2}, dedupe="h2")
    await j.drain()
    clock.advance(100.0)
    assert await j.prune(clock()) == 1
    assert not await j.put("t", "A", {"v": 2}, dedupe="h2")


async def test_a_topic_without_handler_waits(jobs: tuple[Jobs, Recorder, FakeClock]) -> None:
    j, rec, _ = jobs
    await j.put("other", "A", {})
    await j.drain()
    assert rec.ran == [] and await j.counts() == {("other", "pending"): 1}
