"""The queue contract every backend (memory, SQLite, Kafka) implements, and the data it carries.

The unit of work is one dossier (``MaHoSo``). ``claim`` hands a dossier to exactly one worker at a
time, with its newest pending snapshot (older pending snapshots are coalesced away, i.e. marked
``superseded``) and its pending progress items in acceptance order. The worker calls the portal,
then reports what happened with :meth:`QueueBackend.record`, the one function that changes
delivery state, in one transaction.

Guarantees a backend must give (checked by ``tests/queues/contract.py`` against every backend):

* ``enqueue`` returns only when the events are durable; sequences rise per dossier.
* a dossier is never claimed by two workers at once; a claim whose lease ran out is re-offered;
* a claimed snapshot is never older than one already delivered (stale ones become superseded);
* progress items are offered in acceptance order and never dropped;
* ``record(..., release=False)`` keeps the claim so a worker can persist chunk by chunk.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Spec §7.1's final ``TrangThaiHoSo`` codes (no exit). Once a dossier's final state has been
#: delivered, its payloads are pruned after ``[storage] retention`` (:meth:`QueueBackend.prune`).
FINAL_STATES: frozenset[str] = frozenset({"3", "7", "8", "10"})

#: What a pruned event's payload is stored as (SQLite) or sent as (Kafka dead letters).
PRUNED_PAYLOAD = "{}"


class EventKind(enum.StrEnum):
    SNAPSHOT = "snapshot"
    PROGRESS = "progress"


class DeliveryState(enum.StrEnum):
    """Per-dossier sync state, as shown by ``GET /v1/dossiers/{MaHoSo}``."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    RETRYING = "retrying"
    DEAD = "dead"
    PARKED = "parked"


class EventState(enum.StrEnum):
    """Per-event state, stored with the event."""

    PENDING = "pending"
    PARKED = "parked"  # progress waiting for its dossier to exist on the portal
    DELIVERED = "delivered"
    SUPERSEDED = "superseded"  # a newer snapshot was sent instead
    DEAD = "dead"


@dataclass(frozen=True)
class NewEvent:
    """What the HTTP edge hands the queue: already validated and normalised."""

    mahoso: str
    kind: EventKind
    payload: Mapping[str, Any]
    agency: str


def state_of(kind: EventKind, payload: Mapping[str, Any]) -> str | None:
    """The dossier state (``TrangThaiHoSo``) a snapshot carries; progress carries none."""
    if kind is not EventKind.SNAPSHOT:
        return None
    value = payload.get("TrangThaiHoSo")
    return str(value) if value is not None else None


@dataclass(frozen=True)
class NewestSnapshot:
    """A dossier's newest accepted snapshot: its sequence, its payload as stored, the agency that sent it."""

    sequence: int
    payload: Mapping[str, Any]
    agency: str


@dataclass(frozen=True)
class Accepted:
    event_id: str
    sequence: int


@dataclass(frozen=True)
class Event:
    event_id: str
    mahoso: str
    kind: EventKind
    sequence: int
    payload: Mapping[str, Any]
    accepted_at: float
    #: The payload's JSON text (UTF-8) as the backend stored it, when it keeps it (SQLite); None
    #: otherwise. The 766 indicators hand it to SQLite as it is (monitoring/kpi/facts.py).
    raw: bytes | None = field(default=None, compare=False, repr=False)


class OutcomeClass(enum.StrEnum):
    """The class of one delivery attempt's outcome (spec §9); also the ``outcome`` metric label."""

    OK = "ok"
    EXISTS = "exists"  # "đã tồn tại" to a create: resent as an update
    NOT_FOUND = "not_found"  # "hồ sơ … không tồn tại" to an update: the portal lost it, resent as a create
    REJECTED = "rejected"  # a business rejection: dead letter, the portal's message verbatim
    AUTH_EXPIRED = "auth_expired"
    AUTH_FAILED = "auth_failed"  # credentials refused: delivery paused
    FORBIDDEN = "forbidden"  # no subscription (NGSP/LGSP 403): delivery paused
    THROTTLED = "throttled"  # 429: wait Retry-After
    RETRYABLE = "retryable"  # transient: the retry ladder


@dataclass(frozen=True)
class ErrorInfo:
    """``cls`` is the outcome class; ``message`` is verbatim."""

    cls: OutcomeClass
    code: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"class": self.cls, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class Work:
    """One claimed dossier. ``lease`` identifies the claim; pass the Work back to ``record``."""

    mahoso: str
    lease: str
    snapshot: Event | None
    progress: tuple[Event, ...]
    known_on_portal: bool
    attempts: int
    first_failure_at: float | None


@dataclass(frozen=True)
class Outcome:
    """Everything one step of delivery changed; applied atomically by ``record``.

    * ``delivered``: event ids the portal accepted (a delivered snapshot also supersedes every older
      pending or dead snapshot of the dossier);
    * ``dead``: event ids moved to the dead letters, with the error;
    * ``parked``: progress ids that must wait until the dossier exists on the portal;
    * ``retry_at``: when set, the dossier's remaining pending events wait until then, ``attempts``
      rises by one unless ``count_attempt`` is False, and ``error`` becomes ``last_error``;
    * ``known_on_portal``: True once the portal is known to hold the dossier.
    """

    delivered: tuple[str, ...] = ()
    dead: tuple[str, ...] = ()
    parked: tuple[str, ...] = ()
    retry_at: float | None = None
    count_attempt: bool = True
    error: ErrorInfo | None = None
    known_on_portal: bool | None = None


