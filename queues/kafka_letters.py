"""Dead letters on Kafka: the compacted ``<prefix>.dlq`` topic, keyed by dead-letter id.

A letter is written by the owner when an event dies (:meth:`DeadLetters.bury`), read back by every
instance's view, rewritten with ``replayed`` set once replayed, and tombstoned when dropped. The
letters listed are the view's: every instance answers for all of them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from queues.api import DeadLetter, DeadLetterPage, ErrorInfo, OutcomeClass, ReplayResult
from queues.kafka_codec import H_REPLAY, H_SEQ, Src, Topics, WireEvent, dead_letter_encode, ladder_headers
from queues.kafka_produce import Producing, guard, partition_of
from queues.kafka_view import View

#: the key of the sweep tombstones (:meth:`DeadLetters.prune`): never a letter id (uuid4 hex)
SWEEP_KEY = b"\x00sweep"


class DeadLetters:
    """Writes, lists, replays and drops dead letters; keeps no state of its own beyond the view's.
    Every coroutine raises only QueueUnavailable."""

    def __init__(self, view: View, producing: Producing, topics: Topics, partitions: int, timeout: float) -> None:
        self._view = view
        self._producing = producing
        self._topics = topics
        self._parts = partitions
        self._timeout = timeout
        self._sweep_at: float | None = None  # time.monotonic() after which prune() closes the segments

    async def bury(self, ev: WireEvent, seq: int, src: Src | None, error: ErrorInfo | None, attempts: int,
                   now: float) -> asyncio.Future[Any]:
        """Hand ``ev``'s dead letter to the producer and show it in the view at once; the future
        resolves once the letter is acknowledged (the caller waits for it before resolving ``src``)."""
        err = error or ErrorInfo(OutcomeClass.RETRYABLE, "", "")
        dl = DeadLetter(uuid.uuid4().hex, ev.mahoso, ev.kind, seq, err, attempts, now)
        self._view.note_dead(dl, ev)
        return await self._producing.send(self._topics.dlq, dl.id.encode(), dead_letter_encode(dl, ev, src),
                                           ladder_headers(seq, now, dl.attempts, src, err), None, "dlq")

    def _open(self) -> list[DeadLetter]:
        return sorted((dl for dl, _ in self._view.dead.values() if not dl.replayed), key=lambda x: (x.dead_at, x.id))

    def open_by_reason(self) -> dict[str, int]:
        """Dead letters not yet replayed, by the outcome class of the error each one carries."""
        return dict(Counter(str(dl.error.cls) for dl, _ in self._view.dead.values() if not dl.replayed))

    def page(self, cursor: str | None, limit: int) -> DeadLetterPage:
        """Open letters, oldest first, ``limit`` after ``cursor`` (an unknown cursor starts over)."""
        letters = self._open()
        start = 0
        if cursor:
            ids = [dl.id for dl in letters]
            start = ids.index(cursor) + 1 if cursor in ids else 0
        items = tuple(letters[start:start + limit])
        more = start + limit < len(letters)
        return DeadLetterPage(items, items[-1].id if more and items else None)

    def get(self, dl_id: str) -> DeadLetter | None:
        entry = self._view.dead.get(dl_id)
        return entry[0] if entry else None

    async def replay(self, dl_id: str, overtaken: Callable[[DeadLetter], Awaitable[bool]]) -> ReplayResult:
        """Send a dead event back through outbound with its old sequence (attempts restart at 0)
        and mark the letter replayed; a letter for which ``overtaken`` says a newer snapshot was
        accepted or delivered is marked replayed and never sent."""
        entry = self._view.dead.get(dl_id)
        if entry is None:
            return ReplayResult.NOT_FOUND
        dl, ev = entry
        if dl.replayed:
            return ReplayResult.ALREADY_REPLAYED
        superseded = not ev.payload or await overtaken(dl)  # no payload: pruned (queues/kafka_retention.py)
        marked = DeadLetter(dl.id, dl.mahoso, dl.kind, dl.sequence, dl.error, dl.attempts, dl.dead_at, True)

        async def send() -> None:
            if not superseded:
                fut = await self._producing.send(
                    self._topics.outbound, dl.mahoso.encode(), ev.encode(),
                    [(H_SEQ, str(dl.sequence).encode()), (H_REPLAY, b"1")], partition_of(dl.mahoso, self._parts),
                    "outbound")
                await fut
            await (await self._producing.send(self._topics.dlq, dl.id.encode(),
                                              dead_letter_encode(marked, ev, None), [], None, "dlq"))

        await guard("replay", send(), self._timeout)
        self._view.note_dead(marked, ev)
        return ReplayResult.SUPERSEDED if superseded else ReplayResult.REPLAYED

    async def prune(self, due: Callable[[str], bool], limit: int, segment_s: float) -> int:
        """Personal data at rest: up to ``limit`` letters still carrying a payload whose dossier
        ``due`` names are rewritten without it (open letters: the list still shows them) or
        tombstoned (replayed ones); the rewritten record makes the old one compactable. Returns
        how many. Raises QueueUnavailable.

        The cleaner compacts only closed segments, and sees an overwrite only once the segment
        that holds the *new* record is closed too; a segment closes only when a record is
        appended after ``segment.ms``. A quiet partition would keep the old record for ever, so
        the first pass at least ``segment_s`` after a rewrite appends a tombstone of a key no
        letter has to every partition (:meth:`_sweep`)."""
        await self._sweep()
        victims = [(dl, ev) for dl, ev in self._view.dead.values() if ev.payload and due(dl.mahoso)][:limit]
        if not victims:
            return 0
        self._sweep_at = time.monotonic() + segment_s

        async def send() -> None:
            futs = []
            for dl, ev in victims:
                value = None if dl.replayed else dead_letter_encode(dl, _without_payload(ev), None)
                futs.append(await self._producing.send(self._topics.dlq, dl.id.encode(), value, [], None, "dlq"))
            for fut in futs:
                await fut

        await guard("prune", send(), self._timeout)
        for dl, ev in victims:
            if dl.replayed:
                self._view.forget_dead(dl.id)
            else:
                self._view.note_dead(dl, _without_payload(ev))
        return len(victims)

    async def _sweep(self) -> None:
        if self._sweep_at is None or time.monotonic() < self._sweep_at:
            return

        async def send() -> None:
            futs = [await self._producing.send(self._topics.dlq, SWEEP_KEY, None, [], p, "dlq")
                    for p in range(self._parts)]
            for fut in futs:
                await fut

        await guard("prune sweep", send(), self._timeout)
        self._sweep_at = None

    async def drop(self, dl_id: str) -> bool:
        """Tombstone a letter; False when there is none by that id."""
        if dl_id not in self._view.dead:
            return False

        async def send() -> None:
            await (await self._producing.send(self._topics.dlq, dl_id.encode(), None, [], None, "dlq"))

        await guard("drop", send(), self._timeout)
        self._view.forget_dead(dl_id)
        return True



def _without_payload(ev: WireEvent) -> WireEvent:
    return WireEvent(ev.event_id, ev.mahoso, ev.kind, {}, ev.agency, ev.accepted_at)
