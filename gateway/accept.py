"""Accepting agency events: the transition check, the durable append and the accept metrics.

The PUT and progress handlers validate, then hand the validated events to the :class:`Acceptor`.
For a snapshot it judges the ``TrangThaiHoSo`` transition against the dossier's last accepted
state, appends, and counts. The daemon is the only writer of its store, so it keeps the last
accepted state of recent dossiers (bounded) and reads storage only for the others. A state is
noted before the append is awaited, so concurrent snapshots of one dossier are judged one after
the other; an append that fails takes its note back.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from config.schema import Settings
from core.errors import TransitionRefused
from gateway.dossier import Validated
from gateway.transitions import classify_transition
from monitoring.metrics import Metrics
from queues.api import Accepted, EventKind, NewEvent, QueueBackend, state_of

STATE_CACHE_MAX = 100_000


class Acceptor:
    """Appends validated events to the queue and counts them into the metrics."""

    def __init__(self, queue: QueueBackend, metrics: Metrics, settings: Settings) -> None:
        self._queue = queue
        self._metrics = metrics
        self._enforce = settings.transitions.enforce
        self._states: OrderedDict[str, str] = OrderedDict()

    async def snapshot(self, mahoso: str, item: Validated, agency: str) -> Accepted:
        """Append one snapshot; raises TransitionRefused (nothing stored) or QueueUnavailable."""
        new_state = state_of(EventKind.SNAPSHOT, item.payload) or ""
        previous = await self._previous(mahoso)
        verdict = classify_transition(previous, new_state)
        if verdict == "unusual" and self._enforce:
            raise TransitionRefused(previous, new_state)
        self._note(mahoso, new_state)
        try:
            accepted = await self._queue.enqueue([NewEvent(mahoso, EventKind.SNAPSHOT, item.payload, agency)])
        except BaseException:
            self._unnote(mahoso, new_state, previous)
            raise
        if verdict in ("unusual", "tolerated"):
            self._metrics.unusual_transitions.labels(**{"from": previous or "", "to": new_state}).inc()
        self._count(EventKind.SNAPSHOT, [item])
        return accepted[0]

    async def progress(self, mahoso: str, items: Sequence[Validated], agency: str) -> list[Accepted]:
        """Append progress items of one dossier, in order (no transition to check)."""
        accepted = await self._queue.enqueue([NewEvent(mahoso, EventKind.PROGRESS, it.payload, agency)
                                              for it in items])
        self._count(EventKind.PROGRESS, items)
        return accepted

    def observe(self, seconds: float) -> None:
        """Record one accept's latency (request start to durable 202)."""
        self._metrics.accept_latency.observe(max(seconds, 0.0))

    def _count(self, kind: EventKind, items: Sequence[Validated]) -> None:
        self._metrics.events_accepted.labels(kind=kind.value).inc(len(items))
        for it in items:
            for name in it.truncated:
                self._metrics.truncated_fields.labels(field=name).inc()

    async def _previous(self, mahoso: str) -> str | None:
        """The last accepted state: noted here, else read from storage (unless a snapshot of the
        dossier was noted while the read was under way: that one is newer)."""
        if mahoso not in self._states:
            stored = await self._queue.accepted_state(mahoso)
            if mahoso not in self._states:
                return stored
        return self._states[mahoso]

    def _note(self, mahoso: str, state: str) -> None:
        self._states[mahoso] = state
        self._states.move_to_end(mahoso)
        if len(self._states) > STATE_CACHE_MAX:
            self._states.popitem(last=False)

    def _unnote(self, mahoso: str, state: str, previous: str | None) -> None:
        """The append of ``state`` failed: forget it, unless a later snapshot replaced it."""
        if self._states.get(mahoso) != state:
            return
        if previous is None:
            del self._states[mahoso]
        else:
            self._states[mahoso] = previous
