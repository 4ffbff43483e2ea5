"""What every instance materialises from Kafka: dossier states, owners' watermarks, dead letters.

One consumer without a group reads every partition of the two compacted topics, ``dossier-state``
and ``dlq``, from the beginning (never ``outbound``: the owner of a partition is the only one that
reads it). The owners write each dossier's state, and per partition a *watermark*: the ``outbound``
offset below which every record is reflected in the states written before the watermark. A reader
that wants read-your-writes for a dossier fetches the end of the dossier's ``outbound`` partition
and waits with :meth:`View.wait_watermark` until the view shows a watermark at or past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from queues.api import DeadLetter
from queues.kafka_codec import (
    H_WATERMARK,
    H_WRITTEN,
    DossierState,
    Topics,
    WireEvent,
    dead_letter_decode,
)

log = logging.getLogger(__name__)


class View:
    """The materialised view; :meth:`run` is its consuming task."""

    def __init__(self, topics: Topics, partitions: int, client_opts: dict[str, Any], *,
                 writer: bytes = b"") -> None:
        """``client_opts``: the consumer's options (connection and fetch settings)."""
        self.topics = topics
        self.writer = writer  # this process's id in the H_WRITTEN header of the states it writes
        self.partitions = partitions
        self._opts = client_opts
        self.states: dict[str, DossierState] = {}
        # kept by put_state, so stats() costs O(dossiers in flight), not O(every dossier known)
        self.counts: Counter[str] = Counter()  # dossiers per delivery state
        self.open_since: dict[str, float] = {}  # dossiers with work pending: their oldest open event
        self.dead: dict[str, tuple[DeadLetter, WireEvent]] = {}
        self.watermarks: dict[int, int] = {}  # state partition -> the owner's outbound watermark
        self._pos: dict[TopicPartition, int] = {}
        self._advanced = asyncio.Event()  # replaced after every batch; set() wakes the waiters once
        self._consumer: AIOKafkaConsumer | None = None
        self.failure: BaseException | None = None
        self._closing = False  # set by halt(): run() ends even if a cancellation is lost

    def tps(self) -> list[TopicPartition]:
        """Every partition the view reads (all of ``dossier-state`` and ``dlq``)."""
        names = (self.topics.state, self.topics.dlq)
        return [TopicPartition(t, p) for t in names for p in range(self.partitions)]

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **self._opts,
        )
        await self._consumer.start()
        tps = self.tps()
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._pos = {tp: 0 for tp in tps}

    def suspend(self) -> None:
        """Stop fetching while the broker is unreachable: for a partition whose leader the last
        metadata did not name (a broker that shut down names none), aiokafka's fetcher forces a
        metadata update after every failed one, with no back-off. :meth:`run` waits meanwhile."""
        assert self._consumer is not None
        self._consumer.unsubscribe()

    def resume(self) -> None:
        """Fetch again from the positions reached (records fetched but not applied are fetched again)."""
        assert self._consumer is not None
        tps = self.tps()
        self._consumer.assign(tps)
        for tp in tps:
            self._consumer.seek(tp, self._pos.get(tp, 0))

    def fetched_within(self, seconds: float) -> bool:
        """Whether the broker answered a fetch of one of the view's partitions in the last
        ``seconds`` (aiokafka's ``last_poll_timestamp``; True before the first answer)."""
        assert self._consumer is not None
        polled = [self._consumer.last_poll_timestamp(tp) for tp in self.tps()]
        known = [t for t in polled if t is not None]
        return not known or time.time() * 1000 - max(known) <= seconds * 1000

    async def reachable(self, timeout: float) -> bool:
        """Whether the broker answers a metadata request within ``timeout`` (the consumer's public
        ``topics()``, which always asks the cluster)."""
        assert self._consumer is not None
        try:
            await asyncio.wait_for(self._consumer.topics(), timeout)
        except (KafkaError, TimeoutError, OSError):
            return False
        return True

    async def stop(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()

    def halt(self) -> None:
        """Make :meth:`run` end after its current batch (the queue's close() also cancels it)."""
        self._closing = True

    async def run(self) -> None:
        assert self._consumer is not None
        while not self._closing:
            batch = await self._consumer.getmany(timeout_ms=100, max_records=5000)
            for tp, records in batch.items():
                apply = self._apply_state if tp.topic == self.topics.state else self._apply_dead
                for rec in records:
                    apply(tp.partition, rec)
                if records:
                    self._pos[tp] = records[-1].offset + 1
            self._signal()

    def _signal(self) -> None:
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()

    def _apply_state(self, partition: int, rec: ConsumerRecord[Any, Any]) -> None:
        if rec.value is None:
            return
        if rec.headers:
            name, value = rec.headers[0]
            if name == H_WATERMARK:
                self.watermarks[partition] = int(rec.value)
                return
            if name == H_WRITTEN and self.writer:
                writer, _, v = value.rpartition(b":")
                if writer == self.writer:  # this process's own write: put_state has it once acknowledged
                    old = self.states.get(rec.key.decode())
                    if old is not None and old.v >= int(v):
                        return
        self.put_state(DossierState.decode(rec.value))

    def _apply_dead(self, partition: int, rec: ConsumerRecord[Any, Any]) -> None:
        if rec.value is None:
            self.dead.pop(rec.key.decode(), None)
        else:
            dl, ev = dead_letter_decode(rec.value)
            self.dead[dl.id] = (dl, ev)

    def note_dead(self, dl: DeadLetter, ev: WireEvent) -> None:
        """Show a dead letter this instance just wrote (or rewrote as replayed) before its record is read back."""
        self.dead[dl.id] = (dl, ev)

    def forget_dead(self, dl_id: str) -> None:
        """Stop showing a dead letter this instance just dropped (its tombstone is on the way)."""
        self.dead.pop(dl_id, None)

    def put_state(self, st: DossierState) -> None:
        """Keep ``st`` unless a newer version of the same dossier is already known."""
        old = self.states.get(st.mahoso)
        if old is None or st.v >= old.v:
            if old is not None:
                self.counts[old.delivery] -= 1
            self.states[st.mahoso] = st
            self.counts[st.delivery] += 1
            if st.pending and st.oldest_open_at is not None:
                self.open_since[st.mahoso] = st.oldest_open_at
            else:
                self.open_since.pop(st.mahoso, None)

    def position(self, tp: TopicPartition) -> int:
        return self._pos.get(tp, 0)

    async def _until(self, done: Any, timeout: float) -> bool:
        """Wait (no lock: a Condition made every waiter queue for its lock once per batch) until
        ``done()`` holds or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._advanced.wait(), left)
        return True

    async def wait_for(self, tp: TopicPartition, offset: int, timeout: float) -> bool:
        """Wait until the view has applied ``tp`` up to and including ``offset``."""
        return await self._until(lambda: self._pos.get(tp, 0) > offset, timeout)

    async def wait_watermark(self, partition: int, offset: int, timeout: float) -> bool:
        """Wait until partition ``partition``'s owner has reported every ``outbound`` record below
        ``offset`` as reflected in the states this view has read."""
        return await self._until(lambda: self.watermarks.get(partition, 0) >= offset, timeout)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        assert self._consumer is not None
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(tps)
        return ends

    async def catch_up(self, tps: list[TopicPartition], timeout: float) -> bool:
        """Wait until the view has read everything written to ``tps`` before this call."""
        ends = await self.end_offsets(tps)
        for tp, end in ends.items():
            if end > 0 and not await self.wait_for(tp, end - 1, timeout):
                return False
        return True
