"""766-indicator benchmarks (issue 14): what the live indicators cost a scrape and the sync
engine, each figure beside a baseline measured in the same run, then a summary table with the
target and PASS/FAIL. Exit status 1 if a target is missed or a scenario broke.

Every daemon is ``dvcgw serve`` in its own subprocess with one agency owning 500 units, an
SQLite store with ``synchronous = "full"``, ``batch_size = 50`` and ``lookup_before_create =
false`` (bench_gateway's ``deliver`` settings), the zero-latency sandbox (``dvcgw sandbox``, nice
10) as the portal, and the default ``[kpi]`` settings (``refresh_interval`` 5 min, ``flush_interval``
5 s): only ``[kpi] enabled`` differs between a daemon and its baseline (in ``within``, one daemon:
the bench's switch). Set up once per run, and
copied for each daemon:

* **the year**: an indicators' file holding ``year`` dossiers (200,000) of the 500 units,
  received over the 365 days before now, each one snapshot and two progress items as the engine
  records them (``monitoring.kpi.facts.fold`` then ``monitoring.kpi.store.write``, the
  daemon's own write path): 60 % online, 30 % with a fee (half of them paid online), 40 %
  VNeID, 80 % with a submitted file, 5 % (and everything of the last three days) still in
  processing, the rest finished 1–12 days after reception against a 10-day deadline, 1 % synced
  two hours late;
* **the backlog**: ``backlog`` dossiers (950,000, 2,850,000 events: ``within``'s daemon runs
  ~680 s and would take ~2,770,000 at the fastest rate seen so far, ~4,070/s), spread evenly over the
  500 units, each one snapshot and ``progress`` (2) progress items, received now, pre-loaded into
  a queue store through the gateway's own validation and ``SQLiteQueue.enqueue``.

``scrape``: ``GET /metrics`` with 500 units and all indicators
    Two daemons on an empty queue, indicators on (the year's file) and off. Once the on one's
    first computation is in its ``/metrics``, ``scrapes`` scrapes of each, alternating, one at a
    time, each timed from the request to the last byte of the body, over a kept-alive
    connection. Baseline: the daemon with ``[kpi] enabled = false``. Target: p95 <= 50 ms.
``within``: events delivered per second, indicators switched on vs off **in one daemon**
    One daemon (bench/kpi_switch.py: ``dvcgw serve`` with a switch the bench turns through ``POST
    /bench/kpi?on=1|0``, the measurement's, never the product's) on a copy of the backlog, its
    indicators on (the year's file). After ``warmup`` (10 s, on), ``slices`` (32) slices of
    ``slice`` (10 s) each with the indicators off and ``slices`` on, in ABBA order (off on, on
    off, …); the daemon runs throughout, only its indicators' observer is switched. A slice is
    read from just after its switch to just after the switch that ends it; switching off first
    writes what the indicators buffered (so each on slice holds the writes of what it observed:
    its batches are smaller than the 5 s ones of production, which if anything counts the
    writer dearer), and a periodic computation that falls due while off runs at the next switch
    on, inside an on slice (``refresh_interval`` 600 s of wall time: 300 s of the indicators' own
    running, the default). Why one daemon: two identical daemons differ by up to ~5 % of
    throughput (``calibrate``), as much as the target, and the blocks of one run cannot remove a
    difference that lasts for a whole process; within one process it cancels. What the switch
    leaves on in both kinds of slice: the indicators' service, its open file and its last
    computation in memory (its rows are tuples of numbers and strings, which Python's collector
    stops tracking, so they add nothing to its collections). The run fails if an off slice read
    facts or an on slice none, or if the slices hold fewer computations than refresh intervals.
    Target: cost = 1 - on/off < 5 %, on the throughput, with the CPU cost beside.
``within-calibrate`` (only with ``--only within-calibrate``): the same, the indicators never
    switched on: the method's own difference between identical slices of one daemon. No target.
``throughput`` (only with ``--only throughput``): events delivered per second, indicators on vs
    off **in two daemons** (judged until the twelfth session, now printed without a verdict for
    the reason given under ``within``).
    Two daemons, indicators off and on (the year's file), each on its own copy of the backlog and
    its own sandbox, both started and then run **in turn**: while one runs, the other is paused
    (SIGSTOP, every thread; the measurement's switch, not the product's). After ``warmup`` (10 s)
    each, ``slices`` (32) slices of ``slice`` (10 s) each, in ABBA order (off on, on off, …). A
    slice resumes its daemon, lets it run 0.5 s + ``slice``, reads ``/metrics`` and pauses it; the
    rate is the events delivered (``dvcgw_deliveries_total{outcome="ok"}``) since its previous
    read over its running time, resume to read (bench/_slices.py: every second the daemon runs is
    in a slice, so a computation that fell due while it was paused, and ran as it resumed, is
    measured too). Why slices: the machine's speed drifts (the same daemon measured 296 and
    347 µs of CPU an event in windows minutes apart), so two long windows could not resolve 5 %;
    slices seconds apart see the same machine. The wall clock runs on while a daemon is paused,
    and each runs half of the time: the on daemon gets ``refresh_interval = "600s"`` of wall time,
    which is the default 5 min of its own running (as in production). The slices add up to at
    least one refresh interval of each daemon's own running (32 x 10 s >= 300 s), so the
    periodic computation weighs in them as it does in production: the computations that ran
    in the on slices are counted, and the run fails if there are fewer than the slices'
    running time holds whole refresh intervals. The cost of each ABBA block
    (off on on off) is printed too, with their median and the mean's standard error: the
    machine's noise, in the units of the target. Beside it, from the same slices, the **CPU
    cost**: the daemon's own CPU seconds (every thread, ``/proc/<pid>/stat``) an event delivered,
    on / off - 1, per block with its standard error too. It counts what the indicators add to
    the process whichever CPU it runs on, and moves far less with other work on the machine than
    events a second; it is not the same quantity as the throughput cost (the indicators' worker
    thread can use the second CPU, and holds the GIL only for its Python parts), so it is printed
    beside, not judged. The backlog must outlast the slices (checked), and ``GET /v1/kpi`` must
    count the dossiers delivered (the recording worked). No target (``within`` is judged).
``calibrate`` (only with ``--only calibrate``): the throughput scenario with the indicators off
    in both daemons. What it prints as a cost is the method's own difference between two
    identical daemons (their processes, copies and sandboxes, the slices' order, the machine), to
    read the throughput scenario's figure against. No target.
``compare`` (only with ``--only compare`` and ``BENCH_KPI_COMPARE=DIR``): the throughput scenario
    with the indicators on in both daemons, the second running the code of the checkout ``DIR``
    (``git worktree add DIR REV``; the same virtual environment): what a change to the
    indicators costs or saves, measured directly in the same slices, where two runs of
    ``throughput`` differ by more than most changes do. No target.

Run: ``.venv/bin/python -m bench.bench_kpi`` (about 17 minutes, 11 of them slices; ``--quick`` for
a short smoke run whose figures mean nothing: ``refresh_interval`` 5 s and 3 s slices; ``--only
scrape|within|within-calibrate|throughput|calibrate|compare``; ``BENCH_KEEP_LOGS=DIR`` copies the
daemons' and sandboxes' logs there at the end). Only 127.0.0.1 is used; every subprocess is
stopped on the way out, also on failure or SIGTERM.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench._procs import (
    OPERATOR_KEY,
    ROOT,
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
)
from bench._slices import PORTAL_TIMEOUT, Tally, abba, block_costs, cpu_seconds, pause
from bench.bench_gateway import reset_sandbox
from config.schema import KpiSettings
from gateway import dossier
from monitoring.kpi import store
from monitoring.kpi.facts import Facts, fold
from queues.api import Event, EventKind, NewEvent
from queues.sqlite import SQLiteQueue
from tests.samples import sample_dossier

SCENARIOS = ("scrape", "within", "within-calibrate", "throughput", "calibrate", "compare")
#: what a run without --only measures (the others are asked for by name)
DEFAULT_SCENARIOS = ("scrape", "within")
UNITS = [f"000.{i // 100:02d}.{i % 100:02d}.H55" for i in range(500)]
SCRAPE_CEILING = 0.050  # s, p95
COST_CEILING = 0.05  # share of the throughput without the indicators
BATCH = 50
DAY = 86400.0
LOCAL = dt.timezone(dt.timedelta(hours=7))
_DELIVERED = re.compile(rb'^dvcgw_deliveries_total\{[^}]*outcome="ok"[^}]*\} (\S+)$', re.MULTILINE)
#: failed portal delivery attempts: (operation, outcome class, count), labels in exposition order
_FAILED = re.compile(rb'^dvcgw_deliveries_total\{counterpart="portal",operation="([^"]*)",outcome="(?!ok")([^"]*)"\} '
                     rb'(\S+)$', re.MULTILINE)
#: compare: the checkout whose code the second daemon runs (e.g. made by ``git worktree add``)
COMPARE_ENV = "BENCH_KPI_COMPARE"
#: where the 766 families begin in a scrape (the gateway appends them after its own metrics)
KPI_FAMILIES = b"# HELP dvcgw_kpi766_"


#: [kpi] refresh_interval's default, in seconds
DEFAULT_REFRESH = float(KpiSettings().refresh_interval)
SLICE = 10.0


def slices_for(refresh: float, seconds: float) -> int:
    """Slices per daemon (even, for ABBA blocks, and at least 16) whose running time adds up to at
    least one ``refresh`` interval: the periodic computation must fall inside the measurement."""
    return max(16, 2 * math.ceil(refresh / seconds / 2) + 2)


@dataclass(frozen=True)
class Plan:
    year: int = 200_000
    backlog: int = 950_000
    progress: int = 2
    scrapes: int = 40
    warmup: float = 10.0
    slice: float = SLICE  # seconds a daemon runs alone, then the other
    # per daemon, in ABBA order: off on, on off, ... (cancels the machine's drift)
    slices: int = slices_for(DEFAULT_REFRESH, SLICE)
    kpi: dict[str, Any] = field(default_factory=dict)  # [kpi] keys beside enabled: none, the defaults


QUICK = Plan(year=20_000, backlog=60_000, scrapes=10, warmup=3.0, slice=3.0, slices=4, kpi={"refresh_interval": "5s"})


@dataclass
class Run:
    plan: Plan
    procs: Procs
    tmp: Path
    queue: Path = Path()
    year: Path = Path()
    year_in_month: int = 0
    sandbox_url: str = ""
    rows: list[Row] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------- set-up


def _local(at: float) -> str:
    return dt.datetime.fromtimestamp(at, LOCAL).strftime("%Y%m%d%H%M%S")


def _events(code: str, snapshot: dict[str, Any], steps: list[dict[str, Any]]) -> list[NewEvent]:
    unit = code.split("-", 1)[0]
    return ([NewEvent(code, EventKind.SNAPSHOT, {**snapshot, "MaHoSo": code}, unit)]
            + [NewEvent(code, EventKind.PROGRESS, {**s, "MaHoSo": code}, unit) for s in steps])


async def preload_queue(path: Path, plan: Plan) -> None:
    """The backlog: every dossier received now, due in five days, with its progress."""
    now = time.time()
    received = _local(now - 300)
    snapshot = dict(dossier.validate_snapshot("X", sample_dossier(
        "X", NgayTiepNhan=received, NgayNopHoSo=received, NgayHenTra=_local(now + 5 * DAY))).payload)
    steps = [dict(v.payload) for v in dossier.validate_progress("X", [
        {"NguoiXuLy": "Chuyên viên", "ThoiDiemXuLy": _local(now - 240 + 60 * i),
         "TrangThai": "2" if i == 0 else "4", "NoiDungXuLy": "bước"} for i in range(plan.progress)])]
    codes = [f"{UNITS[i % len(UNITS)]}-b-{i:07d}" for i in range(plan.backlog)]
    path.parent.mkdir(parents=True, exist_ok=True)
    q = SQLiteQueue(path, synchronous="normal")
    await q.start()
    try:
        for i in range(0, len(codes), 500):  # concurrent enqueues: group commit, few fsyncs
            await asyncio.gather(*(q.enqueue(_events(c, snapshot, steps)) for c in codes[i:i + 500]))
    finally:
        await q.close()


def _year_dossier(rng: random.Random, i: int, now: float, base: dict[str, Any]) -> list[Facts]:
    """One dossier of the year as the engine records it: its snapshot and two progress items,
    each delivered two seconds after it was accepted (1 % of the dossiers: the last one two hours
    late)."""
    unit = UNITS[i % len(UNITS)]
    mahoso = f"{unit}-y-{i:07d}"
    received = now - rng.uniform(0, 365 * DAY)
    open_ = rng.random() < 0.05 or now - received < 3 * DAY
    end = min(received + rng.uniform(1 * DAY, 12 * DAY), now - 60)
    fee = rng.random() < 0.3
    kho = rng.random() < 0.1
    filed = kho or rng.random() < 0.8
    snapshot = {
        **base, "MaHoSo": mahoso, "NgayTiepNhan": _local(received), "NgayNopHoSo": _local(received),
        "NgayHenTra": _local(received + 10 * DAY), "TrangThaiHoSo": "4" if open_ else "9",
        "NgayKetThucXuLy": "" if open_ else _local(end), "KenhThucHien": "2" if rng.random() < 0.6 else "1",
        "DuocThanhToanTrucTuyen": "1" if fee and rng.random() < 0.5 else "0",
        "HoSoCoThanhPhanSoHoa": "1" if rng.random() < 0.5 else "0",
        "TaiKhoanDuocXacThucVoiVNeID": "1" if rng.random() < 0.4 else "0",
        "TaiLieuNop": [{**base["TaiLieuNop"][0], "DuocLayTuKhoDMQG": "1" if kho else "0"}] if filed else [],
        "DanhSachLePhi": base["DanhSachLePhi"] if fee else [],
        "DanhSachGiayToKetQua": [{"TenGiayTo": "Kết quả", "DuongDanTepTinKetQua": "https://motcua.example.com/kq.pdf"}]
        if not open_ and rng.random() < 0.7 else [],
    }
    steps = [("2", received + 3600), ("4", received + DAY) if open_ else ("9", end)]
    late = rng.random() < 0.01
    events = [(Event(f"{i}-1", mahoso, EventKind.SNAPSHOT, 1, snapshot, received + 60), received + 62)]
    for seq, (status, at) in enumerate(steps, start=2):
        body = {"MaHoSo": mahoso, "TrangThai": status, "ThoiDiemXuLy": _local(at)}
        events.append((Event(f"{i}-{seq}", mahoso, EventKind.PROGRESS, seq, body, at),
                       at + (7200 if late and seq == 3 else 2)))
    return fold(mahoso, events)


async def prefill_year_in(code: Path, path: Path, plan: Plan) -> Path:
    """:func:`prefill_year` as the checkout ``code`` writes it (its own layout), in a process."""
    script = ("import sys; from pathlib import Path; from bench.bench_kpi import Plan, prefill_year; "
              "prefill_year(Path(sys.argv[1]), Plan(year=int(sys.argv[2])))")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(path), str(plan.year), cwd=code,
                                                env={**os.environ, "PYTHONPATH": str(code)})
    if await proc.wait():
        raise RuntimeError(f"compare: {code} could not write the year's file")
    return path


def prefill_year(path: Path, plan: Plan) -> int:
    """The year's indicators' file (see the module docstring); returns how many of its dossiers
    were received in the current local month."""
    now = time.time()
    rng = random.Random(14)
    base = dict(dossier.validate_snapshot("X", sample_dossier("X", DSKetNoiCSDL=[], DanhSachHoSoBoSung=[])).payload)
    month_start = dt.datetime.fromtimestamp(now, LOCAL).replace(day=1, hour=0, minute=0, second=0,
                                                                microsecond=0).timestamp()
    month_begins = int(_local(month_start))
    rules = store.Rules()
    conn = store.open_store(path)
    in_month = 0
    try:
        for first in range(0, plan.year, 10_000):
            batch: list[Facts] = []
            for i in range(first, min(first + 10_000, plan.year)):
                facts = _year_dossier(rng, i, now, base)
                in_month += int(orjson.loads(facts[0][-1])["NgayTiepNhan"]) >= month_begins  # the snapshot's
                batch += facts
            store.write(conn, batch, rules)
    finally:
        store.close(conn)
    return in_month


async def start_daemon(run: Run, name: str, *, kpi: bool, backlog: bool, portal: str = "",
                       kpi_settings: dict[str, Any] | None = None, code: Path = ROOT, year: Path | None = None,
                       switched: bool = False) -> str:
    """``dvcgw serve`` (from the checkout ``code``; with ``switched``, bench/kpi_switch.py's, whose
    indicators the bench can switch off and on) on a copy of the backlog (or an empty queue) and,
    with the indicators on, of the year's file (``year``, else ``run.year``); its base URL once
    /readyz answers."""
    port = free_port()
    folder = run.tmp / name
    folder.mkdir(parents=True)
    store_path = folder / "gw.sqlite3"
    if backlog:
        shutil.copyfile(run.queue, store_path)
    if kpi:
        shutil.copyfile(year or run.year, folder / "kpi.sqlite3")  # [kpi] path: kpi.sqlite3 beside the store
    conf = write_config(folder / "gw.toml", port=port, portal_url=portal or run.sandbox_url, store=store_path,
                        units=UNITS, portal={"batch_size": BATCH, "lookup_before_create": False,
                                             "timeout": PORTAL_TIMEOUT},
                        kpi={"enabled": kpi, **(run.plan.kpi if kpi_settings is None else kpi_settings)})
    base, proc = await start_serve(run.procs, name, conf, port, code=code,
                                   serve=("bench.kpi_switch",) if switched else ("gateway", "serve"))
    run.pids[name] = proc.pid
    return base


@dataclass(frozen=True)
class Reading:
    """One read of a daemon's /metrics: when, events delivered, the last 766 computation's
    time (0 before the first) and duration (the scan and the rows, not the rendering), and the
    CPU seconds of its event-loop thread and of the process."""

    at: float
    delivered: float
    computed_at: float
    compute_s: float
    loop_cpu: float
    process_cpu: float
    failed: float = 0.0  # delivery attempts to the portal of any outcome but ok
    circuit: float = 0.0  # the portal's circuit: 0 closed, 1 half-open, 2 open
    portal_cpu: float = 0.0  # CPU seconds of the daemon's sandbox portal
    machine: tuple[float, float] = (0.0, 0.0)  # the machine's idle and total CPU seconds (/proc/stat)
    facts_s: float = 0.0  # the event loop's seconds reading the 766 facts (dvcgw_kpi_facts_seconds_total)


def machine_seconds() -> tuple[float, float]:
    """The machine's idle (idle + iowait) and total CPU seconds, all CPUs, from /proc/stat."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (ticks[3] + ticks[4]) / os.sysconf("SC_CLK_TCK"), sum(ticks[:8]) / os.sysconf("SC_CLK_TCK")


