"""Gateway benchmarks (issue 12: one ``dvcgw serve`` process, one event loop, delivery in it):
each figure beside a baseline measured in the same run, then a summary table with the target and
PASS/FAIL. Exit status 1 if a target is missed or a scenario broke.

Every daemon is ``dvcgw serve`` in its own subprocess, as an operator starts it: a settings file
with the listen address, an SQLite store in a temp dir with ``synchronous = "full"``, the portal
address and bench credentials, one agency; every other setting is the daemon's default (so the
delivery engine runs in the daemon's loop, ``max_concurrency = 8``, ``batch_size = 1``,
``lookup_before_create = true`` unless a scenario says otherwise). The zero-latency sandbox
(``dvcgw sandbox``) runs in its own subprocess at nice 10: it stands in for the portal, which
runs on other machines, so it gets what CPU the gateway leaves. The targets are floors for a
2-CPU machine that the daemon, the sandbox, wrk and the bench share.

``put``: accepted PUTs per second, delivery running
    wrk (``-t1 -c64``, bench/put.lua: each request PUTs the 2 KB sample dossier of
    tests/samples.py under a MaHoSo never used before) for ``put_seconds`` after a
    ``warm_seconds`` warm-up against a fresh daemon whose engine delivers what comes in to the
    zero-latency sandbox; the figure is 202 answers per second of the measured run. Baseline: the
    same wrk load against bench/_bare.py (an aiohttp handler on aiohttp's default loop, own
    process, that reads the body, ``json.loads`` it and answers 202). Target: >= 1,000/s and
    >= 30 % of the bare figure, every answer 202.
``latency``: accept p99 at 500 PUT/s offered, delivery running
    Open loop from the bench process: request *i* leaves at t0 + *i*/500 on an idle keep-alive
    connection (or a new one if all are busy) whatever came back, and is timed from that
    scheduled time, so a slow answer cannot hide the queueing it causes. The client is a small
    asyncio protocol so that it leaves the 2 CPUs to the server. ``warm_seconds`` warm-up, then
    ``latency_seconds``, against a fresh daemon delivering to the zero-latency sandbox.
    Baseline: the same schedule against the bare handler. Target: p99 <= 25 ms, every answer 202.
``deliver``: dossiers delivered per second, batch 50, lookup off
    ``deliver_n`` new dossiers are pre-loaded into a store through the gateway's own validation
    (``gateway.dossier.validate_snapshot``) and ``SQLiteQueue.enqueue`` while no daemon runs.
    Then a daemon with ``batch_size = 50``, ``lookup_before_create = false`` starts on it with
    the zero-latency sandbox as portal; ``dvcgw_deliveries_total{outcome="ok"}`` at its
    ``/metrics`` is polled every 0.2 s and the rate is counted from the first poll that sees a
    delivery to the poll that sees all of them (the sandbox's record then confirms they are
    stored); if the first such poll already sees all of them (a small ``--quick`` load), the
    rate from the daemon's spawn is used instead. Baseline: the bare client ceiling, a client
    in the bench process making the same portal calls straight to the sandbox (login once,
    8 workers, one ``DongBoHoSoMC`` per 50 dossiers; no store, no engine). Target: >= 1,000/s,
    all delivered, no other outcome.
``drain``: a backlog through a slow, rate-limited portal
    The operator's question after an outage: does the engine keep the portal's allowance busy?
    ``drain_dossiers`` dossiers x (1 snapshot + 9 progress items) = 20,000 events are
    pre-loaded as above (each progress item is one event, as the agency API accepts them), so
    the drain makes both snapshot batches (one ``DongBoHoSoMC`` per 50 dossiers) and progress
    chunks (one ``CapNhatTienDoHoSoMC`` of 9 items per dossier): 2,040 portal calls. A second
    sandbox runs with ``--latency 50ms --rate-limit 100`` (every call waits 50 ms; a sliding
    one-second window admits 100 calls, the rest get 429 with Retry-After, docs/sandbox.md).
    The daemon runs with ``[portal] rate_limit_per_s = 100``, ``batch_size = 50``,
    ``lookup_before_create = false`` and the default ``max_concurrency = 8`` (50 ms x 100/s
    needs 5 calls in flight). Once ``dvcgw_deliveries_total{outcome="ok"}`` counts all 20,000
    events, the sandbox's record gives the figure: the portal calls it served (``calls``, all
    successful, or the row fails) over the time from the first to the last of them (the ``at``
    stamps of its entries) plus one call's share of a second (10 ms, so that calls sent exactly
    at the limit score 100 %), against the 100/s limit. The 429s the sandbox sent
    (``throttled``) and the daemon's throttled outcomes are printed beside it. Baselines: the
    limit itself, and a bare client (bench process, 8 calls in flight, one call every 10 ms, a
    429 waits its Retry-After and is sent again) making the same kind of calls for
    ``drain_bare_dossiers`` dossiers against the same sandbox, measured the same way.
    Target: >= 90 % of the limit (90 calls/s), all 20,000 delivered, nothing dead-lettered.
``rss``: memory with a large backlog
    A daemon whose portal address has nothing listening (every event stays queued; the circuit
    opens and the engine idles) gets ``rss_events`` PUTs from wrk. ``VmRSS`` of the daemon
    process from /proc (and ``VmHWM``, the peak) once its ``dvcgw_events_accepted_total`` counts
    them all. Baseline: its ``VmRSS`` right after ``/readyz`` first answered. Target: <= 150 MB.

Run: ``.venv/bin/python -m bench.bench_gateway`` (``--quick`` for a short smoke run whose figures
mean nothing; ``--only NAME``, repeatable, for some scenarios). Needs ``wrk``
(scripts/install-system-deps.sh). Only 127.0.0.1 is used; every subprocess is stopped on the way
out, also on failure or SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from adapters.national_portal import envelope
from bench._procs import (
    HOST,
    KEY,
    UNIT,
    Procs,
    Row,
    bench_main,
    free_port,
    machine,
    processes,
    rss_mb,
    run_scenarios,
    sample,
    scrape,
    start_sandbox,
    start_serve,
    wait_http,
    write_config,
    wrk,
)
from gateway import dossier
from queues.api import EventKind, NewEvent
from queues.sqlite import SQLiteQueue
from tests.samples import sample_dossier, sample_progress

OK_METRIC = "dvcgw_deliveries_total"
MADONVI = "000.00.00.H55"  # the [portal] madonvi of write_config
SCENARIOS = ("put", "latency", "deliver", "drain", "rss")

PUT_FLOOR = 1_000.0  # accepted PUT/s
PUT_SHARE = 0.30  # of the bare handler
P99_CEILING = 0.025  # s
DELIVER_FLOOR = 1_000.0  # dossiers/s
DRAIN_LATENCY = "50ms"
DRAIN_LIMIT = 100  # portal calls/s, the sandbox's limit and the daemon's rate_limit_per_s
DRAIN_SHARE = 0.90  # of the limit
DRAIN_PROGRESS = 9  # progress items per dossier: with its snapshot, 10 events
RSS_CEILING = 150.0  # MB
BATCH = 50  # batch_size of the deliver and drain daemons


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one run; ``--quick`` shrinks everything for a smoke test."""

    put_seconds: int = 8
    warm_seconds: int = 2
    wrk_threads: int = 1
    wrk_connections: int = 64
    latency_rate: int = 500
    latency_seconds: int = 8
    deliver_n: int = 10_000
    ceiling_n: int = 3_000
    drain_dossiers: int = 2_000
    drain_bare_dossiers: int = 500
    rss_events: int = 100_000


