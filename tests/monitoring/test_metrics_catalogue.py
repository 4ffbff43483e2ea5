"""docs/metrics.md and the exported families never drift apart (issue 14), and no label carries a dossier code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.harness import Sandbox, run_gateway, settings_for
from tests.kafka.broker import bootstrap_or_skip
from tests.monitoring import catalogue
from tests.monitoring.promtool import promtool_check_metrics
from tests.monitoring.traffic import DOSSIERS, drive, full_gateway, scrape
from tests.queues.kafka_factory import kafka_settings
from tests.samples import sample_dossier
from tests.signing.env import World


async def test_the_doc_lists_exactly_what_a_full_gateway_exports(sandbox: Sandbox, signing_world: World,
                                                                 tmp_path: Path) -> None:
    """A gateway with sync and signing, after real traffic: every family it exports is documented
    with the same type and label names, and every documented family is exported, except the Kafka
    backend's (its own test) and the 766 indicators' while monitoring/kpi does not provide them."""
    async with full_gateway(tmp_path, sandbox, signing_world) as gw:
        await drive(gw, sandbox, signing_world)
        text = await scrape(gw)
    doc = catalogue.documented()
    assert catalogue.empty_families(text) == [], "drive more traffic: label names need a sample"
    expected = {n for n, row in doc.items() if not row.kafka_only}
    assert catalogue.drift(doc, catalogue.scraped(text), expected=expected) == []


async def test_no_label_value_holds_a_dossier_code(sandbox: Sandbox, signing_world: World, tmp_path: Path) -> None:
    """MaHoSo never becomes a label: not as a value, not inside a route or an error."""
    async with full_gateway(tmp_path, sandbox, signing_world) as gw:
        await drive(gw, sandbox, signing_world)
        text = await scrape(gw)
    values = catalogue.label_values(text)
    assert "/v1/dossiers/{MaHoSo}" in values  # the route template is there, the codes are not
    assert [(code, v) for code in DOSSIERS for v in values if code in v] == []


def test_the_checker_sees_drift_both_ways() -> None:
    """The comparison itself can fail: an undocumented family, a missing one, a wrong type, a wrong label."""
    doc = catalogue.documented("""
## Sync
| Family | Type | Labels | Meaning |
|---|---|---|---|
| `a_total` | counter | `kind`: `x`, `y` | . |
| `b` | gauge | — | . |
| `c_seconds` | histogram | `route`: …; `status`: `2xx` | . |
| `d` | gauge | — | . |
## 766 indicators (provided by monitoring/kpi)
| Family | Type | Labels | Meaning |
|---|---|---|---|
| `k` | gauge | `unit` | . |
""")
    live = catalogue.scraped("""# HELP a_total a
# TYPE a_total counter
a_total{kind="x"} 1.0
# HELP b b
# TYPE b counter
b_total 1.0
# HELP c_seconds c
# TYPE c_seconds histogram
c_seconds_bucket{route="/x",le="+Inf"} 1.0
c_seconds_count{route="/x"} 1.0
c_seconds_sum{route="/x"} 1.0
# HELP e e
# TYPE e gauge
e 1.0
""")
    assert catalogue.drift(doc, live, expected=set(doc)) == [
        "b_total: exported but not in docs/metrics.md",
        "c_seconds: documented labels ['route', 'status'], exported ['route']",
        "e: exported but not in docs/metrics.md",
        "b: documented but not exported",
        "d: documented but not exported",
    ]


@pytest.mark.kafka
async def test_the_kafka_backend_exports_its_documented_families(sandbox: Sandbox, tmp_path: Path) -> None:
    """On the Kafka backend (the real test broker), after deliveries: the doc's Kafka table matches
    the export, everything else exported is documented as it is (no dvcgw_kafka_dead_letters: dead
    letters are dvcgw_dead_letters{reason} on every backend), and promtool finds no problem."""
    settings = kafka_settings(settings_for(tmp_path, sandbox.url), bootstrap=bootstrap_or_skip())
    async with run_gateway(settings) as gw:
        for i in range(3):
            assert (await gw.put(f"{DOSSIERS[0]}{i}", sample_dossier(f"{DOSSIERS[0]}{i}"))).status == 202
        await gw.drain()
        text = await until(lambda t: not [n for n in catalogue.empty_families(t) if n.startswith("dvcgw_kafka_")],
                           lambda: scrape(gw))
    doc = catalogue.documented()
    kafka = {n for n, row in doc.items() if row.kafka_only}
    empty = set(catalogue.empty_families(text))
    assert empty & kafka == set()
    # families without a sample here (no truncation, no signing …) are compared by the test above
    live = {n: f for n, f in catalogue.scraped(text).items() if n not in empty}
    assert catalogue.drift(doc, live, expected=kafka) == []
    assert 'dvcgw_dead_letters{reason="rejected"} 0.0' in text
    assert promtool_check_metrics(text) == (0, "")


async def until(ok: Callable[[str], bool], get: Callable[[], Awaitable[str]], deadline: float = 30.0) -> str:
    """``get()`` again until ``ok`` holds for it, within ``deadline`` seconds (the pump updates
    the consumer's figures on its own schedule)."""
    end = time.monotonic() + deadline
    while True:
        text = await get()
        if ok(text) or time.monotonic() > end:
            return text
        await asyncio.sleep(0.1)
