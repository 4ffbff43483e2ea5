"""Message-log benchmark (issue 17): what ``[audit] bodies = "hash"`` costs sync throughput, against
the log off, measured in the same run. Exit status 1 if the target is missed or a scenario broke.

Two ``dvcgw serve`` daemons in their own subprocesses, each with its own store, its own zero-latency
``dvcgw sandbox`` (nice 10) as the portal, the same ``[signing]`` (the test PKI's sealing key, one
signing worker, the fake TSA of tests/fakes served from this process) and bench_kpi's daemon
settings (SQLite ``synchronous = "full"``, ``batch_size = 50``, ``lookup_before_create = false``):
only ``[audit] bodies`` differs ("off" vs "hash", ``seal_interval`` the default 60 s). Both run in
turn in ABBA slices (bench/_slices.py: the other is SIGSTOPped), so the machine's drift cancels.

``deliver``: events delivered/s from a backlog of ``backlog`` dossiers x (1 snapshot + 2 progress)
    over 500 units (bench_kpi's backlog, copied per daemon). Records: one per portal call.
``accept``: dossiers accepted/s (202) from wrk running bench/put.lua (``connections``
    connections, a new MaHoSo per request) against the running daemon for each slice, while its
    engine delivers them. Records: one per accepted PUT, one per portal call.

Target for each: cost = 1 - hash/off <= 10 %. Run: ``.venv/bin/python -m bench.bench_audit``
(``--quick``: a smoke run whose figures mean nothing; ``--only deliver|accept``). 127.0.0.1 only;
every subprocess is stopped on the way out.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench._procs import (
    Procs,
    Row,
    bench_main,
    free_port,
    machine,
    processes,
    run_scenarios,
    start_sandbox,
    start_serve,
    write_config,
    wrk,
)
from bench._slices import PORTAL_TIMEOUT, Tally, abba, block_costs, cpu_seconds, pause
from bench.bench_gateway import body_template, reset_sandbox
from bench.bench_kpi import UNITS, preload_queue

SCENARIOS = ("deliver", "accept")
COST_CEILING = 0.10
BATCH = 50
_SAMPLE = re.compile(rb"^(dvcgw_deliveries_total|dvcgw_events_accepted_total|dvcgw_audit_records_total)"
                     rb"(?:\{([^}]*)\})? (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Plan:
    backlog: int = 220_000
    progress: int = 2
    warmup: float = 10.0
    slice: float = 10.0
    slices: int = 16  # per daemon, in ABBA order (bench_kpi's figure)
    connections: int = 32


QUICK = Plan(backlog=20_000, warmup=2.0, slice=3.0, slices=4, connections=16)


@dataclass
class Run:
    plan: Plan
    procs: Procs
    tmp: Path
    queue: Path = Path()
    seal_keys: str = ""
    body: Path = Path()
    rows: list[Row] = field(default_factory=list)


@dataclass(frozen=True)
class Reading:
    """One read of /metrics: ``delivered`` is the counter the scenario measures (events delivered,
    or dossiers accepted); ``records`` the log's records so far."""

    at: float
    delivered: float
    records: float
    loop_cpu: float
    process_cpu: float


def reader(counter: bytes) -> Callable[[aiohttp.ClientSession, str, int], Awaitable[Reading]]:
    async def read(http: aiohttp.ClientSession, base: str, pid: int) -> Reading:
        async with http.get(f"{base}/metrics") as r:
            body = await r.read()
        counted = records = 0.0
        for name, labels, value in _SAMPLE.findall(body):
            if name == counter and (counter != b"dvcgw_deliveries_total" or b'outcome="ok"' in labels):
                counted += float(value)
            elif name == b"dvcgw_audit_records_total":
                records += float(value)
        return Reading(time.time(), counted, records, cpu_seconds(pid, pid), cpu_seconds(pid))
    return read


# ---------------------------------------------------------------------------------- set-up


def signing_world(run: Run) -> Any:
    """The test PKI, its TSA (served from this process) and the gateway's sealing key files."""
    from tests.signing.env import build_world

    w = build_world(run.tmp / "pki", with_hsm=False)
    seal = w.pki.signer("gateway-seal")
    k = run.tmp / "pki" / "seal"
    k.mkdir(parents=True)
    (k / "seal.key.pem").write_bytes(seal.pem_key())
    (k / "seal.crt.pem").write_bytes(seal.pem_cert())
    run.seal_keys = (f'\n[signing]\nworkers = 1\ntsa_urls = ["{w.tsa_urls[0]}"]\ntrust_roots = ["{w.root_pem}"]\n'
                     f'\n[[signing.keys]]\nalias = "gw-seal"\nsource = "file"\n'
                     f'key_file = "{k / "seal.key.pem"}"\ncert_file = "{k / "seal.crt.pem"}"\n')
    return w


