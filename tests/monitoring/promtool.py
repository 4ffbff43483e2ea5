"""Runs Prometheus' promtool (Debian's ``prometheus`` package) for the monitoring tests."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def promtool_check_metrics(exposition: str) -> tuple[int, str]:
    """promtool's exit code and everything it printed."""
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is missing: scripts/install-system-deps.sh installs Debian's prometheus package")
    run = subprocess.run([tool, "check", "metrics"], input=exposition, capture_output=True, text=True,
                         timeout=60, check=False)
    return run.returncode, (run.stdout + run.stderr).strip()