def find_value(body: bytes, name: bytes) -> float:
    """The value of the unlabelled sample ``name`` in a text exposition (0 when absent), found by
    ``bytes.find`` (``bench._procs.sample`` reads a parsed scrape: too slow for 6.3 MB)."""
    at = body.find(b"\n" + name + b" ")
    if at < 0:
        return 0.0
    start = at + len(name) + 2
    return float(body[start:body.find(b"\n", start)])


def delivered(body: bytes) -> tuple[float, bytes]:
    """Events delivered (``dvcgw_deliveries_total``, outcome ok) in a scrape, and the scrape's 766
    families (b"" without). Only the gateway's own metrics are searched by a regex: over the 6.3 MB
    of the 766 families it took ~70 ms of CPU a read (twice a slice), on the CPUs the measured
    daemon shares, which charged the bench's own work to the indicators."""
    at = body.find(KPI_FAMILIES)
    head, kpi = (body, b"") if at < 0 else (body[:at], body[at:])
    return sum(float(v) for v in _DELIVERED.findall(head)), kpi


async def read(http: aiohttp.ClientSession, base: str, pid: int) -> Reading:
    async with http.get(f"{base}/metrics") as r:
        body = await r.read()
    count, kpi = delivered(body)
    head = body[:len(body) - len(kpi)]
    return Reading(time.time(), count, find_value(kpi, b"dvcgw_kpi766_computed_timestamp_seconds"),
                   find_value(kpi, b"dvcgw_kpi766_compute_duration_seconds"), cpu_seconds(pid, pid), cpu_seconds(pid),
                   sum(float(v) for _, _, v in _FAILED.findall(head)),
                   find_value(head, b'dvcgw_circuit_state{counterpart="portal"}'),
                   facts_s=find_value(head, b"dvcgw_kpi_facts_seconds_total"))


