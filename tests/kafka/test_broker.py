"""The test broker itself: a real KRaft node that keeps acknowledged records across a restart."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.kafka.broker import PrivateBroker, unique_prefix
from tests.kafka.helpers import create_topic

pytestmark = pytest.mark.kafka


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got: list[bytes] = []
    try:
        for _ in range(50):
            batch = await consumer.getmany(timeout_ms=200)
            got += [m.value for msgs in batch.values() for m in msgs if m.value is not None]
            if len(got) >= expected:
                break
    finally:
        await consumer.stop()
    return got


async def test_shared_broker_round_trip(kafka_bootstrap: str) -> None:
    """Records produced with acks=all and an idempotent producer are read back in order."""
    topic = unique_prefix() + ".smoke"
    await create_topic(kafka_bootstrap, topic)
    values = [b"%d" % i for i in range(20)]
    await _produce(kafka_bootstrap, topic, values)
    assert await _read_all(kafka_bootstrap, topic, 20) == values


@pytest.mark.slow
async def test_private_broker_keeps_data_across_restart(private_broker: PrivateBroker) -> None:
    """A stopped and restarted broker answers on the same address with every acknowledged record."""
    topic = unique_prefix() + ".restart"
    await create_topic(private_broker.bootstrap, topic)
    await _produce(private_broker.bootstrap, topic, [b"a", b"b"])
    before = private_broker.bootstrap
    private_broker.stop()
    assert private_broker.pid() is None
    assert private_broker.start() == before
    assert await _read_all(private_broker.bootstrap, topic, 2) == [b"a", b"b"]