@dataclass(frozen=True)
class DossierStatus:
    mahoso: str
    accepted_state: str | None
    delivered_state: str | None
    delivery: DeliveryState
    attempts: int
    next_attempt_at: float | None
    last_error: ErrorInfo | None
    pending_progress: int
    last_sequence: int
    delivered_sequence: int


@dataclass(frozen=True)
class DeadLetter:
    id: str
    mahoso: str
    kind: EventKind
    sequence: int
    error: ErrorInfo
    attempts: int
    dead_at: float
    replayed: bool = False


class ReplayResult(enum.StrEnum):
    REPLAYED = "replayed"
    SUPERSEDED = "superseded"
    NOT_FOUND = "not_found"
    ALREADY_REPLAYED = "already_replayed"


@dataclass(frozen=True)
class DeadLetterPage:
    items: tuple[DeadLetter, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class QueueStats:
    by_state: Mapping[str, int] = field(default_factory=dict)  # DeliveryState value -> dossiers
    oldest_pending_at: float | None = None
    #: open (not replayed) dead letters by the outcome class of their stored error (rejected,
    #: exists, retryable …); classes with none may be absent
    dead_letters_by_reason: Mapping[str, int] = field(default_factory=dict)

    @property
    def dead_letters(self) -> int:
        """Open dead letters in all."""
        return sum(self.dead_letters_by_reason.values())


class EngineQueue(Protocol):
    """The part of the contract the sync engine uses."""

    async def claim(self, limit: int, now: float) -> list[Work]: ...

    async def record(self, work: Work, outcome: Outcome, now: float, *, release: bool = True) -> None: ...

    async def wait_for_work(self, timeout: float) -> None: ...

    async def next_due_at(self) -> float | None: ...


class QueueBackend(Protocol):
    """The queue contract. All methods raise only from the gateway error tree
    (``QueueUnavailable`` when storage cannot be used)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def enqueue(self, events: Sequence[NewEvent],
                      check: Callable[[str | None], None] | None = None) -> list[Accepted]:
        """Persist ``events`` (all of one dossier, in order) durably; return ids and sequences.
        ``check``, if given, is called with the dossier's last accepted ``TrangThaiHoSo`` (None for
        a new dossier) atomically with the append: no other append of the dossier on this
        instance comes between. What it raises, ``enqueue`` raises, and nothing is appended."""
        ...

    async def claim(self, limit: int, now: float) -> list[Work]:
        """Hand out up to ``limit`` due dossiers not claimed by anyone else."""
        ...

    async def record(self, work: Work, outcome: Outcome, now: float, *, release: bool = True) -> None:
        """Apply ``outcome`` in one transaction; with ``release`` the claim ends."""
        ...

    async def wait_for_work(self, timeout: float) -> None:
        """Return when new work may be claimable (or after ``timeout`` seconds)."""
        ...

    async def next_due_at(self) -> float | None:
        """The earliest time at which a not-yet-due dossier becomes due, or None."""
        ...

    async def status(self, mahoso: str) -> DossierStatus | None: ...

    async def accepted_state(self, mahoso: str) -> str | None:
        """The dossier's newest accepted ``TrangThaiHoSo`` (None: unknown or no snapshot yet): the
        one-column read behind the transition check of every PUT."""
        ...

    async def newest_snapshot(self, mahoso: str) -> NewestSnapshot | None:
        """The dossier's newest accepted snapshot (whatever its delivery state), or None: no snapshot,
        or a backend that keeps no payloads it can read back (Kafka: see queues/kafka.py)."""
        ...

    async def unpark(self, mahoso: str) -> None:
        """Make parked progress of ``mahoso`` pending again (the dossier now exists on the portal)."""
        ...

    async def dead_letters(self, cursor: str | None, limit: int) -> DeadLetterPage: ...

    async def dead_letter(self, dl_id: str) -> DeadLetter | None: ...

    async def replay(self, dl_id: str, now: float) -> ReplayResult: ...

    async def drop(self, dl_id: str) -> bool: ...

    async def stats(self, now: float) -> QueueStats: ...

    async def ping(self) -> None:
        """Raise QueueUnavailable if the backend cannot accept work."""
        ...

    async def prune(self, before: float, limit: int) -> int:
        """Personal data at rest: drop the payloads of up to ``limit`` dossiers whose final state
        (:data:`FINAL_STATES`) was delivered before ``before`` and that have nothing pending;
        return how many were pruned (dossiers; on Kafka, dead letters: the only payloads it keeps
        past the topics' own retention), fewer than ``limit`` when the pass is complete. What
        the status API, the dead-letter list and the indicators read is kept; a dead letter whose
        payload is gone replays as ``superseded`` (nothing is sent)."""
        ...
