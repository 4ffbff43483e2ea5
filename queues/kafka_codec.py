"""Wire formats of the Kafka backend: topic names, event records, headers and the dossier state.

Pure functions and plain data, no I/O. Topics (``P`` = ``[queue.kafka] partitions``, all keyed by
``MaHoSo`` except the dead letters, so partition ``p`` of every dossier topic holds the same dossiers):

* ``<prefix>.outbound``        accepted events, the intake log (retention: unlimited);
* ``<prefix>.retry.<delay>``   one per distinct ``[retry] delays`` step, e.g. ``dvcgw.retry.30s``;
* ``<prefix>.dossier-state``   compacted, one :class:`DossierState` per dossier (owner-written), plus
  one *watermark* record per partition (key :data:`WATERMARK_KEY`, header :data:`H_WATERMARK`): the
  ``outbound`` offset below which every record of that partition is reflected in the states before it;
* ``<prefix>.dlq``             compacted, keyed by dead-letter id; a tombstone is a dropped letter.

A record's *sequence* is its ``outbound`` offset + 1 (one dossier, one partition: strictly rising per
dossier); records forwarded into the ladder, the dead letters and replays carry it in ``dvcgw-seq``.
JSON is encoded and decoded with orjson (several times cheaper than the standard library here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from queues.api import DeadLetter, ErrorInfo, Event, EventKind, OutcomeClass, state_of

H_SEQ = "dvcgw-seq"
H_REPLAY = "dvcgw-replay"
H_DUE = "dvcgw-due-at"
H_ATTEMPT = "dvcgw-attempt"
H_ORIG_TOPIC = "dvcgw-orig-topic"
H_ORIG_PARTITION = "dvcgw-orig-partition"
H_ORIG_OFFSET = "dvcgw-orig-offset"
H_ERR_CLASS = "dvcgw-error-class"
H_ERR_CODE = "dvcgw-error-code"
H_ERR_MESSAGE = "dvcgw-error-message"
H_CONTROL = "dvcgw-control"
H_KIND = "dvcgw-kind"  # outbound: the event's kind and state, so the view never parses the payload
H_STATE = "dvcgw-state"
H_WATERMARK = "dvcgw-watermark"  # dossier-state: a watermark record, not a dossier
H_WRITTEN = "dvcgw-written"  # dossier-state: "<writer process id>:<version>" of a dossier's state record
WATERMARK_KEY = b"\x00watermark"  # never a MaHoSo

Headers = list[tuple[str, bytes]]
Src = tuple[str, int, int]  # topic, partition and offset of the input record an event was taken in from


@dataclass(frozen=True)
class Topics:
    outbound: str
    state: str
    dlq: str
    retry: tuple[tuple[float, str], ...]  # (delay seconds, topic), ascending delay

    @property
    def retry_names(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.retry)

    def retry_for(self, delay: float) -> str:
        """The retry topic whose delay is the nearest at or above ``delay`` (else the longest)."""
        for step, name in self.retry:
            if step >= delay - 1e-6:
                return name
        return self.retry[-1][1]


def delay_label(delay: float) -> str:
    ms = round(delay * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def topics_for(prefix: str, delays: Sequence[float]) -> Topics:
    steps = sorted(set(float(d) for d in delays))
    retry = tuple((d, f"{prefix}.retry.{delay_label(d)}") for d in steps)
    return Topics(f"{prefix}.outbound", f"{prefix}.dossier-state", f"{prefix}.dlq", retry)


@dataclass(frozen=True)
class WireEvent:
    """An accepted event as stored in a record value; ``sequence`` lives in a header or the log."""

    event_id: str
    mahoso: str
    kind: EventKind
    payload: Mapping[str, Any]
    agency: str
    accepted_at: float

    def as_json(self) -> dict[str, Any]:
        return {"id": self.event_id, "m": self.mahoso, "k": self.kind.value, "p": self.payload,
                "a": self.agency, "t": self.accepted_at}

    def encode(self) -> bytes:
        return _dumps(self.as_json())

    @staticmethod
    def decode(raw: bytes) -> WireEvent:
        return WireEvent.from_json(orjson.loads(raw))

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> WireEvent:
        return WireEvent(d["id"], d["m"], EventKind(d["k"]), d["p"], d["a"], float(d["t"]))

    def event(self, sequence: int) -> Event:
        return Event(self.event_id, self.mahoso, self.kind, sequence, self.payload, self.accepted_at)


def _plain(value: Any) -> Any:
    """orjson's fallback for read-only mappings and other sequences in a payload."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return list(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_plain)


