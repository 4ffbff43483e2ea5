"""Reading the committed Grafana dashboard the way Grafana does: its panels' queries and template
variables, with the variables replaced by real values (for promtool and for a real Prometheus)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "monitoring" / "grafana" / "dvc-gateway.json"
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref: str
    expr: str


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that draws something (rows are containers), nested row panels included."""
    out: list[dict[str, Any]] = []
    for p in dashboard["panels"]:
        if p["type"] == "row":
            out += p.get("panels", [])
        else:
            out.append(p)
    return out


def queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    return [PanelQuery(p["title"], t["refId"], t["expr"]) for p in panels(dashboard) for t in p["targets"]]


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def label_values(definition: str) -> tuple[str, str]:
    """``label_values(selector, label)`` → (selector, label)."""
    m = _LABEL_VALUES.match(definition.strip())
    assert m, f"not a label_values() query: {definition}"
    return m["selector"].strip(), m["label"]


def substitute(expr: str, values: dict[str, str], rate_interval: str) -> str:
    """Grafana's interpolation for single values: ``$name`` and ``${name}``, ``$__rate_interval``."""
    expr = expr.replace("$__rate_interval", rate_interval)
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    leftover = re.findall(r"\$\{?\w+", expr)
    assert not leftover, f"variables left in {expr!r}: {leftover}"
    return expr
