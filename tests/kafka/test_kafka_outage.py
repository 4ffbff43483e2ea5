"""Broker outage, through real `dvcgw serve` processes on a private broker that the tests stop and
restart: no 202 without an acknowledged produce, nothing accepted is lost across the restart, and
the outage costs the daemon little CPU and few log lines."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp
import psutil
import pytest
from aiokafka.errors import KafkaConnectionError

from queues.kafka_produce import BACKOFF_S, Producing
from tests.daemon import Daemon
from tests.harness import Sandbox
from tests.kafka.broker import PrivateBroker, unique_prefix
from tests.kafka.daemons import kafka_daemon, until
from tests.kafka.helpers import create_topic
from tests.load import Load, check_dossier, session, wait_delivered
from tests.samples import sample_dossier

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def _put(http: aiohttp.ClientSession, url: str, m: str, step: int) -> int:
    body = sample_dossier(m, TrangThaiHoSo="4", GhiChu=f"step-{step:05d}")
    async with http.put(f"{url}/v1/dossiers/{m}", json=body) as r:
        return r.status


async def _progress(http: aiohttp.ClientSession, url: str, m: str, step: int) -> int:
    items = [{"MaHoSo": m, "NguoiXuLy": "Chuyên viên", "ThoiDiemXuLy": "20240316100000", "TrangThai": "4",
              "NoiDungXuLy": f"p-{step:05d}-{i}"} for i in range(3)]
    async with http.post(f"{url}/v1/dossiers/{m}/progress", json=items) as r:
        return r.status


async def _delivered(d: Daemon, codes: list[str], timeout: float) -> None:
    """:func:`wait_delivered`; on failure the message also carries the daemon's Kafka log lines
    (group membership, assignments, the broker watch): what a rare failure in CI needs to be read."""
    try:
        await wait_delivered(d.url, codes, timeout)
    except AssertionError as exc:
        lines = [line for line in d.log.read_text(errors="replace").splitlines()
                 if "queues.kafka" in line or "group_coordinator" in line]
        raise AssertionError(f"{exc}\nthe daemon's Kafka log, last lines:\n" + "\n".join(lines[-60:])) from None


async def test_accept_while_broker_down_is_503_never_202(outage_broker: PrivateBroker, sandbox: Sandbox,
                                                        tmp_path: Path) -> None:
    """With the broker stopped, a PUT or a progress POST answers 503 within the produce timeout,
    never 202; once the broker is back the same daemon accepts again by itself, and every event
    that got 202 reaches the portal, newest state last."""
    prefix = unique_prefix("down")
    d = kafka_daemon(tmp_path, "gw", sandbox.url, outage_broker.bootstrap, prefix, prefix)
    await d.start(timeout=60)
    m = "000.00.01.H55-240318-00001"
    try:
        async with session(4) as http:
            assert await _put(http, d.url, m, 1) == 202
            await asyncio.to_thread(outage_broker.stop)
            for step, send in ((2, _put), (3, _progress), (5, _put)):
                started = time.monotonic()
                assert await send(http, d.url, m, step) == 503, f"step {step} accepted while the broker was down"
                assert time.monotonic() - started < 12, "503 not within the produce timeout"
            await asyncio.to_thread(outage_broker.start)
            deadline = time.monotonic() + 60
            step, status = 7, 0
            while status != 202:  # the daemon reconnects by itself; bounded
                assert time.monotonic() < deadline, "no 202 within 60 s of the broker's return"
                step += 2
                status = await _put(http, d.url, m, step)
            assert await _progress(http, d.url, m, step + 1) == 202
        await _delivered(d, [m], 60)
    finally:
        await d.stop()
    calls = (await sandbox.record())["dossiers"][m]
    check_dossier(m, calls, [1, step], [f"p-{step + 1:05d}-{i}" for i in range(3)])


async def test_broker_restart_under_load_loses_nothing(outage_broker: PrivateBroker, sandbox: Sandbox,
                                                      tmp_path: Path) -> None:
    """Stop the broker under concurrent load and start it again: no request that began after the
    broker was gone and ended before it came back got a 202, the daemon accepts again afterwards,
    and every event that got a 202 (before, during, after) reaches the portal in order."""
    prefix = unique_prefix("restart")
    d = kafka_daemon(tmp_path, "gw", sandbox.url, outage_broker.bootstrap, prefix, prefix)
    await d.start(timeout=60)
    codes = [f"000.00.01.H55-240319-{i:05d}" for i in range(16)]
    load = Load([d.url])

    def answered(since: float, status: int | None = 202) -> int:
        return sum(1 for a in load.answers if a.started >= since and (status is None or a.status == status))

    try:
        async with session(len(codes)) as http:
            tasks = [asyncio.create_task(load.run_dossier(http, m)) for m in codes]
            await until(lambda: answered(0.0) >= 60, 30, "60 accepted events before the outage")
            await asyncio.to_thread(outage_broker.stop)
            down_from = time.monotonic()
            await until(lambda: answered(down_from, None) >= len(codes), 40, "answers while the broker is down")
            up_from = time.monotonic()
            await asyncio.to_thread(outage_broker.start)
            back = time.monotonic()
            await until(lambda: answered(back) >= 60, 60, "60 accepted events after the restart")
            load.stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await _delivered(d, codes, 90)
    finally:
        load.stop.set()
        await d.stop()
    window = [a for a in load.answers if a.started >= down_from and a.ended <= up_from]
    assert window and not [a for a in window if a.status == 202], "202 while the broker was down"
    assert any(a.status == 503 for a in window)
    record = (await sandbox.record())["dossiers"]
    for m in codes:
        check_dossier(m, record.get(m, []), load.accepted(m, "snapshot"), load.progress_ok(m))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its live children (psutil)."""
    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _line_count(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


async def _load_until(http: aiohttp.ClientSession, url: str, codes: list[str], accepted: int) -> Load:
    """Run one sequential stream per dossier against ``url`` until ``accepted`` events got 202."""
    load = Load([url])
    tasks = [asyncio.create_task(load.run_dossier(http, m)) for m in codes]
    try:
        await until(lambda: sum(a.status == 202 for a in load.answers) >= accepted, 60, f"{accepted} accepted events")
    finally:
        load.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    return load


async def test_broker_outage_is_quiet_and_cheap(outage_broker: PrivateBroker, sandbox: Sandbox,
                                               tmp_path: Path) -> None:
    """Issue 13: from the broker's stop until 10 s after it is gone, a daemon with no requests to
    serve (load just before and after the outage; deliveries still in flight when it starts) spends
    under 10 % of a core (its own CPU time over the window, from psutil) and writes fewer than 100
    log lines: its Kafka clients stop instead of spinning on metadata, and a repeated error is written
    once per interval with a count. Every event that got a 202 before or after the outage reaches
    the portal, in order."""
    prefix = unique_prefix("quiet")
    d = kafka_daemon(tmp_path, "gw", sandbox.url, outage_broker.bootstrap, prefix, prefix)
    await d.start(timeout=60)
    assert d.proc is not None
    pid = d.proc.pid
    first = [f"000.00.01.H55-240320-{i:05d}" for i in range(8)]
    then = [f"000.00.01.H55-240321-{i:05d}" for i in range(8)]
    try:
        async with session(len(first)) as http:
            before = await _load_until(http, d.url, first, 40)
            # the window: from the stop command (the broker's shutdown included) until 10 s after the
            # broker is gone, when it is started again
            cpu0, lines0, t0 = _cpu_seconds(pid), _line_count(d.log), time.monotonic()
            await asyncio.to_thread(outage_broker.stop)
            gone = time.monotonic()
            while time.monotonic() - gone < 10.0:  # only watch that the daemon lives
                assert d.proc.returncode is None, "the daemon died while the broker was down"
                await asyncio.sleep(0.2)
            cpu, lines, window = _cpu_seconds(pid) - cpu0, _line_count(d.log) - lines0, time.monotonic() - t0
            await asyncio.to_thread(outage_broker.start)
            after = await _load_until(http, d.url, then, 40)
        await _delivered(d, first + then, 90)
    finally:
        await d.stop()
    print(f"outage {window:.1f} s: daemon CPU {cpu:.2f} s ({100 * cpu / window:.1f} % of a core), {lines} log lines")
    assert cpu / window < 0.10, f"the daemon used {100 * cpu / window:.0f} % of a core while the broker was down"
    assert lines < 100, f"{lines} log lines in a {window:.0f} s outage; the log ends: {d.log.read_text()[-3000:]}"
    # rejoining the group after the restart: one JoinGroup request waits on the coordinator until the
    # old member's session ends; it must not time out and start over (queues/kafka_pump.py, JOIN_TIMEOUT_MS)
    assert "Error sending JoinGroupRequest" not in d.log.read_text(errors="replace"), "a JoinGroup request timed out"
    record = (await sandbox.record())["dossiers"]
    for load, codes in ((before, first), (after, then)):
        for m in codes:
            check_dossier(m, record.get(m, []), load.accepted(m, "snapshot"), load.progress_ok(m))


def _flush_tasks() -> list[asyncio.Task[object]]:
    """aiokafka's flush tasks still pending (one of a dead producer would log "Task was destroyed …")."""
    return [t for t in asyncio.all_tasks()
            if not t.done() and "MessageAccumulator" in getattr(t.get_coro(), "__qualname__", "")]


async def test_a_paused_producer_fails_at_once_and_resumes(outage_broker: PrivateBroker) -> None:
    """What the queue's broker watch does when sends stall and the broker does not answer:
    ``pause()`` kills the producer at once (no task of it left waiting), the send it held fails at
    once, and so does every new send, instead of after the produce timeout; once the broker is back
    the first send after the back-off starts a new producer and is acknowledged."""
    topic = f"{unique_prefix('pause')}.t"
    await create_topic(outage_broker.bootstrap, topic)
    producing = Producing({"bootstrap_servers": outage_broker.bootstrap, "request_timeout_ms": 3000},
                          lambda kind, seconds: None)
    try:
        await asyncio.wait_for(await producing.send(topic, b"k", b"first", [], 0, "t"), 10)
        await asyncio.to_thread(outage_broker.stop)
        stuck = await producing.send(topic, b"k", b"stuck", [], 0, "t")
        await until(lambda: producing.stalled(0.25), 5, "the send to stall")
        await producing.pause()
        await asyncio.sleep(0)  # let the cancelled flush task end
        assert producing.paused() and not _flush_tasks()
        assert stuck.done() and isinstance(stuck.exception(), KafkaConnectionError)  # not at its time-out
        started = time.monotonic()
        with pytest.raises(KafkaConnectionError):
            await producing.send(topic, b"k", b"refused", [], 0, "t")
        assert time.monotonic() - started < 0.1
        await asyncio.to_thread(outage_broker.start)
        deadline = time.monotonic() + 30
        while True:  # a new producer is tried at most every BACKOFF_S, by the next send
            try:
                await asyncio.wait_for(await producing.send(topic, b"k", b"back", [], 0, "t"), 10)
                break
            except KafkaConnectionError:
                assert time.monotonic() < deadline, "no send acknowledged within 30 s of the broker's return"
                await asyncio.sleep(BACKOFF_S / 4)
        assert not producing.paused()
    finally:
        await producing.close()
