"""How far this owner has got with each input partition: positions, commits and watermarks.

Per partition of ``outbound`` and of the retry topics this instance owns, :class:`Offsets` keeps
the next offset the pump takes in, the offsets taken in whose outcome is not yet durable, and the
last commit: the committed offset is the lowest unresolved one, so nothing is committed before its
outcome is acknowledged. :class:`Watermarks` keeps the ``outbound`` offsets taken in but not yet
covered by an acknowledged state write; the lowest (else the position) is the partition's
*watermark*, which the owner writes to ``dossier-state`` for every instance's read barrier.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from queues.kafka_codec import H_WATERMARK, WATERMARK_KEY, Src
from queues.kafka_produce import Producing

log = logging.getLogger("queues.kafka")
_WATERMARK_S = 0.1  # at most one watermark record per partition per this interval


class Offsets:
    """Positions, unresolved offsets and commits per owned input partition (no I/O)."""

    def __init__(self) -> None:
        self._next: dict[TopicPartition, int] = {}
        self._unresolved: dict[TopicPartition, set[int]] = {}
        self._committed: dict[TopicPartition, int] = {}

    def position(self, tp: TopicPartition) -> int | None:
        """The next offset of ``tp`` to take in (None: not set up, or re-read from the start)."""
        return self._next.get(tp)

    def committed(self, tp: TopicPartition) -> int | None:
        return self._committed.get(tp)

    def start(self, tp: TopicPartition, position: int) -> None:
        """A newly assigned partition, at its committed ``position``."""
        self._committed[tp] = self._next[tp] = position

    def advance(self, tp: TopicPartition, offset: int) -> None:
        """The pump's next offset in ``tp`` is ``offset``."""
        self._next[tp] = offset

    def hold(self, tp: TopicPartition, offset: int) -> None:
        """A record taken in whose outcome is not yet durable: commits stay below it."""
        self._unresolved.setdefault(tp, set()).add(offset)

    def resolve(self, src: Src | None) -> None:
        """The outcome of the record at ``src`` is durable (None: nothing to resolve)."""
        if src is not None:
            self._unresolved.get(TopicPartition(src[0], src[1]), set()).discard(src[2])

    def to_commit(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Per partition of ``tps`` whose commit would move: the lowest unresolved offset, else the position."""
        offsets: dict[TopicPartition, int] = {}
        for tp in tps:
            if tp not in self._next:
                continue
            pending = self._unresolved.get(tp)
            value = min(pending) if pending else self._next[tp]
            if self._committed.get(tp) != value:
                offsets[tp] = value
        return offsets

    def committed_to(self, offsets: dict[TopicPartition, int]) -> None:
        """``offsets`` (from :meth:`to_commit`) are committed."""
        self._committed.update(offsets)

    def rewind(self, tp: TopicPartition) -> int:
        """Forget what was taken in from ``tp`` since its last commit; the offset to re-read it from."""
        self._unresolved.pop(tp, None)
        if tp in self._committed:
            self._next[tp] = self._committed[tp]
            return self._committed[tp]
        self._next.pop(tp, None)
        return 0

    def forget(self, tp: TopicPartition) -> None:
        """``tp`` is no longer this instance's."""
        self._unresolved.pop(tp, None)
        self._next.pop(tp, None)
        self._committed.pop(tp, None)


class Watermarks:
    """The ``outbound`` intake not yet in a state record, and the watermark records built on it."""

    def __init__(self, producing: Producing, state_topic: str, offsets: Offsets, timeout: float) -> None:
        self._producing = producing
        self._topic = state_topic
        self._offsets = offsets
        self._timeout = timeout
        # outbound records taken in whose dossier's state has not been written since: offset ->
        # (MaHoSo, intake time), in offset order; the watermark of a partition is its first offset
        self._unwritten: dict[TopicPartition, dict[int, tuple[str, float]]] = {}
        self._sent: dict[int, int] = {}  # partition -> the watermark last acknowledged
        self._at = 0.0

    def taken(self, tp: TopicPartition, offset: int, mahoso: str) -> None:
        """``mahoso``'s record at ``offset`` of ``tp`` was taken in; no state write covers it yet."""
        self._unwritten.setdefault(tp, {})[offset] = (mahoso, time.monotonic())

    def written(self, marks: Iterable[tuple[TopicPartition, int]]) -> None:
        """An acknowledged state write covers the intake at ``marks``."""
        for tp, offset in marks:
            taken = self._unwritten.get(tp)
            if taken is not None:
                taken.pop(offset, None)

    def waiting(self, taken_before: float) -> Iterator[str]:
        """The dossiers (with repeats) of intake taken in before ``taken_before`` (``time.monotonic()``)
        and not yet written."""
        for marks in self._unwritten.values():
            for m, taken in marks.values():
                if taken > taken_before:
                    break
                yield m

    def watermark(self, tp: TopicPartition) -> int | None:
        """The outbound offset below which every record of ``tp`` is in a durable state record."""
        marks = self._unwritten.get(tp)
        if marks:
            return next(iter(marks))
        return self._offsets.position(tp)

    async def write(self, tps: Iterable[TopicPartition]) -> None:
        """Tell every instance's view how far this owner's state records reflect the ``outbound``
        partitions ``tps`` (at most once per ``_WATERMARK_S``, and only for a partition whose
        watermark moved; not while producing is paused). A failure is logged; the next call tries
        again."""
        now = time.monotonic()
        if now - self._at < _WATERMARK_S or self._producing.paused():
            return
        self._at = now
        sent: list[tuple[asyncio.Future[Any], int, int]] = []
        try:
            for tp in tps:
                wm = self.watermark(tp)
                if wm is None or self._sent.get(tp.partition) == wm:
                    continue
                fut = await self._producing.send(self._topic, WATERMARK_KEY, str(wm).encode(),
                                                 [(H_WATERMARK, b"1")], tp.partition, "watermark")
                sent.append((fut, tp.partition, wm))
            for fut, p, wm in sent:
                await asyncio.wait_for(fut, self._timeout)
                self._sent[p] = wm
        except (KafkaError, TimeoutError, OSError) as exc:
            log.warning("kafka watermark not written: %s", type(exc).__name__)  # a warning: repeats are limited

    def forget(self, tp: TopicPartition) -> None:
        """Drop ``tp``'s unwritten intake (it is about to be re-read)."""
        self._unwritten.pop(tp, None)

    def release(self, tp: TopicPartition) -> None:
        """``tp`` is no longer this instance's: drop its intake and its last watermark."""
        self._unwritten.pop(tp, None)
        self._sent.pop(tp.partition, None)
