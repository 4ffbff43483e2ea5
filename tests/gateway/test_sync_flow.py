"""Outbound sync end to end: real gateway app, real sandbox, both on 127.0.0.1 port 0."""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.national_portal.client import PortalClient
from core.errors import QueueUnavailable
from gateway.circuit import GateState
from gateway.dossier import validate_progress, validate_snapshot
from gateway.sync import SyncEngine
from monitoring.metrics import Metrics
from queues.api import EventKind, NewEvent, Outcome, Work
from queues.sqlite import MemoryQueue
from tests.fakes.portal import FakeClock
from tests.harness import UNIT, Gateway, Sandbox, run_gateway, settings_for
from tests.samples import sample_dossier, sample_progress

M = "000.00.01.H55-240315-00012"


def services(calls: list[dict[str, Any]]) -> list[str]:
    return [c["service"] for c in calls]


async def test_snapshot_reaches_the_portal_with_the_spec_field_names(gateway: Gateway, sandbox: Sandbox) -> None:
    """A PUT becomes one DongBoHoSoMC create whose data is the normalised §6.1 object, strings only."""
    body = sample_dossier(M)
    r = await gateway.put(M, body)
    assert r.status == 202, await r.text()
    accepted = await r.json()
    assert accepted["sequence"] == 1 and isinstance(accepted["event_id"], str)
    await gateway.drain()
    calls = await sandbox.calls_for(M)
    pushes = [c for c in calls if c["service"] == "DongBoHoSoMC"]
    assert len(pushes) == 1
    assert pushes[0]["isUpdating"] == "False"
    sent = pushes[0]["data"]
    assert sent == validate_snapshot(M, body).payload
    scalars = [v for v in sent.values() if not isinstance(v, list)]
    assert all(isinstance(v, str) for v in scalars)
    st = await gateway.status(M)
    assert st["delivery"] == "delivered" and st["delivered_state"] == "4"
    assert gateway.metric("dvcgw_deliveries_total", counterpart="portal", operation="create", outcome="ok") == 1


async def test_newest_snapshot_wins_and_later_ones_are_updates(gateway: Gateway, sandbox: Sandbox) -> None:
    """Snapshots waiting together are coalesced to the newest; the next push is an update."""
    for state in ("2", "4", "5"):
        assert (await gateway.put(M, sample_dossier(M, TrangThaiHoSo=state))).status == 202
    await gateway.drain()
    assert (await gateway.put(M, sample_dossier(M, TrangThaiHoSo="4"))).status == 202
    await gateway.drain()
    pushes = [c for c in await sandbox.calls_for(M) if c["service"] == "DongBoHoSoMC"]
    assert [(p["isUpdating"], p["data"]["TrangThaiHoSo"]) for p in pushes] == [("False", "5"), ("True", "4")]


async def test_progress_goes_in_chunks_of_ten_in_order(gateway: Gateway, sandbox: Sandbox) -> None:
    """25 progress items after a snapshot go out as 10 + 10 + 5, in acceptance order."""
    await gateway.put(M, sample_dossier(M))
    items = sample_progress(M, 25)
    r = await gateway.progress(M, items)
    assert r.status == 202, await r.text()
    body = await r.json()
    assert len(body["event_ids"]) == 25 and body["sequence"] == 26
    await gateway.drain()
    calls = await sandbox.calls_for(M)
    chunks = [c["items"] for c in calls if c["service"] == "CapNhatTienDoHoSoMC"]
    assert [len(c) for c in chunks] == [10, 10, 5]
    expected = [n.payload for n in validate_progress(M, items)]
    assert [i for c in chunks for i in c] == expected
    assert services(calls).index("DongBoHoSoMC") < services(calls).index("CapNhatTienDoHoSoMC")
    assert (await gateway.status(M))["pending_progress"] == 0


