"""HTTP acceptor processes on the Kafka backend: they produce accepted events to ``outbound``
themselves, while the daemon judges every snapshot's transition, so the checks of one instance stay
serial whichever process took the request."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.gateway.test_acceptors import metric, refused_on_a_fresh_connection
from tests.gateway.test_worker import children
from tests.harness import AGENCY_KEY, UNIT, Sandbox
from tests.kafka.broker import unique_prefix
from tests.kafka.daemons import kafka_daemon
from tests.load import wait_delivered
from tests.samples import sample_dossier, sample_progress

pytestmark = pytest.mark.kafka
H = {"X-API-Key": AGENCY_KEY}
PRODUCED = 'dvcgw_kafka_produce_duration_seconds_count{topic_kind="outbound"}'


async def test_acceptors_produce_and_the_daemon_judges_transitions(kafka_bootstrap: str, sandbox: Sandbox,
                                                                   tmp_path: Path) -> None:
    """Two acceptors produce every accept themselves (the daemon's produce histogram, fed from
    their tallies, counts each one); a forbidden transition sent on fresh connections, whichever
    acceptor takes them, is refused with 409 naming the field, because the daemon noted each
    dossier's state when it judged the first PUT; what was refused never reaches the portal."""
    prefix = unique_prefix()
    # 10 s: a broker that has just started may take seconds to lead the new topics' partitions
    daemon = kafka_daemon(tmp_path, "gw", sandbox.url, kafka_bootstrap, prefix, prefix, request_timeout="10s",
                          server={"acceptors": 2}, transitions={"enforce": True})
    await daemon.start(timeout=60)
    codes = [f"{UNIT}-240318-{i:05d}" for i in range(12)]
    try:
        assert daemon.proc is not None
        assert len(children(daemon.proc.pid, "_accept")) == 2
        async with aiohttp.ClientSession(headers=H) as http:
            for m in codes:
                async with http.put(f"{daemon.url}/v1/dossiers/{m}", json=sample_dossier(m, TrangThaiHoSo="3")) as r:
                    assert r.status == 202, await r.text()
            async with http.post(f"{daemon.url}/v1/dossiers/{codes[0]}/progress",
                                 json=sample_progress(codes[0], n=2)) as r:
                assert r.status == 202, await r.text()
            for m in codes[:4]:
                await refused_on_a_fresh_connection(daemon.url, m, "4")
            await wait_delivered(daemon.url, codes, 60)

            deadline = time.monotonic() + 10
            while True:  # the acceptors' tallies reach the daemon within a few tens of ms
                async with http.get(f"{daemon.url}/metrics") as r:
                    text = await r.text()
                if metric(text, PRODUCED) >= len(codes) + 2 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert metric(text, PRODUCED) == len(codes) + 2  # one record per accepted event
            assert metric(text, 'dvcgw_events_accepted_total{kind="snapshot"}') == len(codes)
            assert metric(text, 'dvcgw_events_accepted_total{kind="progress"}') == 2
            for m in codes[:4]:
                async with http.get(f"{daemon.url}/v1/dossiers/{m}") as r:
                    assert (await r.json())["accepted_state"] == "3"
        for m in codes[:4]:
            sent = [c["data"]["TrangThaiHoSo"] for c in await sandbox.calls_for(m) if c["service"] == "DongBoHoSoMC"]
            assert sent and set(sent) == {"3"}
    finally:
        await daemon.kill()
