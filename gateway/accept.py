"""Accepting agency events: the transition check, the durable append and the accept metrics.

The PUT and progress handlers validate, then hand the normalised events to an :class:`Acceptor`:

* :class:`LocalAcceptor` runs next to a queue it can append to: it checks the ``TrangThaiHoSo``
  transition against the last accepted state, appends, and counts. In the daemon it counts into
  the metrics; in an HTTP acceptor process on the SQLite store (``gateway.acceptor``) it appends
  through :class:`queues.sqlite.SharedSQLiteQueue`, checks each transition inside the append's own
  transaction (several processes write; a cache of states would go stale) and counts into a
  :class:`ShippedCounts`, which sends the tallies to the daemon.
* :class:`ProducingAcceptor` runs in an HTTP acceptor process on Kafka: it asks the daemon to judge
  a snapshot's transition (one small call; the daemon's :class:`LocalAcceptor` keeps the last
  accepted states and notes the new one at once, so the checks of one instance stay serial), then
  produces the event to ``<prefix>.outbound`` itself and answers on the acknowledgement. Progress
  needs no check and goes straight to the topic. A refusal (409) comes back as a :class:`Refusal`
  value and is raised again here; a produce that fails takes its noted state back.

Either way every counter is incremented once, in the daemon, and latency is measured where the
request is, so ``/metrics`` has one histogram for all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from config.schema import Settings
from core.errors import FieldError, QueueUnavailable
from gateway.http_errors import HTTPProblem
from gateway.transitions import classify_transition
from monitoring.metrics import Metrics
from queues.api import Accepted, EventKind, NewEvent, QueueBackend, state_of

STATE_CACHE_MAX = 100_000
SHIP_EVERY_S = 0.02  # at most this often an acceptor process sends its tally (and wakes the engine)


@dataclass(frozen=True)
class Item:
    """One validated event: its normalised payload and the fields truncated to the portal's limits."""

    payload: Mapping[str, Any]
    truncated: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refusal:
    """An HTTP refusal decided by the daemon for a relayed request (pickled across the socket)."""

    status: int
    code: str
    message: str
    errors: tuple[FieldError, ...] = ()

    def problem(self) -> HTTPProblem:
        return HTTPProblem(self.status, self.code, self.message, self.errors)


@dataclass
class Tally:
    """What accepting counted since the last :meth:`ShippedCounts.take`, in plain values (pickled
    to the daemon). ``appended`` says the store has new events: the daemon wakes its engine."""

    snapshots: int = 0
    progress: int = 0
    truncated: Counter[str] = field(default_factory=Counter)
    unusual: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    produced: list[float] = field(default_factory=list)  # outbound produce acknowledgements (Kafka)
    appended: bool = False


class AcceptCounts(Protocol):
    """Where an acceptor counts."""

    def accepted(self, kind: EventKind, n: int) -> None: ...

    def truncated(self, field: str) -> None: ...

    def unusual(self, previous: str, new: str) -> None: ...

    def latency(self, seconds: float) -> None: ...


class MetricsCounts:
    """Counts straight into the daemon's metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._accepted = {kind: metrics.events_accepted.labels(kind=kind.value) for kind in EventKind}

    def accepted(self, kind: EventKind, n: int) -> None:
        self._accepted[kind].inc(n)

    def truncated(self, field: str) -> None:
        self._metrics.truncated_fields.labels(field=field).inc()

    def unusual(self, previous: str, new: str) -> None:
        self._metrics.unusual_transitions.labels(**{"from": previous, "to": new}).inc()

    def latency(self, seconds: float) -> None:
        self._metrics.accept_latency.observe(max(seconds, 0.0))

    def apply(self, tally: Tally) -> None:
        """Add what an acceptor process counted."""
        if tally.snapshots:
            self.accepted(EventKind.SNAPSHOT, tally.snapshots)
        if tally.progress:
            self.accepted(EventKind.PROGRESS, tally.progress)
        for name, n in tally.truncated.items():
            self._metrics.truncated_fields.labels(field=name).inc(n)
        for (previous, new), n in tally.unusual.items():
            self._metrics.unusual_transitions.labels(**{"from": previous, "to": new}).inc(n)
        for seconds in tally.latencies:
            self.latency(seconds)


class ShippedCounts:
    """Counts of an HTTP acceptor process, sent to the daemon by one task: at most one call in
    flight and at most one every :data:`SHIP_EVERY_S`, whatever the request rate. :meth:`appended`
    (called after each durable append) makes the next call wake the daemon's engine."""

    def __init__(self, send: Callable[[Tally], Awaitable[None]]) -> None:
        self._send = send
        self._tally = Tally()
        self._dirty = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    def accepted(self, kind: EventKind, n: int) -> None:
        if kind is EventKind.SNAPSHOT:
            self._tally.snapshots += n
        else:
            self._tally.progress += n
        self._dirty.set()

    def truncated(self, field: str) -> None:
        self._tally.truncated[field] += 1
        self._dirty.set()

    def unusual(self, previous: str, new: str) -> None:
        self._tally.unusual[(previous, new)] += 1
        self._dirty.set()

    def latency(self, seconds: float) -> None:
        self._tally.latencies.append(max(seconds, 0.0))
        self._dirty.set()

    def produced(self, kind: str, seconds: float) -> None:
        """One acknowledged produce (Kafka), for the daemon's produce-latency histogram."""
        self._tally.produced.append(seconds)
        self._dirty.set()

    def appended(self) -> None:
        self._tally.appended = True
        self._dirty.set()

    def take(self) -> Tally:
        taken, self._tally = self._tally, Tally()
        return taken

    def start(self) -> None:
        self._pump = asyncio.create_task(self._run(), name="dvcgw-accept-counts")

    async def close(self) -> None:
        """Stop the task and send what is left (best effort: the daemon may be gone)."""
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
        if self._dirty.is_set():
            with contextlib.suppress(Exception):
                await self._send(self.take())

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            with contextlib.suppress(QueueUnavailable):  # the daemon is gone: the acceptor stops anyway
                await self._send(self.take())
            await asyncio.sleep(SHIP_EVERY_S)