async def month_denominator(http: aiohttp.ClientSession, base: str) -> int:
    """GET /v1/kpi (operator): DOSSIER_SYNC's denominator of the province this month."""
    period = dt.datetime.now(LOCAL).strftime("%Y-%m")
    async with http.get(f"{base}/v1/kpi", params={"period": period, "unit": "all"},
                        headers={"X-API-Key": OPERATOR_KEY}) as r:
        body = await r.json()
    return int(next(x["denominator"] for x in body["rows"] if x["indicator"] == "DOSSIER_SYNC"))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------------------------------------- scenarios


async def timed_scrape(http: aiohttp.ClientSession, base: str) -> tuple[float, int]:
    started = time.perf_counter()
    async with http.get(f"{base}/metrics") as r:
        body = await r.read()
    return time.perf_counter() - started, len(body)


async def bench_scrape(run: Run) -> None:
    p = run.plan
    print(f"\n[scrape] GET /metrics with {len(UNITS)} units and every indicator ({p.year:,} dossiers in the "
          f"year), {p.scrapes} scrapes each, nothing to deliver")
    off = await start_daemon(run, "scrape-off", kpi=False, backlog=False)
    on = await start_daemon(run, "scrape-on", kpi=True, backlog=False)
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 60
        while (await read(http, on, run.pids["scrape-on"])).computed_at == 0:  # the computation at start
            if time.monotonic() > deadline:
                raise TimeoutError("the indicators' first computation did not reach /metrics within 60 s")
            await asyncio.sleep(0.5)
        times: dict[str, list[float]] = {"off": [], "on": []}
        sizes: dict[str, int] = {}
        for _ in range(p.scrapes):
            for name, base in (("off", off), ("on", on)):
                seconds, size = await timed_scrape(http, base)
                times[name].append(seconds)
                sizes[name] = size
    run.procs.stop("scrape-off")
    run.procs.stop("scrape-on")
    for name in ("off", "on"):
        t = times[name]
        print(f"    indicators {name:3}      : p50 {pct(t, .5) * 1000:6.1f} ms  p95 {pct(t, .95) * 1000:6.1f} ms  "
              f"max {max(t) * 1000:6.1f} ms  body {sizes[name] / 1e6:.2f} MB"
              + ("  <- the baseline" if name == "off" else ""))
    p95 = pct(times["on"], .95)
    run.rows.append(Row(f"/metrics scrape, {len(UNITS)} units, all indicators",
                        f"p95 {p95 * 1000:.1f} ms (p50 {pct(times['on'], .5) * 1000:.1f}, "
                        f"{sizes['on'] / 1e6:.1f} MB)",
                        f"without indicators p95 {pct(times['off'], .95) * 1000:.1f} ms",
                        f"<= {SCRAPE_CEILING * 1000:.0f} ms", p95 <= SCRAPE_CEILING))


