"""Spec §7.2: how the gateway classifies a change of TrangThaiHoSo (policy, never a refusal here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gateway.accept import LocalAcceptor, Refusal
from gateway.dossier import classify_transition
from monitoring.metrics import Metrics
from queues.sqlite import MemoryQueue
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


async def test_the_daemon_notes_a_judged_state_until_its_produce_fails(tmp_path: Path) -> None:
    """A producing acceptor (Kafka) asks the daemon to judge each snapshot: the allowed state is
    noted at once, so the next check, from whichever process, judges against it (3 after 4 is
    refused under enforce); a failed produce takes the note back, unless a later one replaced it."""
    settings = settings_for(tmp_path, "http://127.0.0.1:1", transitions={"enforce": True})
    queue = MemoryQueue()
    await queue.start()
    accept = LocalAcceptor(queue, Metrics(CollectorRegistry()), settings)
    m = "000.00.01.H55-240318-00001"
    assert await accept.relayed_check(m, "2") == (None, "first")
    assert await accept.relayed_check(m, "4") == ("2", "normal")  # judged against the note, not storage
    refused = await accept.relayed_check(m, "3")
    assert isinstance(refused, Refusal) and refused.status == 409
    assert [e.field for e in refused.errors] == ["TrangThaiHoSo"]
    await accept.relayed_unwind(m, "4", "2")  # the produce of "4" failed
    assert await accept.relayed_check(m, "5") == ("2", "tolerated")
    await accept.relayed_unwind(m, "4", None)  # "5" replaced it: nothing taken back
    assert await accept.relayed_check(m, "9") == ("5", "tolerated")
    await accept.relayed_unwind(m, "9", None)  # nothing before it: storage decides again
    assert await accept.relayed_check(m, "2") == (None, "first")
    await queue.close()
