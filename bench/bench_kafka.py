"""Kafka backend benchmark (issue 12: one ``dvcgw serve`` process per instance): events per
second accepted and delivered through Kafka by two instances on this machine, beside a raw
aiokafka produce-then-consume loop measured in the same run on the same broker; a summary table
with PASS/FAIL. Exit status 1 if a target is missed or a scenario broke.

* Baseline: one aiokafka producer (``acks=all``, idempotent, ``linger_ms=2``, like the gateway)
  produces N sample-dossier records keyed by MaHoSo into a topic with the gateway's partition count,
  while one group consumer reads them and commits after every batch. "accepted/s" is N over the
  time until the last acknowledgement, "delivered/s" N over the time until the last record was
  consumed and committed.
* Gateway: two ``dvcgw serve`` processes (same ``group_id``, a fresh topic prefix), each with the
  bench settings file of bench/_procs.py (SQLite path for its local state, ``synchronous =
  "full"``), ``[queue] backend = "kafka"`` and the ``[queue.kafka]`` broker keys, and no other
  process or tuning setting. ``wrk`` PUTs one new MaHoSo per request (bench/put.lua), 32
  connections to each instance, for 20 s (``Plan.seconds``: the drain after the load, up to a few
  tenths of a second, weighs half as much as in a 10 s window) after a 2 s warm-up that is
  delivered before the window starts. "accepted/s" is the 202 answers per second of that window,
  "delivered/s" the accepted events over the time from the start of the load until the sandbox
  (a zero-latency portal subprocess) has all of them, read from both instances'
  ``dvcgw_deliveries_total{outcome="ok"}``. The daemons run with ``[portal]
  lookup_before_create = false`` and ``batch_size = 50`` (as bench_gateway's deliver figure):
  with the lookup on, the portal simulator alone tops out near 2,500 dossiers/s on a whole idle
  machine (docs/performance.md), so the figure would measure the simulator, not the queue backend.
* Target: >= 1,000 events/s accepted and >= 1,000/s delivered with the two instances.

Run: ``.venv/bin/python -m bench.bench_kafka`` (``--quick`` for a smoke run). Uses the broker at
``DVCGW_TEST_KAFKA_BOOTSTRAP`` if set, else starts a private one (scripts/kafka.sh, own directory
and ports) and stops it afterwards. Needs ``wrk``. Only 127.0.0.1 is used; every subprocess is
stopped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench._procs import (
    HOST,
    UNIT,
    Procs,
    Row,
    free_port,
    machine,
    processes,
    run_bench,
    sample,
    scrape,
    start_serve,
    summary,
    wait_http,
    write_config,
    wrk,
)
from tests.kafka.broker import PrivateBroker
from tests.kafka.helpers import create_topic
from tests.samples import sample_dossier

PARTITIONS = 6
INSTANCES = 2
TARGET = 1000.0


@dataclass(frozen=True)
class Plan:
    seconds: int = 20
    warm_seconds: int = 2
    connections: int = 64  # in all, split over the instances
    raw_n: int = 20_000
    batch_size: int = 50


QUICK = Plan(seconds=3, warm_seconds=1, raw_n=3_000)


@dataclass
class Figure:
    what: str
    accepted: float
    delivered: float
    note: str = ""

    def __str__(self) -> str:
        return f"{self.what}: {self.accepted:.0f}/s accepted, {self.delivered:.0f}/s delivered ({self.note})"


def body_template() -> bytes:
    return json.dumps(sample_dossier("@MAHOSO@"), ensure_ascii=False).encode()


# ---------------------------------------------------------------------------------- baseline


async def raw_loop(bootstrap: str, n: int) -> Figure:
    """N records produced (acks=all, idempotent) and consumed by a committing group consumer."""
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, topic, PARTITIONS)
    template = body_template()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=topic, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=20)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2)
    await consumer.start()
    await producer.start()
    try:
        while not consumer.assignment():  # joined: nothing produced is missed by a late join
            await consumer.getmany(timeout_ms=100)
        started = time.perf_counter()
        seen = 0

        async def consume() -> None:
            nonlocal seen
            while seen < n:
                batch = await consumer.getmany(timeout_ms=100, max_records=2000)
                seen += sum(len(v) for v in batch.values())
                if batch:
                    await consumer.commit()

        reader = asyncio.create_task(consume())
        window: list[asyncio.Future[Any]] = []
        for i in range(n):
            code = f"{UNIT}-raw-{i:07d}"
            window.append(await producer.send(topic, template.replace(b"@MAHOSO@", code.encode()), key=code.encode()))
            if len(window) >= 512:
                await asyncio.gather(*window)
                window = []
        await asyncio.gather(*window)
        acked = time.perf_counter()
        await asyncio.wait_for(reader, 120)
        done = time.perf_counter()
    finally:
        await producer.stop()
        await consumer.stop()
    return Figure("raw aiokafka produce→consume", n / (acked - started), n / (done - started), f"{n} records")


# ---------------------------------------------------------------------------------- gateway


async def start_instances(procs: Procs, tmp: Path, k: int, bootstrap: str, portal: str, plan: Plan) -> list[str]:
    prefix = f"bench-{k}-{uuid.uuid4().hex[:6]}"
    urls = []
    for i in range(k):
        port = free_port()
        cfg = write_config(
            tmp / f"gw{k}-{i}.toml", port=port, portal_url=portal, store=tmp / f"gw{k}-{i}.sqlite3",
            portal={"batch_size": plan.batch_size, "lookup_before_create": False},
            queue={"backend": "kafka"},
            queue__kafka={"bootstrap_servers": bootstrap, "topic_prefix": prefix, "group_id": prefix,
                          "partitions": PARTITIONS, "request_timeout": "10s"},
        )
        url, _ = await start_serve(procs, f"gw{k}-{i}", cfg, port, timeout=60)
        urls.append(url)
    return urls


async def delivered(http: aiohttp.ClientSession, urls: list[str]) -> float:
    total = 0.0
    for url in urls:
        m = await scrape(http, url)
        total += sum(sample(m, "dvcgw_deliveries_total", counterpart="portal", operation=op, outcome="ok")
                     for op in ("create", "update"))  # snapshots
    return total


async def wait_delivered(http: aiohttp.ClientSession, urls: list[str], n: float, seconds: float) -> float:
    deadline = time.perf_counter() + seconds
    while True:
        got = await delivered(http, urls)
        if got >= n:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {got:.0f} of {n:.0f} delivered within {seconds:.0f} s")
        await asyncio.sleep(0.1)


async def gateway(procs: Procs, tmp: Path, k: int, bootstrap: str, portal: str, plan: Plan, body: Path) -> Figure:
    urls = await start_instances(procs, tmp, k, bootstrap, portal, plan)
    conns = max(1, plan.connections // k)
    async with aiohttp.ClientSession() as http:
        warm = await asyncio.gather(*(wrk(u, seconds=plan.warm_seconds, connections=conns, tag=f"w{k}{i}", body=body)
                                      for i, u in enumerate(urls)))
        base = sum(w["accepted"] for w in warm)
        await wait_delivered(http, urls, base, 60)
        base = await delivered(http, urls)
        started = time.perf_counter()
        runs = await asyncio.gather(*(wrk(u, seconds=plan.seconds, connections=conns, tag=f"m{k}{i}", body=body)
                                      for i, u in enumerate(urls)))
        accepted = sum(r["accepted"] for r in runs)
        requests = sum(r["requests"] for r in runs)
        window = max(r["duration_us"] for r in runs) / 1e6
        done = await wait_delivered(http, urls, base + accepted, 120)
    for i in range(k):
        procs.stop(f"gw{k}-{i}")
    p99 = max(r["p99_us"] for r in runs) / 1000
    return Figure(f"dvcgw serve × {k} (Kafka)", accepted / window, accepted / (done - started),
                  f"{accepted} accepted, non-202 {requests - accepted}, PUT p99 {p99:.0f} ms")


# ---------------------------------------------------------------------------------- main


def report(raw: Figure, two: Figure) -> bool:
    rows = [
        Row(f"accepted/s, {two.what}", f"{two.accepted:.0f}/s ({two.accepted / raw.accepted:.0%} of raw)",
            f"raw aiokafka {raw.accepted:.0f}/s", f">= {TARGET:.0f}/s", two.accepted >= TARGET),
        Row(f"delivered/s, {two.what}", f"{two.delivered:.0f}/s ({two.delivered / raw.delivered:.0%} of raw)",
            f"raw aiokafka {raw.delivered:.0f}/s", f">= {TARGET:.0f}/s", two.delivered >= TARGET),
    ]
    return summary(rows)


async def main_async(plan: Plan) -> bool:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run scripts/install-system-deps.sh (or apt-get install wrk)")
    bootstrap = os.environ.get("DVCGW_TEST_KAFKA_BOOTSTRAP", "")
    for key in [k for k in os.environ if k.startswith("DVCGW_")]:
        del os.environ[key]  # the daemons read DVCGW_* as settings overrides
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="dvcgw-bench-kafka-") as tmp_s, processes(Path(tmp_s)) as procs:
        tmp = Path(tmp_s)
        broker: PrivateBroker | None = None
        if not bootstrap:
            broker = PrivateBroker(tmp / "kafka")
            bootstrap = await asyncio.to_thread(broker.start)
            print(f"private broker on {bootstrap}")
        try:
            body = tmp / "body.json"
            body.write_bytes(body_template())
            port = free_port()
            sandbox = procs.python("sandbox", "-m", "gateway", "sandbox", "--host", HOST, "--port", str(port))
            portal = f"http://{HOST}:{port}"
            await wait_http(f"{portal}/_sandbox/record", sandbox)
            raw = await raw_loop(bootstrap, plan.raw_n)
            print(f"  {raw}  <- the baseline")
            two = await gateway(procs, tmp, INSTANCES, bootstrap, portal, plan, body)
            print(f"  {two}")
            return report(raw, two)
        finally:
            procs.stop_all()
            if broker is not None:
                await asyncio.to_thread(broker.stop)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short smoke run (figures not meaningful)")
    args = parser.parse_args()
    return run_bench(main_async(QUICK if args.quick else Plan()))


if __name__ == "__main__":
    sys.exit(main())
