"""Retry ladder on the real broker: order holds through retries, the last step dead-letters, replay."""

from __future__ import annotations

import time

import pytest
from aiokafka import AIOKafkaConsumer

from queues.api import DeliveryState, ErrorInfo, EventKind, Outcome, ReplayResult
from queues.kafka import KafkaQueue
from tests.kafka.helpers import claim_within, prog, settings_for, snap

pytestmark = pytest.mark.kafka
OUTAGE = ErrorInfo("retryable", "http_503", "Service Unavailable")
REJECT = ErrorInfo("rejected", "-5", "Mã TTHC không tồn tại")


async def test_snapshot_retried_twice_is_not_overtaken(kafka_bootstrap: str) -> None:
    """A snapshot that fails twice goes through both ladder steps; its successor and a progress item
    accepted meanwhile wait behind it (never claimed before the due time), and the portal sees the
    states in acceptance order."""
    q = KafkaQueue(settings_for(kafka_bootstrap))
    await q.start()
    try:
        await q.enqueue([snap("D1", "2")])
        w = (await claim_within(q, 10))[0]
        due1 = time.time() + 0.3
        await q.record(w, Outcome(retry_at=due1, error=OUTAGE), time.time())
        await q.enqueue([prog("D1", 1)])
        assert await q.claim(10, time.time()) == [] or time.time() >= due1
        w2 = (await claim_within(q, 10))[0]
        assert time.time() >= due1 - 0.01, "claimed before the ladder step was due"
        assert w2.snapshot is not None and w2.snapshot.payload["TrangThaiHoSo"] == "2"
        assert [p.payload["NoiDungXuLy"] for p in w2.progress] == ["b1"] and w2.attempts == 1
        due2 = time.time() + 0.6
        await q.record(w2, Outcome(retry_at=due2, error=OUTAGE), time.time())
        await q.enqueue([snap("D1", "4")])
        w3 = (await claim_within(q, 10))[0]
        assert time.time() >= due2 - 0.01, "claimed before the second ladder step was due"
        assert w3.attempts == 2
        # the successor came back with it, so coalescing offers the newest; the old one is never sent later
        assert w3.snapshot is not None and w3.snapshot.payload["TrangThaiHoSo"] == "4"
        assert [p.sequence for p in w3.progress] == [2]
        await q.record(w3, Outcome(delivered=(w3.snapshot.event_id, *(p.event_id for p in w3.progress))),
                       time.time())
        st = await q.status("D1")
        assert st is not None and st.delivery is DeliveryState.DELIVERED and st.delivered_state == "4"
        assert st.attempts == 0 and st.pending_progress == 0
        assert await q.claim(10, time.time() + 5) == []
    finally:
        await q.close()


async def _ladder_headers(bootstrap: str, topic: str) -> dict[str, str]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        for _ in range(50):
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for rec in records:
                    return {k: v.decode() for k, v in rec.headers}
    finally:
        await consumer.stop()
    return {}


async def test_last_step_dead_letters_and_replay_re_enters(kafka_bootstrap: str) -> None:
    """After the last ladder step the engine's dead outcome lands in <prefix>.dlq with the portal's
    words; replay offers the event again from attempt 0 and it can then be delivered."""
    s = settings_for(kafka_bootstrap)
    q = KafkaQueue(s)
    await q.start()
    try:
        await q.enqueue([snap("D9", "2")])
        w = (await claim_within(q, 10))[0]
        await q.record(w, Outcome(retry_at=time.time() + 0.3, error=OUTAGE), time.time())
        w = (await claim_within(q, 10))[0]
        await q.record(w, Outcome(retry_at=time.time() + 0.6, error=OUTAGE), time.time())
        w = (await claim_within(q, 10))[0]
        assert w.attempts == 2
        assert w.snapshot is not None
        await q.record(w, Outcome(dead=(w.snapshot.event_id,), error=REJECT), time.time())
        headers = await _ladder_headers(kafka_bootstrap, q.topics.retry[0][1])
        assert headers["dvcgw-error-message"] == "Service Unavailable"
        assert headers["dvcgw-orig-topic"] == q.topics.outbound and headers["dvcgw-attempt"] == "1"
        assert float(headers["dvcgw-due-at"]) > 0
        page = await q.dead_letters(None, 10)
        assert [(d.mahoso, d.kind, d.error, d.attempts) for d in page.items] == [
            ("D9", EventKind.SNAPSHOT, REJECT, 2)]
        assert await q.replay(page.items[0].id, time.time()) is ReplayResult.REPLAYED
        again = (await claim_within(q, 10))[0]
        assert again.snapshot is not None and again.snapshot.event_id == w.snapshot.event_id
        assert again.attempts == 0
        await q.record(again, Outcome(delivered=(again.snapshot.event_id,)), time.time())
        st = await q.status("D9")
        assert st is not None and st.delivery is DeliveryState.DELIVERED
        assert (await q.stats(time.time())).dead_letters == 0
    finally:
        await q.close()
