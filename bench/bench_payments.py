"""Payment-callback benchmark (issue 15): CONFIRM callbacks handled per second by one
``dvcgw serve`` process, each with its ``MaXacThuc`` checksum verified, beside a bare aiohttp
handler measured in the same run; a summary table with the target and PASS/FAIL. Exit status 1 if
a target is missed or a scenario broke.

Set-up: a ``dvcgw sandbox`` subprocess at nice 10 plays the portal and the payment platform. The
daemon runs as an operator starts it (settings file, SQLite store with ``synchronous = "full"``,
``[payment]`` pointed at the sandbox). ``payments`` dossiers are pre-loaded into its store (as
bench_gateway does: the gateway's validation and queue backend, no daemon running), so each
payment's mark re-accepts a real snapshot; the daemon delivers them to the sandbox portal and
then gets ``payments`` payment requests (``POST /v1/payments``, 16 at a time, each an INIT to the
sandbox). The bench process then writes one valid CONFIRM per payment (the right checksum,
partner and amount) to a file, one body per line.

``fresh``: first callbacks
    wrk (``-t1 -c32``, bench/confirm.lua) POSTs each CONFIRM once to ``/v1/payments/confirm``.
    Each one is parsed, verified (SHA-256 over the ten fields and the secret, compared in
    constant time), looked up, moved to ``thanh-cong`` in one committed transaction of the
    payments' file, and its ``on_paid`` hook re-accepts the dossier's newest snapshot with the
    paid-online mark (a second durable append) while the engine delivers those to the sandbox.
    The figure is answers with ``MaLoi`` "00" per second of the run; the daemon's
    ``dvcgw_payment_callbacks_total{result="accepted"}`` must count every payment.
``replay``: the same callbacks again, for ``replay_seconds``
    Valid repeats: verified and looked up, then answered the same "00" with no write.
Baseline (both rows): the same wrk load of the same bodies, for ``replay_seconds``, against
bench/_bare.py's ``/v1/payments/confirm`` (aiohttp's default loop, own process): ``json.loads``
and an acknowledgement of the same shape, nothing else (it keeps no state, so a first callback
costs it what a repeat does). The ``fresh`` run ends when the daemon's metrics count ``payments``
answers (polled every 20 ms; wrk is then stopped), so its rate includes up to one poll of idle tail.

Targets: ``fresh`` >= 200 callbacks/s (the platform confirms a province's payments at a few a
minute; the floor leaves two orders of magnitude), ``replay`` >= 30 % of the bare handler; every
answer "00".

Run: ``.venv/bin/python -m bench.bench_payments`` (``--quick`` for a short smoke run whose figures
mean nothing; ``--only NAME``). Needs ``wrk``. Only 127.0.0.1 is used; every subprocess is stopped on
the way out, also on failure or SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from adapters.payment_platform import envelope as env
from adapters.payment_platform.envelope import Party
from bench._procs import (
    KEY,
    ROOT,
    UNIT,
    Procs,
    Row,
    bench_main,
    free_port,
    machine,
    processes,
    run_scenarios,
    run_wrk,
    sample,
    scrape,
    start_sandbox,
    start_serve,
    write_config,
)
from bench.bench_gateway import preload, start_bare

SCENARIOS = ("fresh", "replay")
SECRET = "bench-payment-secret"
PARTNER = "BENCH-DOITAC"
FRESH_FLOOR = 200.0
REPLAY_SHARE = 0.30
ITEMS = [{"LoaiPhiLePhi": "2", "MaPhiLePhi": "LP01", "TenPhiLePhi": "Lệ phí", "SoTien": 25000}]
PAYER = {"HoTenNguoiNop": "Người nộp thử", "SoCMNDNguoiNop": "", "DiaChiNguoiNop": ""}


@dataclass(frozen=True)
class Plan:
    payments: int = 2_000
    replay_seconds: int = 8
    connections: int = 32


QUICK = Plan(payments=100, replay_seconds=2)


@dataclass
class Run:
    plan: Plan
    procs: Procs
    tmp: Path
    base: str = ""
    bare_url: str = ""
    bodies: Path = Path()
    rows: list[Row] = field(default_factory=list)


async def confirm_wrk(url: str, bodies: Path, *, seconds: int, connections: int, limit: int = 0,
                      until: Callable[[], Awaitable[None]] | None = None) -> dict[str, Any]:
    """One wrk run of bench/confirm.lua; its BENCH summary plus ``rate`` ("00" answers per second).
    With ``limit`` the thread stops sending after that many answers, and wrk is stopped (SIGINT:
    it reports at once rather than wait out ``-d``) once ``until()`` returns."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
            "-s", str(ROOT / "bench" / "confirm.lua"), url]
    return await run_wrk(argv, {"BENCH_BODIES": str(bodies), "BENCH_LIMIT": str(limit)}, until)