QUICK = Plan(put_seconds=3, warm_seconds=1, latency_seconds=3, deliver_n=2_000, ceiling_n=1_000,
             drain_dossiers=200, drain_bare_dossiers=100, rss_events=10_000)


@dataclass
class Run:
    plan: Plan
    procs: Procs
    tmp: Path
    sandbox_url: str = ""
    bare_url: str = ""
    rows: list[Row] = field(default_factory=list)
    body_file: Path = Path()


# ---------------------------------------------------------------------------------- helpers


def body_template() -> bytes:
    """The sample dossier as an agency sends it, with ``@MAHOSO@`` where the code goes."""
    return json.dumps(sample_dossier("@MAHOSO@"), ensure_ascii=False).encode()


async def start_daemon(run: Run, name: str, *, portal_url: str, **portal: Any) -> tuple[str, int]:
    """Start ``dvcgw serve`` on a free port over ``run.tmp/name/gw.sqlite3`` (``portal``: extra
    ``[portal]`` keys); returns (base URL, pid) once /readyz answers 200."""
    port = free_port()
    store = run.tmp / name / "gw.sqlite3"
    conf = write_config(run.tmp / name / "gw.toml", port=port, portal_url=portal_url, store=store, portal=portal)
    base, proc = await start_serve(run.procs, name, conf, port)
    return base, proc.pid


