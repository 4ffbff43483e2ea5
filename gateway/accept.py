"""Accepting agency events: the transition check, the durable append and the accept metrics.

The PUT and progress handlers validate, then hand the validated events to the :class:`Acceptor`.
For a snapshot it judges the ``TrangThaiHoSo`` transition against the dossier's last accepted
state, inside the queue's append (``QueueBackend.enqueue``'s ``check``), so a check and its append
are atomic: concurrent snapshots of one dossier are judged one after the other, and a refused one
stores nothing.

A dossier with a paid online payment (``paid``, the payment service's set) keeps its mark: a
snapshot of it whose ``DuocThanhToanTrucTuyen`` is neither "1" (this platform) nor "2" (the
province's own gateway) is stored with "1", so an agency's resend never takes the mark back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from config.schema import Settings
from core.errors import PermanentError, TransitionRefused
from gateway.dossier import Validated
from gateway.dossier.spec import LOCAL_ONLY_FIELD
from gateway.transitions import classify_transition
from monitoring.metrics import Metrics
from queues.api import Accepted, EventKind, NewEvent, QueueBackend, state_of

PAID_ONLINE = "DuocThanhToanTrucTuyen"
#: §7.7: "1" paid through the national platform, "2" through the province's own gateway
PAID_MARKS = ("1", "2")


class SnapshotOvertaken(PermanentError):
    """A snapshot meant to follow a known state was not appended: the dossier's state moved on."""


class Acceptor:
    """Appends validated events to the queue and counts them into the metrics."""

    def __init__(self, queue: QueueBackend, metrics: Metrics, settings: Settings,
                 paid: Callable[[str], bool] | None = None) -> None:
        self._queue = queue
        self._metrics = metrics
        self._enforce = settings.transitions.enforce
        self._paid = paid
        # spec §8 step 2 needs MaHoSoKhac at delivery (on Kafka, maybe on another instance): it
        # travels in the queued payload, and gateway.portalcode drops it before the portal sees it
        self._keep_alternative = bool(settings.portal.province_code)

    def _keep_paid_mark(self, mahoso: str, item: Validated) -> Validated:
        if self._paid is None or item.payload.get(PAID_ONLINE) in PAID_MARKS or not self._paid(mahoso):
            return item
        return dataclasses.replace(item, payload={**item.payload, PAID_ONLINE: "1"})

    async def snapshot(self, mahoso: str, item: Validated, agency: str, *,
                       expect_previous: str | None = None) -> Accepted:
        """Append one snapshot; raises TransitionRefused (nothing stored) or QueueUnavailable. With
        ``expect_previous``, only if the dossier's last accepted state is that one (else
        SnapshotOvertaken, nothing stored)."""
        item = self._keep_paid_mark(mahoso, item)
        new_state = state_of(EventKind.SNAPSHOT, item.payload) or ""
        judged: list[tuple[str | None, str]] = []

        def check(previous: str | None) -> None:
            if expect_previous is not None and previous != expect_previous:
                raise SnapshotOvertaken(f"the dossier's state is {previous}, not {expect_previous}")
            verdict = classify_transition(previous, new_state)
            if verdict == "unusual" and self._enforce:
                raise TransitionRefused(previous, new_state)
            judged.append((previous, verdict))

        payload = item.payload
        if self._keep_alternative and item.mahoso_khac:
            payload = {**payload, LOCAL_ONLY_FIELD: item.mahoso_khac}
        accepted = await self._queue.enqueue([NewEvent(mahoso, EventKind.SNAPSHOT, payload, agency)], check)
        previous, verdict = judged[-1]  # the store may run the check again, on a retried batch
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
