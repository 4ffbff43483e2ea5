"""One backend fixture, parametrized over every QueueBackend; ``contract.py`` runs on all of them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from config.schema import Settings
from queues.api import QueueBackend
from queues.sqlite import MemoryQueue, SQLiteQueue

BACKENDS = ["memory", "sqlite", "kafka"]


def kafka_bootstrap() -> str:
    """The test broker's address; in CI a missing broker is a failure, never a silent skip."""
    addr = os.environ.get("DVCGW_TEST_KAFKA_BOOTSTRAP", "")
    if not addr:
        if os.environ.get("CI"):
            pytest.fail("DVCGW_TEST_KAFKA_BOOTSTRAP is not set: scripts/test.sh must start the broker")
        pytest.skip("no Kafka broker (run through `make test`, which starts one)")
    return addr


async def make_backend(name: str, tmp_path: Path) -> QueueBackend:
    if name == "memory":
        return MemoryQueue()
    if name == "sqlite":
        return SQLiteQueue(tmp_path / "queue.sqlite3", synchronous="normal")
    kafka_bootstrap()
    from tests.queues.kafka_factory import make_kafka_backend

    return await make_kafka_backend(tmp_path, Settings())


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[QueueBackend]:
    q = await make_backend(request.param, tmp_path)
    await q.start()
    try:
        yield q
    finally:
        await q.close()