class SliceNotes:
    """What the throughput scenario notes of each slice beside the tallies: the periodic
    computations, failed delivery attempts and an open circuit (by slice), and the daemon's
    sandbox portal's CPU an event and the machine's idle CPU share."""

    def __init__(self, portal_pid: dict[str, int], names: tuple[str, str] = ("off", "on")) -> None:
        self.portal_pid = portal_pid  # base URL -> its sandbox's pid
        self.names = names  # the first daemon's and the second's
        self.computed: list[float] = []
        self.lines: list[str] = []
        self.count = {False: 0, True: 0}
        # events, the portal stand-in's CPU seconds, the machine's idle and total CPU seconds, the
        # event loop's seconds reading the 766 facts
        self.beside = {False: [0.0] * 5, True: [0.0] * 5}
        # the facts' µs an event of each slice: the counter is wall time (perf_counter), so a pause
        # that lands inside ``observe`` adds the whole pause to it, in one slice (the median holds)
        self.facts_slices: dict[bool, list[float]] = {False: [], True: []}

    async def read(self, http: aiohttp.ClientSession, base: str, pid: int) -> Reading:
        return replace(await read(http, base, pid), portal_cpu=cpu_seconds(self.portal_pid[base]),
                       machine=machine_seconds())

    def note(self, kpi: bool, resumed: float, first: Reading, last: Reading) -> None:
        for i, v in enumerate((last.delivered - first.delivered, last.portal_cpu - first.portal_cpu,
                               last.machine[0] - first.machine[0], last.machine[1] - first.machine[1],
                               last.facts_s - first.facts_s)):
            self.beside[kpi][i] += v
        if last.facts_s > first.facts_s:
            events = max(last.delivered - first.delivered, 1)
            self.facts_slices[kpi].append((last.facts_s - first.facts_s) * 1e6 / events)
        self.count[kpi] += 1
        name = f"{self.names[kpi]} slice {self.count[kpi]}"
        # A computation that this read shows for the first time ran in this slice, or began in the
        # daemon's previous one and ended in this: either way its seconds are in the slices (its
        # start, the figure's time, can be before this slice's resume).
        if kpi and last.computed_at > first.computed_at:
            self.computed.append(last.compute_s)
            self.lines.append(f"{name}: a periodic computation" + (
                "" if last.computed_at >= resumed else ", begun in the daemon's previous slice"))
        if last.failed > first.failed or max(first.circuit, last.circuit) > 0:
            self.lines.append(f"{name}: {last.failed - first.failed:.0f} failed delivery attempts, portal circuit "
                              f"{first.circuit:.0f} -> {last.circuit:.0f}")

    def print(self) -> None:
        for line in self.lines:
            print(f"    {line}")
        for kpi, (events, portal, idle, total, facts) in self.beside.items():
            print(f"    beside the {self.names[kpi]} daemon in its slices: its sandbox portal "
                  f"{portal * 1e6 / max(events, 1):.1f} µs of CPU an event; the machine's CPUs "
                  f"{idle / max(total, 1e-9):.1%} idle"
                  + (f"; its event loop reading the 766 facts {statistics.median(self.facts_slices[kpi]):.1f} µs an "
                     f"event, the median of its slices ({facts * 1e6 / max(events, 1):.1f} over all of them; "
                     "dvcgw_kpi_facts_seconds_total, wall time added at each write: a pause landing inside "
                     "the fold counts whole)" if self.facts_slices[kpi] else ""))


