"""Fixtures for the broker tests: the shared broker's address and a private, restartable broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kafka.broker import PrivateBroker, bootstrap_or_skip


@pytest.fixture
def kafka_bootstrap() -> str:
    return bootstrap_or_skip()


@pytest.fixture(scope="module")
def outage_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """One private broker for a module's stop/restart tests (each test uses its own prefix); every
    test leaves it running."""
    bootstrap_or_skip()
    broker = PrivateBroker(tmp_path_factory.mktemp("outage") / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    bootstrap_or_skip()  # same CI rule: no broker tooling means fail, not skip
    broker = PrivateBroker(tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
