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

:class:`KafkaQueue` is the ``QueueBackend`` facade: it builds the parts below, starts and stops
them, and delegates. Each part owns its fields and is changed only through its own methods.

* :class:`~queues.kafka_accepts.Accepts`: appends accepted events (and un-park requests) to
  ``outbound``; remembers this instance's own accepts.
* :class:`~queues.kafka_pump.Pump`: the group consumer, its assignment and rebalances, the paused
  ladder partitions with their resume timers, commits.
* :class:`~queues.kafka_owner.Owner`: the owned dossiers in memory, their leases, claim and record,
  the ladder forwards and the (batched) state writes.
* :class:`~queues.kafka_marks.Offsets` and :class:`~queues.kafka_marks.Watermarks`: per input
  partition, what was taken in, what is resolved and committed, what no state write covers yet.
* :class:`~queues.kafka_reads.Reads`: the claim and status read barriers, status and accepted state.
* :class:`~queues.kafka_letters.DeadLetters`: write, list, replay and drop dead letters.
* Shared by them: :class:`~queues.kafka_view.View` (every instance's materialised ``dossier-state``
  and ``dlq``), :class:`~queues.kafka_produce.Producing` (the one producer, paused while the broker
  is unreachable: the facade's watch asks the view's consumer when sends stall), the wire formats in
  :mod:`queues.kafka_codec` and the metrics in :class:`monitoring.metrics.KafkaMetrics`.

All methods raise only :class:`~core.errors.QueueUnavailable` from the error tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from config.schema import Settings
from monitoring.metrics import KafkaMetrics
from queues.api import (
    Accepted,
    DeadLetter,
    DeadLetterPage,
    DossierStatus,
    NewestSnapshot,
    NewEvent,
    Outcome,
    QueueStats,
    ReplayResult,
    Work,
)
from queues.kafka_accepts import Accepts
from queues.kafka_codec import Topics, topics_for
from queues.kafka_letters import DeadLetters
from queues.kafka_marks import Offsets, Watermarks
from queues.kafka_owner import Owner
from queues.kafka_produce import BACKOFF_S, Producing, client_options, fetch_options, guard, partition_of, quietly
from queues.kafka_pump import Pump
from queues.kafka_reads import Reads
from queues.kafka_retention import apply_configs, finished_before, topic_configs
from queues.kafka_view import View

log = logging.getLogger(__name__)
_STATS_S = 0.5  # stats() answers from its last computation for this long
_WATCH_S = 0.25  # how often the broker watch looks at the clients (see KafkaQueue._watch_broker)


