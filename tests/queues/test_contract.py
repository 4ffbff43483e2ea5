"""The queue contract (queues/api.py), run against every backend by the ``backend`` fixture."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from queues.api import (
    DeliveryState,
    ErrorInfo,
    EventKind,
    NewEvent,
    Outcome,
    OutcomeClass,
    QueueBackend,
    ReplayResult,
    Work,
)

REJECT = ErrorInfo(OutcomeClass.REJECTED, "-5", "Mã TTHC không tồn tại")
OUTAGE = ErrorInfo("retryable", "http_503", "Service Unavailable")


def snap(mahoso: str, state: str = "2", **extra: Any) -> NewEvent:
    return NewEvent(mahoso, EventKind.SNAPSHOT, {"MaHoSo": mahoso, "TrangThaiHoSo": state, **extra}, "A")


def prog(mahoso: str, n: int) -> NewEvent:
    return NewEvent(mahoso, EventKind.PROGRESS, {"MaHoSo": mahoso, "NoiDungXuLy": f"b{n}"}, "A")


async def claim_one(q: QueueBackend, now: float | None = None) -> Work:
    works = await claim_until(q, 1, now)
    assert len(works) == 1, works
    return works[0]


async def claim_until(q: QueueBackend, expected: int, now: float | None = None, limit: int = 100) -> list[Work]:
    """Claim until ``expected`` works came back (Kafka delivers asynchronously), within 20 s."""
    got: list[Work] = []
    deadline = time.monotonic() + 20
    while len(got) < expected and time.monotonic() < deadline:
        got += await q.claim(limit, now if now is not None else time.time())
        if len(got) < expected:
            await q.wait_for_work(0.05)
    return got


async def test_sequences_rise_per_dossier(backend: QueueBackend, request: pytest.FixtureRequest) -> None:
    """Every accepted event of a dossier gets a higher sequence than the one before (the contract
    says "rises", not "consecutive": on Kafka it is the offset in the dossier's partition + 1). The
    embedded backends number each dossier's events 1, 2, 3…"""
    a = await backend.enqueue([snap("D1"), prog("D1", 1)])
    b = await backend.enqueue([snap("D1", "4")])
    other = await backend.enqueue([snap("D2")])
    seqs = [x.sequence for x in a + b]
    assert seqs[0] >= 1 and seqs == sorted(set(seqs))
    assert other[0].sequence >= 1
    assert len({x.event_id for x in a + b + other}) == 4
    if request.node.callspec.params["backend"] in ("memory", "sqlite"):
        assert seqs == [1, 2, 3] and other[0].sequence == 1


async def test_claim_coalesces_snapshots_and_keeps_progress_order(backend: QueueBackend) -> None:
    """Only the newest waiting snapshot is offered; every progress item comes, in acceptance order."""
    await backend.enqueue([snap("D1", "2"), prog("D1", 1)])
    await backend.enqueue([snap("D1", "4"), prog("D1", 2), prog("D1", 3)])
    await backend.enqueue([snap("D1", "9")])
    w = await claim_one(backend)
    assert w.snapshot is not None and w.snapshot.payload["TrangThaiHoSo"] == "9"
    assert [p.payload["NoiDungXuLy"] for p in w.progress] == ["b1", "b2", "b3"]
    assert [p.sequence for p in w.progress] == sorted(p.sequence for p in w.progress)


async def test_a_claimed_dossier_is_not_offered_twice(backend: QueueBackend) -> None:
    """While one worker holds a dossier, no other claim returns it; after release it comes back."""
    await backend.enqueue([snap("D1")])
    w = await claim_one(backend)
    await backend.enqueue([snap("D1", "4")])
    assert await backend.claim(10, time.time()) == []
    await backend.record(w, Outcome(delivered=(w.snapshot.event_id,)), time.time())  # type: ignore[union-attr]
    w2 = await claim_one(backend)
    assert w2.snapshot is not None and w2.snapshot.payload["TrangThaiHoSo"] == "4"


async def test_delivery_is_recorded_in_status(backend: QueueBackend) -> None:
    """A delivered snapshot shows as delivered with its state; the portal now knows the dossier."""
    await backend.enqueue([snap("D1", "4")])
    w = await claim_one(backend)
    assert not w.known_on_portal
    await backend.record(w, Outcome(delivered=(w.snapshot.event_id,), known_on_portal=True), time.time())  # type: ignore[union-attr]
    st = await backend.status("D1")
    assert st is not None
    assert (st.delivery, st.accepted_state, st.delivered_state) == (DeliveryState.DELIVERED, "4", "4")
    await backend.enqueue([snap("D1", "9")])
    w2 = await claim_one(backend)
    assert w2.known_on_portal


async def test_retry_waits_until_due_and_counts_attempts(backend: QueueBackend) -> None:
    """A dossier scheduled for retry is not offered before its time, and later events wait behind it."""
    now = time.time() + 1  # claims happen after the enqueues below
    await backend.enqueue([snap("D1")])
    w = await claim_one(backend, now)
    await backend.record(w, Outcome(retry_at=now + 30, error=OUTAGE), now)
    await backend.enqueue([prog("D1", 1)])
    assert await backend.claim(10, now + 29) == []
    st = await backend.status("D1")
    assert st is not None and st.delivery is DeliveryState.RETRYING and st.attempts == 1
    assert st.next_attempt_at is not None and abs(st.next_attempt_at - (now + 30)) < 1
    assert st.last_error == OUTAGE
    w2 = await claim_one(backend, now + 31)
    assert w2.attempts == 1 and w2.first_failure_at is not None
    assert w2.snapshot is not None and len(w2.progress) == 1


async def test_uncounted_retry_keeps_attempts(backend: QueueBackend) -> None:
    """A retry that is not the portal's fault (paused delivery) does not count as an attempt."""
    now = time.time() + 1  # claims happen after the enqueues below
    await backend.enqueue([snap("D1")])
    w = await claim_one(backend, now)
    await backend.record(w, Outcome(retry_at=now + 5, count_attempt=False, error=OUTAGE), now)
    w2 = await claim_one(backend, now + 6)
    assert w2.attempts == 0 and w2.first_failure_at is None


async def test_dead_letters_replay_and_drop(backend: QueueBackend) -> None:
    """A rejected event becomes a dead letter with the portal's words; replay re-offers it once."""
    now = time.time() + 1  # claims happen after the enqueues below
    await backend.enqueue([snap("D1")])
    w = await claim_one(backend, now)
    await backend.record(w, Outcome(dead=(w.snapshot.event_id,), error=REJECT), now)  # type: ignore[union-attr]
    st = await backend.status("D1")
    assert st is not None and st.delivery is DeliveryState.DEAD and st.last_error == REJECT
    page = await backend.dead_letters(None, 10)
    assert len(page.items) == 1
    dl = page.items[0]
    assert (dl.mahoso, dl.kind, dl.error) == ("D1", EventKind.SNAPSHOT, REJECT)
    assert await backend.replay(dl.id, now) is ReplayResult.REPLAYED
    assert await backend.replay(dl.id, now) is ReplayResult.ALREADY_REPLAYED
    assert await backend.replay("999999", now) is ReplayResult.NOT_FOUND
    w2 = await claim_one(backend, now + 1)
    assert w2.snapshot is not None and w2.snapshot.event_id == w.snapshot.event_id  # type: ignore[union-attr]
    assert w2.attempts == 0
    await backend.record(w2, Outcome(dead=(w2.snapshot.event_id,), error=REJECT), now + 1)
    second = (await backend.dead_letters(None, 10)).items
    assert len(second) == 1 and second[0].id != dl.id
    assert await backend.drop(second[0].id)
    assert not await backend.drop(second[0].id)
    assert (await backend.dead_letters(None, 10)).items == ()


async def test_replay_of_an_overtaken_snapshot_is_superseded(backend: QueueBackend) -> None:
    """A dead snapshot whose successor was delivered is never sent again."""
    now = time.time() + 1  # claims happen after the enqueues below
    await backend.enqueue([snap("D1", "2")])
    w = await claim_one(backend, now)
    await backend.record(w, Outcome(dead=(w.snapshot.event_id,), error=REJECT), now)  # type: ignore[union-attr]
    await backend.enqueue([snap("D1", "4")])
    w2 = await claim_one(backend, now + 1)
    await backend.record(w2, Outcome(delivered=(w2.snapshot.event_id,)), now + 1)  # type: ignore[union-attr]
    dl = (await backend.dead_letters(None, 10)).items[0]
    assert await backend.replay(dl.id, now + 2) is ReplayResult.SUPERSEDED
    assert await backend.claim(10, now + 3) == []
    st = await backend.status("D1")
    assert st is not None and st.delivered_state == "4" and st.delivery is DeliveryState.DELIVERED


async def test_parked_progress_waits_for_a_snapshot(backend: QueueBackend) -> None:
    """Parked progress is not offered until a snapshot arrives; then it follows that snapshot."""
    now = time.time() + 1  # claims happen after the enqueues below
    await backend.enqueue([prog("D1", 1), prog("D1", 2)])
    w = await claim_one(backend, now)
    assert w.snapshot is None and len(w.progress) == 2
    await backend.record(w, Outcome(parked=tuple(p.event_id for p in w.progress)), now)
    st = await backend.status("D1")
    assert st is not None and st.delivery is DeliveryState.PARKED and st.pending_progress == 2
    assert await backend.claim(10, now + 1) == []
    await backend.enqueue([snap("D1")])
    w2 = await claim_one(backend, now + 2)
    assert w2.snapshot is not None
    assert [p.payload["NoiDungXuLy"] for p in w2.progress] == ["b1", "b2"]


async def test_unpark_re_offers_parked_progress(backend: QueueBackend) -> None:
    """``unpark`` (the portal turned out to have the dossier) makes parked progress claimable."""
    now = time.time() + 1  # claims happen after the enqueues below
    await backend.enqueue([prog("D1", 1)])
    w = await claim_one(backend, now)
    await backend.record(w, Outcome(parked=(w.progress[0].event_id,)), now)
    await backend.unpark("D1")
    w2 = await claim_one(backend)
    assert [p.event_id for p in w2.progress] == [w.progress[0].event_id]


async def test_chunked_recording_keeps_the_claim(backend: QueueBackend) -> None:
    """``record(release=False)`` persists a step and keeps the dossier claimed."""
    now = time.time() + 1  # claims happen after the enqueues below
    await backend.enqueue([snap("D1"), prog("D1", 1), prog("D1", 2)])
    w = await claim_one(backend, now)
    await backend.record(w, Outcome(delivered=(w.snapshot.event_id,)), now, release=False)  # type: ignore[union-attr]
    await backend.record(w, Outcome(delivered=(w.progress[0].event_id,)), now, release=False)
    assert await backend.claim(10, now) == []
    st = await backend.status("D1")
    assert st is not None and st.delivery is DeliveryState.IN_FLIGHT and st.pending_progress == 1
    await backend.record(w, Outcome(delivered=(w.progress[1].event_id,)), now)
    st = await backend.status("D1")
    assert st is not None and st.delivery is DeliveryState.DELIVERED and st.pending_progress == 0


async def test_stats_count_dossiers_by_state(backend: QueueBackend) -> None:
    """Stats count dossiers per delivery state, dead letters (by the outcome class of their error,
    the ``reason`` of dvcgw_dead_letters), and the oldest open event."""
    now = time.time() + 1  # claims happen after the enqueues below
    for m in ("D1", "D2", "D3", "D4", "D5"):
        await backend.enqueue([snap(m)])
    works = await claim_until(backend, 5, now)
    by = {w.mahoso: w for w in works}
    await backend.record(by["D1"], Outcome(delivered=(by["D1"].snapshot.event_id,)), now)  # type: ignore[union-attr]
    for m in ("D2", "D4"):
        await backend.record(by[m], Outcome(dead=(by[m].snapshot.event_id,), error=REJECT), now)  # type: ignore[union-attr]
    await backend.record(by["D3"], Outcome(retry_at=now + 60, error=OUTAGE), now)
    await backend.record(by["D5"], Outcome(dead=(by["D5"].snapshot.event_id,), error=OUTAGE), now)  # type: ignore[union-attr]
    s = await backend.stats(now)
    assert s.by_state["delivered"] == 1 and s.by_state["dead"] == 3 and s.by_state["retrying"] == 1
    assert dict(s.dead_letters_by_reason) == {"rejected": 2, "retryable": 1}
    assert s.dead_letters == 3
    assert s.oldest_pending_at is not None and s.oldest_pending_at <= time.time()
    assert await backend.next_due_at() is not None


async def test_dead_letter_pages(backend: QueueBackend) -> None:
    """The dead-letter list pages with an opaque cursor and lists each dead letter once."""
    now = time.time() + 1  # claims happen after the enqueues below
    for i in range(5):
        await backend.enqueue([snap(f"P{i}")])
    works = await claim_until(backend, 5, now)
    for w in works:
        await backend.record(w, Outcome(dead=(w.snapshot.event_id,), error=REJECT), now)  # type: ignore[union-attr]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await backend.dead_letters(cursor, 2)
        seen += [d.mahoso for d in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == [f"P{i}" for i in range(5)]


async def test_concurrent_enqueues_all_survive(backend: QueueBackend) -> None:
    """200 concurrent accepts each get their own sequence and nothing is lost; the status's last
    sequence is the highest one handed out."""
    results = await asyncio.gather(*(backend.enqueue([prog("D1", i)]) for i in range(200)))
    seqs = sorted(r[0].sequence for r in results)
    assert len(set(seqs)) == 200 and seqs[0] >= 1
    st = await backend.status("D1")
    assert st is not None and st.last_sequence == seqs[-1]


async def test_dead_letter_ids_are_never_reused(backend: QueueBackend) -> None:
    """An operator refers to dead letters by id: after one is dropped, the next dead letter gets a
    new id, never the dropped one's (issue 13)."""
    now = time.time() + 1
    seen: list[str] = []
    for n in range(3):
        await backend.enqueue([snap(f"D{n}")])
        w = await claim_one(backend, now)
        await backend.record(w, Outcome(dead=(w.snapshot.event_id,), error=REJECT), now)  # type: ignore[union-attr]
        items = (await backend.dead_letters(None, 10)).items
        assert len(items) == 1
        seen.append(items[0].id)
        assert await backend.drop(items[0].id)
    assert len(set(seen)) == 3, seen


async def test_the_check_sees_the_last_state_and_its_refusal_stores_nothing(backend: QueueBackend) -> None:
    """``enqueue``'s check is called with the dossier's last accepted state (None when new), one
    append of the dossier at a time even when sent at once; what it raises, enqueue raises, and
    nothing is appended (the transition check's contract, issue 12)."""
    seen: list[str | None] = []

    def note(previous: str | None) -> None:
        seen.append(previous)

    def refuse(previous: str | None) -> None:
        raise ValueError(f"not after {previous}")

    await asyncio.gather(backend.enqueue([snap("D1", "2")], note), backend.enqueue([snap("D1", "4")], note))
    assert seen[0] is None and seen[-1] == "2", seen
    with pytest.raises(ValueError, match="not after 4"):
        await backend.enqueue([snap("D1", "9")], refuse)
    assert await backend.accepted_state("D1") == "4"
    st = await backend.status("D1")
    assert st is not None and st.accepted_state == "4" and st.last_sequence >= 2


async def test_newest_snapshot_reads_back_the_last_accepted_payload(backend: QueueBackend,
                                                                    request: pytest.FixtureRequest) -> None:
    """The newest snapshot's payload, sequence and agency, also after delivery and past later
    progress; None for an unknown dossier. Kafka keeps no payloads to read back: always None."""
    assert await backend.newest_snapshot("D1") is None
    await backend.enqueue([snap("D1", "2", X="a")])
    await backend.enqueue([snap("D1", "4", X="b"), prog("D1", 1)])
    work = await claim_one(backend)
    assert work.snapshot is not None
    await backend.record(work, Outcome(delivered=(work.snapshot.event_id,)), time.time())
    newest = await backend.newest_snapshot("D1")
    if "kafka" in request.node.callspec.id:
        assert newest is None
        return
    assert newest is not None
    assert (dict(newest.payload), newest.sequence, newest.agency) == (
        {"MaHoSo": "D1", "TrangThaiHoSo": "4", "X": "b"}, 2, "A")