async def test_progress_for_an_unknown_dossier_is_parked_until_its_snapshot(gateway: Gateway,
                                                                          sandbox: Sandbox) -> None:
    """Progress is never sent before the portal has the dossier; it follows the first snapshot."""
    await gateway.progress(M, sample_progress(M, 3))
    await gateway.drain()
    st = await gateway.status(M)
    assert st["delivery"] == "parked" and st["pending_progress"] == 3
    assert "CapNhatTienDoHoSoMC" not in services(await sandbox.calls_for(M))
    await gateway.put(M, sample_dossier(M))
    await gateway.drain()
    calls = [c for c in await sandbox.calls_for(M) if c["service"] != "TraCuuHoSo"]
    assert services(calls) == ["DongBoHoSoMC", "CapNhatTienDoHoSoMC"]
    assert len(calls[1]["items"]) == 3
    assert (await gateway.status(M))["delivery"] == "delivered"


async def test_parked_progress_goes_when_the_portal_turns_out_to_have_the_dossier(gateway: Gateway,
                                                                                 sandbox: Sandbox) -> None:
    """TraCuuHoSo finding the dossier on the portal is enough to send progress without a snapshot."""
    await sandbox.know(validate_snapshot(M, sample_dossier(M)).payload)
    await gateway.progress(M, sample_progress(M, 2))
    await gateway.drain()
    calls = await sandbox.calls_for(M)
    assert services(calls)[-1] == "CapNhatTienDoHoSoMC"
    assert (await gateway.status(M))["delivery"] == "delivered"


async def test_lookup_path_sends_an_update_for_a_dossier_the_portal_has(gateway: Gateway,
                                                                       sandbox: Sandbox) -> None:
    """Create-or-update, preferred path (§5.6): TraCuuHoSo hit → isUpdating "True" at once."""
    await sandbox.know(validate_snapshot(M, sample_dossier(M)).payload)
    await gateway.put(M, sample_dossier(M, TrangThaiHoSo="9"))
    await gateway.drain()
    calls = await sandbox.calls_for(M)
    pushes = [c for c in calls if c["service"] == "DongBoHoSoMC"]
    assert "TraCuuHoSo" in services(calls)
    assert [p["isUpdating"] for p in pushes] == ["True"]


async def test_fallback_path_resends_as_update_after_da_ton_tai(sandbox: Sandbox, tmp_path: Path) -> None:
    """Create-or-update, fallback path: a create answered "đã tồn tại" is resent, same body, as update."""
    await sandbox.know(validate_snapshot(M, sample_dossier(M)).payload)
    settings = settings_for(tmp_path, sandbox.url, portal={"lookup_before_create": False})
    async with run_gateway(settings) as gw:
        await gw.put(M, sample_dossier(M, TrangThaiHoSo="9"))
        await gw.drain()
        pushes = [c for c in await sandbox.calls_for(M) if c["service"] == "DongBoHoSoMC"]
        assert [p["isUpdating"] for p in pushes] == ["False", "True"]
        assert pushes[0]["data"] == pushes[1]["data"]
        assert gw.metric("dvcgw_deliveries_total", counterpart="portal", operation="create", outcome="exists") == 1
        assert (await gw.status(M))["delivery"] == "delivered"


async def test_long_texts_are_truncated_and_counted(gateway: Gateway, sandbox: Sandbox) -> None:
    """TrichYeuHoSo over 1000 characters is accepted, cut to the limit with "...", and counted."""
    await gateway.put(M, sample_dossier(M, TrichYeuHoSo="Đăng ký " * 200))
    await gateway.drain()
    sent = next(c for c in await sandbox.calls_for(M) if c["service"] == "DongBoHoSoMC")["data"]["TrichYeuHoSo"]
    assert len(sent) <= 1000 and sent.endswith("...")
    assert gateway.metric("dvcgw_truncated_fields_total", field="TrichYeuHoSo") == 1


async def test_integer_codes_are_sent_as_strings(gateway: Gateway, sandbox: Sandbox) -> None:
    """Codes that arrive as JSON integers leave as strings (spec §6.0)."""
    await gateway.put(M, sample_dossier(M, TrangThaiHoSo=4, KenhThucHien=2, LoaiDoiTuong=1))
    await gateway.drain()
    data = next(c for c in await sandbox.calls_for(M) if c["service"] == "DongBoHoSoMC")["data"]
    assert (data["TrangThaiHoSo"], data["KenhThucHien"], data["LoaiDoiTuong"]) == ("4", "2", "1")


