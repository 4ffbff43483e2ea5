"""``promtool check metrics`` finds no problem in a live scrape (issue 14).

promtool (Debian's ``prometheus`` package, installed by scripts/install-system-deps.sh) lints an
exposition read on stdin: counters without ``_total``, non-base units (``_days``, ``_milliseconds``),
``_count``/``_sum``/``_bucket`` on a non-histogram, missing help text … It prints one line per
problem and exits non-zero.
"""

from __future__ import annotations

from pathlib import Path

from tests.harness import Sandbox
from tests.monitoring.promtool import promtool_check_metrics
from tests.monitoring.traffic import drive, full_gateway, scrape
from tests.signing.env import World


async def test_a_live_scrape_after_real_traffic_passes_promtool(sandbox: Sandbox, signing_world: World,
                                                                 tmp_path: Path) -> None:
    """After deliveries, a 429, a 503, a dead letter, signing with a TSA down and unmatched requests,
    every family has samples, and promtool reports nothing."""
    async with full_gateway(tmp_path, sandbox, signing_world) as gw:
        await drive(gw, sandbox, signing_world)
        text = await scrape(gw)
    assert 'dvcgw_throttled_total{counterpart="portal"} 1.0' in text
    assert 'outcome="retryable"} 1.0' in text
    assert promtool_check_metrics(text) == (0, "")


def test_promtool_does_report_problems() -> None:
    """The check can fail: a counter without _total and a gauge in days are reported."""
    bad = ("# HELP x_requests requests\n# TYPE x_requests counter\nx_requests 1\n"
           "# HELP x_expiry_days days\n# TYPE x_expiry_days gauge\nx_expiry_days 3\n")
    rc, out = promtool_check_metrics(bad)
    assert rc != 0
    assert "x_requests" in out and "x_expiry_days" in out
