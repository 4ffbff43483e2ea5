"""The 766 figures as Prometheus gauges (``dvcgw_kpi766_*``, docs/metrics.md).

With 500 units, three periods and ten indicators the families hold some 60,000 samples, too many
to collect on every scrape. So :func:`render` puts :class:`KpiCollector` on a registry of its
own and renders it with ``prometheus_client.generate_latest`` once per computation, in the KPI
worker thread; ``GET /metrics`` appends those cached bytes to the live registry's output. The
families are never on the instance registry (they would be collected twice).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitoring.kpi.indicators import INDICATOR_NAMES, KpiReport, KpiRow

PREFIX = "dvcgw_kpi766_"

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


def _values(report: KpiReport, targets: Mapping[str, float | None]) -> dict[str, list[tuple[tuple[str, ...], float]]]:
    """Every family's (label values, value) pairs, in the order they are exposed."""
    rows = report.rows
    return {
        "numerator": [((r.indicator, r.unit, r.period), float(r.numerator)) for r in rows],
        "denominator": [((r.indicator, r.unit, r.period), float(r.denominator)) for r in rows],
        "ratio": [((r.indicator, r.unit, r.period), r.ratio) for r in rows],
        "score_estimate": [((r.indicator, r.unit, r.period, r.basis), r.score) for r in rows],
        "max_points": [((name,), points) for name, points in _max_points(rows).items()],
        "target_ratio": [((name,), t) for name in INDICATOR_NAMES if (t := targets.get(name)) is not None],
        "period_info": [((kind, pid), 1.0) for kind, pid in report.period_ids.items()],
        "computed_timestamp_seconds": [((), report.computed_at)],
        "compute_duration_seconds": [((), report.duration)],
    }


def _max_points(rows: list[KpiRow]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in rows:
        out.setdefault(r.indicator, r.max_points)
    return out


class KpiCollector(Collector):
    """The ``dvcgw_kpi766_*`` families of one report, as a custom collector."""

    def __init__(self, report: KpiReport, targets: Mapping[str, float | None]) -> None:
        self._report = report
        self._targets = targets

    def collect(self) -> Iterator[Metric]:
        for name, pairs in _values(self._report, self._targets).items():
            doc, labels = FAMILIES[name]
            family = GaugeMetricFamily(PREFIX + name, doc, labels=list(labels))
            for values, value in pairs:
                family.add_metric(list(values), value)
            yield family


def render(report: KpiReport, targets: Mapping[str, float | None]) -> bytes:
    """The families of ``report`` in the Prometheus text format (0.0.4), by ``generate_latest``
    over a registry holding only them."""
    registry = CollectorRegistry()
    registry.register(KpiCollector(report, targets))
    return generate_latest(registry)
