"""Several instances in one group share the partitions and see each other's deliveries."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from queues.api import DeliveryState, Outcome, QueueBackend, Work
from queues.kafka import KafkaQueue
from tests.kafka.helpers import drive, prog, settings_for, snap

pytestmark = pytest.mark.kafka


def _deliver_all(delivered: dict[str, list[int]], by: dict[str, str], names: dict[int, str]):
    async def handle(q: QueueBackend, w: Work) -> None:
        seqs = ([w.snapshot.sequence] if w.snapshot else []) + [p.sequence for p in w.progress]
        delivered.setdefault(w.mahoso, []).extend(seqs)
        by[w.mahoso] = names[id(q)]
        ids = ([w.snapshot.event_id] if w.snapshot else []) + [p.event_id for p in w.progress]
        await q.record(w, Outcome(delivered=tuple(ids), known_on_portal=True), time.time())
    return handle


async def test_two_instances_share_partitions_and_state(kafka_bootstrap: str) -> None:
    """Two instances of one group split the partitions; every dossier is delivered once, in order, by
    its partition's owner, and a status read on the other instance shows that delivery."""
    tag = uuid.uuid4().hex[:8]
    a = KafkaQueue(settings_for(kafka_bootstrap, prefix=f"two-{tag}", group=f"g-{tag}"))
    b = KafkaQueue(settings_for(kafka_bootstrap, prefix=f"two-{tag}", group=f"g-{tag}"))
    await a.start()
    await b.start()
    try:
        for _ in range(100):  # both members hold partitions once the join settles
            if a._assigned and b._assigned:
                break
            await asyncio.sleep(0.1)
        assert a._assigned and b._assigned
        names = {id(a): "a", id(b): "b"}
        dossiers = [f"M{i:03d}" for i in range(40)]
        await asyncio.gather(*(a.enqueue([snap(m, "2"), prog(m, 1), prog(m, 2)]) for m in dossiers))
        delivered: dict[str, list[int]] = {}
        by: dict[str, str] = {}
        await drive([a, b], _deliver_all(delivered, by, names),
                    lambda: sum(len(v) for v in delivered.values()) >= 120, 60)
        assert all(delivered[m] == [1, 2, 3] for m in dossiers)
        assert set(by.values()) == {"a", "b"}
        on_a = next(m for m, who in by.items() if who == "a")
        st = await b.status(on_a)
        assert st is not None and st.delivery is DeliveryState.DELIVERED and st.delivered_sequence == 1
        assert st.last_sequence == 3
    finally:
        await a.close()
        await b.close()
