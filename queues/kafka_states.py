"""A dossier in the owner's memory, and how its state record is written.

:class:`Dossier` is the owner's working copy: the durable :class:`~queues.kafka_codec.DossierState`
plus the events taken in and not yet settled, the lease, and the ``outbound`` intake no state write
covers yet. :class:`StateWriter` produces state records to ``<prefix>.dossier-state`` (batched per
partition, and per turn of the event loop for the records of concurrent ``record()`` calls); once a
write is acknowledged its intake stops holding the watermark back and the view shows the new state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from core.errors import QueueUnavailable
from queues.api import DeliveryState, EventKind
from queues.kafka_codec import H_WRITTEN, DossierState, Src, WireEvent, held_encode
from queues.kafka_marks import Watermarks
from queues.kafka_produce import Producing, Record, guard, partition_of, quietly
from queues.kafka_view import View


@dataclass
class Item:
    ev: WireEvent
    seq: int
    src: Src | None  # None: the dossier state holds the event (parked progress)
    parked: bool = False


@dataclass
class Dossier:
    """One owned dossier: its state as last written or since changed, and its events in memory."""

    st: DossierState
    items: dict[str, Item] = field(default_factory=dict)
    lease: str | None = None
    lease_until: float = 0.0
    unwritten: list[tuple[TopicPartition, int]] = field(default_factory=list)  # intake no state write covers

    def sorted_items(self) -> list[Item]:
        return sorted(self.items.values(), key=lambda i: i.seq)

    def pending(self) -> bool:
        """Work waits: an event not parked, in memory or in the ladder."""
        return bool(self.st.ladder) or any(not i.parked for i in self.items.values())

    def oldest_open(self) -> float | None:
        """When the oldest event the dossier still has open was accepted (in memory or in the ladder)."""
        opens = [i.ev.accepted_at for i in self.items.values()]
        if self.st.ladder and self.st.ladder_oldest is not None:
            opens.append(self.st.ladder_oldest)
        return min(opens) if opens else None

    def delivery(self, now: float) -> DeliveryState:
        """The dossier's delivery state at ``now`` (clears the ladder summary once the ladder is empty)."""
        st = self.st
        if not st.ladder:
            st.ladder_progress, st.ladder_oldest = 0, None
        pending = any(not i.parked for i in self.items.values()) or bool(st.ladder)
        if self.lease is not None and self.lease_until >= now:
            return DeliveryState.IN_FLIGHT
        if pending:
            return DeliveryState.RETRYING if st.attempts > 0 else DeliveryState.PENDING
        if any(i.parked for i in self.items.values()):
            return DeliveryState.PARKED
        if st.last_dead_seq > st.delivered_seq:
            return DeliveryState.DEAD
        return DeliveryState.DELIVERED

    def summarise(self, now: float) -> None:
        """Refresh the summary fields other instances read from the state record."""
        st = self.st
        st.delivery = self.delivery(now).value
        st.pending = sum(1 for i in self.items.values() if not i.parked) + len(st.ladder)
        st.pending_progress = sum(1 for i in self.items.values() if i.ev.kind is EventKind.PROGRESS) + (
            st.ladder_progress if st.ladder else 0)
        st.oldest_open_at = self.oldest_open()

    def seal(self, now: float) -> list[tuple[TopicPartition, int]]:
        """Make ``st`` the next state record (new version, the events only the state holds, the
        summary at ``now``); return the intake that record covers."""
        st = self.st
        st.v += 1
        st.held = [held_encode(i.ev, i.seq, i.parked) for i in self.sorted_items() if i.parked or i.src is None]
        self.summarise(now)
        marks, self.unwritten = self.unwritten, []
        return marks


class StateWriter:
    """Writes owned dossiers' state records; owns the batch of the current loop turn and the batched
    writes under way."""

    def __init__(self, *, view: View, producing: Producing, marks: Watermarks, state_topic: str, partitions: int,
                 timeout: float, now: Callable[[], float]) -> None:
        self._view = view
        self._producing = producing
        self._marks = marks
        self._topic = state_topic
        self._parts = partitions
        self._timeout = timeout
        self._now = now
        self._batch: tuple[dict[str, Dossier], asyncio.Future[None]] | None = None
        self._writes: set[asyncio.Task[None]] = set()

    async def write(self, dossiers: list[Dossier]) -> None:
        """Produce each dossier's state and wait for the acknowledgements; the intake a write
        covers then stops holding its partition's watermark back. Raises what the producer raises
        (KafkaError, TimeoutError, OSError): callers guard it."""
        records: list[Record] = []
        written: list[tuple[Dossier, list[tuple[TopicPartition, int]]]] = []
        for d in dossiers:
            marks = d.seal(self._now())
            st = d.st
            records.append((st.mahoso.encode(), st.encode(), [(H_WRITTEN, b"%s:%d" % (self._view.writer, st.v))],
                            partition_of(st.mahoso, self._parts)))
            written.append((d, marks))
        for fut in await self._producing.send_batches(self._topic, records, "state"):
            await fut
        for d, marks in written:
            self._marks.written(marks)
            self._view.put_state(d.st.copy())

    async def write_soon(self, d: Dossier) -> None:
        """Write ``d``'s state together with every dossier recorded in the same turn of the event
        loop (the engine records a delivered batch concurrently): one produce round, one timer and
        one task for all of them instead of one each. Returns once the write is acknowledged;
        raises QueueUnavailable if it was not."""
        batch = self._batch
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._batch = ({}, loop.create_future())
            batch[1].add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even if nobody waits
            loop.call_soon(self._start, batch)
        batch[0][d.st.mahoso] = d
        await asyncio.shield(batch[1])  # one caller's cancellation must not fail the others' write

    def _start(self, batch: tuple[dict[str, Dossier], asyncio.Future[None]]) -> None:
        self._batch = None

        async def write() -> None:
            try:
                await guard("state write", self.write(list(batch[0].values())), self._timeout)
            except BaseException as exc:  # every waiter sees the failure, and so does the caller
                batch[1].set_exception(exc if isinstance(exc, Exception) else QueueUnavailable("cancelled"))
                if not isinstance(exc, Exception):
                    raise
            else:
                batch[1].set_result(None)

        task = asyncio.create_task(write())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def drain(self, timeout: float) -> None:
        """Let the batched writes under way finish (bounded; failures swallowed): on close, before
        the final commit."""
        if self._writes:
            await quietly(asyncio.gather(*self._writes, return_exceptions=True), timeout)
