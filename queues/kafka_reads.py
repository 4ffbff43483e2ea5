"""Read-your-writes on the Kafka backend: the two read barriers and the reads built on them.

* Claims: before a claim, the pump must have taken in what this instance itself produced to its own
  partitions (:meth:`Reads.own_accepts_taken_in`).
* Status reads, on any instance: fetch the end of the dossier's ``outbound`` partition, then wait
  until what this instance knows covers it (:meth:`Reads.confirmed`): the pump's position when it
  owns the partition, else the owner's watermark as the view shows it (the view has then also read
  every state record written before that watermark). A status that cannot be confirmed in time
  never says "delivered" too early.
* The transition check (:meth:`Reads.accepted_state`) answers from local knowledge only: eventually
  consistent across instances, no broker round trip.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from queues.api import DeadLetter, DeliveryState, DossierStatus, EventKind
from queues.kafka_accepts import Accepts
from queues.kafka_codec import Topics
from queues.kafka_marks import Offsets
from queues.kafka_owner import Owner
from queues.kafka_produce import partition_of
from queues.kafka_pump import Pump
from queues.kafka_view import View

_BARRIER_S = 5.0  # claim(): how long to wait for the pump to take in this instance's own accepts
_READ_BARRIER_S = 2.0  # status(): how long to wait for the owner to confirm the dossier's newest records
_SETTLED = (DeliveryState.DELIVERED, DeliveryState.DEAD, DeliveryState.PARKED)


class Reads:
    """Answers reads from the owner's memory, the view and this instance's own accepts; keeps no
    state of its own. Never raises: a barrier that cannot be passed in time only makes the answer
    more cautious."""

    def __init__(self, *, view: View, pump: Pump, offsets: Offsets, owner: Owner, accepts: Accepts,
                 topics: Topics, partitions: int) -> None:
        self._view = view
        self._pump = pump
        self._offsets = offsets
        self._owner = owner
        self._accepts = accepts
        self._outbound = topics.outbound
        self._parts = partitions

    async def own_accepts_taken_in(self) -> None:
        """Read-your-writes for claims: wait (at most ``_BARRIER_S``) until the pump has taken in
        what this instance produced to its own partitions before this call. A fixed target: under
        load, chasing the newest produce would never end."""
        pump = self._pump
        targets = [(tp, off) for tp, off in self._accepts.produced() if pump.has(tp)]

        def caught_up() -> bool:
            return all(not pump.has(tp) or pump.is_paused(tp) or (self._offsets.position(tp) or 0) > off
                       for tp, off in targets)

        deadline = time.monotonic() + _BARRIER_S
        while not caught_up() and time.monotonic() < deadline:
            await pump.next_round(deadline - time.monotonic())

    async def confirmed(self, p: int, timeout: float = _READ_BARRIER_S) -> bool:
        """Read-your-writes for status reads: fetch the end of ``outbound`` partition ``p`` now,
        then wait (at most ``timeout``) until what this instance knows covers every record below it.
        False when that could not be confirmed in time."""
        tp = TopicPartition(self._outbound, p)
        deadline = time.monotonic() + timeout
        try:
            ends = await asyncio.wait_for(self._view.end_offsets([tp]), timeout)
        except (KafkaError, TimeoutError, OSError):
            return False
        end = ends.get(tp, 0)
        if self._view.watermarks.get(p, 0) >= end:
            return True
        while self._pump.owns(p):
            position = self._offsets.position(tp)
            if position is not None and position >= end:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await self._pump.next_round(left)
        return await self._view.wait_watermark(p, end, max(deadline - time.monotonic(), 0.0))

    async def status(self, mahoso: str) -> DossierStatus | None:
        """The dossier's status on any instance. First waits (≤ 2 s) until this instance's knowledge
        covers every ``outbound`` record accepted before the call (see :meth:`confirmed`), so a read
        on B right after an accept or a delivery on A reflects it. If that cannot be confirmed in
        time (the owner is gone, the broker is away), a settled-looking dossier is reported as
        pending: never "delivered" too early."""
        confirmed = await self.confirmed(partition_of(mahoso, self._parts))
        st = self._owner.known_state(mahoso)
        if st is None:
            return None
        owned = self._owner.holds(mahoso)
        delivery = DeliveryState(st.delivery) if st.v or owned else DeliveryState.PENDING
        if not confirmed and delivery in _SETTLED:
            delivery = DeliveryState.RETRYING if st.attempts else DeliveryState.PENDING
        pending = st.pending > 0 or delivery in (DeliveryState.PENDING, DeliveryState.RETRYING)
        local = self._accepts.newest(mahoso)
        accepted = local[1] if local is not None and local[0] > st.accepted_seq else st.accepted_state
        return DossierStatus(
            mahoso=mahoso, accepted_state=accepted, delivered_state=st.delivered_state, delivery=delivery,
            attempts=st.attempts, next_attempt_at=st.next_attempt_at if (pending and st.attempts) else None,
            last_error=st.error(), pending_progress=st.pending_progress, last_sequence=st.last_seq,
            delivered_sequence=st.delivered_seq)

    def accepted_state(self, mahoso: str) -> str | None:
        """The dossier's last accepted ``TrangThaiHoSo`` as this instance knows it, or None when it
        knows none: its own recent accepts, the owner's memory (if it owns the dossier) and the
        materialised states. No broker round trip, so it is *eventually consistent* across
        instances: right after an accept on another instance it may still return the state before
        (the transition check it serves only classifies; it never loses an event)."""
        best_seq, best = 0, None
        local = self._accepts.newest(mahoso)
        if local is not None:
            best_seq, best = local
        st = self._owner.known_state(mahoso)
        if st is not None and st.accepted_state is not None and st.accepted_seq >= best_seq:
            best = st.accepted_state
        return best

    async def overtaken(self, dl: DeadLetter) -> bool:
        """Whether a dead snapshot has been overtaken (a newer one accepted, or it or a newer one
        delivered), as far as this instance knows once the status read barrier passed or timed out."""
        await self.confirmed(partition_of(dl.mahoso, self._parts))
        st = self._owner.known_state(dl.mahoso)
        local = self._accepts.newest(dl.mahoso)
        newer_accepted = (st is not None and st.accepted_seq > dl.sequence) or (
            local is not None and local[0] > dl.sequence)
        newer_delivered = st is not None and st.delivered_seq >= dl.sequence
        return dl.kind is EventKind.SNAPSHOT and (newer_accepted or newer_delivered)
