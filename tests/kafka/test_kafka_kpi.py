"""The 766 indicators on the Kafka backend: the same observer of the same engine records the same
facts, and the figures survive a restart (the indicators' own file, not the broker)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway.appkeys import KPI
from monitoring.kpi import KpiReport
from tests.fakes.portal import FakeClock
from tests.harness import Gateway, Sandbox, run_gateway, settings_for
from tests.monitoring.kpi_helpers import UNIT_A, code, dossier, local, step
from tests.queues.kafka_factory import kafka_settings

pytestmark = pytest.mark.kafka

NOW = local("20261120120000")


async def delivered(gw: Gateway, codes: list[str], seconds: float = 60.0) -> None:
    """Run the real engine until every dossier is delivered (Kafka hands claims over through its
    consumer, so one drain may end before the events arrive)."""
    deadline = time.monotonic() + seconds
    while True:
        await gw.drain()
        states = [(await gw.status(c))["delivery"] for c in codes]
        if all(s == "delivered" for s in states):
            return
        assert time.monotonic() < deadline, states
        await asyncio.sleep(0.05)


def month(report: KpiReport) -> dict[str, tuple[int, int]]:
    return {r.indicator: (r.numerator, r.denominator) for r in report.rows
            if r.unit == UNIT_A and r.period == "month"}


async def test_kafka_backend_records_the_same_facts_and_they_survive_a_restart(
        kafka_bootstrap: str, sandbox: Sandbox, tmp_path: Path) -> None:
    """Three dossiers (finished on time online; finished late; in processing within its
    deadline), delivered through Kafka: ON_TIME 2/3, ONLINE_SHARE 1/3, DOSSIER_SYNC 3/3; the same
    after the gateway is rebuilt on the same files."""
    settings = kafka_settings(settings_for(tmp_path, sandbox.url, portal={"lookup_before_create": False}),
                              bootstrap=kafka_bootstrap)
    cases = [
        (code(UNIT_A, 1), {"KenhThucHien": "2", "TrangThaiHoSo": "9"}, [("9", "20261109090000")]),
        (code(UNIT_A, 2), {"TrangThaiHoSo": "9"}, [("9", "20261112090000")]),
        (code(UNIT_A, 3), {"NgayHenTra": "20261125170000"}, [("4", "20261104090000")]),
    ]
    async with run_gateway(settings, FakeClock(start=NOW)) as gw:
        for mahoso, fields, steps in cases:
            due = fields.pop("NgayHenTra", "20261110170000")
            assert (await gw.put(mahoso, dossier(mahoso, due=due, **fields))).status == 202
            body = [step(mahoso, "2", "20261103080000"), *(step(mahoso, s, at) for s, at in steps)]
            assert (await gw.progress(mahoso, body)).status == 202
        await delivered(gw, [c for c, _, _ in cases])
        first = month(await gw.app[KPI].refresh())
    assert (first["ON_TIME"], first["ONLINE_SHARE"], first["DOSSIER_SYNC"]) == ((2, 3), (1, 3), (3, 3))
    async with run_gateway(settings, FakeClock(start=NOW)) as again:
        assert month(await again.app[KPI].refresh()) == first