async def test_a_dossier_the_portal_lost_reaches_it_again_on_the_next_update(gateway: Gateway,
                                                                            sandbox: Sandbox) -> None:
    """The sandbox "loses" a delivered dossier (reset): the next snapshot goes as an update, the
    portal answers "hồ sơ … không tồn tại", and the engine sends the same body again as a create,
    with no operator action; no dead letter, the status keeps the portal's words, the metric counts it
    (issue 13)."""
    assert (await gateway.put(M, sample_dossier(M, TrangThaiHoSo="2"))).status == 202
    await gateway.drain()
    await sandbox.admin("reset")
    assert (await gateway.put(M, sample_dossier(M, TrangThaiHoSo="4"))).status == 202
    await gateway.drain()
    pushes = [c for c in await sandbox.calls_for(M) if c["service"] == "DongBoHoSoMC"]
    assert [(p["isUpdating"], p["data"]["TrangThaiHoSo"]) for p in pushes] == [("True", "4"), ("False", "4")]
    st = await gateway.status(M)
    assert st["delivery"] == "delivered" and st["delivered_state"] == "4"
    assert st["last_error"]["class"] == "not_found" and "không tồn tại" in st["last_error"]["message"]
    assert gateway.metric("dvcgw_deliveries_total", counterpart="portal", operation="update", outcome="not_found") == 1
    r = await gateway.operator("GET", "/v1/dead-letters")
    assert (await r.json())["items"] == []
    assert (await gateway.put(M, sample_dossier(M, TrangThaiHoSo="5"))).status == 202
    await gateway.drain()
    pushes = [c for c in await sandbox.calls_for(M) if c["service"] == "DongBoHoSoMC"]
    assert [p["isUpdating"] for p in pushes] == ["True", "False", "True"]  # known again: an update


class _OutageQueue(MemoryQueue):
    """The memory queue, except that recording fails with QueueUnavailable while ``down`` (what the
    Kafka backend raises when its broker goes away in the middle of a delivery round)."""

    down = False

    async def record(self, work: Work, outcome: Outcome, now: float, *, release: bool = True) -> None:
        if self.down:
            raise QueueUnavailable("kafka: state write failed: TimeoutError")
        await super().record(work, outcome, now, release=release)


async def test_a_queue_outage_mid_round_is_a_warning_and_the_claims_wait(sandbox: Sandbox, tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """The portal took a batch but the queue cannot record it (its broker went away): the round ends
    with a WARNING, not a "failed unexpectedly" ERROR or an unretrieved task exception, and the
    portal's circuit counts no failure (the portal answered). The claims go back to the queue: once
    their lease has run out, the next round delivers the events again."""
    settings = settings_for(tmp_path, sandbox.url)
    clock = FakeClock(start=time.time())
    queue = _OutageQueue(lease_s=60, clock=clock)
    await queue.start()
    codes = [f"{UNIT}-240322-{i:05d}" for i in range(3)]
    for m in codes:
        await queue.enqueue([NewEvent(m, EventKind.SNAPSHOT, validate_snapshot(m, sample_dossier(m)).payload, UNIT)])
    caplog.set_level(logging.WARNING)
    try:
        async with aiohttp.ClientSession() as http:
            engine = SyncEngine(queue, PortalClient(settings.portal, http), settings, Metrics(), clock=clock)
            queue.down = True
            await engine.drain()
            gc.collect()  # an unretrieved task exception is logged when the task is collected
            assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
            assert any("delivery round stopped" in r.getMessage() for r in caplog.records)
            assert engine.gate.state is GateState.CLOSED
            queue.down = False
            clock.advance(61)
            await engine.drain()
        for m in codes:
            st = await queue.status(m)
            assert st is not None and st.delivery == "delivered", st
            pushes = [c for c in await sandbox.calls_for(m) if c["service"] == "DongBoHoSoMC"]
            assert len(pushes) == 2  # at least once: the unrecorded delivery is repeated
    finally:
        await queue.close()
