"""What every instance materialises from Kafka: per-dossier sequences, dossier states, dead letters.

One consumer without a group reads every partition of ``outbound``, ``dossier-state`` and ``dlq``
from the beginning. From ``outbound`` it derives the per-dossier sequence of each accepted event:
the n-th record of a dossier in its partition has sequence n (replays carry their old sequence in a
header and do not count), so every instance computes the same numbers with no coordination. The
compacted topics give each instance the state that the partition owners wrote. Callers that need
read-your-writes wait with :meth:`View.wait_for` until the view has passed a given offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from queues.api import DeadLetter, EventKind
from queues.kafka_codec import (
    H_CONTROL,
    H_KIND,
    H_SEQ,
    H_STATE,
    DossierState,
    Topics,
    WireEvent,
    dead_letter_decode,
    header_map,
    state_of,
)

log = logging.getLogger(__name__)
_SEQ_MEMORY = 400_000  # offsets remembered per outbound partition for sequence look-ups
_PROGRESS_MEMORY = 512  # progress sequences remembered per dossier (status of not-yet-taken-in progress)


@dataclass
class Accepted:
    last_seq: int = 0
    accepted_state: str | None = None
    last_snapshot_seq: int = 0
    progress_seqs: list[int] | None = None  # the latest progress sequences (bounded), for status reads

    def progress_after(self, seq: int) -> int:
        """How many progress events accepted after sequence ``seq`` (as far as remembered)."""
        return sum(1 for s in self.progress_seqs or () if s > seq)


class View:
    """The materialised view; :meth:`run` is its consuming task."""

    def __init__(self, topics: Topics, partitions: int, client_opts: dict[str, Any]) -> None:
        self.topics = topics
        self.partitions = partitions
        self._opts = client_opts
        self.accepted: dict[str, Accepted] = {}
        self.states: dict[str, DossierState] = {}
        self.dead: dict[str, tuple[DeadLetter, WireEvent]] = {}
        self._seqs: dict[int, OrderedDict[int, int]] = {p: OrderedDict() for p in range(partitions)}
        self._pos: dict[TopicPartition, int] = {}
        self._advanced = asyncio.Event()  # replaced after every batch; set() wakes the waiters once
        self._consumer: AIOKafkaConsumer | None = None
        self.failure: BaseException | None = None
        self.closing = False  # set by the owner's close(): run() ends even if a cancellation is lost

    def _tps(self) -> list[TopicPartition]:
        names = (self.topics.outbound, self.topics.state, self.topics.dlq)
        return [TopicPartition(t, p) for t in names for p in range(self.partitions)]

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=20, **self._opts,
        )
        await self._consumer.start()
        tps = self._tps()
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._pos = {tp: 0 for tp in tps}

    async def stop(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()

    async def run(self) -> None:
        assert self._consumer is not None
        while not self.closing:
            batch = await self._consumer.getmany(timeout_ms=100, max_records=5000)
            for tp, records in batch.items():
                for rec in records:
                    self._apply(tp, rec)
                if records:
                    self._pos[tp] = records[-1].offset + 1
            self._signal()

    def _signal(self) -> None:
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()

    def _apply(self, tp: TopicPartition, rec: ConsumerRecord[Any, Any]) -> None:
        if tp.topic == self.topics.outbound:
            self._apply_outbound(tp.partition, rec)
        elif tp.topic == self.topics.state:
            if rec.value is not None:
                self.put_state(DossierState.decode(rec.value))
        elif rec.value is None:
            self.dead.pop(rec.key.decode(), None)
        else:
            dl, ev = dead_letter_decode(rec.value)
            self.dead[dl.id] = (dl, ev)

    def _apply_outbound(self, partition: int, rec: ConsumerRecord[Any, Any]) -> None:
        hs = header_map(rec.headers)
        if H_CONTROL in hs or H_SEQ in hs or rec.value is None:
            return
        if H_KIND in hs:  # the summary headers spare parsing the payload (every instance reads all)
            mahoso, kind, state = rec.key.decode(), EventKind(hs[H_KIND]), hs.get(H_STATE)
        else:
            ev = WireEvent.decode(rec.value)
            mahoso, kind, state = ev.mahoso, ev.kind, state_of(ev.kind, ev.payload)
        acc = self.accepted.setdefault(mahoso, Accepted())
        acc.last_seq += 1
        if state is not None:
            acc.accepted_state = state
            acc.last_snapshot_seq = acc.last_seq
        elif kind is EventKind.PROGRESS:
            if acc.progress_seqs is None:
                acc.progress_seqs = []
            acc.progress_seqs.append(acc.last_seq)
            if len(acc.progress_seqs) > _PROGRESS_MEMORY:
                del acc.progress_seqs[: _PROGRESS_MEMORY // 2]
        seqs = self._seqs[partition]
        seqs[rec.offset] = acc.last_seq
        if len(seqs) > _SEQ_MEMORY:
            for _ in range(_SEQ_MEMORY // 2):
                seqs.popitem(last=False)

    def put_state(self, st: DossierState) -> None:
        """Keep ``st`` unless a newer version of the same dossier is already known."""
        old = self.states.get(st.mahoso)
        if old is None or st.v >= old.v:
            self.states[st.mahoso] = st

    def seq_at(self, partition: int, offset: int) -> int | None:
        return self._seqs[partition].get(offset)

    def position(self, tp: TopicPartition) -> int:
        return self._pos.get(tp, 0)

    async def wait_for(self, tp: TopicPartition, offset: int, timeout: float) -> bool:
        """Wait until the view has applied ``tp`` up to and including ``offset``. No lock: with a
        Condition, every batch made all waiters queue for its lock one loop turn each, and the view
        (and the pump, which asks per record) crawled under load."""
        deadline = time.monotonic() + timeout
        while self._pos.get(tp, 0) <= offset:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._advanced.wait(), left)
        return True

    async def catch_up(self, tps: list[TopicPartition], timeout: float) -> bool:
        """Wait until the view has read everything written to ``tps`` before this call."""
        assert self._consumer is not None
        ends = await self._consumer.end_offsets(tps)
        for tp, end in ends.items():
            if end > 0 and not await self.wait_for(tp, end - 1, timeout):
                return False
        return True
