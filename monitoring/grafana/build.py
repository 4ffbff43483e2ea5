"""The Grafana dashboard of dvc-gateway, built as code.

``python -m monitoring.grafana.build`` (``make dashboard``) writes ``monitoring/grafana/dvc-gateway.json``;
``--check`` writes nothing and exits 1 when the committed file differs from what this module builds.
Edit the panels here, never the JSON: tests/monitoring/test_dashboard.py fails when the two drift apart,
and tests/monitoring/test_prometheus_integration.py runs every panel's expression against a real
Prometheus scraping a real daemon.

A dozen lines of dataclasses rather than grafanalib (docs/decisions.md): the dashboard needs four panel
kinds, and the output stays a plain, reviewable, byte-stable JSON file.

Every query filters on ``instance=~"$instance"``; the 766 panels also on ``unit="$unit"`` and
``period="$period"``. Rates use ``$__rate_interval``, which Grafana derives from the datasource's scrape
interval (``timeInterval`` in provisioning/datasources/prometheus.yml).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UID = "dvc-gateway"
TITLE = "dvc-gateway"
OUTPUT = Path(__file__).with_name("dvc-gateway.json")
#: The datasource every panel uses: the dashboard's ``datasource`` variable, whose default is the
#: provisioned Prometheus (provisioning/datasources/prometheus.yml).
DATASOURCE_UID = "dvcgw-prometheus"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WIDTH = 24  # Grafana's grid

_INSTANCE = 'instance=~"$instance"'
_KPI = ('unit="$unit"', 'period="$period"')


def sel(metric: str, *matchers: str) -> str:
    """``metric{instance=~"$instance", …matchers}``."""
    return f"{metric}{{{', '.join((_INSTANCE, *matchers))}}}"


def rate(metric: str, *matchers: str) -> str:
    return f"rate({sel(metric, *matchers)}[$__rate_interval])"


def quantile(q: float, histogram: str, *by: str) -> str:
    """The q-quantile of a histogram family over the rate interval, per ``by`` labels."""
    labels = ", ".join(("le", *by))
    return f"histogram_quantile({q}, sum by ({labels}) ({rate(histogram + '_bucket')}))"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """One panel. ``kind``: timeseries, stat, bargauge or table. ``steps``: threshold colours as
    (from value, colour), the first from ``None``. ``mappings``: (value, text, colour)."""

    title: str
    description: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 8
    height: int = 8
    steps: tuple[tuple[float | None, str], ...] = ((None, "green"),)
    mappings: tuple[tuple[int, str, str], ...] = ()
    min: float | None = None
    max: float | None = None
    dashed: str = ""  # series whose display name matches this regex are drawn dashed (targets)


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


def p50_p99(histogram: str, *by: str, suffix: str = "") -> tuple[Query, ...]:
    return (Query(quantile(0.5, histogram, *by), "p50" + suffix), Query(quantile(0.99, histogram, *by), "p99" + suffix))


# ------------------------------------------------------------------------------------------ panels


def agg(op: str, labels: str, inner: str) -> str:
    """``op by (labels) (inner)``; ``op(inner)`` without labels."""
    return f"{op} by ({labels}) ({inner})" if labels else f"{op}({inner})"


def per_minute(labels: str, inner: str) -> str:
    return "60 * " + agg("sum", labels, inner)


SYNC = Row("Sync health", (
    Panel("Accepted and delivered", "Events accepted from agencies (202 sent) and events the portal accepted, "
          "per second.",
          (Query(agg("sum", "kind", rate("dvcgw_events_accepted_total")), "accepted {{kind}}"),
           Query(agg("sum", "operation", rate("dvcgw_deliveries_total", 'outcome="ok"')), "delivered {{operation}}")),
          unit="ops", width=12),
    Panel("Sync lag (accepted → portal)", "Time from the agency's 202 to the portal accepting the event. "
          "Over 1 h, a state change no longer counts as synced in real time (766, DOSSIER_SYNC).",
          p50_p99("dvcgw_sync_lag_seconds"), unit="s", width=12),
    Panel("Delivery errors by class", "Portal deliveries that did not succeed, by outcome class "
          "(rejected, exists, retryable, throttled, auth_failed, …), per second.",
          (Query(agg("sum", "outcome", rate("dvcgw_deliveries_total", 'outcome!="ok"')), "{{outcome}}"),),
          unit="ops"),
    Panel("Queue depth by state", "Dossiers per delivery state (delivered left out: it only grows).",
          (Query(agg("sum", "state", sel("dvcgw_queue_dossiers", 'state!="delivered"')), "{{state}}"),)),
    Panel("Dead letters by reason", "Events waiting for an operator: dvcgw dlq list / show / replay "
          "(docs/runbook.md, DvcgwDeadLetters).",
          (Query(agg("sum", "reason", sel("dvcgw_dead_letters")), "{{reason}}"),),
          kind="stat", steps=((None, "green"), (1, "orange"))),
    Panel("Oldest pending event", "Age of the oldest event not yet delivered. Alerts at 30 min (warning) "
          "and 1 h (critical).",
          (Query(agg("max", "", sel("dvcgw_oldest_pending_age_seconds")), "oldest"),),
          kind="stat", unit="s", width=6, steps=((None, "green"), (1800, "orange"), (3600, "red"))),
    Panel("Agency API requests by status", "Requests to the /v1/ routes per second, by status class. "
          "5xx means the event was not accepted.",
          (Query(agg("sum", "status", rate("dvcgw_http_requests_total", 'route=~"/v1/.*"')), "{{status}}"),),
          unit="ops", width=9),
    Panel("Accept latency (request → durable 202)", "Time the gateway takes to store an event and answer 202.",
          p50_p99("dvcgw_accept_duration_seconds"), unit="s", width=9),
))

_CIRCUIT = ((0, "closed", "green"), (1, "half-open", "orange"), (2, "open", "red"))

COUNTERPARTS = Row("Counterparts", (
    Panel("Call latency p50 / p99", "Latency of calls to the portal, the TSAs and the remote signer "
          "(aiohttp trace hooks).",
          p50_p99("dvcgw_counterpart_request_duration_seconds", "counterpart", suffix=" {{counterpart}}"),
          unit="s", width=12),
    Panel("Calls by counterpart and status", "Calls per second by counterpart and status class "
          "(error: no HTTP answer).",
          (Query(agg("sum", "counterpart, status", rate("dvcgw_counterpart_request_duration_seconds_count")),
                 "{{counterpart}} {{status}}"),),
          unit="ops", width=12),
    Panel("Circuit state", "The circuit in front of each counterpart: open after consecutive failures, "
          "half-open while one probe goes.",
          (Query(agg("max", "counterpart", sel("dvcgw_circuit_state")), "{{counterpart}}"),),
          kind="stat", width=6, mappings=_CIRCUIT, steps=((None, "green"), (1, "orange"), (2, "red"))),
    Panel("Delivery paused (credentials)", "1 while delivery is paused because the portal refused the "
          "account (auth_failed) or the subscription (forbidden).",
          (Query(agg("max", "reason", sel("dvcgw_portal_delivery_paused")), "{{reason}}"),),
          kind="stat", width=6, mappings=((0, "running", "green"), (1, "paused", "red")),
          steps=((None, "green"), (1, "red"))),
    Panel("Login and token failures per minute", "Failed logins, token fetches and refreshes, per minute.",
          (Query(per_minute("counterpart, kind", rate("dvcgw_auth_total", 'result="failed"')),
                 "{{counterpart}} {{kind}}"),),
          width=6),
    Panel("429 answers per minute", "Too Many Requests answers (NGSP/LGSP quota), per minute.",
          (Query(per_minute("counterpart", rate("dvcgw_throttled_total")), "{{counterpart}}"),),
          width=6),
    Panel("Time spent waiting on 429s", "Share of the time the gateway held calls back because of 429 "
          "(Retry-After or the retry ladder). Alert over 10 % for 15 min.",
          (Query(agg("sum", "counterpart", rate("dvcgw_throttled_wait_seconds_total")), "{{counterpart}}"),),
          unit="percentunit", width=24, height=6),
))

SIGNING = Row("Signing and certification", (
    Panel("Signatures by level and outcome", "Signature requests per second.",
          (Query(agg("sum", "level, outcome", rate("dvcgw_signatures_total")), "{{level}} {{outcome}}"),),
          unit="ops"),
    Panel("Signing time p50 / p99", "Time to produce a signed PDF with a local key.",
          p50_p99("dvcgw_signing_duration_seconds"), unit="s"),
    Panel("Validations by indication", "Signatures validated per second, by ETSI main indication.",
          (Query(agg("sum", "indication", rate("dvcgw_validations_total")), "{{indication}}"),),
          unit="ops"),
    Panel("TSA latency p99", "Time-stamp request latency per TSA URL.",
          (Query(quantile(0.99, "dvcgw_tsa_request_duration_seconds", "url"), "{{url}}"),), unit="s"),
    Panel("TSA available", "Whether the last request to each TSA succeeded.",
          (Query(agg("min", "url", sel("dvcgw_tsa_available")), "{{url}}"),),
          kind="stat", mappings=((0, "failing", "red"), (1, "up", "green")), steps=((None, "red"), (1, "green"))),
    Panel("TSA failures per minute", "Failed time-stamp requests per TSA URL, per minute.",
          (Query(per_minute("url", rate("dvcgw_tsa_failures_total")), "{{url}}"),)),
    Panel("Signing certificate expiry", "Days until each signing key's certificate expires. Alerts under "
          "30 days (warning) and 7 days (critical).",
          (Query(agg("min", "key", sel("dvcgw_signing_cert_expiry_seconds")) + " / 86400", "{{key}}"),),
          kind="bargauge", unit="d", width=24, height=6, min=0,
          steps=((None, "red"), (7, "orange"), (30, "green"))),
))

_GAP_STEPS = ((None, "red"), (0, "green"))
_RATIO = sel("dvcgw_kpi766_ratio", *_KPI)
_TARGET = agg("max", "indicator", sel("dvcgw_kpi766_target_ratio"))
_PERIOD = 'period="$period"'

KPI766 = Row("766 indicators: unit $unit, current $period", (
    Panel("Rate and target by indicator", "Each indicator's rate for the unit and period chosen above "
          "(unit \"all\" is the province), and the province's configured target (dashed).",
          (Query(agg("max", "indicator", _RATIO), "{{indicator}}"), Query(_TARGET, "target {{indicator}}")),
          unit="percentunit", width=12, min=0, max=1, dashed="^target "),
    Panel("Gap to target", "Rate minus target, per indicator with a target: below 0 (red), the unit is "
          "under the province's target.",
          (Query(agg("max", "indicator", _RATIO) + " - on (indicator) " + _TARGET, "{{indicator}}"),),
          kind="bargauge", unit="percentunit", width=12, steps=_GAP_STEPS),
    Panel("DOSSIER_SYNC by unit", "Share of each unit's dossier state changes that reached the portal "
          "in real time, in the period chosen above.",
          (Query(agg("max", "unit", sel("dvcgw_kpi766_ratio", 'indicator="DOSSIER_SYNC"', _PERIOD)), "{{unit}}"),),
          kind="bargauge", unit="percentunit", width=12, height=10, min=0, max=1,
          steps=((None, "red"), (0.8, "orange"), (0.95, "green"))),
    Panel("Gap to target by unit and indicator", "Every unit's rate minus the province's target, per "
          "indicator, in the period chosen above. Sort by Value to see who is furthest behind.",
          (Query(agg("max", "unit, indicator", sel("dvcgw_kpi766_ratio", _PERIOD))
                 + " - on (indicator) group_left " + _TARGET, "gap to target"),),
          kind="table", unit="percentunit", width=12, height=10, steps=_GAP_STEPS),
    Panel("Numerator and denominator", "What each rate of the unit and period chosen above is made of.",
          (Query(agg("max", "indicator", sel("dvcgw_kpi766_numerator", *_KPI)), "numerator"),
           Query(agg("max", "indicator", sel("dvcgw_kpi766_denominator", *_KPI)), "denominator")),
          kind="table", width=12),
    Panel("Estimated points", "Points by the spec's formulas (basis: re = reverse-engineered, desc = "
          "described, gw = the gateway's own reading), beside each indicator's maximum.",
          (Query(agg("max", "indicator, basis", sel("dvcgw_kpi766_score_estimate", *_KPI)), "points"),
           Query(agg("max", "indicator", sel("dvcgw_kpi766_max_points")), "max points")),
          kind="table", width=12),
    Panel("Indicators computed", "Time since the last computation of the indicators. Alert after 1 h.",
          (Query("time() - " + agg("max", "", sel("dvcgw_kpi766_computed_timestamp_seconds")), "age"),),
          kind="stat", unit="s", width=8, steps=((None, "green"), (1800, "orange"), (3600, "red"))),
    Panel("Computation time", "How long the last computation of the indicators took.",
          (Query(agg("max", "", sel("dvcgw_kpi766_compute_duration_seconds")), "duration"),),
          kind="stat", unit="s", width=8),
    Panel("Current periods", "The month, quarter and year the indicators are computed for.",
          (Query(agg("max", "period, id", sel("dvcgw_kpi766_period_info")), "{{period}} {{id}}"),),
          kind="stat", width=8),
))

PROCESS = Row("Process", (
    Panel("Up", "Whether Prometheus could scrape each instance.",
          (Query(agg("max", "instance", sel("up")), "{{instance}}"),),
          kind="stat", width=4, mappings=((0, "down", "red"), (1, "up", "green")), steps=((None, "red"), (1, "green"))),
    Panel("Version", "dvc-gateway version and Python of each instance.",
          (Query(agg("max", "instance, version, python", sel("dvcgw_build_info")),
                 "{{instance}}: {{version}} (Python {{python}})"),),
          kind="stat", width=8),
    Panel("Uptime", "Time since each instance started.",
          (Query("time() - " + agg("max", "instance", sel("dvcgw_start_time_seconds")), "{{instance}}"),),
          kind="stat", unit="s", width=4),
    Panel("Resident memory", "Resident set size of each daemon process.",
          (Query(agg("max", "instance", sel("process_resident_memory_bytes")), "{{instance}}"),),
          unit="bytes", width=4),
    Panel("CPU", "CPU used by each daemon process (1 = one core).",
          (Query(agg("sum", "instance", rate("process_cpu_seconds_total")), "{{instance}}"),),
          unit="percentunit", width=4),
))

JOBS = Row("Jobs: provincial delivery and e-receipts", (
    Panel("Jobs by topic and state", "Durable jobs per topic (provincial, receipt) waiting, dead-lettered "
          "(dvcgw jobs list / replay; DvcgwJobDeadLetters).",
          (Query(agg("sum", "topic, state", sel("dvcgw_jobs", 'state!="done"')), "{{topic}} {{state}}"),),
          width=12),
    Panel("Job runs by outcome", "Runs per second by topic and outcome: ok, retry (on the [retry] ladder), "
          "dead.", (Query(agg("sum", "topic, outcome", rate("dvcgw_job_runs_total")), "{{topic}} {{outcome}}"),),
          unit="ops", width=12),
))

ROWS = (SYNC, COUNTERPARTS, SIGNING, KPI766, JOBS, PROCESS)


# ------------------------------------------------------------------------------------------ JSON


def _steps(steps: Sequence[tuple[float | None, str]]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def _mappings(mappings: Sequence[tuple[int, str, str]]) -> list[dict[str, Any]]:
    if not mappings:
        return []
    options = {str(v): {"text": t, "color": c, "index": i} for i, (v, t, c) in enumerate(mappings)}
    return [{"type": "value", "options": options}]


def _field_config(p: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": p.unit, "thresholds": _steps(p.steps), "mappings": _mappings(p.mappings),
                                "color": {"mode": "palette-classic" if p.kind == "timeseries" else "thresholds"}}
    if p.min is not None:
        defaults["min"] = p.min
    if p.max is not None:
        defaults["max"] = p.max
    overrides: list[dict[str, Any]] = []
    if p.kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                              "spanNulls": False, "axisSoftMin": 0}
    if p.kind == "table":
        defaults["custom"] = {"align": "auto", "cellOptions": {"type": "color-text"}}
    if p.dashed:
        overrides.append({"matcher": {"id": "byRegexp", "options": p.dashed},
                          "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}]})
    return {"defaults": defaults, "overrides": overrides}


_REDUCE = {"calcs": ["lastNotNull"], "fields": "", "values": False}
_OPTIONS: dict[str, dict[str, Any]] = {
    "timeseries": {"legend": {"showLegend": True, "displayMode": "list", "placement": "bottom", "calcs": []},
                   "tooltip": {"mode": "multi", "sort": "desc"}},
    "stat": {"reduceOptions": _REDUCE, "colorMode": "background", "graphMode": "none", "justifyMode": "auto",
             "orientation": "auto", "textMode": "value_and_name"},
    "bargauge": {"reduceOptions": _REDUCE, "orientation": "horizontal", "displayMode": "gradient",
                 "showUnfilled": True, "valueMode": "color", "namePlacement": "auto"},
    "table": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}},
}


def _target(q: Query, i: int, kind: str) -> dict[str, Any]:
    instant = kind != "timeseries"
    target: dict[str, Any] = {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": q.expr,
                              "legendFormat": q.legend or "__auto", "range": not instant, "instant": instant}
    if kind == "table":
        target["format"] = "table"
    return target


def panel_json(p: Panel, pid: int, pos: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": pid, "type": p.kind, "title": p.title, "description": p.description, "datasource": DATASOURCE,
        "gridPos": pos, "fieldConfig": _field_config(p), "options": _OPTIONS[p.kind],
        "targets": [_target(q, i, p.kind) for i, q in enumerate(p.queries)],
    }
    if p.kind == "table":
        out["transformations"] = _table_transformations(p.queries)
    return out


def _table_transformations(queries: Sequence[Query]) -> list[dict[str, Any]]:
    """Instant queries in table format give a ``Value`` column each (``Value #A`` … once merged):
    merge them on their labels, drop the time, and name each value column by its query's legend."""
    if len(queries) == 1:
        names = {"Value": queries[0].legend}
        steps: list[dict[str, Any]] = []
    else:
        names = {f"Value #{chr(ord('A') + i)}": q.legend for i, q in enumerate(queries)}
        steps = [{"id": "merge", "options": {}}]
    organize = {"excludeByName": {"Time": True}, "renameByName": names, "indexByName": {}}
    return [*steps, {"id": "organize", "options": organize}]


def layout(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Rows one under the other, each row's panels left to right, wrapping at the grid's width."""
    panels: list[dict[str, Any]] = []
    pid, y = 0, 0
    for row in rows:
        pid += 1
        panels.append({"id": pid, "type": "row", "title": row.title, "collapsed": False, "panels": [],
                       "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y}})
        y += 1
        x, line = 0, 0
        for p in row.panels:
            if x + p.width > WIDTH:
                x, y, line = 0, y + line, 0
            pid += 1
            panels.append(panel_json(p, pid, {"h": p.height, "w": p.width, "x": x, "y": y}))
            x, line = x + p.width, max(line, p.height)
        y += line
    return panels


def _query_variable(name: str, label: str, definition: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE, "definition": definition,
            "query": {"query": definition, "refId": f"{name}-variable"}, "refresh": 2, "sort": 1, "regex": "",
            "hide": 0, "options": [], **extra}


def templating() -> list[dict[str, Any]]:
    periods = ("month", "quarter", "year")
    return [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "regex": "",
         "hide": 0, "refresh": 1, "options": [], "current": {"text": "Prometheus", "value": DATASOURCE_UID}},
        _query_variable("instance", "Instance", "label_values(dvcgw_build_info, instance)",
                        multi=True, includeAll=True, current={"text": ["All"], "value": ["$__all"]}),
        _query_variable("unit", "Unit", 'label_values(dvcgw_kpi766_ratio{instance=~"$instance"}, unit)',
                        multi=False, includeAll=False, current={"text": "all", "value": "all"}),
        {"name": "period", "label": "Period", "type": "custom", "query": ",".join(periods), "hide": 0,
         "multi": False, "includeAll": False, "current": {"text": "month", "value": "month"},
         "options": [{"text": p, "value": p, "selected": p == "month"} for p in periods]},
    ]


def dashboard() -> dict[str, Any]:
    return {
        "uid": UID, "title": TITLE, "description": "dvc-gateway: sync to the national portal, counterparts, "
        "signing and the 766 indicators. Generated by monitoring/grafana/build.py: do not edit by hand.",
        "tags": ["dvc-gateway", "dvcqg"], "timezone": "browser", "editable": False, "graphTooltip": 1,
        "schemaVersion": 39, "version": 1, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": [{
            "name": "Alerts firing", "datasource": DATASOURCE, "enable": True, "iconColor": "red",
            "expr": 'ALERTS{alertname=~"Dvcgw.+", alertstate="firing"}', "step": "60s",
            "titleFormat": "{{alertname}} ({{severity}})", "textFormat": "{{instance}}"}]},
        "links": [],
        "templating": {"list": templating()},
        "panels": layout(ROWS),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.grafana.build", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed JSON is not what is built")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} differs from monitoring/grafana/build.py: run make dashboard", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({sum(len(r.panels) for r in ROWS)} panels in {len(ROWS)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