def half_time_kpi(p: Plan) -> dict[str, Any]:
    """The ``[kpi]`` settings of indicators that run half of the wall time (a daemon in turn with
    another, or switched on in half of the slices): the plan's, with a ``refresh_interval`` of
    twice the default unless it sets one. The indicators' timer is the wall clock's, so that gives
    the default's computations per second of their own running, as in production."""
    return {"refresh_interval": f"{2 * DEFAULT_REFRESH:.0f}s", **p.kpi}


def refresh_intervals(p: Plan) -> int:
    """Whole refresh intervals in the running time of one kind of slice (a plan that sets its own
    short interval, ``--quick``: at least one)."""
    return math.floor(p.slices * p.slice / DEFAULT_REFRESH) if "refresh_interval" not in p.kpi else 1


def check_backlog(p: Plan, last: Reading) -> None:
    """Raise when a daemon delivered the whole backlog: its last slices ran on an empty queue."""
    if last.delivered >= p.backlog * (1 + p.progress):
        raise RuntimeError("the backlog ran out; raise Plan.backlog")


async def bench_throughput(run: Run, second_on: bool = True, other: Path | None = None) -> None:
    """Indicators off (the baseline) against on; with ``second_on`` False, off against off: the
    method's own difference between two identical daemons (``calibrate``); with ``other``, on
    against on, the second daemon running the code of the checkout ``other`` (``compare``)."""
    p = run.plan
    kpi_settings = half_time_kpi(p)
    if "refresh_interval" not in p.kpi:
        refresh = (f"{2 * DEFAULT_REFRESH:.0f} s of wall time = the default {DEFAULT_REFRESH:.0f} s of the "
                   "daemon's own running, since it runs half of the time")
    else:
        refresh = f"{kpi_settings['refresh_interval']} of wall time"
    scenario = "compare" if other else "throughput" if second_on else "calibrate"
    print(f"\n[{scenario}] events delivered/s from a backlog of {p.backlog:,} dossiers x (1 snapshot + {p.progress} "
          f"progress) over {len(UNITS)} units, indicators "
          + (f"on in both ({p.year:,} dossiers in the year, refresh {refresh}), the first daemon running this "
             f"checkout's code, the second {other}'s" if other else
             f"off and on ({p.year:,} dossiers in the year, refresh {refresh})" if second_on else
             "off and off again (two identical daemons: the method's own difference)")
          + f": both daemons started, then run in turn, one at a time, {p.slices} slices of "
          f"{p.slice:.0f} s each in ABBA order after {p.warmup:.0f} s of warm-up each")
    names = ("this", "other") if other else ("off", "on" if second_on else "off-again")  # first, second
    # the other checkout may keep another layout of the indicators' file: its year, its own code
    other_year = await prefill_year_in(other, run.tmp / "other-year.sqlite3", p) if other else None
    sandbox_2 = await start_sandbox(run.procs, f"{scenario}-sandbox")
    try:
        bases, pids = {}, {}
        async with aiohttp.ClientSession() as http:
            for kpi, portal in ((False, run.sandbox_url), (True, sandbox_2)):
                await reset_sandbox(http, portal)
                name = f"{scenario}-{names[kpi]}"
                bases[kpi] = await start_daemon(run, name, kpi=bool(other) or (kpi and second_on), backlog=True,
                                                portal=portal, kpi_settings=kpi_settings,
                                                code=other if other and kpi else ROOT,
                                                year=other_year if kpi else None)
                pids[kpi] = run.pids[name]
                pause(pids[kpi], False)
            notes = SliceNotes({bases[False]: run.procs.running["sandbox"].pid,
                                bases[True]: run.procs.running[f"{scenario}-sandbox"].pid}, names)
            tallies = await abba(http, {k: (bases[k], pids[k]) for k in (False, True)}, warmup=p.warmup,
                                 slices=p.slices, seconds=p.slice, read=notes.read, on_slice=notes.note)
            notes.print()
            computed = notes.computed
            for kpi in (False, True):
                async with http.get(f"{bases[kpi]}/metrics") as r:
                    found = _FAILED.findall(await r.read())
                if failures := [f"{op.decode()} {cls.decode()} {float(v):.0f}" for op, cls, v in found if float(v)]:
                    print(f"    the {names[kpi]} daemon's failed delivery attempts, all told: "
                          f"{', '.join(failures)}")
            last = await read(http, bases[True], pids[True])
            check_backlog(p, last)
            if other:
                report_pair(run, tallies[False], tallies[True], names,
                            f"events delivered/s, indicators on, {other.name}'s code", "comparison")
                return
            if not second_on:
                report_pair(run, tallies[False], tallies[True], names,
                            "the method between two identical daemons", "calibration")
                return
            counted = await month_denominator(http, bases[True]) - run.year_in_month
            if counted < 0.99 * last.delivered / (1 + p.progress):
                raise RuntimeError(f"/v1/kpi counts {counted} new dossiers, {last.delivered:.0f} events were delivered")
    finally:  # a later scenario of the same run must not share the machine with these
        for name in (*(f"{scenario}-{n}" for n in names), f"{scenario}-sandbox"):
            run.procs.stop(name)
    report_throughput(run, tallies[False], tallies[True], computed, refresh, refresh_intervals(p), judged=False)


