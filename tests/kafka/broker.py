"""Helpers for tests that need a real Kafka broker (started by ``scripts/kafka.sh``).

* :func:`bootstrap_or_skip` returns the shared broker's address from ``DVCGW_TEST_KAFKA_BOOTSTRAP``
  (exported by ``scripts/test.sh``). Without it the test FAILS under ``CI=true`` and skips locally
  with the reason, so CI never skips the Kafka tests silently.
* :class:`PrivateBroker` runs a second broker in its own directory and ports, for tests that stop
  and restart it (the shared broker must stay up for everyone else).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "kafka.sh"


def bootstrap_or_skip() -> str:
    """The shared test broker's ``host:port``; fail in CI, skip locally when it is not running."""
    value = os.environ.get("DVCGW_TEST_KAFKA_BOOTSTRAP", "")
    if value:
        return value
    reason = "DVCGW_TEST_KAFKA_BOOTSTRAP is unset: run the tests via scripts/test.sh (starts Kafka)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


def unique_prefix(stem: str = "t") -> str:
    """A topic prefix no other test uses, so tests sharing the broker never see each other's data."""
    return f"{stem}-{uuid.uuid4().hex[:10]}"


class PrivateBroker:
    """A broker of its own (own data dir, own ports) that a test may stop and restart."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.bootstrap = ""

    def _run(self, action: str) -> None:
        env = dict(os.environ, DVCGW_KAFKA_HOME=str(self.home))
        proc = subprocess.run(
            ["bash", str(SCRIPT), action], env=env, capture_output=True, text=True, timeout=150, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"kafka.sh {action} failed: {proc.stderr[-2000:]}")

    def start(self) -> str:
        """Start (or restart after :meth:`stop`) on the same ports; returns the bootstrap address."""
        self._run("start")
        env_text = (self.home / "env.sh").read_text()
        self.bootstrap = env_text.split("DVCGW_TEST_KAFKA_BOOTSTRAP=")[1].split()[0]
        return self.bootstrap

    def stop(self) -> None:
        self._run("stop")

    def pid(self) -> int | None:
        pidfile = self.home / "kafka.pid"
        return int(pidfile.read_text()) if pidfile.exists() else None
