"""What the indicators keep of each outcome the delivery engine records: one row per event.

After each delivery round the sync engine calls the observer
(:meth:`~monitoring.kpi.service.KpiService.observe`) once per dossier of the round, with the
claimed :class:`~queues.api.Work` (one dossier's events) and each :class:`~queues.api.Outcome`
``queue.record`` recorded for it, with its time. That is the one place every event passes on both
queue backends. Each event the outcomes mention becomes one row (:data:`EVENT_WIDTH`): MaHoSo,
sequence, kind, when the gateway accepted it, when the portal got it (None: not delivered, still
waiting or dead-lettered), and its payload's JSON text.

Nothing here reads a payload. The event loop only picks the events and their times; the figures
(kpi-766.md §3: unit, dates, channel, payment, fee, the ``TaiLieuNop`` / result / supplement
flags, a progress item's status and time; never a name or an ID number) are read from the JSON
text by SQLite on the indicators' writer thread, without the GIL (monitoring/kpi/store.py), which
also folds the events into their dossier's row. Read in Python on the loop they cost ~5 µs an
event of a busy daemon, most of it the CPU fetching the round's payloads from memory (docs/kpi.md,
Cost). The text is the queue's own when its backend keeps it (:attr:`queues.api.Event.raw`, the
SQLite backend); otherwise orjson writes it here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from queues.api import Event, EventKind, Outcome, Work

KIND_SNAPSHOT, KIND_PROGRESS = 0, 1
#: The bits of a dossier's ``flags`` (monitoring/kpi/store.py reads them from a snapshot): a fee
#: is due, a document was submitted as a file, a result links its file, the dossier has digitised
#: components, a document came from the citizen's store (Kho DMQG), the account was verified with
#: VNeID.
FEE, COMP_FILE, RESULT_LINK, SOHOA, KHO, VNEID = 1, 2, 4, 8, 16, 32

#: An event's row: MaHoSo, sequence, :data:`KIND_SNAPSHOT` or :data:`KIND_PROGRESS`, accepted_at,
#: delivered_at (None: not delivered), the payload's JSON text (UTF-8).
Row = tuple[Any, ...]
Facts = Row
EVENT_WIDTH = 6
#: Ranks a snapshot: delivered ones above the others, then the newest (sequence).
DELIVERED_RANK = 1 << 40

_SNAPSHOT = EventKind.SNAPSHOT


def _text(ev: Event) -> bytes:
    return ev.raw if ev.raw is not None else orjson.dumps(ev.payload)


def fold(mahoso: str, events: Sequence[tuple[Event, float | None]]) -> list[Facts]:
    """The rows of one dossier's events, each with its delivery time (None: not delivered)."""
    return [(mahoso, ev.sequence, KIND_SNAPSHOT if ev.kind is _SNAPSHOT else KIND_PROGRESS, ev.accepted_at, at,
             _text(ev)) for ev, at in events]


def event_facts(ev: Event, delivered_at: float | None) -> list[Facts]:
    """The row of one event alone (:func:`fold`); ``delivered_at`` None: not delivered."""
    return fold(ev.mahoso, ((ev, delivered_at),))


def outcome_facts(work: Work, recorded: Sequence[tuple[Outcome, float]]) -> list[Facts]:
    """The rows a delivery round's recorded outcomes for one dossier teach (:func:`fold`): its
    events delivered (at their record's time), dead-lettered, or, when an outcome scheduled a
    retry or parked progress, still waiting (their ``accepted_at`` is what makes them late once
    the SLO has passed). An event delivered by one outcome is delivered, whatever a later one
    says of the rest of the work."""
    at: dict[str, float | None] = {}
    waiting = False
    for outcome, now in recorded:
        for eid in outcome.delivered:
            at[eid] = now
        for eid in outcome.dead:
            at.setdefault(eid, None)
        waiting = waiting or outcome.retry_at is not None or bool(outcome.parked)
    events = work.progress if work.snapshot is None else (work.snapshot, *work.progress)
    told = [(ev, at.get(ev.event_id)) for ev in events if waiting or ev.event_id in at]
    return fold(work.mahoso, told) if told else []