async def bench_within(run: Run, switch: bool = True) -> None:
    """The indicators' cost in one process: a daemon (bench/kpi_switch.py) whose indicators are
    switched off and on in ABBA slices; with ``switch`` False, never on (``within-calibrate``: what
    the method reads between identical slices)."""
    p = run.plan
    kpi_settings = half_time_kpi(p)  # a computation that falls due while off waits for the next on slice
    refresh = f"{kpi_settings['refresh_interval']} of wall time, put off while switched off"
    scenario = "within" if switch else "within-calibrate"
    print(f"\n[{scenario}] events delivered/s from a backlog of {p.backlog:,} dossiers x (1 snapshot + {p.progress} "
          f"progress) over {len(UNITS)} units, in one daemon whose indicators ({p.year:,} dossiers in the year, "
          f"refresh {refresh}) are switched "
          + ("off and on" if switch else "off and left off (slices named on and off alike: the method's own "
                                          "difference)")
          + f": {p.slices} slices of {p.slice:.0f} s each in ABBA order after {p.warmup:.0f} s of warm-up, "
          "each on slice ending with the write of what it observed")
    name = scenario
    base = await start_daemon(run, name, kpi=True, backlog=True, kpi_settings=kpi_settings, switched=True)
    pid = run.pids[name]
    notes = SliceNotes({base: run.procs.running["sandbox"].pid})
    tallies = {False: Tally(), True: Tally()}
    try:
        async with aiohttp.ClientSession() as http:
            async def switch_to(on: bool) -> None:
                async with http.post(f"{base}/bench/kpi", params={"on": str(int(on))}) as r:
                    if r.status != 200:
                        raise RuntimeError(f"the switch answered {r.status}: {await r.text()}")

            async def one(on: bool, seconds: float) -> tuple[Reading, Reading]:
                await switch_to(on and switch)
                first = await notes.read(http, base, pid)
                await asyncio.sleep(seconds)
                await switch_to(False)  # writes what the slice observed, inside the slice
                return first, await notes.read(http, base, pid)

            await one(True, p.warmup)
            for i in range(p.slices):
                for on in ((False, True) if i % 2 == 0 else (True, False)):
                    first, last = await one(on, p.slice)
                    tallies[on].add(first, last, first.at)
                    notes.note(on, first.at, first, last)
            notes.print()
            check_backlog(p, last)
    finally:
        run.procs.stop(name)
    if not switch:
        report_pair(run, tallies[False], tallies[True], ("off", "off-again"),
                    "the method between identical slices of one daemon", "calibration")
        return
    if notes.facts_slices[False] or len(notes.facts_slices[True]) < p.slices:
        raise RuntimeError(f"the switch: facts read in {len(notes.facts_slices[False])} off slices and "
                           f"{len(notes.facts_slices[True])} of {p.slices} on slices")
    report_throughput(run, tallies[False], tallies[True], notes.computed, refresh, refresh_intervals(p),
                      what="events delivered/s, indicators switched on in one daemon",
                      baseline="switched off")


