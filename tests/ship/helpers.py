"""Shared bits of the packaging and deployment checks (tests/ship)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def seconds(text: str) -> float:
    """``"40s"``, ``"2m"``, ``"500ms"`` (the forms used in deploy/ and the settings) in seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text.strip())
    assert m, f"not a duration: {text!r}"
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def stop_budget() -> float:
    """What a clean stop of the deploy settings (deploy/dvcgw.toml) may take: the drain delay, then
    the shutdown grace for requests and again for portal calls (gateway/serving.py)."""
    from config.schema import Settings

    server = Settings().server
    text = (DEPLOY / "dvcgw.toml").read_text(encoding="utf-8")
    drain = re.search(r'^drain_delay = "([^"]+)"', text, re.M)
    grace = re.search(r'^shutdown_grace = "([^"]+)"', text, re.M)
    d = seconds(drain.group(1)) if drain else float(server.drain_delay)
    g = seconds(grace.group(1)) if grace else float(server.shutdown_grace)
    return d + 2 * g