async def start_bare(run: Run) -> None:
    port = free_port()
    proc = run.procs.python("bare", "-m", "bench._bare", "--port", str(port))
    run.bare_url = f"http://{HOST}:{port}"
    await wait_http(f"{run.bare_url}/healthz", proc)


async def reset_sandbox(http: aiohttp.ClientSession, url: str) -> None:
    async with http.post(f"{url}/_sandbox/reset") as r:
        r.raise_for_status()


async def sandbox_record(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(f"{url}/_sandbox/record") as r:
        r.raise_for_status()
        record: dict[str, Any] = await r.json()
        return record


def load(run: Run, url: str, seconds: int, tag: str, **kw: Any) -> Awaitable[dict[str, Any]]:
    p = run.plan
    return wrk(url, seconds=seconds, body=run.body_file, tag=tag, threads=p.wrk_threads,
               connections=p.wrk_connections, **kw)


def outcomes(m: Mapping[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    """``dvcgw_deliveries_total`` summed over counterparts and operations, per outcome class."""
    out: dict[str, float] = {}
    for (name, labels), value in m.items():
        if name == OK_METRIC:
            outcome = dict(labels).get("outcome", "?")
            out[outcome] = out.get(outcome, 0.0) + value
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def preload(store: Path, codes: list[str], progress: int = 0) -> int:
    """Each dossier of ``codes`` (its snapshot, then ``progress`` items, one event each) into
    ``store`` through the gateway's own validation and queue backend; returns the events."""
    store.parent.mkdir(parents=True, exist_ok=True)
    q = SQLiteQueue(store, synchronous="normal")
    await q.start()

    def events(code: str) -> list[NewEvent]:
        out = [NewEvent(code, EventKind.SNAPSHOT, dossier.validate_snapshot(code, sample_dossier(code)).payload, UNIT)]
        if progress:
            items = dossier.validate_progress(code, sample_progress(code, progress))
            out += [NewEvent(code, EventKind.PROGRESS, item.payload, UNIT) for item in items]
        return out

    try:
        for i in range(0, len(codes), 500):  # concurrent enqueues: group commit, few fsyncs
            await asyncio.gather(*(q.enqueue(events(c)) for c in codes[i:i + 500]))
    finally:
        await q.close()
    return len(codes) * (1 + progress)


# ---------------------------------------------------------------------------------- put


async def bench_put(run: Run) -> None:
    p = run.plan
    print(f"\n[put] accepted PUT/s with delivery running: wrk -t{p.wrk_threads} -c{p.wrk_connections}, "
          f"{p.put_seconds} s after {p.warm_seconds} s warm-up, one new MaHoSo per request")
    await load(run, run.bare_url, p.warm_seconds, "bw")
    b = await load(run, run.bare_url, p.put_seconds, "bm")
    print(f"    bare aiohttp handler : {b['rate']:8.0f} /s  (p50 {b['p50_us'] / 1000:.1f} ms, "
          f"p99 {b['p99_us'] / 1000:.1f} ms, non-202 {b['requests'] - b['accepted']})  <- the baseline")
    base, _pid = await start_daemon(run, "daemon-put", portal_url=run.sandbox_url)
    await load(run, base, p.warm_seconds, "gw")
    g = await load(run, base, p.put_seconds, "gm")
    async with aiohttp.ClientSession() as http:
        delivered = outcomes(await scrape(http, base)).get("ok", 0.0)
    run.procs.stop("daemon-put")
    ratio = g["rate"] / b["rate"]
    print(f"    dvcgw serve          : {g['rate']:8.0f} /s  ({ratio:.0%} of bare; p50 {g['p50_us'] / 1000:.1f} ms, "
          f"p99 {g['p99_us'] / 1000:.1f} ms, non-202 {g['requests'] - g['accepted']}; "
          f"{delivered:.0f} events delivered to the sandbox meanwhile)")
    ok = g["rate"] >= PUT_FLOOR and ratio >= PUT_SHARE and g["accepted"] == g["requests"]
    run.rows.append(Row("accepted PUT/s, delivery running", f"{g['rate']:.0f}/s ({ratio:.0%} of bare)",
                        f"bare handler {b['rate']:.0f}/s", f">= {PUT_FLOOR:.0f}/s and >= {PUT_SHARE:.0%} of bare", ok))


# ---------------------------------------------------------------------------------- latency


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of the open-loop client: one request at a time, the
    answer's status read from its status line and its end found by Content-Length. Cheap on
    purpose: a load generator on the same 2 CPUs must leave them to the server it measures."""

    def __init__(self, done: Callable[[_Conn, int], None]) -> None:
        self._done = done
        self._buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buf += data
        head_end = self._buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        match = _CONTENT_LENGTH.search(self._buf, 0, head_end)
        length = int(match.group(1)) if match else 0
        if len(self._buf) < head_end + 4 + length:
            return
        status = int(self._buf[9:12])
        self._buf = self._buf[head_end + 4 + length:]
        self._done(self, status)


def _requests(base: str, total: int, tag: str) -> list[bytes]:
    template = body_template()
    host = base.removeprefix("http://")
    out = []
    for i in range(total):
        code = f"{UNIT}-{tag}-{i:07d}"
        body = template.replace(b"@MAHOSO@", code.encode())
        out.append((f"PUT /v1/dossiers/{code} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {KEY}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
    return out


async def open_loop(base: str, rate: int, seconds: float, warm: float, tag: str) -> tuple[list[float], int]:
    """PUT at ``rate``/s on a fixed schedule for ``warm + seconds``; returns the latencies (s) of
    the requests scheduled after the warm-up, each from its scheduled time, and the non-202 count.
    Each request leaves at its time on an idle keep-alive connection, or on a new one if all are
    busy, so a slow answer never delays the next request (open loop)."""
    total = int(rate * (warm + seconds))
    requests = _requests(base, total, tag)
    host, port = base.removeprefix("http://").rsplit(":", 1)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    bad = 0
    idle: list[_Conn] = []
    started: dict[_Conn, tuple[int, float]] = {}
    finished = loop.create_future()
    answered = 0

    def done(conn: _Conn, status: int) -> None:
        nonlocal bad, answered
        i, at = started.pop(conn)
        if i >= rate * warm:
            latencies.append(loop.time() - at)
        if status != 202:
            bad += 1
        answered += 1
        idle.append(conn)
        if answered == total and not finished.done():
            finished.set_result(None)

    conns: list[_Conn] = []
    t0 = loop.time() + 0.05
    for i in range(total):
        at = t0 + i / rate
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if idle:
            conn = idle.pop()
        else:
            _, conn = await loop.create_connection(lambda: _Conn(done), host, int(port))
            conns.append(conn)
        started[conn] = (i, at)
        assert conn.transport is not None
        conn.transport.write(requests[i])
    await asyncio.wait_for(finished, 60)
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    return latencies, bad


async def bench_latency(run: Run) -> None:
    p = run.plan
    print(f"\n[latency] accept latency at {p.latency_rate} PUT/s offered, open loop, {p.latency_seconds} s after "
          f"{p.warm_seconds} s warm-up, delivery running")
    bl, bbad = await open_loop(run.bare_url, p.latency_rate, p.latency_seconds, p.warm_seconds, "lb")
    print(f"    bare aiohttp handler : p50 {pct(bl, .5) * 1000:6.2f} ms  p99 {pct(bl, .99) * 1000:6.2f} ms  "
          f"max {max(bl) * 1000:6.1f} ms  non-202 {bbad}  <- the baseline")
    base, _pid = await start_daemon(run, "daemon-lat", portal_url=run.sandbox_url)
    gl, gbad = await open_loop(base, p.latency_rate, p.latency_seconds, p.warm_seconds, "lg")
    async with aiohttp.ClientSession() as http:
        delivered = outcomes(await scrape(http, base)).get("ok", 0.0)
    run.procs.stop("daemon-lat")
    p50, p99 = pct(gl, .5), pct(gl, .99)
    print(f"    dvcgw serve          : p50 {p50 * 1000:6.2f} ms  p99 {p99 * 1000:6.2f} ms  "
          f"max {max(gl) * 1000:6.1f} ms  non-202 {gbad}  ({delivered:.0f} events delivered meanwhile)")
    run.rows.append(Row(f"accept p99 at {p.latency_rate}/s offered, delivery running",
                        f"{p99 * 1000:.1f} ms (p50 {p50 * 1000:.1f})",
                        f"bare handler {pct(bl, .99) * 1000:.1f} ms (p50 {pct(bl, .5) * 1000:.1f})",
                        f"<= {P99_CEILING * 1000:.0f} ms", p99 <= P99_CEILING and gbad == 0))


# ---------------------------------------------------------------------------------- deliver


async def login(http: aiohttp.ClientSession, url: str) -> str:
    async with http.post(f"{url}/login", json=envelope.login_body("b", "b"),
                         headers=envelope.base_headers("BENCH")) as r:
        r.raise_for_status()
        return envelope.session_from_login(await r.json())


async def ceiling(http: aiohttp.ClientSession, url: str, n: int) -> float:
    """Dossiers/s a bare client achieves making the engine's batch-50 calls straight to the
    sandbox: login once, then 8 workers, one DongBoHoSoMC per 50 new dossiers. No store, no engine."""
    await reset_sandbox(http, url)
    session = await login(http, url)
    headers = envelope.base_headers("BENCH")
    payload = dossier.validate_snapshot("X", sample_dossier("X")).payload
    codes = [f"{UNIT}-c-{i:07d}" for i in range(n)]
    batches = [codes[i:i + BATCH] for i in range(0, n, BATCH)]

    async def worker() -> None:
        while batches:
            data = [{**payload, "MaHoSo": c} for c in batches.pop()]
            body = envelope.service_body(envelope.SYNC_DOSSIERS, envelope.sync_params(data, updating=False),
                                         madonvi=MADONVI, session=session)
            async with http.post(f"{url}/service", json=body, headers=headers) as r:
                reply = await r.json()
                if not envelope.is_ok(reply.get("error_code")):
                    raise RuntimeError(f"sandbox refused DongBoHoSoMC: {reply}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(8)))
    return n / (time.perf_counter() - started)


async def wait_delivered(http: aiohttp.ClientSession, base: str, n: int, deadline: float,
                         every: float) -> tuple[float, float, float, dict[str, float]]:
    """Poll the daemon's metrics until ``n`` events are delivered ok (or ``deadline``, perf_counter
    time); returns (first poll that saw a delivery, its count, last poll, outcomes at the end)."""
    first: tuple[float, float] | None = None
    while True:
        got = outcomes(await scrape(http, base))
        now = time.perf_counter()
        ok = got.get("ok", 0.0)
        if first is None and ok > 0:
            first = (now, ok)
        if ok >= n or now > deadline:
            t1, ok1 = first or (now, 0.0)
            return t1, ok1, now, got
        await asyncio.sleep(every)


async def bench_deliver(run: Run) -> None:
    n = run.plan.deliver_n
    print(f"\n[deliver] delivered/s to the zero-latency sandbox: {n} dossiers pre-loaded, then the daemon "
          f"starts (batch_size {BATCH}, lookup_before_create false, max_concurrency 8)")
    started = time.perf_counter()
    await preload(run.tmp / "daemon-deliver" / "gw.sqlite3", [f"{UNIT}-d-{i:07d}" for i in range(n)])
    print(f"    pre-loaded {n} dossiers in {time.perf_counter() - started:.1f} s")
    async with aiohttp.ClientSession() as http:
        base_rate = await ceiling(http, run.sandbox_url, run.plan.ceiling_n)
        print(f"    bare client ceiling  : {base_rate:7.0f} /s  <- the baseline")
        await reset_sandbox(http, run.sandbox_url)
        spawned = time.perf_counter()
        base, _pid = await start_daemon(run, "daemon-deliver", portal_url=run.sandbox_url,
                                        batch_size=BATCH, lookup_before_create=False)
        t1, ok1, done, got = await wait_delivered(http, base, n, spawned + 120, 0.2)
        run.procs.stop("daemon-deliver")
        rec = await sandbox_record(http, run.sandbox_url)
    ok = got.get("ok", 0.0)
    from_spawn = ok / (done - spawned)
    # all delivered before the second poll (a small --quick load): only the from-spawn rate, which
    # also counts the interpreter's start, is left
    steady = (ok - ok1) / (done - t1) if done > t1 and ok1 < n else None
    rate = steady if steady is not None else from_spawn
    others = sum(v for k, v in got.items() if k != "ok")
    print(f"    dvcgw serve          : {'-' if steady is None else f'{steady:.0f}':>7} /s steady, {from_spawn:6.0f} /s "
          f"from spawn; sandbox holds {rec['stored']}, {rec['calls']} calls, {rec['logins']} logins; "
          f"{others:.0f} other outcomes")
    passed = rate >= DELIVER_FLOOR and ok >= n and rec["stored"] >= n and others == 0
    run.rows.append(Row(f"delivered/s, batch {BATCH}, lookup off",
                        f"{rate:.0f}/s" + ("" if steady is not None else " (from spawn)"),
                        f"bare client ceiling {base_rate:.0f}/s", f">= {DELIVER_FLOOR:.0f}/s", passed))


# ---------------------------------------------------------------------------------- drain


@dataclass
class PortalUse:
    """What a sandbox's record says about a drain: calls served, 429s sent, and the span from
    the first to the last served call."""

    calls: int
    throttled: int
    span: float
    max_in_flight: int

    @property
    def rate(self) -> float:
        """Calls per second, each call with its share 1/limit of the time: N calls sent exactly
        at the limit span (N - 1)/limit seconds and score the limit itself."""
        return self.calls / (self.span + 1.0 / DRAIN_LIMIT)


def portal_use(record: Mapping[str, Any]) -> PortalUse:
    stamps = [e["at"] for entries in record["dossiers"].values() for e in entries
              if e.get("service") in (envelope.SYNC_DOSSIERS, envelope.PUSH_PROGRESS)]
    span = max(stamps) - min(stamps) if stamps else 0.0
    return PortalUse(record["calls"], record["throttled"], span, record["max_in_flight"])


class Pacer:
    """One call every ``1/rate`` s, no bursts: the bare client's way to respect a quota."""

    def __init__(self, rate: float) -> None:
        self._gap = 1.0 / rate
        self._next = 0.0

    async def wait(self) -> None:
        now = asyncio.get_running_loop().time()
        at = max(self._next, now)
        self._next = at + self._gap
        await asyncio.sleep(at - now)


async def bare_drain(http: aiohttp.ClientSession, url: str, dossiers: int) -> None:
    """The drain's calls made by a bare client: per 50 new dossiers one DongBoHoSoMC, then one
    CapNhatTienDoHoSoMC of 9 items per dossier; 8 calls in flight, paced at the limit, a 429
    waits its Retry-After and goes again."""
    session = await login(http, url)
    headers = envelope.base_headers("BENCH")
    payload = dossier.validate_snapshot("X", sample_dossier("X")).payload
    pacer, slots = Pacer(DRAIN_LIMIT), asyncio.Semaphore(8)

    async def call(service: str, params: dict[str, Any]) -> None:
        body = envelope.service_body(service, params, madonvi=MADONVI, session=session)
        while True:
            async with slots:
                await pacer.wait()
                async with http.post(f"{url}/service", json=body, headers=headers) as r:
                    if r.status != 429:
                        reply = await r.json()
                        if not envelope.is_ok(reply.get("error_code")):
                            raise RuntimeError(f"sandbox refused {service}: {reply}")
                        return
                    wait = float(r.headers.get("Retry-After", "1"))
            await asyncio.sleep(wait)

    async def batch(codes: list[str]) -> None:
        data = [{**payload, "MaHoSo": c} for c in codes]
        await call(envelope.SYNC_DOSSIERS, envelope.sync_params(data, updating=False))
        await asyncio.gather(*(call(envelope.PUSH_PROGRESS, envelope.progress_params(
            [i.payload for i in dossier.validate_progress(c, sample_progress(c, DRAIN_PROGRESS))])) for c in codes))

    codes = [f"{UNIT}-db-{i:07d}" for i in range(dossiers)]
    await asyncio.gather(*(batch(codes[i:i + BATCH]) for i in range(0, dossiers, BATCH)))


async def bench_drain(run: Run) -> None:
    p = run.plan
    store = run.tmp / "daemon-drain" / "gw.sqlite3"
    started = time.perf_counter()
    n = await preload(store, [f"{UNIT}-dr-{i:07d}" for i in range(p.drain_dossiers)], DRAIN_PROGRESS)
    calls = -(-p.drain_dossiers // BATCH) + p.drain_dossiers
    print(f"\n[drain] a backlog of {n} events ({p.drain_dossiers} dossiers x (1 snapshot + {DRAIN_PROGRESS} progress), "
          f"pre-loaded in {time.perf_counter() - started:.1f} s; {calls} portal calls) through a sandbox with "
          f"--latency {DRAIN_LATENCY} --rate-limit {DRAIN_LIMIT}")
    url = await start_sandbox(run.procs, "sandbox-drain", "--latency", DRAIN_LATENCY, "--rate-limit", str(DRAIN_LIMIT))
    async with aiohttp.ClientSession() as http:
        await bare_drain(http, url, p.drain_bare_dossiers)
        bare = portal_use(await sandbox_record(http, url))
        print(f"    bare paced client    : {bare.rate:6.1f} calls/s ({bare.calls} calls in {bare.span:.1f} s, "
              f"{bare.throttled} x 429)  <- a baseline; the other is the limit, {DRAIN_LIMIT}/s")
        await reset_sandbox(http, url)  # keeps the start-up latency and rate limit
        spawned = time.perf_counter()
        base, _pid = await start_daemon(run, "daemon-drain", portal_url=url, rate_limit_per_s=DRAIN_LIMIT,
                                        batch_size=BATCH, lookup_before_create=False)
        _, _, done, got = await wait_delivered(http, base, n, spawned + max(120.0, 4 * calls / DRAIN_LIMIT), 0.25)
        run.procs.stop("daemon-drain")
        use = portal_use(await sandbox_record(http, url))
    run.procs.stop("sandbox-drain")
    ok, throttled = got.get("ok", 0.0), got.get("throttled", 0.0)
    others = sum(v for k, v in got.items() if k not in ("ok", "throttled"))
    share = use.rate / DRAIN_LIMIT
    print(f"    dvcgw serve          : {use.rate:6.1f} calls/s ({share:.0%} of the limit; {use.calls} calls in "
          f"{use.span:.1f} s, {use.throttled} x 429 sent, at most {use.max_in_flight} in flight); "
          f"{ok:.0f} of {n} events delivered {done - spawned:.1f} s after spawn; daemon outcomes: "
          f"{throttled:.0f} throttled, {others:.0f} other")
    passed = share >= DRAIN_SHARE and ok >= n and others == 0 and use.calls >= calls
    run.rows.append(Row(f"drain {n} events, {DRAIN_LATENCY}/call, limit {DRAIN_LIMIT}/s",
                        f"{use.rate:.0f} calls/s ({share:.0%}), {use.throttled} x 429",
                        f"limit {DRAIN_LIMIT}/s; bare client {bare.rate:.0f}/s ({bare.throttled} x 429)",
                        f">= {DRAIN_SHARE:.0%} of the limit", passed))


# ---------------------------------------------------------------------------------- rss


async def bench_rss(run: Run) -> None:
    n = run.plan.rss_events
    print(f"\n[rss] RSS with {n} events queued (portal unreachable: nothing listens on its port)")
    base, pid = await start_daemon(run, "daemon-rss", portal_url=f"http://{HOST}:{free_port()}")
    idle = rss_mb(pid)
    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:

        async def all_accepted() -> None:
            accepted = 0.0
            while accepted < n:  # poll the daemon's own counter: another process, no event to wait on
                await asyncio.sleep(2.0)  # rarely: /metrics counts the queue, which costs the daemon
                accepted = sample(await scrape(http, base), "dvcgw_events_accepted_total", kind="snapshot")

        w = await load(run, base, 600, "r", limit=n, until=all_accepted)
        m = await scrape(http, base)
    accepted = sample(m, "dvcgw_events_accepted_total", kind="snapshot")
    queued = sum(v for (k, labels), v in m.items()
                 if k == "dvcgw_queue_dossiers" and ("state", "delivered") not in labels)
    loaded, peak = rss_mb(pid), rss_mb(pid, "VmHWM")
    run.procs.stop("daemon-rss")
    print(f"    idle after start {idle:.1f} MB  <- the baseline; after {accepted:.0f} accepted in "
          f"{time.perf_counter() - started:.0f} s ({w['rate']:.0f}/s), {queued:.0f} dossiers not delivered: "
          f"VmRSS {loaded:.1f} MB (peak VmHWM {peak:.1f} MB)")
    run.rows.append(Row(f"RSS with {accepted:.0f} events queued", f"{loaded:.0f} MB (peak {peak:.0f})",
                        f"idle after start {idle:.0f} MB", f"<= {RSS_CEILING:.0f} MB",
                        loaded <= RSS_CEILING and accepted >= n and queued >= n))


# ---------------------------------------------------------------------------------- main


async def main_async(plan: Plan, only: set[str]) -> bool:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run scripts/install-system-deps.sh (or apt-get install wrk)")
    for key in [k for k in os.environ if k.startswith("DVCGW_")]:
        del os.environ[key]  # the daemons read DVCGW_* as settings overrides
    chosen = [s for s in SCENARIOS if not only or s in only]
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="dvcgw-bench-") as tmp, processes(Path(tmp)) as procs:
        run = Run(plan, procs, Path(tmp))
        run.body_file = run.tmp / "body.json"
        run.body_file.write_bytes(body_template())
        if {"put", "latency", "deliver"} & set(chosen):
            run.sandbox_url = await start_sandbox(run.procs, "sandbox")
        if {"put", "latency"} & set(chosen):
            await start_bare(run)
        steps: dict[str, Callable[[Run], Awaitable[None]]] = {
            "put": bench_put, "latency": bench_latency, "deliver": bench_deliver, "drain": bench_drain,
            "rss": bench_rss,
        }
        return await run_scenarios(steps, chosen, run, run.rows)


def main() -> int:
    return bench_main(main_async, Plan(), QUICK, SCENARIOS, __doc__)


if __name__ == "__main__":
    sys.exit(main())