def header_map(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    return {k: v.decode() for k, v in (headers or ())}


def ladder_headers(seq: int, due_at: float, attempt: int, origin: Src | None,
                   error: ErrorInfo | None) -> Headers:
    """Headers of a record forwarded into a retry topic (or the dead letters)."""
    hs: Headers = [(H_SEQ, str(seq).encode()), (H_DUE, repr(due_at).encode()),
                   (H_ATTEMPT, str(attempt).encode())]
    if origin is not None:
        hs += [(H_ORIG_TOPIC, origin[0].encode()), (H_ORIG_PARTITION, str(origin[1]).encode()),
               (H_ORIG_OFFSET, str(origin[2]).encode())]
    if error is not None:
        hs += [(H_ERR_CLASS, error.cls.encode()), (H_ERR_CODE, error.code.encode()),
               (H_ERR_MESSAGE, error.message.encode())]
    return hs


def summary_headers(ev: WireEvent) -> Headers:
    """Headers of an accepted event on outbound: kind and, for a snapshot, its state."""
    hs: Headers = [(H_KIND, ev.kind.value.encode())]
    state = state_of(ev.kind, ev.payload)
    if state is not None:
        hs.append((H_STATE, state.encode()))
    return hs


def held_encode(ev: WireEvent, seq: int, parked: bool) -> dict[str, Any]:
    return {"e": ev.as_json(), "s": seq, "parked": parked}


def held_decode(d: Mapping[str, Any]) -> tuple[WireEvent, int, bool]:
    return WireEvent.from_json(d["e"]), int(d["s"]), bool(d["parked"])


@dataclass
class DossierState:
    """Per-dossier delivery state; the owner of the dossier's partition is its only writer.

    ``ladder`` lists the event ids waiting in the retry ladder: while it is not empty, the dossier is
    not claimable and every newer event is forwarded behind them (see docs/decisions.md ## kafka).
    ``v`` rises with every write so a late copy from the materialised view never overwrites a newer one.
    """

    mahoso: str
    v: int = 0
    accepted_state: str | None = None
    accepted_seq: int = 0  # sequence of the snapshot that set accepted_state
    delivered_state: str | None = None
    delivered_seq: int = 0
    last_seq: int = 0  # the highest sequence the owner has taken in (status: accepted but unseen = pending)
    known_on_portal: bool = False
    attempts: int = 0
    first_failure_at: float | None = None
    next_attempt_at: float | None = None
    last_error: dict[str, str] | None = None
    last_dead_seq: int = 0
    final_at: float | None = None  # when its final state was delivered (restarted by later deliveries)
    progress_hw: int = 0
    ladder: list[str] = field(default_factory=list)
    ladder_topic: str = ""
    ladder_progress: int = 0
    ladder_oldest: float | None = None
    held: list[dict[str, Any]] = field(default_factory=list)
    # summary for readers on other instances
    delivery: str = "pending"
    pending: int = 0
    pending_progress: int = 0
    oldest_open_at: float | None = None

    def encode(self) -> bytes:
        # vars(), not asdict(): every field is plain JSON already, and asdict's deep walk was a
        # hot spot (one state write per delivered dossier)
        return _dumps(vars(self))

    def copy(self) -> DossierState:
        """An independent copy: the lists are copied; their items and ``last_error`` are never
        mutated in place (always replaced), so sharing them is safe and much cheaper than deepcopy."""
        twin = object.__new__(DossierState)
        twin.__dict__.update(self.__dict__)  # a third of copy.copy's time (no __reduce_ex__ round trip)
        twin.ladder, twin.held = list(self.ladder), list(self.held)
        return twin

    @staticmethod
    def decode(raw: bytes) -> DossierState:
        return DossierState(**orjson.loads(raw))

    def error(self) -> ErrorInfo | None:
        e = self.last_error
        return ErrorInfo(OutcomeClass(e["class"]), e["code"], e["message"]) if e else None


def dead_letter_encode(dl: DeadLetter, ev: WireEvent, origin: Src | None) -> bytes:
    return _dumps(
        {"id": dl.id, "seq": dl.sequence, "error": dl.error.as_json(), "attempts": dl.attempts,
         "dead_at": dl.dead_at, "replayed": dl.replayed, "event": ev.as_json(),
         "origin": list(origin) if origin else None})


def dead_letter_decode(raw: bytes) -> tuple[DeadLetter, WireEvent]:
    d = orjson.loads(raw)
    ev = WireEvent.from_json(d["event"])
    err = d["error"]
    info = ErrorInfo(OutcomeClass(err["class"]), err["code"], err["message"])
    dl = DeadLetter(d["id"], ev.mahoso, ev.kind, int(d["seq"]), info,
                    int(d["attempts"]), float(d["dead_at"]), bool(d["replayed"]))
    return dl, ev