def report_pair(run: Run, first: Tally, second: Tally, names: tuple[str, str], what: str, kind: str) -> None:
    """Two daemons' figures without a target (calibrate: off against off, what the method reads as
    a "cost" when there is none; compare: this checkout's code against another's, both on): each
    one's rate and CPU an event, its slices, and the second's cost against the first by block."""
    for name, t in zip(names, (first, second), strict=True):
        print(f"    {name}: {t.rate:7.0f} events/s over {t.seconds:.0f} s (slices {min(t.rates()):.0f}–"
              f"{max(t.rates()):.0f}/s); CPU per event: event-loop thread {t.us(t.loop_cpu):5.1f} µs, process "
              f"{t.us(t.process_cpu):5.1f} µs")
    print_slices(dict(zip(names, (first, second), strict=True)))
    order = f"ABBA block ({names[0]} {names[1]} {names[1]} {names[0]})"
    for blocks in (block_costs(first, second), block_costs(first, second, cpu=True)):
        if blocks:
            print(f"    {blocks.replace('ABBA block', order, 1)}")
    cost = 1 - second.rate / first.rate
    run.rows.append(Row(what, f"{second.rate:.0f}/s ('cost' {cost:.1%})", f"{names[0]} {first.rate:.0f}/s",
                        f"({kind})", None))


