"""The 766 figures as Prometheus gauges (``dvcgw_kpi766_*``, docs/metrics.md).

With 500 units, three periods and ten indicators the families hold some 60,000 samples, too many
to collect on every scrape. So they are rendered with ``prometheus_client.generate_latest`` once
per computation, on registries of their own; ``GET /metrics`` appends those cached bytes to the
live registry's output. The families are never on the instance registry (they would be
collected twice).

The rendering is ~0.6 s of Python a computation, so it runs on the event loop in parts of
:data:`STEP_SAMPLES` samples (:func:`render_parts`), the loop free between them. On the
indicators' worker thread it held the GIL for its whole length, and the loop, which lets the GIL
go at each statement and system call, got it back only at each switch interval (5 ms): a
computation cost ~6 s of deliveries, not its own ~0.6 s (docs/kpi.md, Cost).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitoring.kpi.indicators import INDICATOR_NAMES, KpiReport, KpiRow

PREFIX = "dvcgw_kpi766_"
#: Samples in one part of :func:`render_parts`: ``generate_latest`` takes ~10 µs a sample, so a
#: part is ~5 ms of the event loop's time (60,120 samples with 500 units: ~120 parts).
STEP_SAMPLES = 500

Pair = tuple[tuple[str, ...], float]

#: name -> (help, label names in the order the rows give them)
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "numerator": ("766 indicator numerator (gateway estimate, docs/kpi.md)", ("indicator", "unit", "period")),
    "denominator": ("766 indicator denominator (gateway estimate, docs/kpi.md)", ("indicator", "unit", "period")),
    "ratio": ("766 indicator rate, numerator / denominator (0 when the denominator is 0)",
              ("indicator", "unit", "period")),
    "score_estimate": ("766 indicator points estimated with the spec's formula; basis: re (reverse-engineered), "
                       "desc (description document), gw (gateway diagnostic)",
                       ("indicator", "unit", "period", "basis")),
    "max_points": ("766 indicator maximum points", ("indicator",)),
    "target_ratio": ("The province's configured target rate per 766 indicator ([kpi.targets])", ("indicator",)),
    "period_info": ("The current periods the 766 figures cover (period=month|quarter|year, id=2026-12 ...)",
                    ("period", "id")),
    "computed_timestamp_seconds": ("When the 766 figures were last computed (Unix seconds)", ()),
    "compute_duration_seconds": ("How long the last computation of the 766 figures took", ()),
}


def _families(report: KpiReport,
              targets: Mapping[str, float | None]) -> Iterator[tuple[str, Sequence[Any], Callable[[Any], Pair]]]:
    """Every family, in the order they are exposed: its name, what its samples come from, and how
    one of those becomes a sample's (label values, value)."""
    rows = report.rows
    yield "numerator", rows, lambda r: ((r.indicator, r.unit, r.period), float(r.numerator))
    yield "denominator", rows, lambda r: ((r.indicator, r.unit, r.period), float(r.denominator))
    yield "ratio", rows, lambda r: ((r.indicator, r.unit, r.period), r.ratio)
    yield "score_estimate", rows, lambda r: ((r.indicator, r.unit, r.period, r.basis), r.score)
    yield "max_points", list(_max_points(rows).items()), lambda kv: ((kv[0],), kv[1])
    wanted = [(name, t) for name in INDICATOR_NAMES if (t := targets.get(name)) is not None]
    yield "target_ratio", wanted, lambda kv: ((kv[0],), kv[1])
    yield "period_info", list(report.period_ids.items()), lambda kv: (kv, 1.0)
    yield "computed_timestamp_seconds", [report.computed_at], lambda v: ((), v)
    yield "compute_duration_seconds", [report.duration], lambda v: ((), v)


def _max_points(rows: list[KpiRow]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in rows:
        out.setdefault(r.indicator, r.max_points)
    return out


class FamilyCollector(Collector):
    """Some samples of one ``dvcgw_kpi766_*`` family, as a custom collector."""

    def __init__(self, name: str, pairs: Sequence[Pair]) -> None:
        self._name = name
        self._pairs = pairs

    def collect(self) -> Iterator[Metric]:
        doc, labels = FAMILIES[self._name]
        family = GaugeMetricFamily(PREFIX + self._name, doc, labels=list(labels))
        for values, value in self._pairs:
            family.add_metric(list(values), value)
        yield family


def render_parts(report: KpiReport, targets: Mapping[str, float | None], step: int = STEP_SAMPLES) -> Iterator[bytes]:
    """The text of :func:`render` in parts of at most ``step`` samples each, in order: each part
    is ``generate_latest`` over a registry holding one family's next samples, and a family's parts
    after its first go without the family's ``# HELP`` and ``# TYPE`` lines. The caller does the
    work part by part (``next()``), so an event loop can run between parts."""
    for name, source, pair in _families(report, targets):
        for i in range(0, max(len(source), 1), step):
            registry = CollectorRegistry()
            registry.register(FamilyCollector(name, [pair(x) for x in source[i:i + step]]))
            text = generate_latest(registry)
            yield text if i == 0 else text.split(b"\n", 2)[2]


def render(report: KpiReport, targets: Mapping[str, float | None]) -> bytes:
    """The families of ``report`` in the Prometheus text format (0.0.4), by ``generate_latest``:
    the parts of :func:`render_parts`, joined."""
    return b"".join(render_parts(report, targets))