class KafkaQueue:
    """The QueueBackend on Apache Kafka; one instance per ``dvcgw serve`` process."""

    def __init__(self, settings: Settings, *, metrics_registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
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
        self._reads = Reads(view=self._view, pump=self._pump, offsets=self._offsets, owner=self._owner,
                            accepts=self._accepts, topics=self.topics, partitions=self._parts)
        self._tasks: list[asyncio.Task[None]] = []
        self._stats: tuple[float, QueueStats] | None = None
        self._closing = False
        self._away = False  # the broker watch found it unreachable: producing paused, fetching stopped
        self._asked_at = 0.0  # when the watch last asked the broker (time.monotonic())

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
        self._tasks.append(asyncio.create_task(self._supervise(self._watch_broker, "watch")))
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

    async def _watch_broker(self) -> None:
        """Stop every client while the broker is unreachable. aiokafka retries a failed connection
        at once, with no back-off, where the last metadata named no leader for a partition (a
        broker that shut down names none): each client then spins, forcing metadata updates that
        fail at once, until the broker returns (docs/decisions.md, "a broker outage").

        Every :data:`_WATCH_S`: when sends have waited that long unacknowledged, or the view has had
        no fetch answered for longer than its fetches may wait, ask the broker for metadata (at
        most every :data:`~queues.kafka_produce.BACKOFF_S`; a slow broker still answers). If it
        does not answer within ``request_timeout``, pause producing and stop both consumers (the
        pump gives its partitions up); then ask every ``BACKOFF_S`` and start them again once it
        answers."""
        quiet_s = 2 * float(self._k.fetch_max_wait) + 0.5
        while not self._closing:
            await asyncio.sleep(_WATCH_S)
            if self._away or self._producing.stalled(_WATCH_S) or not self._view.fetched_within(quiet_s):
                await self._ask_broker()

    async def _ask_broker(self) -> None:
        now = time.monotonic()
        if now - self._asked_at < BACKOFF_S:
            return
        self._asked_at = now
        reachable = await self._view.reachable(self._timeout)
        if reachable and self._away:
            log.info("kafka broker reachable again: fetching resumed")
            self._away = False
            self._view.resume()
            self._pump.resume()
            self._producing.retry_now()
        elif not reachable and not self._away:
            log.warning("kafka broker unreachable: producing paused and fetching stopped until it answers "
                        "(asked every %.0f s)", BACKOFF_S)
            self._away = True
            await self._producing.pause()
            self._view.suspend()
            self._pump.suspend()

    async def _create_topics(self) -> None:
        admin = AIOKafkaAdminClient(**self._opts)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            rf = self._k.replication_factor
            configs = topic_configs(self.topics, self._settings)  # queues/kafka_retention.py
            missing = [NewTopic(name, self._parts, rf, topic_configs=cfg) for name, cfg in configs.items()
                       if name not in existing]
            if missing:
                await admin.create_topics(missing)
            older = {name: cfg for name, cfg in configs.items() if name in existing}
            if older:
                await apply_configs(admin, older)
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

    async def enqueue(self, events: Sequence[NewEvent],
                      check: Callable[[str | None], None] | None = None) -> list[Accepted]:
        """Produce ``events`` (one dossier) to outbound and wait for ``acks=all`` (see
        :class:`~queues.kafka_accepts.Accepts`). ``check`` sees the last state this instance knows
        (its own accepts, else the shared view), with the dossier's appends on this instance taken
        one at a time. Raises QueueUnavailable when the produce was not acknowledged in time."""
        if check is None or not events:
            return await self._accepts.append(events)
        mahoso = events[0].mahoso
        async with self._accepts.turn(mahoso):
            check(self._reads.accepted_state(mahoso))
            return await self._accepts.append(events)

    # ------------------------------------------------------------------ claim and record

    async def claim(self, limit: int, now: float) -> list[Work]:
        self._tick(now)
        await self._reads.own_accepts_taken_in()
        return self._owner.claim(limit, now, self._pump.revoking())

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

    async def status(self, mahoso: str) -> DossierStatus | None:
        """See :meth:`Reads.status <queues.kafka_reads.Reads.status>` (read-your-writes on any instance)."""
        return await self._reads.status(mahoso)

    async def accepted_state(self, mahoso: str) -> str | None:
        """See :meth:`Reads.accepted_state <queues.kafka_reads.Reads.accepted_state>` (eventually
        consistent across instances, no broker round trip)."""
        return self._reads.accepted_state(mahoso)

    async def newest_snapshot(self, mahoso: str) -> NewestSnapshot | None:
        """Always None on Kafka. The instance's view (queues/kafka_view.py) keeps each dossier's states,
        sequences and delivery marks, not payloads; the payload lives only in the accepts topic, and
        reading it back would mean finding and fetching the record on the dossier's partition from
        whichever instance owns it. A caller that needs the newest payload (the payment's "paid
        online" mark) relies on the accept path's overlay instead: the next snapshot carries it."""
        return None

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
        result = QueueStats(by_state=by_state, oldest_pending_at=oldest,
                            dead_letters_by_reason=self._letters.open_by_reason())
        self._stats = (time.monotonic(), result)
        return result

    # ------------------------------------------------------------------ dead letters

    async def dead_letters(self, cursor: str | None, limit: int) -> DeadLetterPage:
        return self._letters.page(cursor, limit)

    async def dead_letter(self, dl_id: str) -> DeadLetter | None:
        return self._letters.get(dl_id)

    async def replay(self, dl_id: str, now: float) -> ReplayResult:
        """See :meth:`DeadLetters.replay <queues.kafka_letters.DeadLetters.replay>`."""
        return await self._letters.replay(dl_id, self._reads.overtaken)

    async def drop(self, dl_id: str) -> bool:
        return await self._letters.drop(dl_id)

    async def prune(self, before: float, limit: int) -> int:
        """See :meth:`queues.api.QueueBackend.prune`; here, per dead letter of the dossiers whose
        partitions this instance owns (queues/kafka_retention.py: the topics' own bounds do the rest)."""
        def due(mahoso: str) -> bool:
            return (self._pump.owns(partition_of(mahoso, self._parts))
                    and finished_before(self._owner.known_state(mahoso), before))

        return await self._letters.prune(due, limit, float(self._k.segment_time))

    async def ping(self) -> None:
        """Raise QueueUnavailable unless the broker answers a metadata request."""
        async def metadata() -> None:
            producer = await self._producing.live()
            await producer.client.fetch_all_metadata()

        await guard("ping", metadata(), min(self._timeout, 5.0))
