"""Spec §7.2: how the gateway classifies a change of TrangThaiHoSo (policy, never a refusal here)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from core.errors import QueueUnavailable, TransitionRefused
from gateway.accept import Acceptor
from gateway.dossier import Validated, classify_transition
from monitoring.metrics import Metrics
from queues.api import Accepted, NewEvent
from queues.sqlite import SQLiteQueue
from tests.harness import settings_for

# Written out by hand from the spec's table (not derived from the module's constants), so a
# typo in either shows up. "N" normal, "T" tolerated, "S" same, "U" unusual.
#            to:  1    2    3    4    5    6    7    8    9    10
EXPECTED = {
    "1":  ["S", "N", "N", "T", "U", "U", "N", "U", "U", "U"],
    "2":  ["U", "S", "U", "N", "T", "T", "N", "T", "T", "T"],
    "3":  ["U", "U", "S", "U", "U", "U", "U", "U", "U", "U"],
    "4":  ["U", "U", "U", "S", "N", "N", "N", "N", "N", "T"],
    "5":  ["U", "U", "U", "N", "S", "U", "N", "U", "T", "T"],
    "6":  ["U", "U", "U", "N", "U", "S", "N", "U", "T", "T"],
    "7":  ["U", "U", "U", "U", "U", "U", "S", "U", "U", "U"],
    "8":  ["U", "U", "U", "U", "U", "U", "U", "S", "U", "U"],
    "9":  ["U", "U", "U", "T", "U", "U", "N", "U", "S", "N"],
    "10": ["U", "U", "U", "U", "U", "U", "U", "U", "U", "S"],
}
NAMES = {"N": "normal", "T": "tolerated", "S": "same", "U": "unusual"}
CASES = [
    (prev, str(to), NAMES[mark])
    for prev, row in EXPECTED.items()
    for to, mark in enumerate(row, start=1)
]


def test_table_covers_every_pair() -> None:
    """The expected table has all 100 (from, to) pairs of §7.1 codes."""
    assert len(CASES) == 100
    assert len({(p, t) for p, t, _ in CASES}) == 100


@pytest.mark.parametrize(("previous", "new", "expected"), CASES)
def test_transition_table(previous: str, new: str, expected: str) -> None:
    """Every pair is classified exactly as spec §7.2 says (7 from any non-final state is normal,
    final states 3/7/8/10 have no exit, x→x is always "same")."""
    assert classify_transition(previous, new) == expected


@pytest.mark.parametrize("new", [str(i) for i in range(1, 11)])
def test_first_event_accepts_any_start_state(new: str) -> None:
    """With no known previous state, any start state is "first" (history may predate the gateway)."""
    assert classify_transition(None, new) == "first"


@pytest.mark.parametrize(("previous", "new"), [("0", "4"), ("4", "0"), ("4", "11"), ("x", "2")])
def test_codes_outside_the_table_are_unusual_not_errors(previous: str, new: str) -> None:
    """A code outside §7.1 never raises: it is classified "unusual"."""
    assert classify_transition(previous, new) == "unusual"


class FailingQueue(SQLiteQueue):
    """The SQLite store, whose next append fails once when told to (a store that went away)."""

    fail_next = False

    async def enqueue(self, events: Sequence[NewEvent],
                      check: Callable[[str | None], None] | None = None) -> list[Accepted]:
        if self.fail_next:
            self.fail_next = False
            raise QueueUnavailable("the store went away")
        return await super().enqueue(events, check)


def _snap(state: str) -> Validated:
    return Validated({"TrangThaiHoSo": state})


async def test_concurrent_snapshots_are_judged_in_turn_inside_the_append(tmp_path: Path) -> None:
    """Under enforce, the check runs inside the append (one group commit may carry both): of two
    snapshots of a new dossier sent at once ("4", then "3"), the second is judged against the first
    and refused, not against the empty store. An append that fails leaves no trace: the next
    snapshot is judged against the state before it (storage agrees)."""
    settings = settings_for(tmp_path, "http://127.0.0.1:1", transitions={"enforce": True})
    queue = FailingQueue(tmp_path / "q.sqlite3")
    await queue.start()
    metrics = Metrics(CollectorRegistry())
    accept = Acceptor(queue, metrics, settings)
    m = "000.00.01.H55-240318-00001"
    first, second = await asyncio.gather(accept.snapshot(m, _snap("4"), "A"), accept.snapshot(m, _snap("3"), "A"),
                                         return_exceptions=True)
    assert not isinstance(first, BaseException) and isinstance(second, TransitionRefused)
    assert await queue.accepted_state(m) == "4"
    queue.fail_next = True
    with pytest.raises(QueueUnavailable):
        await accept.snapshot(m, _snap("6"), "A")
    await accept.snapshot(m, _snap("5"), "A")  # judged against "4", not the lost "6"
    assert metrics.sample("dvcgw_unusual_transitions_total", {"from": "6", "to": "5"}) is None
    assert await queue.accepted_state(m) == "5"
    await queue.close()
