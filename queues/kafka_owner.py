"""The owner's side of the Kafka backend: the dossiers of this instance's partitions, in memory.

The pump hands every record of an owned partition to :meth:`Owner.take`; the engine claims and
records through :meth:`Owner.claim` and :meth:`Owner.record`. A dossier waiting in the retry ladder
is not claimable, and every newer event of it is forwarded into the same ladder step, behind the
waiting ones, so nothing overtakes. The owner is the only writer of its dossiers' state records;
an input is resolved (may be committed) only once its outcome is acknowledged. A failed write
hands the partition to ``rewind`` (the pump forgets it and re-reads it from the last commit).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from core.errors import QueueUnavailable
from queues.api import DeliveryState, ErrorInfo, EventKind, Outcome, Work, state_of
from queues.kafka_codec import (
    H_REPLAY,
    H_SEQ,
    H_STATE,
    DossierState,
    Src,
    Topics,
    WireEvent,
    held_decode,
    ladder_headers,
)
from queues.kafka_letters import DeadLetters
from queues.kafka_marks import Offsets, Watermarks
from queues.kafka_produce import Producing, guard, partition_of
from queues.kafka_retention import note_delivered
from queues.kafka_states import Dossier, Item, StateWriter
from queues.kafka_view import View

_FLUSH_S = 0.2  # intake not yet written in a state record for this long is written by the pump


@dataclass
class Forwards:
    """What one pump round forwarded into the ladder: the records' futures and inputs, and the
    dossiers whose state must be written before those inputs are resolved."""

    touched: dict[str, Dossier] = field(default_factory=dict)
    sent: list[tuple[asyncio.Future[Any], Src]] = field(default_factory=list)


class Owner:
    """The dossiers of the owned partitions and their leases; the only code that changes them.
    Their state records go out through its :class:`~queues.kafka_states.StateWriter`."""

    def __init__(self, *, view: View, producing: Producing, letters: DeadLetters, offsets: Offsets,
                 marks: Watermarks, topics: Topics, partitions: int, lease_s: float, timeout: float,
                 now: Callable[[], float], wake: asyncio.Event, rewind: Callable[[int], None]) -> None:
        """``now``: the queue's clock; ``wake``: set when work may have become claimable;
        ``rewind(p)``: called when a write for partition ``p`` failed."""
        self._view = view
        self._producing = producing
        self._letters = letters
        self._offsets = offsets
        self._marks = marks
        self._topics = topics
        self._parts = partitions
        self._lease_s = lease_s
        self._timeout = timeout
        self._now = now
        self._wake = wake
        self._rewind = rewind
        self._owned: dict[str, Dossier] = {}
        # lease ids: this process's view writer id and a counter (a uuid4 costs ~5 us, on every claim)
        self._leases = itertools.count(1)
        self._states = StateWriter(view=view, producing=producing, marks=marks, state_topic=topics.state,
                                   partitions=partitions, timeout=timeout, now=now)

    # ------------------------------------------------------------------ memory

    def _dossier(self, mahoso: str) -> Dossier:
        d = self._owned.get(mahoso)
        if d is None:
            # the view holds the newest version read or written (own writes are put there once
            # acknowledged), also when another owner wrote it while the partition was away
            base = self._view.states.get(mahoso) or DossierState(mahoso)
            d = Dossier(base.copy())
            for raw in d.st.held:
                ev, seq, parked = held_decode(raw)
                d.items[ev.event_id] = Item(ev, seq, None, parked)
            self._owned[mahoso] = d
        return d

    def holds(self, mahoso: str) -> bool:
        """Whether ``mahoso`` is in the owner's memory."""
        return mahoso in self._owned

    def known_state(self, mahoso: str) -> DossierState | None:
        """The dossier's freshest state on this instance: the owner's (summarised now) if it holds
        the dossier, else the view's (None: unknown)."""
        d = self._owned.get(mahoso)
        if d is not None:
            d.summarise(self._now())
            return d.st
        return self._view.states.get(mahoso)

    def has_leases(self, partitions: Collection[int]) -> bool:
        """Whether a dossier of ``partitions`` is claimed."""
        return any(d.lease for m, d in self._owned.items() if partition_of(m, self._parts) in partitions)

    def forget(self, partitions: Collection[int]) -> None:
        """Drop the dossiers of ``partitions`` from memory (revoked, or to be re-read)."""
        for m in [m for m in self._owned if partition_of(m, self._parts) in partitions]:
            del self._owned[m]

    def ladder_dues(self) -> list[float]:
        """When each dossier waiting in the ladder is due again."""
        return [d.st.next_attempt_at for d in self._owned.values() if d.st.ladder and d.st.next_attempt_at]

    def census(self) -> tuple[dict[str, int], float | None]:
        """Dossiers per delivery state and when the oldest open event was accepted: the view's
        running counts, with the dossiers in memory (fresher than their last state record) swapped
        in. O(dossiers in memory)."""
        by_state = {s.value: 0 for s in DeliveryState}
        for state, n in self._view.counts.items():
            by_state[state] = by_state.get(state, 0) + n
        opens = dict(self._view.open_since)
        wall = self._now()
        for m, d in self._owned.items():
            seen = self._view.states.get(m)
            if seen is not None:
                by_state[seen.delivery] -= 1
                opens.pop(m, None)
            delivery = d.delivery(wall).value
            by_state[delivery] = by_state.get(delivery, 0) + 1
            if d.pending():
                since = d.oldest_open()
                if since is not None:
                    opens[m] = since
        return by_state, min(opens.values(), default=None)

    # ------------------------------------------------------------------ intake (called by the pump)

    async def take(self, tp: TopicPartition, rec: ConsumerRecord[Any, Any], hs: dict[str, str],
                   forwards: Forwards) -> None:
        """Take one event record of ``tp`` into memory: a duplicate is ignored (and resolved by the
        next commit), an event of a dossier waiting in the ladder is forwarded behind it (into
        ``forwards``), any other becomes claimable."""
        ev = WireEvent.decode(rec.value)
        seq = int(hs[H_SEQ]) if H_SEQ in hs else rec.offset + 1
        d = self._dossier(ev.mahoso)
        self._note_intake(d, ev, seq, hs)
        src: Src = (tp.topic, tp.partition, rec.offset)
        replay = H_REPLAY in hs
        outbound = tp.topic == self._topics.outbound
        if not outbound and ev.event_id in d.st.ladder:
            d.st.ladder.remove(ev.event_id)
        if self._is_duplicate(d, ev, seq, replay):
            return
        if outbound:  # not yet in any state record: holds the watermark back
            d.unwritten.append((tp, rec.offset))
            self._marks.taken(tp, rec.offset, ev.mahoso)
        self._offsets.hold(tp, rec.offset)
        if d.st.ladder and outbound:
            forwards.sent.append((await self._forward(d, ev, seq, src, None), src))
            forwards.touched[ev.mahoso] = d
            return
        d.items[ev.event_id] = Item(ev, seq, src)
        if ev.kind is EventKind.SNAPSHOT:
            for item in d.items.values():
                item.parked = False

    @staticmethod
    def _note_intake(d: Dossier, ev: WireEvent, seq: int, hs: dict[str, str]) -> None:
        """The accepted summary, whatever becomes of the event; a replay restarts the attempts."""
        st = d.st
        st.last_seq = max(st.last_seq, seq)
        if ev.kind is EventKind.SNAPSHOT and seq > st.accepted_seq:
            st.accepted_seq, st.accepted_state = seq, hs.get(H_STATE) or state_of(ev.kind, ev.payload)
        if H_REPLAY in hs:
            st.attempts, st.first_failure_at, st.last_error, st.next_attempt_at = 0, None, None, None

    @staticmethod
    def _is_duplicate(d: Dossier, ev: WireEvent, seq: int, replay: bool) -> bool:
        if ev.event_id in d.items:
            return True
        if replay:
            return False
        if ev.kind is EventKind.SNAPSHOT:
            return seq <= d.st.delivered_seq
        return seq <= d.st.progress_hw

    def unpark_held(self, mahoso: str) -> None:
        """Make the dossier's parked progress pending again (in memory; its next state write keeps it)."""
        d = self._dossier(mahoso)
        for item in d.items.values():
            item.parked = False
        self._wake.set()

    async def settle(self, forwards: Forwards) -> None:
        """Wait for the round's forwarded records, write the touched dossiers' states, then resolve
        the inputs; on a failure their partitions are rewound."""
        if not forwards.sent:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*(f for f, _ in forwards.sent)), self._timeout)
            await self._states.write(list(forwards.touched.values()))
        except (KafkaError, TimeoutError):
            for p in {src[1] for _, src in forwards.sent}:
                self._rewind(p)
            return
        for _, src in forwards.sent:
            self._offsets.resolve(src)

    async def flush_intake(self) -> None:
        """Write the state of every dossier whose intake has waited ``_FLUSH_S`` without a state
        write (one record per dossier, however many events it took in): a dossier delivered quickly
        gets one state write in all, and the watermark never lags far behind the intake."""
        limit = time.monotonic() - _FLUSH_S
        due: dict[str, Dossier] = {}
        for m in self._marks.waiting(limit):
            d = self._owned.get(m)
            if d is not None and d.unwritten:
                due[m] = d
        if not due:
            return
        try:
            await guard("state write", self._states.write(list(due.values())), self._timeout)
        except QueueUnavailable:
            for p in {partition_of(m, self._parts) for m in due}:
                self._rewind(p)

    # ------------------------------------------------------------------ claim and record

    def claim(self, limit: int, now: float, closed: Collection[int]) -> list[Work]:
        """Lease up to ``limit`` claimable dossiers (none of the partitions in ``closed``, being revoked)."""
        out: list[Work] = []
        for m, d in list(self._owned.items()):
            if len(out) >= limit:
                break
            if self._claimable(m, d, now, closed):
                out.append(self._claim_one(d, now))
        return out

    def _claimable(self, mahoso: str, d: Dossier, now: float, closed: Collection[int]) -> bool:
        if d.st.ladder or (d.lease is not None and d.lease_until >= now):
            return False
        if partition_of(mahoso, self._parts) in closed:
            return False
        return any(not i.parked for i in d.items.values())

    def _claim_one(self, d: Dossier, now: float) -> Work:
        items = [i for i in d.sorted_items() if not i.parked]
        snaps = [i for i in items if i.ev.kind is EventKind.SNAPSHOT]
        newest = snaps[-1] if snaps and snaps[-1].seq > d.st.delivered_seq else None
        for stale in (s for s in snaps if s is not newest):
            del d.items[stale.ev.event_id]
            self._offsets.resolve(stale.src)
        d.lease, d.lease_until = f"{self._view.writer.decode()}-{next(self._leases):x}", now + self._lease_s
        progress = tuple(i.ev.event(i.seq) for i in items if i.ev.kind is EventKind.PROGRESS)
        return Work(d.st.mahoso, d.lease, newest.ev.event(newest.seq) if newest else None, progress,
                    d.st.known_on_portal, d.st.attempts, d.st.first_failure_at)

    async def record(self, work: Work, outcome: Outcome, now: float, *, release: bool = True) -> None:
        """Apply ``outcome``: produce dead letters and ladder records, then the dossier state; the
        inputs are resolved only after all of it is acknowledged. Raises QueueUnavailable (the
        partition moved away, or a write failed: then the partition is rewound)."""
        d = self._owned.get(work.mahoso)
        if d is None:
            raise QueueUnavailable("kafka: the dossier's partition moved to another instance")
        done: list[Src | None] = []
        futs = await self._apply(d, outcome, now, done)
        if release:
            d.lease = None
        else:
            d.lease_until = now + self._lease_s
        parked_srcs = [i.src for i in d.items.values() if i.parked and i.src is not None]
        try:
            if futs:
                await guard("record", asyncio.gather(*futs), self._timeout)
            await self._states.write_soon(d)
        except QueueUnavailable:
            self._rewind(partition_of(work.mahoso, self._parts))
            raise
        for src in done + parked_srcs:
            self._offsets.resolve(src)
        for item in d.items.values():
            if item.parked:
                item.src = None
        if release:
            self._forget_if_settled(d)
            self._wake.set()

    def _forget_if_settled(self, d: Dossier) -> None:
        """A dossier with nothing waiting leaves the owner's memory (its state is durable and in the
        view), so claims scan only live dossiers."""
        if not d.items and not d.st.ladder and d.lease is None and self._owned.get(d.st.mahoso) is d:
            del self._owned[d.st.mahoso]

    async def _apply(self, d: Dossier, outcome: Outcome, now: float,
                     done: list[Src | None]) -> list[asyncio.Future[Any]]:
        """Change the owner's memory as ``outcome`` says; return the produces that make it durable."""
        futs: list[asyncio.Future[Any]] = []
        st = d.st
        for eid in outcome.delivered:
            self._delivered(d, eid, done, now)
        for eid in outcome.dead:
            fut = await self._dead(d, eid, outcome.error, now, done)
            if fut is not None:
                futs.append(fut)
        for eid in outcome.parked:
            if eid in d.items:
                d.items[eid].parked = True
        if outcome.known_on_portal is not None:
            st.known_on_portal = outcome.known_on_portal
        if outcome.retry_at is not None:
            futs += await self._to_ladder(d, outcome, now, done)
        elif outcome.delivered or outcome.dead:
            st.attempts, st.first_failure_at, st.next_attempt_at = 0, None, None
            st.last_error = outcome.error.as_json() if outcome.error else None
        return futs

    @staticmethod
    def _delivered(d: Dossier, eid: str, done: list[Src | None], now: float) -> None:
        item = d.items.pop(eid, None)
        if item is None:
            return
        done.append(item.src)
        st = d.st
        if item.ev.kind is EventKind.PROGRESS:
            st.progress_hw = max(st.progress_hw, item.seq)
            note_delivered(st, None, False, now)
            return
        newer = item.seq > st.delivered_seq
        if newer:
            st.delivered_seq, st.delivered_state = item.seq, state_of(item.ev.kind, item.ev.payload)
        note_delivered(st, st.delivered_state, newer, now)
        st.known_on_portal = True
        for other in [i for i in d.items.values() if i.ev.kind is EventKind.SNAPSHOT and i.seq < item.seq]:
            del d.items[other.ev.event_id]
            done.append(other.src)

    async def _dead(self, d: Dossier, eid: str, error: ErrorInfo | None, now: float,
                    done: list[Src | None]) -> asyncio.Future[Any] | None:
        item = d.items.pop(eid, None)
        if item is None:
            return None
        if item.ev.kind is EventKind.SNAPSHOT:
            d.st.last_dead_seq = max(d.st.last_dead_seq, item.seq)
        done.append(item.src)
        return await self._letters.bury(item.ev, item.seq, item.src, error, max(d.st.attempts, 1), now)

    async def _to_ladder(self, d: Dossier, outcome: Outcome, now: float,
                         done: list[Src | None]) -> list[asyncio.Future[Any]]:
        st = d.st
        assert outcome.retry_at is not None
        if outcome.count_attempt:
            st.attempts += 1
            st.first_failure_at = st.first_failure_at or now
        st.last_error = outcome.error.as_json() if outcome.error else st.last_error
        st.next_attempt_at = outcome.retry_at
        waiting = [i for i in d.sorted_items() if not i.parked]
        if not waiting:
            return []
        st.ladder_topic = self._topics.retry_for(outcome.retry_at - now)
        futs = []
        for item in waiting:
            del d.items[item.ev.event_id]
            futs.append(await self._forward(d, item.ev, item.seq, item.src, outcome.error))
            done.append(item.src)
        return futs

    async def _forward(self, d: Dossier, ev: WireEvent, seq: int, src: Src | None,
                       error: ErrorInfo | None) -> asyncio.Future[Any]:
        """Put one event into the dossier's current ladder step, behind its predecessors."""
        st = d.st
        due = st.next_attempt_at or self._now()
        st.ladder.append(ev.event_id)
        if ev.kind is EventKind.PROGRESS:
            st.ladder_progress += 1
        st.ladder_oldest = min(st.ladder_oldest or ev.accepted_at, ev.accepted_at)
        return await self._producing.send(
            st.ladder_topic, ev.mahoso.encode(), ev.encode(),
            ladder_headers(seq, due, st.attempts, src, error or st.error()),
            partition_of(ev.mahoso, self._parts), "retry")

    async def unpark(self, mahoso: str) -> None:
        """Un-park a dossier this owner holds and write its state. Raises QueueUnavailable."""
        self.unpark_held(mahoso)
        await guard("state write", self._states.write([self._owned[mahoso]]), self._timeout)

    async def drain(self, timeout: float) -> None:
        """Let the batched state writes under way finish (bounded): on close, before the final commit."""
        await self._states.drain(timeout)
