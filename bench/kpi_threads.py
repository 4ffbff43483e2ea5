"""Where the 766 indicators' cost goes: each thread's CPU an event delivered, indicators on vs off.

The set-up and the daemons are bench_kpi's throughput scenario (``bench.bench_kpi``: the year's
file, a backlog, ``dvcgw serve`` with indicators on and off, each with its own zero-latency
sandbox), run in ABBA slices (``bench._slices.abba``), but smaller (a backlog of ``--backlog``
dossiers) and read by CPU time, not wall time: per slice, each thread's user + system CPU
seconds from ``/proc/<pid>/task/<tid>/stat``, named by its ``comm`` (the event loop is the main
thread; Python 3.11 does not name its threads for the OS, so the indicators' worker shows as
``python``), over the events delivered in the slice. CPU
time an event moves far less than events a second when another process shares the machine.

Run: ``.venv/bin/python -m bench.kpi_threads [--backlog N] [--slices N] [--slice S] [--cache DIR]``
(``--cache`` keeps the year's file and the backlog between runs; about 4 minutes with the
defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench._procs import processes, start_sandbox
from bench._slices import abba, cpu_seconds, pause
from bench.bench_gateway import reset_sandbox
from bench.bench_kpi import (
    DEFAULT_REFRESH,
    Plan,
    Run,
    delivered,
    find_value,
    prefill_year,
    preload_queue,
    start_daemon,
)


def threads(pid: int) -> dict[str, float]:
    """CPU seconds per thread name (the main thread is ``loop``; ``name_3`` counts as ``name``;
    Python 3.11 does not name its threads for the OS, so every other Python thread is ``python``),
    the system part as ``<name> sys``, and ``process``: the whole process, exited threads included."""
    out: dict[str, float] = defaultdict(float)
    tick = os.sysconf("SC_CLK_TCK")
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            name = "loop" if int(task) == pid else re.sub(r"_\d+$", "", Path(f"/proc/{pid}/task/{task}/comm")
                                                           .read_text().strip())
            fields = Path(f"/proc/{pid}/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that just ended
        out[name] += (int(fields[11]) + int(fields[12])) / tick
        out[f"{name} sys"] += int(fields[12]) / tick
    out["process"] = cpu_seconds(pid)
    return dict(out)


@dataclass(frozen=True)
class Reading:
    at: float
    delivered: float
    cpu: dict[str, float]
    computed_at: float  # the last periodic computation of the indicators (0: none, or off)

    @property
    def loop_cpu(self) -> float:
        return self.cpu["loop"]

    @property
    def process_cpu(self) -> float:
        return self.cpu["process"]


#: daemon pid -> its sandbox's pid (the sandbox's CPU is read beside the daemon's, as ``sandbox``)
SANDBOXES: dict[int, int] = {}


async def read(http: aiohttp.ClientSession, base: str, pid: int) -> Reading:
    async with http.get(f"{base}/metrics") as r:
        body = await r.read()
    cpu = threads(pid)  # before parsing: the daemon's count and CPU are as close in time as can be
    if pid in SANDBOXES:
        cpu["sandbox (its own process)"] = cpu_seconds(SANDBOXES[pid])
    count, kpi = delivered(body)
    return Reading(time.time(), count, cpu, find_value(kpi, b"dvcgw_kpi766_computed_timestamp_seconds"))


async def main_async(args: argparse.Namespace) -> None:
    plan = Plan(year=args.year, backlog=args.backlog, warmup=args.warmup, slice=args.slice, slices=args.slices)
    for key in [k for k in os.environ if k.startswith("DVCGW_")]:
        del os.environ[key]
    with tempfile.TemporaryDirectory(prefix="dvcgw-kpi-threads-") as tmp, processes(Path(tmp)) as procs:
        run = Run(plan, procs, Path(tmp))
        cache = Path(args.cache) if args.cache else run.tmp / "template"
        run.year, run.queue = cache / f"kpi-{plan.year}.sqlite3", cache / f"gw-{plan.backlog}.sqlite3"
        if not run.year.exists():
            tmp_year = run.tmp / "year.sqlite3"
            await asyncio.to_thread(prefill_year, tmp_year, plan)
            cache.mkdir(parents=True, exist_ok=True)
            shutil.move(tmp_year, run.year)
        if not run.queue.exists():
            await preload_queue(run.tmp / "gw.sqlite3", plan)
            shutil.move(run.tmp / "gw.sqlite3", run.queue)
        kpi = {"refresh_interval": args.refresh or f"{2 * DEFAULT_REFRESH:.0f}s"}
        bases, pids = {}, {}
        async with aiohttp.ClientSession() as http:
            for on in (False, True):
                portal = await start_sandbox(run.procs, f"sandbox-{on}")
                await reset_sandbox(http, portal)
                name = f"kt-{'on' if on else 'off'}"
                bases[on] = await start_daemon(run, name, kpi=on, backlog=True, portal=portal, kpi_settings=kpi)
                pids[on] = run.pids[name]
                SANDBOXES[pids[on]] = run.procs.running[f"sandbox-{on}"].pid
                pause(pids[on], False)
            per: dict[bool, list[tuple[float, dict[str, float]]]] = {False: [], True: []}
            computing: list[bool] = []  # per on slice: did a periodic computation end in it

            def note(on: bool, resumed: float, first: Reading, last: Reading) -> None:
                names = set(first.cpu) | set(last.cpu)
                per[on].append((last.delivered - first.delivered,
                                {n: last.cpu.get(n, 0.0) - first.cpu.get(n, 0.0) for n in names}))
                if on:
                    computing.append(last.computed_at > first.computed_at)

            await abba(http, {k: (bases[k], pids[k]) for k in (False, True)}, warmup=plan.warmup,
                       slices=plan.slices, seconds=plan.slice, read=read, on_slice=note)
            if plan.slices:
                report(per, refresh=kpi["refresh_interval"])
                split(per[True], computing)
            if args.py_spy:
                for on in (False, True):
                    await profile(http, args, bases[on], pids[on], f"{args.py_spy_out}-{'on' if on else 'off'}.txt")


async def profile(http: aiohttp.ClientSession, args: argparse.Namespace, base: str, pid: int, out: str) -> None:
    """py-spy (``--py-spy``) of one daemon running alone for ``--py-spy-seconds``, collapsed stacks
    per thread, without pausing it to sample (``--nonblocking``) unless ``--native``; prints the
    events it delivered."""
    pause(pid, True)
    first = await read(http, base, pid)
    argv = [args.py_spy, "record", *([] if args.native else ["--nonblocking"]), "-t", "-r", "100", "-f", "raw",
            "-d", str(args.py_spy_seconds), "-p", str(pid), "-o", out, *(["--native"] if args.native else []),
            *(["--gil"] if args.gil else [])]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    await proc.wait()
    last = await read(http, base, pid)
    pause(pid, False)
    print(f"py-spy {out}: {last.delivered - first.delivered:.0f} events in {last.at - first.at:.1f} s, "
          f"loop CPU {last.loop_cpu - first.loop_cpu:.2f} s")


def report(per: dict[bool, list[tuple[float, dict[str, float]]]], refresh: str) -> None:
    """µs of CPU an event per thread, off and on, over all slices; and the paired (slice by slice)
    difference of the loop and the process with its standard error."""
    print(f"refresh_interval {refresh} of wall time; {len(per[True])} slices each")
    totals: dict[bool, dict[str, float]] = {}
    events: dict[bool, float] = {}
    for on, slices in per.items():
        events[on] = sum(n for n, _ in slices)
        acc: dict[str, float] = defaultdict(float)
        for _, cpu in slices:
            for name, s in cpu.items():
                acc[name] += s
        totals[on] = acc
    names = sorted(set(totals[False]) | set(totals[True]), key=lambda n: (n != "loop", n.startswith("sandbox"),
                                                                           n == "process", n))
    print(f"{'thread':16} {'off µs/ev':>10} {'on µs/ev':>10} {'on-off':>8}")
    for name in names:
        off_us = totals[False].get(name, 0.0) * 1e6 / events[False]
        on_us = totals[True].get(name, 0.0) * 1e6 / events[True]
        print(f"{name:16} {off_us:10.1f} {on_us:10.1f} {on_us - off_us:+8.1f}")
    for name in ("loop", "process"):
        # each ABBA pair of slices (the off and on slices next to each other): the on/off ratio
        ratios = [(c1[name] / n1) / (c0[name] / n0) - 1
                  for (n0, c0), (n1, c1) in zip(per[False], per[True], strict=True) if n0 and n1]
        if len(ratios) > 1:
            print(f"{name}: CPU an event on/off - 1, pairs of neighbouring slices: mean {statistics.mean(ratios):+.1%} "
                  f"± {statistics.stdev(ratios) / len(ratios) ** 0.5:.1%}, median {statistics.median(ratios):+.1%}")
    print(f"events a slice: off {events[False] / max(1, len(per[False])):.0f}, "
          f"on {events[True] / max(1, len(per[True])):.0f}")


def split(on: list[tuple[float, dict[str, float]]], computing: list[bool]) -> None:
    """The worker threads' CPU (``python``: the indicators' worker) in the on slices without a
    periodic computation (its writes), and what a slice with one took more (the computation)."""
    plain = [(n, cpu) for (n, cpu), c in zip(on, computing, strict=True) if not c]
    with_ = [(n, cpu) for (n, cpu), c in zip(on, computing, strict=True) if c]
    for i, ((n, cpu), c) in enumerate(zip(on, computing, strict=True)):
        if not n:
            print(f"  on slice {i:2}: no event delivered (the backlog ran out: raise --backlog)")
            continue
        print(f"  on slice {i:2}: {n:7.0f} events, loop {cpu['loop'] * 1e6 / n:6.1f} µs/ev, worker "
              f"{cpu.get('python', 0.0) * 1e6 / n:6.1f} µs/ev, worker {cpu.get('python', 0.0):5.2f} s"
              + ("  <- a computation" if c else ""))
    if plain:
        writes = sum(cpu.get("python", 0.0) for _, cpu in plain) / sum(n for n, _ in plain)
        print(f"worker in slices without a computation (its writes): {writes * 1e6:.1f} µs an event")
        if with_:
            extra = [cpu.get("python", 0.0) - writes * n for n, cpu in with_]
            print(f"worker's CPU for a computation (beyond the writes of its slice): "
                  f"{', '.join(f'{e:.2f} s' for e in extra)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--year", type=int, default=200_000)
    parser.add_argument("--backlog", type=int, default=80_000)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--slice", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--refresh", default="", help="[kpi] refresh_interval (default: bench_kpi's, 2 x 60 s)")
    parser.add_argument("--cache", default="", help="a folder keeping the year's file and the backlog between runs")
    parser.add_argument("--py-spy", default="", help="then profile each daemon alone with this py-spy")
    parser.add_argument("--py-spy-seconds", type=int, default=20)
    parser.add_argument("--py-spy-out", default="/tmp/kpi-threads")
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument("--gil", action="store_true", help="py-spy --gil: only samples holding the GIL")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