async def callbacks_counted(base: str, n: int, timeout: float = 600.0) -> None:
    """Return once the daemon has answered ``n`` callbacks (accepted or duplicate), polled every 20 ms."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            m = await scrape(http, base)
            done = sum(sample(m, "dvcgw_payment_callbacks_total", result=r) for r in ("accepted", "duplicate"))
            if done >= n:
                return
            await asyncio.sleep(0.02)
    raise TimeoutError(f"the daemon did not answer {n} callbacks within {timeout:.0f} s")


async def start_daemon(run: Run, sandbox: str) -> None:
    port = free_port()
    store = run.tmp / "gw" / "gw.sqlite3"
    codes = [f"{UNIT}-261206-{i:07d}" for i in range(run.plan.payments)]
    await preload(store, codes)
    payment = {"enabled": True, "init_url": f"{sandbox}/payment/init", "query_url": f"{sandbox}/payment/query",
               "bill_url": f"{sandbox}/payment/bill", "partner_code": PARTNER, "secret": SECRET,
               "pending_after": "1h", "interval": "1h"}
    conf = write_config(run.tmp / "gw" / "gw.toml", port=port, portal_url=sandbox, store=store, payment=payment)
    run.base, _ = await start_serve(run.procs, "gw", conf, port)
    await create_payments(run, codes)


async def create_payments(run: Run, codes: list[str]) -> None:
    """One payment per dossier (16 requests in flight); the CONFIRM bodies written to a file."""
    party = Party(PARTNER, SECRET)
    lines: list[str] = []
    gate = asyncio.Semaphore(16)
    async with aiohttp.ClientSession(headers={"X-API-Key": KEY}) as http:
        async def one(code: str) -> None:
            async with gate, http.post(f"{run.base}/v1/payments",
                                       json={"MaHoSo": code, "items": ITEMS, "payer": PAYER}) as r:
                body = await r.json()
                if r.status != 201:
                    raise RuntimeError(f"POST /v1/payments: {r.status} {body}")
            msg = env.confirm_message(party, ref=body["MaThamChieu"], amount=25000, ma_loi="00",
                                      ma_giao_dich=f"PG{len(lines):08d}", ma_ngan_hang="BENCHBANK",
                                      thoi_gian="20261206100000", thong_tin=env.description(code))
            lines.append(json.dumps(msg, ensure_ascii=False, separators=(",", ":")))

        await asyncio.gather(*(one(c) for c in codes))
    run.bodies = run.tmp / "confirms.jsonl"
    run.bodies.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def fresh(run: Run) -> None:
    n = run.plan.payments
    got = await confirm_wrk(f"{run.base}/v1/payments/confirm", run.bodies, seconds=600,
                            connections=run.plan.connections, limit=n, until=lambda: callbacks_counted(run.base, n))
    async with aiohttp.ClientSession() as http:
        accepted = sample(await scrape(http, run.base), "dvcgw_payment_callbacks_total", result="accepted")
    # the bare handler keeps no state: a first callback costs it what a repeat does
    bare = await confirm_wrk(f"{run.bare_url}/v1/payments/confirm", run.bodies, seconds=run.plan.replay_seconds,
                             connections=run.plan.connections)
    print(f"  fresh: {got['rate']:,.0f} callbacks/s ({got['accepted']} of {got['requests']} answered 00, "
          f"{accepted:.0f} payments moved to thanh-cong; p50 {got['p50_us'] / 1000:.1f} ms, "
          f"p99 {got['p99_us'] / 1000:.1f} ms) vs bare {bare['rate']:,.0f}/s")
    ok = got["rate"] >= FRESH_FLOOR and accepted == n and got["accepted"] == got["requests"]
    run.rows.append(Row("fresh callbacks/s (verify + state change + mark)", f"{got['rate']:,.0f}",
                        f"bare {bare['rate']:,.0f}", f">= {FRESH_FLOOR:,.0f}, all {n} paid", ok))


async def replay(run: Run) -> None:
    s, c = run.plan.replay_seconds, run.plan.connections
    got = await confirm_wrk(f"{run.base}/v1/payments/confirm", run.bodies, seconds=s, connections=c)
    bare = await confirm_wrk(f"{run.bare_url}/v1/payments/confirm", run.bodies, seconds=s, connections=c)
    share = got["rate"] / bare["rate"] if bare["rate"] else 0.0
    print(f"  replay: {got['rate']:,.0f} callbacks/s (p99 {got['p99_us'] / 1000:.1f} ms) vs bare "
          f"{bare['rate']:,.0f}/s ({share:.0%})")
    ok = share >= REPLAY_SHARE and got["accepted"] == got["requests"]
    run.rows.append(Row("replayed callbacks/s (verify, no write)", f"{got['rate']:,.0f} ({share:.0%})",
                        f"bare {bare['rate']:,.0f}", f">= {REPLAY_SHARE:.0%} of bare", ok))


STEPS = {"fresh": fresh, "replay": replay}


async def main_async(plan: Plan, only: set[str]) -> bool:
    print(machine())
    if shutil.which("wrk") is None:
        print("wrk is not installed (scripts/install-system-deps.sh)", file=sys.stderr)
        return False
    tmp = Path(tempfile.mkdtemp(prefix="dvcgw-bench-pay-"))
    try:
        with processes(tmp) as procs:
            run = Run(plan, procs, tmp)
            # the bench's Run has the procs and bare_url these helpers of bench_gateway use
            sandbox = await start_sandbox(run.procs, "sandbox", "--payment-secret", SECRET)
            await start_daemon(run, sandbox)
            await start_bare(run)  # type: ignore[arg-type]
            chosen = [s for s in SCENARIOS if not only or s in only]
            if "replay" in chosen and "fresh" not in chosen:
                chosen = ["fresh", *chosen]  # a replay needs the payments paid first
            return await run_scenarios(STEPS, chosen, run, run.rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return bench_main(main_async, Plan(), QUICK, SCENARIOS, __doc__)


if __name__ == "__main__":
    sys.exit(main())
