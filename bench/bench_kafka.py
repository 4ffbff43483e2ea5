"""Kafka backend benchmark (issue 3, "bench/"): events per second accepted and delivered through
Kafka by one and by two ``dvcgw serve`` instances, beside a raw aiokafka produce-then-consume loop
measured in the same run on the same broker. Exit status 1 if the target is missed or a scenario
broke.

* Baseline: one aiokafka producer (``acks=all``, idempotent, ``linger_ms=2``, like the gateway)
  produces N sample-dossier records keyed by MaHoSo into a topic with the gateway's partition count,
  while one group consumer reads them and commits after every batch. "accepted/s" is N over the
  time until the last acknowledgement, "delivered/s" N over the time until the last record was
  consumed and committed.
* Gateway, 1 and 2 instances (same ``group_id``, fresh topic prefix each): ``wrk`` PUTs one new
  MaHoSo per request (bench/put.lua) for 20 s (``Plan.seconds``: the drain after the load, up to a
  few tenths of a second, weighs half as much as in a 10 s window), split over the instances; "accepted/s" is
  the 202 answers per second of that window, "delivered/s" the accepted events over the time from
  the start of the load until the sandbox (a zero-latency portal subprocess) has all of them, read
  from every instance's ``dvcgw_deliveries_total{outcome="ok"}``. The daemons run with
  ``[portal] lookup_before_create = false`` (as bench_gateway's batch-50 figure): with the lookup on,
  the portal simulator alone tops out near 2,500 dossiers/s on a whole idle machine
  (docs/performance.md), so the figure would measure the simulator, not the queue backend. They
  also run the sync engine in their own loop (``[queue] delivery_process = false``): two instances
  already fill the 2 CPUs, and a worker process per instance only adds its RPC (pickled claims and
  records) on both sides; ``--delivery-process`` measures that set-up instead. For the same reason
  each instance gets the HTTP acceptor processes its share of the machine would give it
  (``[server] acceptors`` by the daemon's own rule, for CPUs / instances: two acceptors for one
  instance on 2 CPUs, none for each of two, whose daemons then serve HTTP themselves); two
  instances with two acceptors each put six Python processes on 2 CPUs, and measured ~15 % fewer
  events/s. ``--acceptors N`` sets the count for every scenario instead.
* Target: >= 2,000 events/s accepted and delivered with two instances.

Run: ``.venv/bin/python -m bench.bench_kafka`` (``--quick`` for a smoke run). Uses the broker at
``DVCGW_TEST_KAFKA_BOOTSTRAP`` if set, else starts a private one (scripts/kafka.sh, own directory
and ports) and stops it afterwards. Needs ``wrk``. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
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

from bench._procs import HOST, ROOT, Procs, free_port, processes, run_bench, sample, scrape, wait_http
from gateway.acceptor import acceptor_count
from tests.daemon import write_config
from tests.harness import AGENCY_KEY, UNIT
from tests.kafka.broker import PrivateBroker
from tests.kafka.helpers import create_topic
from tests.samples import sample_dossier

PARTITIONS = 6
TARGET = 2000.0


@dataclass(frozen=True)
class Plan:
    seconds: int = 20
    warm_seconds: int = 2
    connections: int = 64
    raw_n: int = 20_000
    batch_size: int = 50
    delivery_process: bool = False
    acceptors: int | None = None  # per instance; None: the daemon's rule for the instance's share of the CPUs


QUICK = Plan(seconds=3, warm_seconds=1, raw_n=3_000)


@dataclass
class Figure:
    what: str
    accepted: float
    delivered: float
    note: str = ""


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


def acceptors_per_instance(plan: Plan, k: int) -> int:
    if plan.acceptors is not None:
        return plan.acceptors
    return acceptor_count(-1, max(1, (os.cpu_count() or 1) // k))


async def start_instances(procs: Procs, tmp: Path, k: int, bootstrap: str, portal: str, plan: Plan) -> list[str]:
    prefix = f"bench-{k}-{uuid.uuid4().hex[:6]}"
    urls = []
    for i in range(k):
        port = free_port()
        cfg = write_config(
            tmp / f"gw{k}-{i}.toml", port, portal, tmp / f"gw{k}-{i}.sqlite3",
            portal={"batch_size": plan.batch_size, "max_concurrency": 8, "timeout": "10s",
                    "lookup_before_create": False},
            server={"acceptors": acceptors_per_instance(plan, k)},
            queue={"backend": "kafka", "delivery_process": plan.delivery_process},
            queue__kafka={"bootstrap_servers": bootstrap, "topic_prefix": prefix, "group_id": prefix,
                          "partitions": PARTITIONS, "request_timeout": "10s"},
        )
        proc = procs.python(f"gw{k}-{i}", "-m", "gateway", "serve", "--config", str(cfg))
        url = f"http://{HOST}:{port}"
        try:
            await wait_http(f"{url}/readyz", proc, timeout=60)
        except Exception:
            print(procs.tail(f"gw{k}-{i}"), file=sys.stderr)
            raise
        urls.append(url)
    return urls


async def wrk(url: str, seconds: int, connections: int, tag: str, body: Path) -> dict[str, Any]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
            "-s", str(ROOT / "bench" / "put.lua"), url]
    env = {**os.environ, "BENCH_BODY": str(body), "BENCH_KEY": AGENCY_KEY, "BENCH_UNIT": UNIT,
           "BENCH_RUN": tag, "BENCH_LIMIT": "0"}
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCH ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{text}")
    result: dict[str, Any] = json.loads(line[6:])
    return result


async def delivered(http: aiohttp.ClientSession, urls: list[str]) -> float:
    total = 0.0
    for url in urls:
        m = await scrape(http, url)
        total += sample(m, "dvcgw_deliveries_total", outcome="ok", kind="snapshot")
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
        warm = await asyncio.gather(*(wrk(u, plan.warm_seconds, conns, f"w{k}{i}", body) for i, u in enumerate(urls)))
        base = sum(w["accepted"] for w in warm)
        await wait_delivered(http, urls, base, 60)
        base = await delivered(http, urls)
        started = time.perf_counter()
        runs = await asyncio.gather(*(wrk(u, plan.seconds, conns, f"m{k}{i}", body) for i, u in enumerate(urls)))
        accepted = sum(r["accepted"] for r in runs)
        requests = sum(r["requests"] for r in runs)
        window = max(r["duration_us"] for r in runs) / 1e6
        done = await wait_delivered(http, urls, base + accepted, 120)
    for i in range(k):
        procs.stop(f"gw{k}-{i}")
    p99 = max(r["p99_us"] for r in runs) / 1000
    return Figure(f"dvcgw serve × {k} (Kafka)", accepted / window, accepted / (done - started),
                  f"{accepted} accepted, non-202 {requests - accepted}, PUT p99 {p99:.0f} ms, "
                  f"{acceptors_per_instance(plan, k)} acceptors each")


# ---------------------------------------------------------------------------------- main


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "unknown CPU")
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def report(figures: list[Figure]) -> bool:
    raw = figures[0]
    print("\nSUMMARY (events/s; baseline = raw aiokafka loop on the same broker, same run)")
    print(f"  {'scenario':34} {'accepted/s':>11} {'delivered/s':>12} {'of baseline':>12}  note")
    for f in figures:
        share = f"{f.delivered / raw.delivered:.0%}" if f is not raw else "-"
        print(f"  {f.what:34} {f.accepted:11.0f} {f.delivered:12.0f} {share:>12}  {f.note}")
    two = next((f for f in figures if "× 2" in f.what), None)
    ok = two is not None and two.accepted >= TARGET and two.delivered >= TARGET
    print(f"  target: >= {TARGET:.0f}/s accepted and delivered with two instances: {'PASS' if ok else 'FAIL'}")
    return ok


async def main_async(plan: Plan) -> bool:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run scripts/install-system-deps.sh (or apt-get install wrk)")
    bootstrap = os.environ.get("DVCGW_TEST_KAFKA_BOOTSTRAP", "")
    for key in [k for k in os.environ if k.startswith("DVCGW_")]:
        del os.environ[key]  # the daemons read DVCGW_* as settings overrides
    print(f"machine: {machine()}; sync engine {'in a worker process' if plan.delivery_process else 'inline'}")
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
            figures = [await raw_loop(bootstrap, plan.raw_n)]
            print(f"  {figures[0]}")
            for k in (1, 2):
                figures.append(await gateway(procs, tmp, k, bootstrap, portal, plan, body))
                print(f"  {figures[-1]}")
            return report(figures)
        finally:
            procs.stop_all()
            if broker is not None:
                await asyncio.to_thread(broker.stop)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short smoke run (figures not meaningful)")
    parser.add_argument("--delivery-process", action="store_true",
                        help="run each instance's sync engine in its own worker process (the daemon's default)")
    parser.add_argument("--acceptors", type=int, default=None,
                        help="HTTP acceptor processes per instance (default: by each instance's share of the CPUs)")
    args = parser.parse_args()
    plan = QUICK if args.quick else Plan()
    return run_bench(main_async(dataclasses.replace(plan, delivery_process=args.delivery_process,
                                                    acceptors=args.acceptors)))


if __name__ == "__main__":
    sys.exit(main())
