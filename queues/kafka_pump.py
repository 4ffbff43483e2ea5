"""The pump: this instance's group consumer of ``outbound`` and the retry topics.

The instances of one ``group_id`` share the partitions with the range assignor, so partition ``p``
of every input topic goes to the same instance, the owner of the dossiers hashed to ``p``. Each
round the pump fetches, hands every record to the :class:`~queues.kafka_owner.Owner` and settles
what the owner forwarded, writes the intake that waited too long, the watermarks and, at most every
``_COMMIT_S``, the offsets whose outcome is durable. A retry record not yet due makes it seek back to
that record, pause the partition and resume it on a timer (or when the engine's clock passes the
due time). On assignment the partitions stay paused until the previous owner's states are read; on
revocation claims in flight may finish (bounded by the lease) before the partitions are forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError

from config.schema import KafkaSettings
from monitoring.metrics import KafkaMetrics
from queues.kafka_codec import H_CONTROL, H_DUE, Topics, header_map
from queues.kafka_marks import Offsets, Watermarks
from queues.kafka_owner import Forwards, Owner
from queues.kafka_produce import fetch_options, quietly
from queues.kafka_view import View

log = logging.getLogger("queues.kafka")
_COMMIT_S = 0.1  # the pump commits offsets (and refreshes the lag gauges) at most this often
SESSION_MS = 6000  # the group session, and how long the coordinator waits for members to rejoin
#: The least request time-out of the group consumer. A JoinGroup request is answered only once every
#: member has rejoined, so it may wait the whole rebalance time-out on the coordinator: after a broker
#: restart the group it reloads still names this instance's old member until its session ends. With a
#: shorter time-out (``[queue.kafka] request_timeout`` = "3s") each join timed out, marked the
#: coordinator dead and joined again, and the group could take minutes to assign anything. The Java
#: client waits rebalance time-out + 5 s for a join (KIP-62, KAFKA-5570); aiokafka uses the client's
#: request time-out for every request, so the group consumer gets at least that.
JOIN_TIMEOUT_MS = SESSION_MS + 5000


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, pump: Pump) -> None:
        self.pump = pump

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.pump.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.pump.assigned(set(assigned))


class Pump:
    """The group consumer and what only it changes: the assignment, the paused partitions with
    their resume timers, and (through :class:`~queues.kafka_marks.Offsets`) the positions and commits."""

    def __init__(self, *, kafka: KafkaSettings, client_opts: dict[str, Any], topics: Topics, owner: Owner,
                 offsets: Offsets, marks: Watermarks, view: View, metrics: KafkaMetrics,
                 now: Callable[[], float], wake: asyncio.Event, lease_s: float, timeout: float) -> None:
        """``now``: the queue's clock (ladder due times); ``wake``: set when work may be claimable."""
        self._k = kafka
        self._opts = client_opts
        self._topics = topics
        self._owner = owner
        self._offsets = offsets
        self._marks = marks
        self._view = view
        self._metrics = metrics
        self._now = now
        self._wake = wake
        self._lease_s = lease_s
        self._timeout = timeout
        self._consumer: AIOKafkaConsumer | None = None
        self._assigned: set[TopicPartition] = set()
        self._revoking: set[int] = set()
        self._paused: dict[TopicPartition, tuple[float, asyncio.TimerHandle]] = {}
        self._pumped = asyncio.Event()  # replaced after every round; set() wakes the waiters once
        self._assigned_once = asyncio.Event()
        self._committed_at = 0.0
        self._closing = False
        self._suspended = False  # unsubscribed while the broker is unreachable (suspend/resume)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the consumer and subscribe (the assignment arrives later, see :meth:`wait_assigned`)."""
        opts = {**self._opts, "request_timeout_ms": max(self._opts["request_timeout_ms"], JOIN_TIMEOUT_MS)}
        self._consumer = AIOKafkaConsumer(
            group_id=self._k.group_id, enable_auto_commit=False, auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,), session_timeout_ms=SESSION_MS,
            rebalance_timeout_ms=SESSION_MS, heartbeat_interval_ms=1000, max_poll_interval_ms=300_000,
            **fetch_options(self._k), **opts,
        )
        await self._consumer.start()
        self._consumer.subscribe([self._topics.outbound, *self._topics.retry_names], listener=_Listener(self))

    async def wait_assigned(self, timeout: float) -> None:
        """Return once a first assignment was set up, or after ``timeout``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._assigned_once.wait(), timeout)

    def halt(self) -> None:
        """Make :meth:`run` end after its current round (the queue's close() also cancels it)."""
        self._closing = True

    def cancel_timers(self) -> None:
        """Cancel the resume timers of the paused partitions (on close, once the loops have ended)."""
        for _, handle in self._paused.values():
            handle.cancel()

    def suspend(self) -> None:
        """The broker is unreachable: unsubscribe, so the consumer fetches nothing (for a partition
        whose leader the last metadata did not name, aiokafka's fetcher forces a metadata update
        after every failed one, with no back-off), and give the partitions up as on a revocation,
        without the commit (nothing reaches the broker): what was taken in since the last commit
        is read again when the group assigns the partitions anew after :meth:`resume`."""
        if self._suspended or self._consumer is None:
            return
        self._suspended = True
        self._consumer.unsubscribe()
        self._release(set(self._assigned))

    def resume(self) -> None:
        """The broker answers again: subscribe again (the group assigns the partitions anew)."""
        if not self._suspended or self._consumer is None:
            return
        self._suspended = False
        self._consumer.subscribe([self._topics.outbound, *self._topics.retry_names], listener=_Listener(self))

    async def stop(self) -> None:
        """Commit what is durable and stop the consumer; bounded even with a dead broker."""
        if self._consumer is not None:
            await quietly(self._commit(), 5.0)
            await quietly(self._consumer.stop(), 10.0)

    # ------------------------------------------------------------------ what the others may ask

    def partitions(self) -> set[int]:
        """The partitions this instance owns and has set up."""
        return {tp.partition for tp in self._assigned}

    def owns(self, partition: int) -> bool:
        """Whether this instance owns ``partition`` (of every input topic)."""
        return any(tp.partition == partition for tp in self._assigned)

    def has(self, tp: TopicPartition) -> bool:
        """Whether ``tp`` is assigned and set up."""
        return tp in self._assigned

    def is_paused(self, tp: TopicPartition) -> bool:
        """Whether ``tp`` waits for a retry record to fall due."""
        return tp in self._paused

    def revoking(self) -> frozenset[int]:
        """Partitions being revoked: their dossiers must not be claimed any more."""
        return frozenset(self._revoking)

    def paused_dues(self) -> list[float]:
        """When each paused partition's next retry record falls due."""
        return [due for due, _ in self._paused.values()]

    async def next_round(self, timeout: float) -> None:
        """Return when the pump's current round ends, or after ``timeout``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._pumped.wait(), timeout)

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Pump until :meth:`halt`; errors propagate (the queue's supervisor logs and restarts)."""
        assert self._consumer is not None
        while not self._closing:
            self.resume_due()
            batch = await self._consumer.getmany(timeout_ms=50, max_records=2000)
            forwards = Forwards()
            for tp, records in batch.items():
                for rec in records:
                    if not await self._ingest(tp, rec, forwards):
                        break
            await self._owner.settle(forwards)
            await self._owner.flush_intake()
            await self._marks.write([tp for tp in self._assigned if tp.topic == self._topics.outbound
                                     and tp.partition not in self._revoking])
            await self._commit_now_and_then()
            pumped, self._pumped = self._pumped, asyncio.Event()
            pumped.set()
            if batch:
                self._wake.set()

    async def _ingest(self, tp: TopicPartition, rec: ConsumerRecord[Any, Any], forwards: Forwards) -> bool:
        """Take one record into the owner's memory; False stops the partition's batch (not yet due,
        or the partition is still being set up: then the consumer is sent back to the record, since
        a fetched record that is skipped without a seek is never fetched again)."""
        if tp in self._paused or self._suspended:
            return False
        if tp not in self._assigned:
            assert self._consumer is not None
            if tp in self._consumer.assignment():
                self._consumer.seek(tp, rec.offset)
            return False
        hs = header_map(rec.headers)
        if tp.topic != self._topics.outbound and self._hold_until_due(tp, rec.offset, float(hs[H_DUE])):
            return False
        if rec.value is None:
            pass
        elif H_CONTROL in hs:
            self._owner.unpark_held(hs[H_CONTROL].removeprefix("unpark:"))
        else:
            try:
                await self._owner.take(tp, rec, hs, forwards)
            except KafkaError:  # a forward the producer refused (paused): take the partition in again later
                self.rewind(tp.partition)
                return False
        # only now: the read-your-writes barrier must not pass a record still being taken in
        self._offsets.advance(tp, rec.offset + 1)
        return True

    async def _commit_now_and_then(self) -> None:
        now = time.monotonic()
        # a commit per fetched batch was a round trip each; none while suspended (nothing to commit to)
        if now - self._committed_at >= _COMMIT_S and not self._suspended:
            self._committed_at = now
            await self._commit()
            self._update_lag()

    async def _commit(self) -> None:
        """Commit, per owned partition, the lowest offset whose outcome is not yet durable."""
        assert self._consumer is not None
        offsets = self._offsets.to_commit(self._assigned)
        if not offsets or self._suspended:
            return
        started = time.perf_counter()
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            log.info("kafka commit skipped: %s", type(exc).__name__)
            return
        self._metrics.commit_latency.observe(time.perf_counter() - started)
        self._offsets.committed_to(offsets)

    def _update_lag(self) -> None:
        assert self._consumer is not None
        depth = {name: 0 for name in self._topics.retry_names}
        for tp in self._assigned:
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            committed = self._offsets.committed(tp) or 0
            position = self._offsets.position(tp)
            lag = max(0, high - (committed if position is None else position))
            self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
            if tp.topic in depth:
                depth[tp.topic] += max(0, high - committed)
        for name, n in depth.items():
            self._metrics.ladder_depth.labels(name.rsplit(".", 1)[-1]).set(n)

    # ------------------------------------------------------------------ retry timers

    def _hold_until_due(self, tp: TopicPartition, offset: int, due: float) -> bool:
        """A ladder record not yet due: seek back to it, pause the partition, resume on a timer."""
        now = self._now()
        if due <= now:
            return False
        assert self._consumer is not None
        self._consumer.seek(tp, offset)
        self._consumer.pause(tp)
        self._offsets.advance(tp, offset)
        handle = asyncio.get_running_loop().call_later(due - now, self._resume, tp)
        self._paused[tp] = (due, handle)
        return True

    def resume_due(self) -> None:
        """Resume the paused partitions whose retry record is due by the queue's clock."""
        current = self._now()
        for tp, (due, _) in list(self._paused.items()):
            if due <= current:
                self._resume(tp)

    def _resume(self, tp: TopicPartition) -> None:
        self._unpause(tp)
        if self._consumer is not None and tp in self._assigned and not self._suspended:
            self._consumer.resume(tp)
        self._wake.set()

    def _unpause(self, tp: TopicPartition) -> None:
        entry = self._paused.pop(tp, None)
        if entry is not None:
            entry[1].cancel()

    # ------------------------------------------------------------------ rewind and rebalance

    def rewind(self, partition: int) -> None:
        """After a failed write, forget ``partition``'s memory and re-read it from the last commit."""
        assert self._consumer is not None
        if self._suspended:  # given up already: read again when assigned anew
            return
        log.warning("kafka partition %d: a write failed; re-reading it from the last commit", partition)
        self._owner.forget({partition})
        for tp in [tp for tp in self._assigned if tp.partition == partition]:
            self._marks.forget(tp)
            if tp in self._paused:
                self._resume(tp)
            self._consumer.seek(tp, self._offsets.rewind(tp))

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        """Let in-flight claims of the revoked partitions finish (bounded), commit, forget them."""
        self._metrics.rebalances.labels("revoked").inc()
        parts = {tp.partition for tp in revoked}
        self._revoking |= parts
        deadline = time.monotonic() + min(self._lease_s, 20.0)
        # polling: a lease ends in record(), in whichever task the engine runs it
        while time.monotonic() < deadline and self._owner.has_leases(parts):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        with contextlib.suppress(Exception):
            await self._commit()
        self._release(revoked)
        self._revoking -= parts

    def _release(self, tps: set[TopicPartition]) -> None:
        """Forget ``tps``: their pause timers, positions, intake and dossiers."""
        for tp in tps:
            self._unpause(tp)
            self._offsets.forget(tp)
            self._marks.release(tp)
        self._owner.forget({tp.partition for tp in tps})
        self._assigned -= tps

    async def assigned(self, assigned: set[TopicPartition]) -> None:
        """Before taking partitions, read the dossier states their previous owner wrote."""
        self._metrics.rebalances.labels("assigned").inc()
        parts = sorted({tp.partition for tp in assigned})
        assert self._consumer is not None
        # nothing of these partitions may be taken in before the previous owner's state is read
        self._consumer.pause(*assigned)
        with contextlib.suppress(Exception):
            await self._view.catch_up([TopicPartition(self._topics.state, p) for p in parts], self._timeout)
        for tp in assigned:
            with contextlib.suppress(Exception):
                pos = await self._consumer.position(tp)
                self._offsets.start(tp, pos)
        log.info("kafka assigned %s", sorted((tp.topic, tp.partition, self._offsets.position(tp)) for tp in assigned))
        self._assigned |= assigned
        self._consumer.resume(*(tp for tp in assigned if tp not in self._paused))
        self._assigned_once.set()
        self._wake.set()
