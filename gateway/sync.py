"""The sync engine: claims dossiers from the queue and carries them to the national portal.

Per claimed dossier (spec §1.1, §5): the newest snapshot first (create or update, §5.6), then the
pending progress items in acceptance order, in chunks of at most 10, one chunk at a time, each
chunk recorded before the next is sent (so a crash repeats at most the chunk in flight). Progress
for a dossier the portal does not have is parked. Every failure becomes a recorded outcome
(:func:`classify` gives its class), never an exception in the loop.

The engine has a drain mode for tests: :meth:`SyncEngine.drain` runs the real loop until nothing
is claimable and nothing is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from config.schema import Settings
from core.errors import (
    PortalAlreadyExists,
    PortalAuthFailed,
    PortalForbidden,
    PortalNotFound,
    PortalRejected,
    PortalThrottled,
    QueueUnavailable,
    TransientError,
)
from gateway.circuit import PortalGate
from monitoring.metrics import PORTAL, Metrics
from queues.api import EngineQueue, ErrorInfo, Event, Outcome, OutcomeClass, Work

log = logging.getLogger("dvcgw.sync")

PROGRESS_CHUNK = 10


class Portal(Protocol):
    """What the engine needs from the national-portal client."""

    async def lookup(self, mahoso: str) -> bool: ...

    async def sync_dossiers(self, dossiers: Sequence[Mapping[str, Any]], *, updating: bool) -> None: ...

    async def push_progress(self, items: Sequence[Mapping[str, Any]]) -> None: ...


def classify(exc: BaseException) -> OutcomeClass:
    """The outcome class of a failed portal call (spec §9; also the metric label value)."""
    if isinstance(exc, PortalAlreadyExists):
        return OutcomeClass.EXISTS
    if isinstance(exc, PortalForbidden):
        return OutcomeClass.FORBIDDEN
    if isinstance(exc, PortalAuthFailed):
        return OutcomeClass.AUTH_FAILED
    if isinstance(exc, PortalRejected):
        return OutcomeClass.REJECTED
    if isinstance(exc, PortalThrottled):
        return OutcomeClass.THROTTLED
    return OutcomeClass.RETRYABLE


def error_info(exc: BaseException) -> ErrorInfo:
    """The error as stored: the portal's code and message verbatim where it sent them."""
    cls = classify(exc)
    if isinstance(exc, PortalRejected | PortalAuthFailed):
        return ErrorInfo(cls, exc.code, exc.portal_message)
    if isinstance(exc, TransientError):
        return ErrorInfo(cls, type(exc).__name__, str(exc))
    return ErrorInfo(cls, "internal", f"{type(exc).__name__}: {exc}")


@dataclass
class _Progressing:
    """A claimed dossier on its way through one delivery round."""

    work: Work
    known: bool
    released: bool = False
    stopped: bool = False  # a failure scheduled a retry: deliver nothing more this round
    lost: ErrorInfo | None = None  # the portal had lost the dossier; it was sent again as a create
    recorded: list[tuple[Outcome, float]] = field(default_factory=list)  # for the observer


#: Told, once a delivery round is over, of every outcome the queue recorded for each dossier of it:
#: (the claimed work, its outcomes in order, each with the record's time). A round records a
#: dossier's snapshot and its progress apart; told together, the observer sees the dossier's
#: events once. It runs on the event loop and must not raise or block (the 766 indicators,
#: monitoring/kpi, are the one observer today).
Observer = Callable[[Work, Sequence[tuple[Outcome, float]]], None]


