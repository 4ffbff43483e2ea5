"""Classification of dossier state changes (spec §7.2, a gateway policy, not a DVCQG rule).

The table only *classifies*; whether an unusual change is refused (HTTP 409) is the caller's
decision (``[transitions] enforce``). Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from queues.api import FINAL_STATES as QUEUE_FINAL_STATES

TransitionClass = Literal["same", "normal", "tolerated", "unusual", "first"]

#: §7.1 codes, in table order.
STATE_CODES: tuple[str, ...] = tuple(str(i) for i in range(1, 11))

#: §7.1 "Final?" column: no exit from these states (defined beside the queue contract, whose
#: retention starts when one of them is delivered).
FINAL_STATES: frozenset[str] = QUEUE_FINAL_STATES

#: §7.2 "Normal next states" (7 is added from any non-final state by the rule below).
NORMAL_NEXT: Mapping[str, frozenset[str]] = MappingProxyType({
    "1": frozenset({"2", "3", "7"}),
    "2": frozenset({"4", "7"}),
    "4": frozenset({"5", "6", "8", "9", "7"}),
    "5": frozenset({"4", "7"}),
    "6": frozenset({"4", "7"}),
    "9": frozenset({"10", "7"}),
})

#: §7.2 "Tolerated (accepted, counted as unusual)".
TOLERATED_NEXT: Mapping[str, frozenset[str]] = MappingProxyType({
    "1": frozenset({"4"}),
    "2": frozenset({"5", "6", "8", "9", "10"}),
    "4": frozenset({"10"}),
    "5": frozenset({"9", "10"}),
    "6": frozenset({"9", "10"}),
    "9": frozenset({"4"}),
})

WITHDRAWN = "7"


def classify_transition(previous: str | None, new: str) -> TransitionClass:
    """Classify the change ``previous`` → ``new`` of a dossier's ``TrangThaiHoSo`` (§7.2).

    * ``"first"``: no previous state is known (any start state is accepted);
    * ``"same"``: x → x, always allowed, even for a final state;
    * ``"normal"``: listed as normal, or 7 (withdrawn) from any non-final state;
    * ``"tolerated"``: listed as tolerated (forwarded, counted as unusual);
    * ``"unusual"``: anything else, including any exit from a final state (3, 7, 8, 10) and any
      code outside §7.1 (never raises: the caller forwards or refuses, it does not crash).
    """
    if previous is None:
        return "first"
    if previous == new:
        return "same"
    if previous in FINAL_STATES or previous not in STATE_CODES or new not in STATE_CODES:
        return "unusual"
    if new == WITHDRAWN or new in NORMAL_NEXT.get(previous, frozenset()):
        return "normal"
    if new in TOLERATED_NEXT.get(previous, frozenset()):
        return "tolerated"
    return "unusual"
