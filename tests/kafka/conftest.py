"""Fixtures for the broker tests: the shared broker's address and a private, restartable broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kafka.broker import PrivateBroker, bootstrap_or_skip


@pytest.fixture
def kafka_bootstrap() -> str:
    return bootstrap_or_skip()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    bootstrap_or_skip()  # same CI rule: no broker tooling means fail, not skip
    broker = PrivateBroker(tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
