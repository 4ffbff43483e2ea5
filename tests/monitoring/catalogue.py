"""Reads docs/metrics.md's tables and a ``/metrics`` scrape into comparable catalogues."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
KPI_MARK = "provided by monitoring/kpi"
KAFKA_MARK = "Kafka backend"
_ROW = re.compile(r"^\|\s*`(?P<name>[a-z_:][a-z0-9_:]*)`\s*\|\s*(?P<type>\w+)\s*\|(?P<labels>[^|]*)\|")
_LABEL = re.compile(r"(?:^|;)\s*`(?P<name>[A-Za-z_][A-Za-z0-9_]*)`")


@dataclass(frozen=True)
class Family:
    name: str  # as exposed: counters with their _total
    type: str
    labels: frozenset[str]


@dataclass(frozen=True)
class Documented(Family):
    section: str

    @property
    def from_kpi(self) -> bool:
        return KPI_MARK in self.section

    @property
    def kafka_only(self) -> bool:
        return KAFKA_MARK in self.section


def documented(text: str | None = None) -> dict[str, Documented]:
    """Every table row of the doc whose first cell is a backticked family name."""
    out: dict[str, Documented] = {}
    section = ""
    for line in (DOC.read_text(encoding="utf-8") if text is None else text).splitlines():
        if line.startswith("## "):
            section = line[3:]
            continue
        m = _ROW.match(line)
        if m is None:
            continue
        cell = m["labels"].strip()
        labels = frozenset() if cell in ("—", "-", "") else frozenset(x["name"] for x in _LABEL.finditer(cell))
        if m["name"] in out:
            raise AssertionError(f"{m['name']} is documented twice")
        out[m["name"]] = Documented(m["name"], m["type"], labels, section)
    return out


def scraped(text: str) -> dict[str, Family]:
    """The families of a text-format scrape; label names from their samples (``le`` left out)."""
    out: dict[str, Family] = {}
    for fam in text_string_to_metric_families(text):
        name = f"{fam.name}_total" if fam.type == "counter" else fam.name
        labels = {k for s in fam.samples for k in s.labels if k not in ("le", "quantile")}
        out[name] = Family(name, fam.type, frozenset(labels))
    return out


def empty_families(text: str) -> list[str]:
    """Families exposed without a single sample (their label names are unknown), by exposed name."""
    return sorted(f"{f.name}_total" if f.type == "counter" else f.name
                  for f in text_string_to_metric_families(text) if not f.samples)


def label_values(text: str) -> set[str]:
    return {v for fam in text_string_to_metric_families(text) for s in fam.samples for v in s.labels.values()}


def drift(doc: dict[str, Documented], live: dict[str, Family], *, expected: set[str]) -> list[str]:
    """Differences between the doc and a scrape, both ways: every exported family must be documented
    with the same type and label names, and every row named in ``expected`` must be exported,
    except a row provided by monitoring/kpi (that helper's families may not be built yet)."""
    problems = []
    for name, fam in sorted(live.items()):
        row = doc.get(name)
        if row is None:
            problems.append(f"{name}: exported but not in docs/metrics.md")
            continue
        if fam.type != row.type:
            problems.append(f"{name}: documented as {row.type}, exported as {fam.type}")
        if fam.labels != row.labels:
            problems.append(f"{name}: documented labels {sorted(row.labels)}, exported {sorted(fam.labels)}")
    problems += [f"{n}: documented but not exported" for n in sorted(expected - set(live)) if not doc[n].from_kpi]
    return problems
