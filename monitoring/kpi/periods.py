"""Reporting periods and the portal's local dates.

Dates in the dossier stream are ``yyyyMMddHHmmss`` in local time, Asia/Ho_Chi_Minh (UTC+07:00, no
daylight saving; spec §6.0, ``[monitoring] timezone_offset_hours``). The indicators store them as
Unix seconds (monitoring/kpi/store.py converts them). A dossier belongs to a period by its
``NgayTiepNhan`` (kpi-766.md §3): a month ``2025-11``, a quarter ``2025-Q4`` or a year ``2025``,
each from its first local midnight up to (not including) the next period's.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

PERIOD_KINDS = ("month", "quarter", "year")
_PERIOD = re.compile(r"(?P<y>[0-9]{4})(?:-(?P<m>0[1-9]|1[0-2])|-Q(?P<q>[1-4]))?")
MIN_YEAR, MAX_YEAR = 2000, 2100
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class Period:
    """One reporting period: ``kind`` (month | quarter | year), ``id`` as written (``2025-Q4``)
    and its bounds in Unix seconds (``start`` included, ``end`` excluded)."""

    kind: str
    id: str
    start: int
    end: int


class PeriodError(ValueError):
    """A period id that is not ``YYYY-MM``, ``YYYY-Qn`` or ``YYYY`` (message says which form)."""


def _midnight(year: int, month: int, offset_s: int) -> int:
    """Unix seconds of local midnight on the first of ``month`` (13 = January of the next year)."""
    if month == 13:
        year, month = year + 1, 1
    return (dt.date(year, month, 1).toordinal() - _EPOCH_ORDINAL) * 86400 - offset_s


def make_period(kind: str, year: int, index: int, offset_s: int) -> Period:
    """``index``: the month (1..12) of a month, the quarter (1..4) of a quarter, ignored for a year."""
    if kind == "month":
        first, after, pid = index, index + 1, f"{year}-{index:02d}"
    elif kind == "quarter":
        first, after, pid = 3 * index - 2, 3 * index + 1, f"{year}-Q{index}"
    else:
        first, after, pid = 1, 13, f"{year}"
    return Period(kind, pid, _midnight(year, first, offset_s), _midnight(year, after, offset_s))


def parse_period(text: str, offset_s: int) -> Period:
    """``2025-11`` | ``2025-Q4`` | ``2025`` (years 2000..2100); raises :class:`PeriodError`."""
    m = _PERIOD.fullmatch(text)
    if m is None or not MIN_YEAR <= int(m["y"]) <= MAX_YEAR:
        raise PeriodError(f"expected a month (2025-11), a quarter (2025-Q4) or a year (2025), "
                          f"{MIN_YEAR}..{MAX_YEAR}")
    year = int(m["y"])
    if m["m"]:
        return make_period("month", year, int(m["m"]), offset_s)
    if m["q"]:
        return make_period("quarter", year, int(m["q"]), offset_s)
    return make_period("year", year, 0, offset_s)


def current_periods(now: float, offset_s: int) -> dict[str, Period]:
    """The month, quarter and year that local time ``now`` falls in, by kind."""
    local = dt.datetime.fromtimestamp(now + offset_s, dt.UTC)
    quarter = (local.month - 1) // 3 + 1
    return {"month": make_period("month", local.year, local.month, offset_s),
            "quarter": make_period("quarter", local.year, quarter, offset_s),
            "year": make_period("year", local.year, 0, offset_s)}