class SyncEngine:
    def __init__(self, queue: EngineQueue, portal: Portal, settings: Settings, metrics: Metrics, *,
                 clock: Callable[[], float] = time.time, rng: Callable[[], float] = random.random,
                 observer: Observer | None = None) -> None:
        self._q = queue
        self._observer = observer
        self._portal = portal
        self._s = settings
        self._m = metrics
        self._clock = clock
        self._rng = rng
        self.gate = PortalGate(settings.circuit.failure_threshold, settings.circuit.cool_down, clock, metrics)
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._throttles: weakref.WeakSet[BaseException] = weakref.WeakSet()  # 429s whose wait is counted

    # ------------------------------------------------------------------ loops

    async def run(self) -> None:
        """Deliver until :meth:`stop`; idle waits end as soon as new work is accepted."""
        while not self._stopping.is_set():
            started = await self._dispatch()
            if started:
                continue
            await self._idle_wait()

    async def drain(self, timeout: float = 60.0) -> None:
        """Run the real loop until nothing is claimable now and nothing is in flight."""
        async with asyncio.timeout(timeout):
            while True:
                started = await self._dispatch()
                if self._inflight:
                    await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                elif not started:
                    return

    async def stop(self, grace: float) -> None:
        """Stop claiming; let deliveries in flight finish within ``grace`` seconds, then cancel them
        (their claims are released at the next start, and the events stay durable)."""
        self._stopping.set()
        if self._inflight:
            _, pending = await asyncio.wait(self._inflight, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _idle_wait(self) -> None:
        now = self._clock()
        wait: float = self._s.queue.poll_interval
        due = await self._q.next_due_at()
        if due is not None:
            wait = min(wait, max(due - now, 0.0))
        if self.gate.reopens_at is not None:
            wait = min(wait, max(self.gate.reopens_at - now, 0.0))
        if self._inflight:
            wait = min(wait, 0.05)
        await self._q.wait_for_work(max(wait, 0.01))

    async def _dispatch(self) -> int:
        room = self.gate.capacity(self._s.portal.max_concurrency - len(self._inflight))
        if room <= 0:
            return 0
        size = self._s.portal.batch_size
        # room counts delivery tasks; each task carries up to batch_size dossiers
        works = await self._q.claim(room * size, self._clock())
        if not works:
            self.gate.release_probe()
            return 0
        groups = [works[i:i + size] for i in range(0, len(works), size)] if size > 1 else [[w] for w in works]
        for group in groups:
            task = asyncio.create_task(self._deliver(group))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return len(works)

    # ------------------------------------------------------------------ one round

    async def _deliver(self, works: list[Work]) -> None:
        items = [_Progressing(w, w.known_on_portal) for w in works]
        try:
            with_snapshot = [it for it in items if it.work.snapshot is not None]
            if with_snapshot:
                await self._push_snapshots(with_snapshot)
            await asyncio.gather(*(self._push_progress(it) for it in items if not it.stopped))
        except QueueUnavailable as exc:  # the queue went away mid-round (a broker outage): no bug, not the portal
            log.warning("delivery round stopped: %s; its claims go back to the queue", exc)
        except Exception as exc:  # a bug must not lose work: schedule a retry for what is left
            log.exception("delivery round failed unexpectedly")
            for it in items:
                if not it.released:
                    with contextlib.suppress(QueueUnavailable):
                        await self._fail(it, exc, ())
        finally:
            for it in items:
                if not it.released:
                    # an unavailable queue takes the claim back itself (its lease runs out, or Kafka
                    # re-reads the partition); the events stay durable
                    with contextlib.suppress(QueueUnavailable):
                        await self._record(it, Outcome(), release=True)
            if self._observer is not None:
                for it in items:
                    if it.recorded:
                        self._observer(it.work, it.recorded)

    async def _record(self, it: _Progressing, outcome: Outcome, *, release: bool) -> None:
        now = self._clock()
        await self._q.record(it.work, outcome, now, release=release)
        it.released = it.released or release
        if self._observer is not None:
            it.recorded.append((outcome, now))

    # ------------------------------------------------------------------ snapshots

    async def _push_snapshots(self, items: list[_Progressing]) -> None:
        if self._s.portal.lookup_before_create:
            await asyncio.gather(*(self._lookup(it) for it in items if not it.known))
        live = [it for it in items if not it.stopped]
        for updating in (True, False):
            part = [it for it in live if it.known is updating]
            size = self._s.portal.batch_size
            for i in range(0, len(part), size):
                await self._send_batch(part[i:i + size], updating)

    async def _lookup(self, it: _Progressing) -> None:
        try:
            it.known = await self._portal.lookup(it.work.mahoso)
        except Exception as exc:
            # spec §5.3: a lookup that is not OK means "unknown": retry it, never guess or dead-letter
            await self._fail(it, exc, _pending_ids(it.work), never_dead=True)
            return
        self.gate.success()

    async def _send_batch(self, batch: list[_Progressing], updating: bool) -> None:
        payloads = [it.work.snapshot.payload for it in batch if it.work.snapshot is not None]
        try:
            await self._portal.sync_dossiers(payloads, updating=updating)
        except PortalRejected as exc:
            if len(batch) > 1:  # one bad dossier must not hide the others' results
                for it in batch:
                    await self._send_batch([it], updating)
                return
            if isinstance(exc, PortalAlreadyExists) and not updating:
                self._count(OutcomeClass.EXISTS, "create")
                batch[0].known = True
                await self._send_batch(batch, True)
                return
            if isinstance(exc, PortalNotFound) and updating and batch[0].lost is None:
                await self._recreate(batch[0], exc)
                return
            await self._fail(batch[0], exc, (_snap_id(batch[0]),), release=not batch[0].work.progress)
            return
        except Exception as exc:
            for it in batch:
                await self._fail(it, exc, _pending_ids(it.work))
            return
        self.gate.success()
        self._delivered("update" if updating else "create", [it.work.snapshot for it in batch if it.work.snapshot])
        for it in batch:
            it.known = True
        # recorded concurrently, so the queue commits the whole batch in one transaction (one fsync)
        await asyncio.gather(*(self._record(it, Outcome(delivered=(_snap_id(it),), known_on_portal=True,
                                                        error=it.lost), release=not it.work.progress)
                               for it in batch))

    async def _recreate(self, it: _Progressing, exc: PortalNotFound) -> None:
        """The portal refused an update because it does not hold the dossier (spec §5.6 the other
        way round): forget that it has it and send the same body as a create, once per round. The
        dossier's status keeps the portal's words as its last error, and the metric counts it."""
        log.warning("the portal no longer holds a dossier it had; sending it again as a create")
        self._count(OutcomeClass.NOT_FOUND, "update")
        it.known = False
        it.lost = ErrorInfo(OutcomeClass.NOT_FOUND, exc.code, exc.portal_message)
        await self._record(it, Outcome(known_on_portal=False), release=False)
        await self._send_batch([it], False)

    # ------------------------------------------------------------------ progress

    async def _push_progress(self, it: _Progressing) -> None:
        progress = list(it.work.progress)
        if not progress or it.stopped:
            return
        if not it.known:
            await self._lookup(it)
            if it.stopped:
                return
            if not it.known:
                await self._record(it, Outcome(parked=tuple(e.event_id for e in progress)), release=True)
                return
            await self._record(it, Outcome(known_on_portal=True), release=False)
        for start in range(0, len(progress), PROGRESS_CHUNK):
            chunk = progress[start:start + PROGRESS_CHUNK]
            last = start + PROGRESS_CHUNK >= len(progress)
            if not await self._send_chunk(it, chunk, last, progress[start:]):
                return

    async def _send_chunk(self, it: _Progressing, chunk: list[Event], last: bool, rest: list[Event]) -> bool:
        ids = tuple(e.event_id for e in chunk)
        try:
            await self._portal.push_progress([e.payload for e in chunk])
        except PortalRejected as exc:
            await self._fail(it, exc, ids, release=last)
            return not it.stopped
        except Exception as exc:
            await self._fail(it, exc, tuple(e.event_id for e in rest))
            return False
        self.gate.success()
        self._delivered("progress", chunk)
        await self._record(it, Outcome(delivered=ids), release=last)
        return True

    # ------------------------------------------------------------------ failures

    async def _fail(self, it: _Progressing, exc: BaseException, event_ids: tuple[str, ...], *,
                    release: bool = True, never_dead: bool = False) -> None:
        """Turn a failed call into a recorded outcome (spec §9 and the issue's outcome table).
        With ``never_dead`` a business error is retried on the ladder instead of dead-lettered."""
        cls = classify(exc)
        if never_dead and cls in (OutcomeClass.REJECTED, OutcomeClass.EXISTS):
            cls = OutcomeClass.RETRYABLE
        snap = it.work.snapshot
        with_snapshot = snap is not None and snap.event_id in event_ids
        self._count(cls, ("update" if it.known else "create") if with_snapshot else "progress")
        info = error_info(exc)
        if info.cls != cls:
            info = ErrorInfo(cls, info.code, info.message)
        now = self._clock()
        if cls in (OutcomeClass.REJECTED, OutcomeClass.EXISTS):
            self.gate.success()  # the portal answered: it is up
            await self._record(it, Outcome(dead=event_ids, error=info), release=release)
            return
        it.stopped = True
        if cls in (OutcomeClass.AUTH_FAILED, OutcomeClass.FORBIDDEN):
            self.gate.pause(cls)
            log.error("portal refused credentials (%s): delivery paused; a person must act", cls)
            outcome = Outcome(retry_at=now + self._s.circuit.cool_down, count_attempt=False, error=info)
        elif cls is OutcomeClass.THROTTLED:
            self.gate.release_probe()
            wait = exc.retry_after if isinstance(exc, PortalThrottled) and exc.retry_after else None
            delay = wait if wait is not None else self._ladder(it.work.attempts)
            if exc not in self._throttles:  # one 429 holding back a whole batch is counted once
                self._throttles.add(exc)
                self._m.throttled_wait.labels(PORTAL).inc(delay)
            outcome = Outcome(retry_at=now + delay, error=info)
        else:
            self.gate.failure()
            outcome = self._retry_or_give_up(it.work, event_ids, info, now)
        await self._record(it, outcome, release=True)

    def _retry_or_give_up(self, work: Work, event_ids: tuple[str, ...], info: ErrorInfo, now: float) -> Outcome:
        first = work.first_failure_at if work.first_failure_at is not None else now
        if now - first >= self._s.retry.give_up_after:
            return Outcome(dead=event_ids, error=info)
        return Outcome(retry_at=now + self._ladder(work.attempts), error=info)

    def _ladder(self, attempts: int) -> float:
        delays = self._s.retry.delays
        base = float(delays[min(attempts, len(delays) - 1)])
        jitter = self._s.retry.jitter
        return base * (1 - jitter + 2 * jitter * self._rng()) if jitter else base

    def _count(self, cls: OutcomeClass, operation: str, n: int = 1) -> None:
        """``operation``: create, update or progress."""
        self._m.delivered(operation, cls, n)

    def _delivered(self, operation: str, events: Sequence[Event]) -> None:
        """The portal accepted ``events``: count them, and each one's lag since it was accepted."""
        self._count(OutcomeClass.OK, operation, len(events))
        now = self._clock()
        for e in events:
            self._m.observe_lag(e.kind, now - e.accepted_at)


def _snap_id(it: _Progressing) -> str:
    assert it.work.snapshot is not None
    return it.work.snapshot.event_id


def _pending_ids(work: Work) -> tuple[str, ...]:
    ids = [work.snapshot.event_id] if work.snapshot is not None else []
    return tuple(ids + [e.event_id for e in work.progress])