async def start_daemon(run: Run, name: str, *, audit: bool, backlog: bool, portal: str) -> tuple[str, int]:
    """``dvcgw serve`` with the log off or in "hash" mode; (base URL, pid) once /readyz answers, paused."""
    port = free_port()
    folder = run.tmp / name
    folder.mkdir(parents=True)
    store = folder / "gw.sqlite3"
    if backlog:
        shutil.copyfile(run.queue, store)
    conf = write_config(folder / "gw.toml", port=port, portal_url=portal, store=store, units=UNITS,
                        portal={"batch_size": BATCH, "lookup_before_create": False, "timeout": PORTAL_TIMEOUT},
                        audit={"bodies": "hash", "seal_key": "gw-seal"} if audit else {"bodies": "off"})
    conf.write_text(conf.read_text(encoding="utf-8") + run.seal_keys, encoding="utf-8")
    base, proc = await start_serve(run.procs, name, conf, port, timeout=60)
    pause(proc.pid, False)
    return base, proc.pid


# ---------------------------------------------------------------------------------- scenarios


async def compare(run: Run, scenario: str, counter: bytes, *, backlog: bool, what: str) -> None:
    p = run.plan
    daemons: dict[bool, tuple[str, int]] = {}
    async with aiohttp.ClientSession() as http:
        for audit in (False, True):
            portal = await start_sandbox(run.procs, f"{scenario}-sandbox-{audit}")
            await reset_sandbox(http, portal)
            daemons[audit] = await start_daemon(run, f"{scenario}-{'hash' if audit else 'off'}", audit=audit,
                                                backlog=backlog, portal=portal)
        load = None
        if scenario == "accept":
            n = iter(range(10**6))

            def load(audit: bool, base: str) -> Callable[[], Awaitable[object]]:
                return lambda: wrk(f"{base}/v1/dossiers/", seconds=max(1, round(p.slice)), body=run.body,
                                   tag=f"{'h' if audit else 'o'}{next(n)}", connections=p.connections)
        tallies = await abba(http, daemons, warmup=p.warmup, slices=p.slices, seconds=p.slice,
                             read=reader(counter), load=load)
        ends = {audit: await reader(counter)(http, *daemons[audit]) for audit in (False, True)}
        records = ends[True].records
    # each daemon has its own copy of the backlog: either one running out would end its slices early
    if backlog and max(end.delivered for end in ends.values()) >= p.backlog * (1 + p.progress):
        raise RuntimeError("the backlog ran out; raise Plan.backlog")
    if records == 0:
        raise RuntimeError("the hash daemon wrote no records: the log was not on")
    report(run, scenario, what, tallies[False], tallies[True], records)


def report(run: Run, scenario: str, what: str, off: Tally, on: Tally, records: float) -> None:
    for name, t in (("off ", off), ("hash", on)):
        print(f"    log {name}: {t.rate:7.0f} {what}/s over {t.seconds:.0f} s (slices {min(t.rates()):.0f}–"
              f"{max(t.rates()):.0f}/s); CPU per item: event-loop thread {t.us(t.loop_cpu):5.1f} µs, process "
              f"{t.us(t.process_cpu):5.1f} µs" + ("  <- the baseline" if name == "off " else ""))
    cost = 1 - on.rate / off.rate
    if blocks := block_costs(off, on):
        print(f"    {blocks}")
    print(f"    cost {cost:.1%}; {records:.0f} records written by the hash daemon")
    run.rows.append(Row(f"{what}/s, [audit] bodies = \"hash\" ({scenario})", f"{on.rate:.0f}/s (cost {cost:.1%})",
                        f"log off {off.rate:.0f}/s", f"cost <= {COST_CEILING:.0%}", cost <= COST_CEILING))


async def bench_deliver(run: Run) -> None:
    p = run.plan
    print(f"\n[deliver] events delivered/s from a backlog of {p.backlog:,} dossiers x (1 + {p.progress}), log off "
          f"vs hash, {p.slices} ABBA slices of {p.slice:.0f} s after {p.warmup:.0f} s warm-up each")
    await compare(run, "deliver", b"dvcgw_deliveries_total", backlog=True, what="events delivered")


async def bench_accept(run: Run) -> None:
    p = run.plan
    print(f"\n[accept] dossiers accepted/s (wrk, {p.connections} connections, during each slice), log off vs "
          f"hash, {p.slices} ABBA slices of {p.slice:.0f} s after {p.warmup:.0f} s warm-up each")
    await compare(run, "accept", b"dvcgw_events_accepted_total", backlog=False, what="dossiers accepted")


async def main_async(plan: Plan, only: set[str]) -> bool:
    for key in [k for k in os.environ if k.startswith("DVCGW_")]:
        del os.environ[key]  # the daemons read DVCGW_* as settings overrides
    chosen = [s for s in SCENARIOS if not only or s in only]
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="dvcgw-bench-audit-") as tmp, processes(Path(tmp)) as procs:
        run = Run(plan, procs, Path(tmp))
        world = signing_world(run)
        try:
            run.body = run.tmp / "body.json"
            run.body.write_bytes(body_template())
            if "deliver" in chosen:
                run.queue = run.tmp / "template" / "gw.sqlite3"
                started = time.perf_counter()
                await preload_queue(run.queue, plan)  # type: ignore[arg-type]
                print(f"the backlog: {plan.backlog:,} dossiers in {time.perf_counter() - started:.1f} s")
            steps: dict[str, Callable[[Run], Awaitable[None]]] = {"deliver": bench_deliver, "accept": bench_accept}
            return await run_scenarios(steps, chosen, run, run.rows)
        finally:
            world.close()


def main() -> int:
    return bench_main(main_async, Plan(), QUICK, SCENARIOS, __doc__)


if __name__ == "__main__":
    sys.exit(main())
