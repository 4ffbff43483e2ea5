"""The gate in front of the portal: a circuit breaker that also holds delivery paused.

* ``failure_threshold`` consecutive transient failures open it for ``cool_down``;
* ``pause(reason)`` (credentials or subscription refused) opens it at once, for the same time;
* after ``cool_down`` it is half-open: one probe may go; success closes it, failure re-opens it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from gateway.times import iso_utc
from monitoring.metrics import PAUSE_REASONS, PORTAL, Metrics


class GateState(enum.StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


_GAUGE = {GateState.CLOSED: 0, GateState.HALF_OPEN: 1, GateState.OPEN: 2}


class PortalGate:
    def __init__(self, threshold: int, cool_down: float, clock: Callable[[], float],
                 metrics: Metrics | None = None) -> None:
        self._threshold = threshold
        self._cool_down = cool_down
        self._clock = clock
        self._metrics = metrics
        self._failures = 0
        self._open_until: float | None = None
        self._probing = False
        self.reason: str | None = None  # None, "failures", "auth_failed", "forbidden"
        self.opened_at: float | None = None

    @property
    def state(self) -> GateState:
        if self._open_until is None:
            return GateState.CLOSED
        return GateState.OPEN if self._clock() < self._open_until else GateState.HALF_OPEN

    @property
    def reopens_at(self) -> float | None:
        return self._open_until

    def capacity(self, wanted: int) -> int:
        """How many deliveries may start now."""
        state = self.state
        if state is GateState.CLOSED:
            return wanted
        if state is GateState.HALF_OPEN and not self._probing:
            self._probing = True
            return min(wanted, 1)
        return 0

    def release_probe(self) -> None:
        """The probe slot was not used for a verdict (nothing to send, or throttled): free it."""
        self._probing = False

    def success(self) -> None:
        self._failures = 0
        self._probing = False
        if self._open_until is not None:
            self._open_until = None
            self.reason = None
            self.opened_at = None
        self._publish()

    def failure(self) -> None:
        """A transient failure (5xx, timeout …)."""
        self._failures += 1
        self._probing = False
        if self._failures >= self._threshold or self._open_until is not None:
            self._open("failures")

    def pause(self, reason: str) -> None:
        """Credentials or subscription refused: a person must act; probe again after cool_down."""
        self._probing = False
        self._open(reason)

    def _open(self, reason: str) -> None:
        now = self._clock()
        if self._open_until is None:
            self.opened_at = now
        self._open_until = now + self._cool_down
        self.reason = reason
        self._publish()

    def _publish(self) -> None:
        if self._metrics is None:
            return
        self._metrics.circuit_state.labels(counterpart=PORTAL).set(_GAUGE[self.state])
        for r in PAUSE_REASONS:
            self._metrics.delivery_paused.labels(reason=r).set(1 if self.reason == r else 0)

    def describe(self) -> dict[str, object]:
        return {
            "circuit": self.state.value,
            "reason": self.reason,
            "paused": self.reason in PAUSE_REASONS,
            "consecutive_failures": self._failures,
            "reopens_at": iso_utc(self._open_until),
        }

