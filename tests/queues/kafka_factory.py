"""Builds a KafkaQueue on the shared test broker with a topic prefix and group no other test uses."""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path

from config.loader import Duration
from config.schema import Settings
from queues.api import QueueBackend


def kafka_settings(settings: Settings, *, prefix: str | None = None, group: str | None = None,
                   partitions: int = 3, bootstrap: str | None = None) -> Settings:
    """``settings`` pointed at the test broker, with a fresh prefix and group unless given."""
    tag = uuid.uuid4().hex[:10]
    kafka = dataclasses.replace(
        settings.queue.kafka,
        bootstrap_servers=bootstrap or os.environ["DVCGW_TEST_KAFKA_BOOTSTRAP"],
        topic_prefix=prefix or f"t-{tag}",
        group_id=group or f"g-{tag}",
        partitions=partitions,
        request_timeout=Duration(min(float(settings.queue.kafka.request_timeout), 10.0)),
    )
    queue = dataclasses.replace(settings.queue, backend="kafka", kafka=kafka)
    return dataclasses.replace(settings, queue=queue)


async def make_kafka_backend(tmp_path: Path, settings: Settings) -> QueueBackend:
    """A not-yet-started KafkaQueue on its own topics (the caller starts and closes it)."""
    from queues.kafka import KafkaQueue

    return KafkaQueue(kafka_settings(settings))
