"""Several instances in one group share the partitions and see each other's deliveries."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from queues.api import DeliveryState, Outcome, QueueBackend, Work
from queues.kafka import KafkaQueue
from tests.harness import Sandbox
from tests.kafka.broker import unique_prefix
from tests.kafka.daemons import kafka_daemon, until
from tests.kafka.helpers import drive, prog, settings_for, snap
from tests.load import Load, check_dossier, session, wait_delivered

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
    its partition's owner, and a status read on the other instance shows that delivery. A status read
    right after an accept made on the other instance (owner's watermark on a non-owner, the pump's
    position on the owner) never says delivered too early and shows the new sequence. Both count
    every dossier once in their stats."""
    tag = uuid.uuid4().hex[:8]
    a = KafkaQueue(settings_for(kafka_bootstrap, prefix=f"two-{tag}", group=f"g-{tag}"))
    b = KafkaQueue(settings_for(kafka_bootstrap, prefix=f"two-{tag}", group=f"g-{tag}"))
    await a.start()
    await b.start()
    try:
        for _ in range(100):  # both members hold partitions once the join settles
            if a.owned_partitions() and b.owned_partitions():
                break
            await asyncio.sleep(0.1)
        assert a.owned_partitions() and b.owned_partitions()
        names = {id(a): "a", id(b): "b"}
        dossiers = [f"M{i:03d}" for i in range(40)]
        await asyncio.gather(*(a.enqueue([snap(m, "2"), prog(m, 1), prog(m, 2)]) for m in dossiers))
        delivered: dict[str, list[int]] = {}
        by: dict[str, str] = {}
        await drive([a, b], _deliver_all(delivered, by, names),
                    lambda: sum(len(v) for v in delivered.values()) >= 120, 60)
        # in acceptance order: sequences (outbound offset + 1) rise per dossier
        assert all(len(delivered[m]) == 3 and delivered[m] == sorted(set(delivered[m])) for m in dossiers)
        assert set(by.values()) == {"a", "b"}
        for q in (a, b):  # each counts every dossier once: its own state writes and the other's, read back
            deadline = time.monotonic() + 10
            while True:
                counts = (await q.stats(time.time())).by_state
                if counts["delivered"] == len(dossiers) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert counts["delivered"] == len(dossiers) and sum(counts.values()) == len(dossiers)
        on_a = next(m for m, who in by.items() if who == "a")
        st = await b.status(on_a)
        assert st is not None and st.delivery is DeliveryState.DELIVERED
        assert st.delivered_sequence == delivered[on_a][0] and st.last_sequence == delivered[on_a][-1]
        for accept_on, read_on in ((a, b), (b, a)):  # read on the non-owner, then on the owner
            new = (await accept_on.enqueue([snap(on_a, "4")]))[0]
            st = await read_on.status(on_a)
            assert st is not None and st.delivery is not DeliveryState.DELIVERED
            assert st.last_sequence == new.sequence and st.accepted_state == "4"
    finally:
        await a.close()
        await b.close()


async def _owned_outbound_partitions(url: str) -> set[str]:
    """Partitions of outbound whose consumer lag the daemon reports, i.e. that it was assigned."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as r:
        text = await r.text()
    return {line.split('partition="')[1].split('"')[0] for line in text.splitlines()
            if line.startswith("dvcgw_kafka_consumer_lag{") and '.outbound"' in line}


@pytest.mark.slow
async def test_sigkill_one_of_two_daemons_under_load(kafka_bootstrap: str, sandbox: Sandbox, tmp_path: Path) -> None:
    """Two `dvcgw serve` processes in one group share the load; one is SIGKILLed mid-load. The other
    takes over its partitions and finishes everything: every event that got a 202 (from either)
    reaches the portal, and no dossier's snapshots or progress arrive out of order."""
    prefix = unique_prefix("kill")
    a = kafka_daemon(tmp_path, "a", sandbox.url, kafka_bootstrap, prefix, prefix)
    b = kafka_daemon(tmp_path, "b", sandbox.url, kafka_bootstrap, prefix, prefix)
    await a.start(timeout=60)
    await b.start(timeout=60)
    codes = [f"000.00.01.H55-240320-{i:05d}" for i in range(24)]
    load = Load([a.url, b.url])

    def accepted_since(t: float) -> int:
        return sum(1 for x in load.answers if x.started >= t and x.status == 202)

    try:
        async with session(len(codes)) as http:
            tasks = [asyncio.create_task(load.run_dossier(http, m)) for m in codes]
            await until(lambda: accepted_since(0.0) >= 150, 40, "150 accepted events on two daemons")
            # b joined the group after a started: the split comes with the rebalance, which may
            # still be under way; wait for it (a real condition) rather than read it once
            deadline = time.monotonic() + 30
            while True:
                owned_a, owned_b = await _owned_outbound_partitions(a.url), await _owned_outbound_partitions(b.url)
                if owned_a and owned_b:
                    break
                assert time.monotonic() < deadline, f"the daemons did not split the partitions: {owned_a}, {owned_b}"
                await asyncio.sleep(0.2)
            assert await a.kill() != 0
            load.urls.remove(a.url)
            killed = time.monotonic()
            await until(lambda: accepted_since(killed) >= 100, 40, "100 accepted events after the kill")
            load.stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await wait_delivered(b.url, codes, 90)
    finally:
        load.stop.set()
        await a.stop()
        await b.stop()
    record = (await sandbox.record())["dossiers"]
    for m in codes:
        check_dossier(m, record.get(m, []), load.accepted(m, "snapshot"), load.progress_ok(m))


async def test_an_owner_starts_from_the_newest_state_it_has_read(kafka_bootstrap: str) -> None:
    """A partition that went to another owner and came back: the dossier's newer state, written by
    that owner and read by this instance's view, is where this instance carries on; its next state
    write has a higher version, so no view (its own or another's) ignores it as stale."""
    tag = uuid.uuid4().hex[:8]
    q = KafkaQueue(settings_for(kafka_bootstrap, prefix=f"back-{tag}", group=f"g-{tag}"))
    await q.start()
    try:
        delivered: dict[str, list[int]] = {}
        await q.enqueue([snap("X1", "2")])
        await drive([q], _deliver_all(delivered, {}, {id(q): "q"}), lambda: "X1" in delivered, 30)
        await until(lambda: "X1" in q._view.states and q._view.states["X1"].delivery == "delivered", 10, "own state")
        mine = q._view.states["X1"]
        theirs = mine.copy()  # what another owner wrote meanwhile, as this view read it
        theirs.v, theirs.accepted_state, theirs.delivered_state = mine.v + 3, "4", "4"
        q._view.put_state(theirs)
        await q.enqueue([snap("X1", "5")])
        await drive([q], _deliver_all(delivered, {}, {id(q): "q"}), lambda: len(delivered["X1"]) == 2, 30)
        await until(lambda: q._view.states["X1"].delivered_state == "5", 10, "the new state in the view")
        assert q._view.states["X1"].v > theirs.v
        st = await q.status("X1")
        assert st is not None and st.delivered_state == "5"
    finally:
        await q.close()
