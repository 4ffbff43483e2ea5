"""The dvcgw_kpi766_* families as ``render`` writes them (``generate_latest`` over
``KpiCollector``): every row's figures come back from the text, and promtool finds nothing wrong
with them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitoring.kpi.exposition import PREFIX, render
from monitoring.kpi.indicators import INDICATOR_NAMES, KpiReport, Scoring, unit_rows
from monitoring.kpi.store import Counts

WEIRD = 'we"ird\\unit\n'


def report(units: int) -> KpiReport:
    c = Counts(received=7, sync_ok=6, on_time=5, on_time_total=7, online=3, finished=4, result_link=1, so_hoa=1,
               reused=2, kho=1, fee=3, paid_online=1, citizen_data=2, vneid=2)
    rows = []
    ids = {"month": "2026-11", "quarter": "2026-Q4", "year": "2026"}
    for kind, pid in ids.items():
        for u in [f"000.00.{i:02d}.H55" for i in range(units)] + ["all", WEIRD]:
            rows += unit_rows(u, kind, pid, c, Scoring(so_hoa_full_at=0.8), {})
    return KpiReport(ids, 1_795_000_000.25, rows, 0.0123)


TARGETS = {name: (0.8 if name != "VNEID_SHARE" else None) for name in INDICATOR_NAMES}


def test_every_row_reads_back_from_the_text() -> None:
    """Each row's numerator, denominator, ratio and score under its labels (an odd unit code
    escaped and read back as it was), the targets, the periods and the computation's time."""
    r = report(3)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(render(r, TARGETS).decode())
               for s in family.samples}
    for row in r.rows:
        labels = (("indicator", row.indicator), ("period", row.period), ("unit", row.unit))
        assert samples[(PREFIX + "numerator", labels)] == row.numerator
        assert samples[(PREFIX + "denominator", labels)] == row.denominator
        assert samples[(PREFIX + "ratio", labels)] == row.ratio
        assert samples[(PREFIX + "score_estimate", tuple(sorted((*labels, ("basis", row.basis)))))] == row.score
    assert len({k for k in samples if k[0] == PREFIX + "numerator"}) == len(r.rows) == 3 * 5 * len(INDICATOR_NAMES)
    assert samples[(PREFIX + "target_ratio", (("indicator", "ON_TIME"),))] == 0.8
    assert (PREFIX + "target_ratio", (("indicator", "VNEID_SHARE"),)) not in samples
    assert samples[(PREFIX + "period_info", (("id", "2026-Q4"), ("period", "quarter")))] == 1.0
    assert samples[(PREFIX + "computed_timestamp_seconds", ())] == 1_795_000_000.25


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (scripts/install-system-deps.sh)")
def test_promtool_finds_no_problem(tmp_path: Path) -> None:
    """``promtool check metrics`` (Prometheus' own linter) over the families of 20 units."""
    text = render(report(20), TARGETS)
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), (done.stdout, done.stderr)
