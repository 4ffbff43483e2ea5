"""``Producing.send_batches`` on a real broker: records go out as batches per partition, a batch that
fills up is followed by another, and every record is acknowledged, counted and kept in order."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition

from queues.kafka_produce import Producing, Record
from tests.kafka.helpers import create_topic


async def test_batches_overflow_in_order_and_count_every_record(kafka_bootstrap: str) -> None:
    topic = f"t-{uuid.uuid4().hex[:8]}.state"
    await create_topic(kafka_bootstrap, topic, partitions=2)
    observed: list[str] = []
    producing = Producing({"bootstrap_servers": kafka_bootstrap}, lambda kind, seconds: observed.append(kind))
    # 3 KB values: aiokafka's batches hold 16 KB, so partition 0's 12 records need several batches
    records: list[Record] = [(b"k%d" % i, b"%04d" % i + b"x" * 3000, [("n", b"%d" % i)], i % 3 // 2) for i in range(18)]
    try:
        futs = await producing.send_batches(topic, records, "state")
        assert len(futs) > 2  # partition 0 overflowed into more than one batch
        await asyncio.wait_for(asyncio.gather(*futs), 30)
    finally:
        await producing.close()
    assert observed == ["state"] * len(records)

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in (0, 1)]
        consumer.assign(tps)
        got: dict[int, list[int]] = {0: [], 1: []}
        while sum(map(len, got.values())) < len(records):
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
            for tp, recs in batch.items():
                got[tp.partition] += [int(r.value[:4]) for r in recs]
    finally:
        await consumer.stop()
    assert got[0] == [i for i in range(18) if i % 3 // 2 == 0]
    assert got[1] == [i for i in range(18) if i % 3 // 2 == 1]