def _count_snapshot(counts: AcceptCounts, item: Item, previous: str | None, new_state: str, verdict: str) -> None:
    """Count one durable snapshot: itself, its transition if unusual, its truncated fields."""
    if verdict == "unusual" or verdict == "tolerated":
        counts.unusual(previous or "", new_state)
    counts.accepted(EventKind.SNAPSHOT, 1)
    for name in item.truncated:
        counts.truncated(name)


async def _append_progress(enqueue: Callable[[Sequence[NewEvent]], Awaitable[list[Accepted]]],
                           counts: AcceptCounts, mahoso: str, items: Sequence[Item], agency: str) -> list[Accepted]:
    """Append progress items of one dossier (no transition to check) and count them."""
    accepted = await enqueue([NewEvent(mahoso, EventKind.PROGRESS, it.payload, agency) for it in items])
    counts.accepted(EventKind.PROGRESS, len(items))
    for it in items:
        for name in it.truncated:
            counts.truncated(name)
    return accepted


class Acceptor(Protocol):
    async def snapshot(self, mahoso: str, item: Item, agency: str) -> Accepted:
        """Append one snapshot; raises HTTPProblem 409 for a forbidden transition (enforce on)."""
        ...

    async def progress(self, mahoso: str, items: Sequence[Item], agency: str) -> list[Accepted]:
        """Append progress items of one dossier, in order."""
        ...

    def observe(self, seconds: float) -> None:
        """Record one accept's latency (request start to durable 202)."""
        ...


@runtime_checkable
class CheckedEnqueue(Protocol):
    """A queue that can run the transition check inside the append's transaction (SQLite, memory)."""

    async def enqueue_checked(self, events: Sequence[NewEvent],
                              check: Callable[[str | None], None]) -> list[Accepted]: ...


