"""Spec §7.2: how the gateway classifies a change of TrangThaiHoSo (policy, never a refusal here)."""

from __future__ import annotations

import pytest

from gateway.dossier import classify_transition

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
