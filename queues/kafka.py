"""The Kafka queue backend: ``[queue] backend = "kafka"``. Design: docs/decisions.md ``## kafka``.

Accepted events go to ``<prefix>.outbound`` (key and partition from ``MaHoSo``) with ``acks=all``
and an idempotent producer; :meth:`KafkaQueue.enqueue` returns only after the acknowledgement, with
sequence = offset + 1 (rising per dossier, since a dossier has one partition). The
instances of one ``group_id`` share the partitions with the range assignor, so partition ``p`` of
``outbound``, of every retry topic and of ``dossier-state`` always belongs to the same instance:
the *owner* of the dossiers hashed to ``p``. Only the owner claims those dossiers and writes their
state. A failed attempt forwards the dossier's waiting events to the retry topic of the step
(headers: due time, attempt, origin, last error); newer events of a dossier that waits in the
ladder are forwarded behind them, so nothing overtakes. A retry record that is not yet due makes the
pump seek back to it, pause its partition and resume on a timer. An input offset is committed only
after its outcome (delivered, forwarded, dead-lettered, parked into the state) is acknowledged.
Only the owner reads ``outbound``; every instance's view reads ``dossier-state`` and ``dlq``, where
the owners also write per-partition watermarks that make :meth:`KafkaQueue.status` read-your-writes
on any instance.

All methods raise only :class:`~core.errors.QueueUnavailable` from the error tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from config.schema import Settings
from queues.api import (
    Accepted,
    DeadLetter,
    DeadLetterPage,
    DeliveryState,
    DossierStatus,
    EventKind,
    NewEvent,
    Outcome,
    QueueStats,
    ReplayResult,
    Work,
)
from queues.kafka_accepts import Accepts
from queues.kafka_codec import (
    Topics,
    topics_for,
)
from queues.kafka_letters import DeadLetters
from queues.kafka_marks import Offsets, Watermarks
from queues.kafka_metrics import KafkaMetrics
from queues.kafka_owner import Owner
from queues.kafka_produce import (
    Producing,
    client_options,
    fetch_options,
    guard,
    partition_of,
    quietly,
)
from queues.kafka_pump import Pump
from queues.kafka_view import View

log = logging.getLogger(__name__)
T = TypeVar("T")
_BARRIER_S = 5.0
_READ_BARRIER_S = 2.0  # status(): how long to wait for the owner to confirm the dossier's newest records
_STATS_S = 0.5  # stats() answers from its last computation for this long


class KafkaQueue:
    """The QueueBackend on Apache Kafka; one instance per ``dvcgw serve`` process."""

    def __init__(self, settings: Settings, *, metrics_registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._k = settings.queue.kafka
        self._lease_s = float(settings.queue.lease)
        self._timeout = float(self._k.request_timeout)
        self._parts = self._k.partitions
        self.topics: Topics = topics_for(self._k.topic_prefix, [float(d) for d in settings.retry.delays])
        self._opts = client_options(self._k)
        self._wall = clock
        self._clock_hint = 0.0
        self.metrics = KafkaMetrics(metrics_registry)
        self._view = View(self.topics, self._parts, {**self._opts, **fetch_options(self._k)},
                          writer=uuid.uuid4().hex[:12].encode())
        self._producing = Producing(self._opts, self.metrics.observe_produce)
        self._accepts = Accepts(self._producing, self.topics, self._parts, self._timeout, clock)
        self._offsets = Offsets()
        self._marks = Watermarks(self._producing, self.topics.state, self._offsets, self._timeout)
        self._letters = DeadLetters(self._view, self._producing, self.topics, self._parts, self._timeout)
        self._wake = asyncio.Event()
        self._owner = Owner(view=self._view, producing=self._producing, letters=self._letters,
                            offsets=self._offsets, marks=self._marks, topics=self.topics, partitions=self._parts,
                            lease_s=self._lease_s, timeout=self._timeout, now=self._now, wake=self._wake,
                            rewind=self._rewind)
        self._pump = Pump(kafka=self._k, client_opts=self._opts, topics=self.topics, owner=self._owner,
                          offsets=self._offsets, marks=self._marks, view=self._view, metrics=self.metrics,
                          now=self._now, wake=self._wake, lease_s=self._lease_s, timeout=self._timeout)
        self._tasks: list[asyncio.Task[None]] = []
        self._stats: tuple[float, QueueStats] | None = None
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Create the topics, start the view, the producer and the group consumer; wait for a first
        assignment (bounded). Raises QueueUnavailable when the broker cannot be reached."""
        await guard("create topics", self._create_topics(), self._timeout + 5)
        await guard("producer start", self._producing.live(), self._timeout)
        await guard("view start", self._view.start(), self._timeout)
        self._tasks.append(asyncio.create_task(self._supervise(self._view.run, "view")))
        await guard("view catch-up", self._view.catch_up(self._view.tps(), self._timeout), self._timeout + 1)
        await guard("consumer start", self._pump.start(), self._timeout)
        self._tasks.append(asyncio.create_task(self._supervise(self._pump.run, "pump")))
        await self._pump.wait_assigned(30)

    async def close(self) -> None:
        """Stop the loops and the clients; bounded even with a dead broker. On Python 3.11 a
        cancellation that meets a finishing ``asyncio.wait_for`` is lost (the task runs on), so
        the loops also watch ``_closing`` and are cancelled again until they end."""
        self._closing = True
        self._view.halt()
        self._pump.halt()
        for task in self._tasks:
            for _ in range(20):
                if task.done():
                    break
                task.cancel()
                await asyncio.wait([task], timeout=0.5)
            if not task.done():
                log.warning("kafka background loop did not stop")
        self._pump.cancel_timers()
        # every step bounded: a dead broker must not hang shutdown
        await self._owner.drain(5.0)  # batched state writes finish first, so the final commit covers them
        await self._pump.stop()
        await self._producing.close()
        await quietly(self._view.stop(), 10.0)

    async def _supervise(self, run: Callable[[], Awaitable[None]], name: str) -> None:
        """Keep a background loop alive across broker outages (errors are logged, then retried)."""
        while not self._closing:
            try:
                await run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broker outage must not kill the loop
                log.warning("kafka %s loop error: %s", name, type(exc).__name__)
                await asyncio.sleep(0.5)

    async def _create_topics(self) -> None:
        admin = AIOKafkaAdminClient(**self._opts)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            rf = self._k.replication_factor
            longest = max(d for d, _ in self.topics.retry)
            specs = [NewTopic(self.topics.outbound, self._parts, rf, topic_configs={"retention.ms": "-1"})]
            specs += [NewTopic(name, self._parts, rf, topic_configs={
                "retention.ms": str(int(max(7 * 86400, 20 * longest) * 1000))}) for name in self.topics.retry_names]
            specs += [NewTopic(t, self._parts, rf, topic_configs={"cleanup.policy": "compact"})
                      for t in (self.topics.state, self.topics.dlq)]
            missing = [s for s in specs if s.name not in existing]
            if missing:
                await admin.create_topics(missing)
        finally:
            await admin.close()

    def owned_partitions(self) -> set[int]:
        """The partitions (of every dossier topic) this instance owns at the moment."""
        return self._pump.partitions()

    # ------------------------------------------------------------------ clock and helpers

    def _now(self) -> float:
        return max(self._wall(), self._clock_hint)

    def _tick(self, now: float) -> None:
        """Adopt the caller's clock (the engine's ``now``) and resume ladder partitions now due."""
        self._clock_hint = max(self._clock_hint, now)
        self._pump.resume_due()

    def _rewind(self, partition: int) -> None:
        """The owner's write for ``partition`` failed: the pump re-reads it from the last commit."""
        self._pump.rewind(partition)

    # ------------------------------------------------------------------ enqueue

    async def enqueue(self, events: Sequence[NewEvent]) -> list[Accepted]:
        """Produce ``events`` (one dossier) to outbound and wait for ``acks=all`` (see
        :class:`~queues.kafka_accepts.Accepts`). Raises QueueUnavailable when the produce was not
        acknowledged in time."""
        return await self._accepts.append(events)

    # ------------------------------------------------------------------ claim and record

    async def _barrier(self) -> None:
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

    async def claim(self, limit: int, now: float) -> list[Work]:
        self._tick(now)
        await self._barrier()
        return self._owner.claim(limit, now, self._pump.revoking)

    async def record(self, work: Work, outcome: Outcome, now: float, *, release: bool = True) -> None:
        """See :meth:`Owner.record <queues.kafka_owner.Owner.record>`. Raises QueueUnavailable."""
        self._tick(now)
        await self._owner.record(work, outcome, now, release=release)

    # ------------------------------------------------------------------ waiting

    async def wait_for_work(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(timeout, 0.0))
        self._wake.clear()

    async def next_due_at(self) -> float | None:
        dues = self._owner.ladder_dues()
        dues += self._pump.paused_dues()
        return min(dues) if dues else None

    # ------------------------------------------------------------------ reads

    async def _confirmed(self, p: int, timeout: float) -> bool:
        """Read-your-writes for status reads: fetch the end of ``outbound`` partition ``p`` now,
        then wait (bounded) until what this instance knows covers every record below it: the pump's
        position when this instance owns ``p``, else the owner's watermark as the view shows it
        (the view has then also read every state record written before that watermark)."""
        tp = TopicPartition(self.topics.outbound, p)
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
        covers every ``outbound`` record accepted before the call (see :meth:`_confirmed`), so a read
        on B right after an accept or a delivery on A reflects it. If that cannot be confirmed in
        time (the owner is gone, the broker is away), a settled-looking dossier is reported as
        pending: never "delivered" too early."""
        confirmed = await self._confirmed(partition_of(mahoso, self._parts), _READ_BARRIER_S)
        st = self._owner.known_state(mahoso)
        if st is None:
            return None
        owned = self._owner.holds(mahoso)
        delivery = DeliveryState(st.delivery) if st.v or owned else DeliveryState.PENDING
        if not confirmed and delivery in (DeliveryState.DELIVERED, DeliveryState.DEAD, DeliveryState.PARKED):
            delivery = DeliveryState.RETRYING if st.attempts else DeliveryState.PENDING
        pending = st.pending > 0 or delivery in (DeliveryState.PENDING, DeliveryState.RETRYING)
        local = self._accepts.newest(mahoso)
        accepted = local[1] if local is not None and local[0] > st.accepted_seq else st.accepted_state
        return DossierStatus(
            mahoso=mahoso, accepted_state=accepted, delivered_state=st.delivered_state, delivery=delivery,
            attempts=st.attempts, next_attempt_at=st.next_attempt_at if (pending and st.attempts) else None,
            last_error=st.error(), pending_progress=st.pending_progress, last_sequence=st.last_seq,
            delivered_sequence=st.delivered_seq)

    async def accepted_state(self, mahoso: str) -> str | None:
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

    async def unpark(self, mahoso: str) -> None:
        """Owner: un-park now. Elsewhere: send a control record to the owner through outbound."""
        p = partition_of(mahoso, self._parts)
        if self._pump.owns(p) and self._owner.holds(mahoso):
            await self._owner.unpark(mahoso)
        else:
            await self._accepts.ask_unpark(mahoso)

    async def stats(self, now: float) -> QueueStats:
        """Counts per delivery state and the oldest pending event: the view's running counts, with
        the dossiers this instance holds in memory (fresher than their last state record) swapped
        in. That is O(dossiers in flight), which a backlog makes large, so the answer is reused for
        :data:`_STATS_S` (a Prometheus scrape comes every 15 s; the bench polls every 100 ms)."""
        cached = self._stats
        if cached is not None and time.monotonic() - cached[0] < _STATS_S:
            return cached[1]
        by_state, oldest = self._owner.census()
        dead = self._letters.open_count()
        self.metrics.dead_letters.set(dead)
        result = QueueStats(by_state=by_state, oldest_pending_at=oldest, dead_letters=dead)
        self._stats = (time.monotonic(), result)
        return result

    # ------------------------------------------------------------------ dead letters

    async def dead_letters(self, cursor: str | None, limit: int) -> DeadLetterPage:
        return self._letters.page(cursor, limit)

    async def dead_letter(self, dl_id: str) -> DeadLetter | None:
        return self._letters.get(dl_id)

    async def replay(self, dl_id: str, now: float) -> ReplayResult:
        """See :meth:`DeadLetters.replay <queues.kafka_letters.DeadLetters.replay>`."""
        return await self._letters.replay(dl_id, self._overtaken)

    async def _overtaken(self, dl: DeadLetter) -> bool:
        """Whether a dead snapshot has been overtaken (a newer one accepted, or it or a newer one
        delivered), as far as this instance can confirm within the read barrier."""
        await self._confirmed(partition_of(dl.mahoso, self._parts), _READ_BARRIER_S)
        st = self._owner.known_state(dl.mahoso)
        local = self._accepts.newest(dl.mahoso)
        newer_accepted = (st is not None and st.accepted_seq > dl.sequence) or (
            local is not None and local[0] > dl.sequence)
        newer_delivered = st is not None and st.delivered_seq >= dl.sequence
        return dl.kind is EventKind.SNAPSHOT and (newer_accepted or newer_delivered)

    async def drop(self, dl_id: str) -> bool:
        return await self._letters.drop(dl_id)

    async def ping(self) -> None:
        """Raise QueueUnavailable unless the broker answers a metadata request."""
        async def metadata() -> None:
            producer = await self._producing.live()
            await producer.client.fetch_all_metadata()

        await guard("ping", metadata(), min(self._timeout, 5.0))