def print_slices(tallies: dict[str, Tally]) -> None:
    """Each daemon's slices in the order they ran (events/s); fails on a slice that delivered
    nothing (a stalled daemon is not a cost to average)."""
    for name, t in tallies.items():
        print(f"    slices {name:>3} (events/s, in order): {' '.join(f'{r:.0f}' for r in t.rates())}")
    for name, t in tallies.items():
        if stalled := [i + 1 for i, (n, _) in enumerate(t.slices) if n == 0]:
            raise RuntimeError(f"the {name} daemon delivered nothing in its slices {stalled}")


def report_throughput(run: Run, off: Tally, on: Tally, computed: list[float], refresh: str, due: int,
                      what: str = "events delivered/s with the 766 indicators", baseline: str = "indicators off",
                      judged: bool = True) -> None:
    for kpi, t in ((False, off), (True, on)):
        print(f"    indicators {'on ' if kpi else 'off'}: {t.rate:7.0f} events/s over {t.seconds:.0f} s (slices "
              f"{min(t.rates()):.0f}–{max(t.rates()):.0f}/s); CPU per event: event-loop thread {t.us(t.loop_cpu):5.1f} "
              f"µs, process {t.us(t.process_cpu):5.1f} µs" + ("" if kpi else "  <- the baseline"))
    print_slices({"off": off, "on": on})
    if len(computed) < max(due, 1):
        raise RuntimeError(f"{len(computed)} periodic computations of the indicators fell inside the on slices; "
                           f"their running time holds {due} refresh intervals")
    print(f"    periodic computations inside the on slices: {len(computed)}, the slices' running time holding {due} "
          f"refresh intervals (each {max(computed):.2f} s at most, the scan and the rows; the rendering comes on top)")
    cost = 1 - on.rate / off.rate
    cpu_cost = on.us(on.process_cpu) / off.us(off.process_cpu) - 1
    for blocks in (block_costs(off, on), block_costs(off, on, cpu=True)):
        if blocks:
            print(f"    {blocks.replace('ABBA block', 'ABBA block (off on on off)', 1)}")
    print(f"    cost {cost:.1%}; CPU cost {cpu_cost:.1%} (the process's CPU an event, on / off - 1); event-loop CPU "
          f"per event {off.us(off.loop_cpu):.1f} -> {on.us(on.loop_cpu):.1f} µs, process {off.us(off.process_cpu):.1f} "
          f"-> {on.us(on.process_cpu):.1f} µs")
    run.rows.append(Row(what, f"{on.rate:.0f}/s (cost {cost:.1%}; CPU an event {cpu_cost:+.1%})",
                        f"{baseline} {off.rate:.0f}/s", f"cost < {COST_CEILING:.0%}" if judged else "(beside)",
                        cost < COST_CEILING if judged else None))


# ---------------------------------------------------------------------------------- main


def compare_checkout() -> Path:
    """The checkout named by ``BENCH_KPI_COMPARE`` (a directory holding the project's code)."""
    where = os.environ.get(COMPARE_ENV, "")
    if not where or not (Path(where) / "gateway" / "__main__.py").is_file():
        raise RuntimeError(f"compare: set {COMPARE_ENV} to a checkout of the project, e.g. "
                           f"git worktree add /tmp/before HEAD~1; {COMPARE_ENV}=/tmp/before")
    return Path(where).resolve()


def keep_logs(folder: Path, to: Path) -> None:
    to.mkdir(parents=True, exist_ok=True)
    for log in folder.glob("*.log"):
        shutil.copyfile(log, to / log.name)


async def main_async(plan: Plan, only: set[str]) -> bool:
    for key in [k for k in os.environ if k.startswith("DVCGW_")]:
        del os.environ[key]  # the daemons read DVCGW_* as settings overrides
    chosen = [s for s in SCENARIOS if s in (only or DEFAULT_SCENARIOS)]
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="dvcgw-bench-kpi-") as tmp, processes(Path(tmp)) as procs:
        run = Run(plan, procs, Path(tmp))
        run.year = run.tmp / "template" / "kpi.sqlite3"
        run.queue = run.tmp / "template" / "gw.sqlite3"
        started = time.perf_counter()
        run.year_in_month = await asyncio.to_thread(prefill_year, run.year, plan)
        print(f"the year: {plan.year:,} dossiers ({run.year_in_month:,} this month) in "
              f"{time.perf_counter() - started:.1f} s")
        if set(chosen) - {"scrape"}:
            started = time.perf_counter()
            await preload_queue(run.queue, plan)
            print(f"the backlog: {plan.backlog:,} dossiers in {time.perf_counter() - started:.1f} s")
        run.sandbox_url = await start_sandbox(run.procs, "sandbox")
        steps: dict[str, Callable[[Run], Awaitable[None]]] = {
            "scrape": bench_scrape, "within": bench_within,
            "within-calibrate": lambda r: bench_within(r, switch=False), "throughput": bench_throughput,
            "calibrate": lambda r: bench_throughput(r, second_on=False),
            "compare": lambda r: bench_throughput(r, other=compare_checkout())}
        try:
            return await run_scenarios(steps, chosen, run, run.rows)
        finally:
            if keep := os.environ.get("BENCH_KEEP_LOGS"):  # the processes' logs, for a run to look into
                keep_logs(run.tmp, Path(keep))


def main() -> int:
    return bench_main(main_async, Plan(), QUICK, SCENARIOS, __doc__)


if __name__ == "__main__":
    sys.exit(main())
