"""Personal data at rest on Kafka (issue 17, Hygiene): after the retention of a finished dossier,
its dead letter is rewritten without the payload and the broker compacts the old record away: the
fixture's ID number is gone from the partition files of the compacted topics, on disk."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from config.loader import Duration
from config.schema import Settings
from gateway.appkeys import PRUNER
from tests.fakes.portal import FakeClock
from tests.harness import Gateway, Sandbox, run_gateway, settings_for
from tests.kafka.broker import ROOT, bootstrap_or_skip
from tests.queues.kafka_factory import kafka_settings
from tests.samples import sample_dossier
from tests.security.test_retention import DAY, MAHOSO, PERSONAL, final

pytestmark = pytest.mark.kafka


def partition_dirs(prefix: str, *topics: str) -> list[Path]:
    """The test broker's partition folders of ``topics`` (scripts/kafka.sh: $DVCGW_KAFKA_HOME/data)."""
    data = Path(os.environ.get("DVCGW_KAFKA_HOME") or ROOT / "var" / "kafka") / "data"
    return [d for t in topics for d in data.glob(f"{prefix}.{t}-*") if d.is_dir()]


def found(dirs: list[Path]) -> list[str]:
    """The fixture's personal values in any file of ``dirs`` (segments, and cleaned ones not yet deleted)."""
    blobs = b""
    for d in dirs:
        for f in d.iterdir():
            try:
                blobs += f.read_bytes()
            except FileNotFoundError:  # the cleaner swapped it meanwhile
                continue
    return [v for v in PERSONAL if v.encode() in blobs]


async def until(gw: Gateway, delivery: str, seconds: float = 60.0) -> dict[str, object]:
    """Drive the real engine until the dossier's delivery state is ``delivery`` (Kafka hands work
    over through its consumer, so one drain may end before the event arrives)."""
    deadline = time.monotonic() + seconds
    while True:
        await gw.drain()
        status = await gw.status(MAHOSO)
        if status["delivery"] == delivery:
            return status
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.05)


def fast_cleaning(settings: Settings) -> Settings:
    """Segments closed and compaction due within a fraction of a second (the test's topics only)."""
    kafka = dataclasses.replace(settings.queue.kafka, segment_time=Duration(0.2), compaction_lag=Duration(0.2))
    return dataclasses.replace(settings, queue=dataclasses.replace(settings.queue, kafka=kafka))


async def topic_config(settings: Settings, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.queue.kafka.bootstrap_servers)
    await admin.start()
    try:
        name = f"{settings.queue.kafka.topic_prefix}.{topic}"
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        [(_err, _msg, _type, _name, entries)] = response.resources
        return {str(e[0]): str(e[1]) for e in entries}
    finally:
        await admin.close()


async def test_a_finished_dossiers_id_number_leaves_the_compacted_topics(
        sandbox: Sandbox, tmp_path: Path) -> None:
    """4 delivered, 9 dead-lettered (the ID number is in the dlq partition's files), 10 delivered.
    Before the retention ends nothing is pruned; after it (injected clock) one pass rewrites the
    letter without its payload, the list still shows it, and within a bounded wait the broker's
    cleaner leaves no personal value in the dlq or dossier-state partition files. The outbound
    topic's retention.ms is the retention."""
    settings = fast_cleaning(kafka_settings(settings_for(tmp_path, sandbox.url), bootstrap=bootstrap_or_skip(),
                                            partitions=1))
    prefix = settings.queue.kafka.topic_prefix
    compacted = partition_dirs(prefix, "dlq", "dossier-state")
    clock = FakeClock(start=time.time())
    async with run_gateway(settings, clock) as gw:
        assert (await gw.put(MAHOSO, sample_dossier(MAHOSO))).status == 202
        await until(gw, "delivered")
        await sandbox.fault(mode="reject", count=1, message="Dữ liệu không hợp lệ")
        assert (await gw.put(MAHOSO, sample_dossier(MAHOSO, TrangThaiHoSo="9"))).status == 202
        await until(gw, "dead")
        assert (await gw.put(MAHOSO, final())).status == 202
        assert (await until(gw, "delivered"))["delivered_state"] == "10"
        compacted = partition_dirs(prefix, "dlq", "dossier-state")
        assert len(compacted) == 2, compacted
        assert PERSONAL[0] in found(compacted), "the letter must be on disk first, or this proves nothing"

        clock.advance(float(settings.storage.retention) - DAY)
        assert await gw.app[PRUNER].run_once() == 0
        clock.advance(2 * DAY)
        assert await gw.app[PRUNER].run_once() == 1
        assert await gw.app[PRUNER].run_once() == 0
        [letter] = (await gw.queue.dead_letters(None, 10)).items
        assert (letter.mahoso, letter.sequence) == (MAHOSO, 2)

        deadline = time.monotonic() + 120
        while found(compacted):
            assert time.monotonic() < deadline, f"still on disk: {found(compacted)}"
            await asyncio.sleep(0.5)
            assert await gw.app[PRUNER].run_once() == 0  # the pass's sweep closes the rewrite's segment
        outbound = await topic_config(settings, "outbound")
        assert outbound["retention.ms"] == str(int(float(settings.storage.retention) * 1000))


async def test_existing_topics_get_the_retention_and_keep_their_other_configs(tmp_path: Path) -> None:
    """Topics made earlier (another retention, an operator's own config) get the configured
    retention at the next start; the operator's other topic config survives the change."""
    from queues.kafka import KafkaQueue

    first = kafka_settings(settings_for(tmp_path, "http://127.0.0.1:9"), bootstrap=bootstrap_or_skip(), partitions=1)
    q = KafkaQueue(first)
    await q.start()
    await q.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=first.queue.kafka.bootstrap_servers)
    await admin.start()
    try:
        outbound = f"{first.queue.kafka.topic_prefix}.outbound"
        own = {**(await topic_config(first, "outbound")), "max.message.bytes": "2000000"}
        own = {k: v for k, v in own.items() if k in ("retention.ms", "segment.ms", "file.delete.delay.ms",
                                                     "max.message.bytes")}
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, outbound, configs=own)])
    finally:
        await admin.close()
    storage = dataclasses.replace(first.storage, retention=Duration(120 * DAY))
    again = dataclasses.replace(first, storage=storage)
    q = KafkaQueue(again)
    await q.start()
    await q.close()
    config = await topic_config(again, "outbound")
    assert config["retention.ms"] == str(int(120 * DAY * 1000)) and config["max.message.bytes"] == "2000000", config
