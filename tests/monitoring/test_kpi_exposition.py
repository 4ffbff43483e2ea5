"""The dvcgw_kpi766_* families: the fast renderer writes exactly what ``generate_latest`` writes
for the same families, and promtool finds nothing wrong with them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitoring.kpi.exposition import KpiCollector, render
from monitoring.kpi.indicators import INDICATOR_NAMES, KpiReport, Scoring, unit_rows
from monitoring.kpi.store import Counts


def report(units: int) -> KpiReport:
    c = Counts(received=7, sync_ok=6, on_time=5, on_time_total=7, online=3, finished=4, result_link=1, so_hoa=1,
               reused=2, kho=1, fee=3, paid_online=1, citizen_data=2, vneid=2)
    rows = []
    ids = {"month": "2026-11", "quarter": "2026-Q4", "year": "2026"}
    for kind, pid in ids.items():
        for u in [f"000.00.{i:02d}.H55" for i in range(units)] + ["all", 'we"ird\\unit\n']:
            rows += unit_rows(u, kind, pid, c, Scoring(so_hoa_full_at=0.8), {})
    return KpiReport(ids, 1_795_000_000.25, rows, 0.0123)


TARGETS = {name: (0.8 if name != "VNEID_SHARE" else None) for name in INDICATOR_NAMES}


def test_render_is_byte_for_byte_generate_latest() -> None:
    """Same families, same order, same escaping and number formatting as prometheus_client."""
    r = report(3)
    registry = CollectorRegistry()
    registry.register(KpiCollector(r, TARGETS))
    assert render(r, TARGETS) == generate_latest(registry)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (scripts/install-system-deps.sh)")
def test_promtool_finds_no_problem(tmp_path: Path) -> None:
    """``promtool check metrics`` (Prometheus' own linter) over the families of 20 units."""
    text = render(report(20), TARGETS)
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), (done.stdout, done.stderr)