class LocalAcceptor:
    """The acceptor next to the queue. As the store's only writer (``cache_states``), it keeps the
    last accepted state of recent dossiers (bounded), so the transition check reads storage only
    for dossiers it has not seen lately; beside other writers it checks inside each append."""

    def __init__(self, queue: QueueBackend, counts: Metrics | AcceptCounts, settings: Settings, *,
                 cache_states: bool = True) -> None:
        self._queue = queue
        self._counts: AcceptCounts = MetricsCounts(counts) if isinstance(counts, Metrics) else counts
        self._enforce = settings.transitions.enforce
        self._cache = cache_states
        self._states: OrderedDict[str, str] = OrderedDict()
        # decided once: a runtime Protocol check costs ~10 µs, too much for every accept
        self._checked: CheckedEnqueue | None = queue if isinstance(queue, CheckedEnqueue) else None

    async def snapshot(self, mahoso: str, item: Item, agency: str) -> Accepted:
        new_state = state_of(EventKind.SNAPSHOT, item.payload) or ""
        events = [NewEvent(mahoso, EventKind.SNAPSHOT, item.payload, agency)]
        previous = self._states.get(mahoso) if self._cache else None
        if previous is not None:  # seen lately: decide before appending, no storage read
            verdict = self._judge(previous, new_state)
            accepted = await self._queue.enqueue(events)
        elif self._checked is not None:  # decided inside the append's transaction
            judged: list[tuple[str | None, str]] = []

            def check(stored: str | None) -> None:
                judged.append((stored, self._judge(stored, new_state)))

            accepted = await self._checked.enqueue_checked(events, check)
            previous, verdict = judged[-1]
        else:
            previous = await self._queue.accepted_state(mahoso)
            verdict = self._judge(previous, new_state)
            accepted = await self._queue.enqueue(events)
        if self._cache:
            self._remember(mahoso, new_state)
        _count_snapshot(self._counts, item, previous, new_state, verdict)
        return accepted[0]

    async def progress(self, mahoso: str, items: Sequence[Item], agency: str) -> list[Accepted]:
        return await _append_progress(self._queue.enqueue, self._counts, mahoso, items, agency)

    def observe(self, seconds: float) -> None:
        self._counts.latency(seconds)

    def _judge(self, previous: str | None, new: str) -> str:
        """The transition's verdict; raises HTTPProblem 409 for an unusual one under enforce."""
        verdict = classify_transition(previous, new)
        if verdict == "unusual" and self._enforce:
            raise HTTPProblem(409, "invalid_transition",
                              f"TrangThaiHoSo may not go from {previous} to {new} ([transitions] enforce = true)",
                              [FieldError("TrangThaiHoSo", f"transition {previous} → {new} is not allowed")])
        return verdict

    def _remember(self, mahoso: str, state: str) -> None:
        self._states[mahoso] = state
        self._states.move_to_end(mahoso)
        if len(self._states) > STATE_CACHE_MAX:
            self._states.popitem(last=False)

    # ---- the daemon's side of a producing acceptor (Kafka, see gateway.acceptor)

    async def relayed_check(self, mahoso: str, new_state: str) -> tuple[str | None, str] | Refusal:
        """Judge a snapshot an acceptor process is about to produce: its previous state and verdict,
        or the refusal. An allowed state is noted at once, so the next check of the dossier, from
        any process of this instance, judges against it; :meth:`relayed_unwind` takes it back."""
        previous = self._states.get(mahoso) if self._cache else None
        if previous is None:
            previous = await self._queue.accepted_state(mahoso)
        try:
            verdict = self._judge(previous, new_state)
        except HTTPProblem as exc:
            return _refusal(exc)
        if self._cache:
            self._remember(mahoso, new_state)
        return previous, verdict

    async def relayed_unwind(self, mahoso: str, new_state: str, previous: str | None) -> None:
        """The produce of a checked snapshot failed: forget its state, unless a later one replaced it."""
        if self._states.get(mahoso) == new_state:
            if previous is None:
                del self._states[mahoso]
            else:
                self._states[mahoso] = previous

    def apply(self, tally: Tally) -> None:
        """Count what an acceptor process counted (its accepts, if it appends itself; its latencies)."""
        if isinstance(self._counts, MetricsCounts):
            self._counts.apply(tally)


def _refusal(exc: HTTPProblem) -> Refusal:
    return Refusal(exc.status, exc.code, exc.message, tuple(exc.errors))


class Relay(Protocol):
    """What a relayed acceptor needs of :class:`queues.remote.RemoteQueue`."""

    async def call(self, method: str, *args: Any) -> Any: ...


class Appends(Protocol):
    """What a producing acceptor needs of :class:`queues.kafka_produce.Appender`."""

    async def enqueue(self, events: Sequence[NewEvent]) -> list[Accepted]: ...


class ProducingAcceptor:
    """The acceptor of an HTTP acceptor process on Kafka: the daemon judges each snapshot's
    transition, this process produces every event itself; counts and latencies go with the
    process's tallies (:class:`ShippedCounts`)."""

    def __init__(self, relay: Relay, appender: Appends, counts: ShippedCounts) -> None:
        self._relay = relay
        self._appender = appender
        self._counts = counts

    async def snapshot(self, mahoso: str, item: Item, agency: str) -> Accepted:
        new_state = state_of(EventKind.SNAPSHOT, item.payload) or ""
        judged = await self._relay.call("accept_check", mahoso, new_state)
        if isinstance(judged, Refusal):
            raise judged.problem()
        previous, verdict = judged
        try:
            accepted = await self._appender.enqueue([NewEvent(mahoso, EventKind.SNAPSHOT, item.payload, agency)])
        except QueueUnavailable:
            with contextlib.suppress(QueueUnavailable):
                await self._relay.call("accept_unwind", mahoso, new_state, previous)
            raise
        _count_snapshot(self._counts, item, previous, new_state, verdict)
        return accepted[0]

    async def progress(self, mahoso: str, items: Sequence[Item], agency: str) -> list[Accepted]:
        return await _append_progress(self._appender.enqueue, self._counts, mahoso, items, agency)

    def observe(self, seconds: float) -> None:
        self._counts.latency(seconds)
