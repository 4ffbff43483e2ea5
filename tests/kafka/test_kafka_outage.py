"""Broker outage, through real `dvcgw serve` processes on a private broker that the tests stop and
restart: no 202 without an acknowledged produce, and nothing accepted is lost across the restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.harness import Sandbox
from tests.kafka.broker import PrivateBroker, unique_prefix
from tests.kafka.daemons import kafka_daemon, until
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
        await wait_delivered(d.url, [m], 60)
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
        await wait_delivered(d.url, codes, 90)
    finally:
        load.stop.set()
        await d.stop()
    window = [a for a in load.answers if a.started >= down_from and a.ended <= up_from]
    assert window and not [a for a in window if a.status == 202], "202 while the broker was down"
    assert any(a.status == 503 for a in window)
    record = (await sandbox.record())["dossiers"]
    for m in codes:
        check_dossier(m, record.get(m, []), load.accepted(m, "snapshot"), load.progress_ok(m))
