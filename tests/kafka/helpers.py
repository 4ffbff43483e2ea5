"""Small drivers shared by the broker tests: settings for a private prefix, a bounded claim loop."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from config.loader import Duration
from config.schema import RetrySettings, Settings
from queues.api import EventKind, NewEvent, QueueBackend, Work
from tests.queues.kafka_factory import kafka_settings


def settings_for(bootstrap: str, *, delays: tuple[float, ...] = (0.3, 0.6), prefix: str | None = None,
                 group: str | None = None, timeout: float = 10.0, lease: float = 30.0) -> Settings:
    base = Settings()
    retry = RetrySettings(delays=tuple(Duration(d) for d in delays), give_up_after=Duration(3600), jitter=0.0)
    s = kafka_settings(dataclasses.replace(base, retry=retry), prefix=prefix, group=group, bootstrap=bootstrap)
    kafka = dataclasses.replace(s.queue.kafka, request_timeout=Duration(timeout))
    return dataclasses.replace(s, queue=dataclasses.replace(s.queue, kafka=kafka, lease=Duration(lease)))


def snap(mahoso: str, state: str) -> NewEvent:
    return NewEvent(mahoso, EventKind.SNAPSHOT, {"MaHoSo": mahoso, "TrangThaiHoSo": state}, "A")


def prog(mahoso: str, n: int) -> NewEvent:
    return NewEvent(mahoso, EventKind.PROGRESS, {"MaHoSo": mahoso, "NoiDungXuLy": f"b{n}"}, "A")


async def claim_within(q: QueueBackend, seconds: float, limit: int = 100) -> list[Work]:
    """Claim at wall-clock time until something comes back or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = await q.claim(limit, time.time())
        if got:
            return got
        await q.wait_for_work(0.05)
    return []


async def drive(queues: list[QueueBackend], handle: Callable[[QueueBackend, Work], Awaitable[None]],
                done: Callable[[], bool], seconds: float) -> None:
    """Claim on every queue in turn and hand each work to ``handle`` until ``done()`` or time is up."""
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "work not finished in time"
        idle = True
        for q in queues:
            for w in await q.claim(50, time.time()):
                idle = False
                await handle(q, w)
        if idle:
            await queues[0].wait_for_work(0.02)


async def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
