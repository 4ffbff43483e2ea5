"""What this instance appends to ``<prefix>.outbound``: accepted events and un-park requests.

An accepted event's record is keyed and partitioned by ``MaHoSo`` and its sequence is its offset + 1:
one dossier lives in one partition, so sequences rise per dossier with no coordination between
instances (they are not consecutive). :class:`Accepts` also remembers what this instance itself
accepted, for the transition check, the status read and the claim barrier.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from aiokafka import TopicPartition

from queues.api import Accepted, NewEvent, state_of
from queues.kafka_codec import H_CONTROL, Topics, WireEvent, summary_headers
from queues.kafka_produce import Producing, guard, partition_of

_LOCAL_MEMORY = 100_000  # dossiers whose last accepted state this instance remembers from its own accepts


class Accepts:
    """Appends to ``outbound`` on the instance's :class:`~queues.kafka_produce.Producing`; owns the
    memory of this instance's own accepts (newest sequence and ``TrangThaiHoSo`` per dossier, the
    newest ``_LOCAL_MEMORY`` dossiers) and the highest offset it produced per partition."""

    def __init__(self, producing: Producing, topics: Topics, partitions: int, timeout: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._producing = producing
        self._outbound = topics.outbound
        self._parts = partitions
        self._timeout = timeout
        self._clock = clock
        # event ids: a random prefix and a counter (a uuid4 per event was a visible cost of the accept path)
        self._id_prefix, self._ids = uuid.uuid4().hex[:16], itertools.count(1)
        self._produced: dict[TopicPartition, int] = {}
        self._local: OrderedDict[str, tuple[int, str]] = OrderedDict()
        # per dossier with a check-and-append under way here: its lock and how many hold or wait for it
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}

    async def append(self, events: Sequence[NewEvent]) -> list[Accepted]:
        """Produce ``events`` (one dossier, in order) and return once ``acks=all`` acknowledged
        them. Raises QueueUnavailable when the produce was not acknowledged in time."""
        if not events:
            return []
        now = self._clock()
        wires = [WireEvent(self._new_id(), e.mahoso, e.kind, e.payload, e.agency, now) for e in events]
        p = partition_of(events[0].mahoso, self._parts)
        metas = await guard("produce", self._produce(wires, p), self._timeout)
        accepted = [Accepted(w.event_id, m.offset + 1) for w, m in zip(wires, metas, strict=True)]
        tp = TopicPartition(self._outbound, p)
        self._produced[tp] = max(self._produced.get(tp, -1), metas[-1].offset)
        for w, a in zip(wires, accepted, strict=True):
            state = state_of(w.kind, w.payload)
            if state is not None:
                self._remember(w.mahoso, a.sequence, state)
        return accepted

    @contextlib.asynccontextmanager
    async def turn(self, mahoso: str) -> AsyncIterator[None]:
        """One check-and-append of ``mahoso`` at a time on this instance, in arrival order (a lock
        per dossier, forgotten when nobody holds or waits for it)."""
        lock, users = self._turns.get(mahoso, (asyncio.Lock(), 0))
        self._turns[mahoso] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[mahoso]
            if users == 1:
                del self._turns[mahoso]
            else:
                self._turns[mahoso] = (lock, users - 1)

    async def _produce(self, wires: list[WireEvent], p: int) -> list[Any]:
        send = self._producing.send
        futs = [await send(self._outbound, w.mahoso.encode(), w.encode(), summary_headers(w), p, "outbound")
                for w in wires]
        if len(futs) == 1:  # a snapshot: no gather (its future and callbacks) on the hot path
            return [await futs[0]]
        return list(await asyncio.gather(*futs))

    def _new_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):x}"

    def _remember(self, mahoso: str, seq: int, state: str) -> None:
        old = self._local.get(mahoso)
        if old is None or seq > old[0]:
            self._local[mahoso] = (seq, state)
            self._local.move_to_end(mahoso)
            if len(self._local) > _LOCAL_MEMORY:
                self._local.popitem(last=False)

    def newest(self, mahoso: str) -> tuple[int, str] | None:
        """The sequence and ``TrangThaiHoSo`` of the newest snapshot of ``mahoso`` this instance
        accepted (None: none it still remembers)."""
        return self._local.get(mahoso)

    def produced(self) -> list[tuple[TopicPartition, int]]:
        """Per ``outbound`` partition, the highest offset this instance has produced there."""
        return list(self._produced.items())

    async def ask_unpark(self, mahoso: str) -> None:
        """Send the dossier's owner an un-park request (a control record, no value) through
        ``outbound``. Raises QueueUnavailable when it was not acknowledged in time."""
        p = partition_of(mahoso, self._parts)

        async def send() -> None:
            fut = await self._producing.send(self._outbound, mahoso.encode(), None,
                                             [(H_CONTROL, f"unpark:{mahoso}".encode())], p, "control")
            await fut

        await guard("unpark", send(), self._timeout)
