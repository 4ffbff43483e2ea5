"""The 766 indicators the gateway estimates, and their score formulas (kpi-766.md §3, §4).

Each indicator takes its numerator and denominator from one unit's :class:`~monitoring.kpi.store.Counts`
for one period, and scores the ratio with the spec's formula. ``basis`` names where the score
formula comes from: ``re`` reverse-engineered from DVCQG answers, ``desc`` the reproduced
description document, ``gw`` the gateway's own diagnostic (no points). Every figure is an
estimate: the portal's own score is authoritative.

Left out: ``END_TO_END_SHARE`` needs the procedure catalogue (which procedures are eligible for
end-to-end online service, issue 15). Parts that need the catalogue are left out of the others
too (docs/kpi.md lists them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from monitoring.kpi.store import Counts


class KpiRow(NamedTuple):
    """One indicator for one unit (a unit code, ``"all"`` for the province) and one period (a
    named tuple: 15,000 of them are built a computation with 500 units)."""

    indicator: str
    unit: str
    period: str  # month | quarter | year
    period_id: str  # 2025-11 | 2025-Q4 | 2025
    numerator: int
    denominator: int
    ratio: float  # 0..1, 0 when the denominator is 0
    score: float
    max_points: float
    basis: str  # re | desc | gw
    target: float | None
    estimate: bool = True


@dataclass(frozen=True)
class KpiReport:
    """A computation: the periods it covers by kind, when, how long it took, and its rows."""

    period_ids: dict[str, str]
    computed_at: float
    rows: list[KpiRow]
    duration: float = 0.0


@dataclass(frozen=True)
class Scoring:
    """The settings that change a score: ``[kpi] so_hoa_full_at`` and ``online_share_max_points``."""

    so_hoa_full_at: float = 1.0
    online_share_max_points: float = 12.0


@dataclass(frozen=True)
class Indicator:
    name: str
    numerator: Callable[[Counts], int]
    denominator: Callable[[Counts], int]
    #: (ratio, the same unit and period's DOSSIER_SYNC ratio, scoring) -> points
    points: Callable[[float, float, Scoring], float]
    max_points: Callable[[Scoring], float]
    basis: Callable[[Scoring], str]


def _linear(max_points: float, full_at: float = 1.0) -> Callable[[float, float, Scoring], float]:
    """``min(max, max × rate / full_at)``: full points at ``full_at`` (kpi-766.md §4)."""
    return lambda ratio, _sync, _s: min(max_points, max_points * ratio / full_at)


def _fixed(value: float) -> Callable[[Scoring], float]:
    return lambda _s: value


def _basis(value: str) -> Callable[[Scoring], str]:
    return lambda _s: value


def _online_points(ratio: float, sync: float, s: Scoring) -> float:
    """Formula 3.3 (DESC): the online share × the sync rate, full points at 50 %."""
    m = s.online_share_max_points
    return min(m, m * ratio * sync / 0.5)


def _so_hoa_points(ratio: float, _sync: float, s: Scoring) -> float:
    """4.2: full points at 80 % (DESC) or linear to 100 % (RE): ``[kpi] so_hoa_full_at``."""
    return min(4.0, 4.0 * ratio / s.so_hoa_full_at)


INDICATORS: tuple[Indicator, ...] = (
    Indicator("DOSSIER_SYNC", lambda c: c.sync_ok, lambda c: c.received, _linear(6.0), _fixed(6.0), _basis("re")),
    Indicator("ON_TIME", lambda c: c.on_time, lambda c: c.on_time_total, _linear(20.0), _fixed(20.0),
              _basis("re")),
    Indicator("ONLINE_SHARE", lambda c: c.online, lambda c: c.received, _online_points,
              lambda s: s.online_share_max_points, _basis("desc")),
    Indicator("ORIGINAL_RESULT_AVAILABLE", lambda c: c.result_link, lambda c: c.finished, _linear(6.0),
              _fixed(6.0), _basis("re")),
    Indicator("SO_HOA_GIAY_TO_GIAI_QUYET", lambda c: c.so_hoa, lambda c: c.received, _so_hoa_points,
              _fixed(4.0), lambda s: "re" if s.so_hoa_full_at == 1.0 else "desc"),
    Indicator("REUSED_DIGITIZED_DATA", lambda c: c.reused, lambda c: c.received, _linear(2.0, 0.8), _fixed(2.0),
              _basis("re")),
    Indicator("SYNCED_WITH_DVCQG_PERSONAL_STORAGE", lambda c: c.kho, lambda c: c.received, _linear(4.0),
              _fixed(4.0), _basis("re")),
    # the A part of 6·A + min(2, 2.5·B) + 2.5·C: B and C need the procedure catalogue
    Indicator("ONLINE_PAYMENT_A", lambda c: c.paid_online, lambda c: c.fee, _linear(6.0), _fixed(6.0),
              _basis("re")),
    Indicator("CITIZEN_DATA_CONNECTED_DOSSIER", lambda c: c.citizen_data, lambda c: c.received, _linear(2.0),
              _fixed(2.0), _basis("re")),
    Indicator("VNEID_SHARE", lambda c: c.vneid, lambda c: c.received, lambda _r, _y, _s: 0.0, _fixed(0.0),
              _basis("gw")),
)

INDICATOR_NAMES = tuple(i.name for i in INDICATORS)
#: In the spec's list, not computed (needs the procedure catalogue, issue 15).
LEFT_OUT = ("END_TO_END_SHARE",)


def ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def unit_rows(unit: str, period: str, period_id: str, counts: Counts, scoring: Scoring,
              targets: Mapping[str, float | None]) -> list[KpiRow]:
    """Every indicator's row for one unit and one period."""
    sync = ratio(counts.sync_ok, counts.received)
    rows = []
    for ind in INDICATORS:
        num, den = ind.numerator(counts), ind.denominator(counts)
        r = ratio(num, den)
        rows.append(KpiRow(ind.name, unit, period, period_id, num, den, r, ind.points(r, sync, scoring),
                           ind.max_points(scoring), ind.basis(scoring), targets.get(ind.name)))
    return rows
