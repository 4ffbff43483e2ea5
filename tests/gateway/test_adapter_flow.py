"""Outbound sync over the province-adapter transport (spec §3.4), end to end: the real gateway
app and sync engine against the real sandbox's /adapter/… routes, both on 127.0.0.1 port 0. The
engine is the one the service transport uses; only the client differs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.dossier import validate_progress, validate_snapshot
from tests.harness import Gateway, Sandbox, run_gateway, settings_for
from tests.samples import sample_dossier, sample_progress

M = "000.00.01.H55-240315-00012"
WITH_LOOKUP = {"lookup_url": "/adapter/TraCuuHoSo"}


def adapter_settings(tmp_path: Path, url: str, **adapter: Any) -> Any:
    return settings_for(tmp_path, url, portal={"transport": "adapter", "auth": "none", "dstcode": "",
                                               "adapter": adapter})


@pytest.fixture
async def gw(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with run_gateway(adapter_settings(tmp_path, sandbox.url, **WITH_LOOKUP)) as g:
        yield g


def calls_of(calls: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    return [c for c in calls if c["service"] == service]


async def test_snapshot_and_progress_go_through_the_adapter(gw: Gateway, sandbox: Sandbox) -> None:
    """A PUT becomes a lookup then a create on the adapter's URLs, with the normalised §6.1 object
    in a bare array; 12 progress items go as 10 + 2 in order; a later PUT is an update."""
    body = sample_dossier(M)
    assert (await gw.put(M, body)).status == 202
    items = sample_progress(M, 12)
    assert (await gw.progress(M, items)).status == 202
    await gw.drain()
    assert (await gw.put(M, sample_dossier(M, TrangThaiHoSo="9"))).status == 202
    await gw.drain()

    calls = await sandbox.calls_for(M)
    assert all(c["transport"] == "adapter" for c in calls)
    pushes = calls_of(calls, "DongBoHoSoMC")
    assert [(p["isUpdating"], p["data"]["TrangThaiHoSo"]) for p in pushes] == [("False", "4"), ("True", "9")]
    assert pushes[0]["data"] == validate_snapshot(M, body).payload
    chunks = [c["items"] for c in calls_of(calls, "CapNhatTienDoHoSoMC")]
    assert [len(c) for c in chunks] == [10, 2]
    assert [i for c in chunks for i in c] == [v.payload for v in validate_progress(M, items)]
    st = await gw.status(M)
    assert st["delivery"] == "delivered" and st["delivered_state"] == "9" and st["pending_progress"] == 0
    assert gw.metric("dvcgw_deliveries_total", counterpart="portal", operation="progress", outcome="ok") == 12


async def test_without_a_lookup_url_the_fallback_path_is_used(sandbox: Sandbox, tmp_path: Path) -> None:
    """No lookup URL (TH has none): a dossier the portal already holds is sent as a create, the
    "đã tồn tại" reply (error_code "0") turns it into an update of the same body; progress for a
    dossier never pushed waits for its snapshot."""
    await sandbox.know(validate_snapshot(M, sample_dossier(M)).payload)
    other = "000.00.01.H55-240315-00013"
    async with run_gateway(adapter_settings(tmp_path, sandbox.url)) as g:
        await g.put(M, sample_dossier(M, TrangThaiHoSo="9"))
        await g.progress(other, sample_progress(other, 2))
        await g.drain()
        pushes = calls_of(await sandbox.calls_for(M), "DongBoHoSoMC")
        assert [p["isUpdating"] for p in pushes] == ["False", "True"]
        assert pushes[0]["data"] == pushes[1]["data"]
        assert g.metric("dvcgw_deliveries_total", counterpart="portal", operation="create", outcome="exists") == 1
        assert (await g.status(M))["delivery"] == "delivered"
        assert (await g.status(other))["delivery"] == "parked"
        assert calls_of(await sandbox.calls_for(M), "TraCuuHoSo") == []
        await g.put(other, sample_dossier(other))
        await g.drain()
        assert [c["service"] for c in await sandbox.calls_for(other)] == ["DongBoHoSoMC", "CapNhatTienDoHoSoMC"]
        assert (await g.status(other))["delivery"] == "delivered"


async def test_a_refusal_is_dead_lettered_with_the_adapters_words(gw: Gateway, sandbox: Sandbox) -> None:
    """A business refusal on the adapter is a dead letter with its code and message verbatim (a
    refused lookup, by contrast, means "existence unknown" and is retried, §5.3)."""
    await sandbox.fault(mode="reject", count=1, error_code="-7", message="Lỗi tra cứu")
    await gw.put(M, sample_dossier(M))
    await gw.drain()
    assert (await gw.status(M))["delivery"] == "retrying"
    gw.clock.advance(6)
    await gw.drain()
    assert (await gw.status(M))["delivery"] == "delivered"
    await sandbox.fault(mode="reject", count=1, error_code="-7", message="Mã TTHC không hợp lệ")
    await gw.put(M, sample_dossier(M, TrangThaiHoSo="9"))
    await gw.drain()
    st = await gw.status(M)
    assert st["delivery"] == "dead" and st["last_error"]["class"] == "rejected"
    assert (st["last_error"]["code"], st["last_error"]["message"]) == ("-7", "Mã TTHC không hợp lệ")
    items = (await (await gw.operator("GET", "/v1/dead-letters")).json())["items"]
    assert [(i["MaHoSo"], i["reason_class"], i["code"]) for i in items] == [(M, "rejected", "-7")]


async def test_progress_text_refusal_is_dead_lettered(gw: Gateway, sandbox: Sandbox) -> None:
    """A progress call answered "… không thành công …" in plain text dead-letters those items."""
    await gw.put(M, sample_dossier(M))
    await gw.drain()
    await sandbox.fault(mode="reject", count=1, message="Trạng thái không hợp lệ")
    await gw.progress(M, sample_progress(M, 2))
    await gw.drain()
    st = await gw.status(M)
    assert st["last_error"]["class"] == "rejected" and st["last_error"]["code"] == "text"
    assert st["last_error"]["message"] == "Cập nhật tiến độ không thành công: Trạng thái không hợp lệ"
    items = (await (await gw.operator("GET", "/v1/dead-letters")).json())["items"]
    assert [i["kind"] for i in items] == ["progress", "progress"]


async def test_unavailable_adapter_follows_the_ladder(gw: Gateway, sandbox: Sandbox) -> None:
    """A 503 from the adapter is retryable: the next attempt waits for the ladder's 5 s."""
    await sandbox.fault(mode="http503", count=1)
    await gw.put(M, sample_dossier(M))
    await gw.drain()
    st = await gw.status(M)
    assert st["delivery"] == "retrying" and st["last_error"]["class"] == "retryable"
    gw.clock.advance(6)
    await gw.drain()
    assert (await gw.status(M))["delivery"] == "delivered"


async def test_a_refused_key_pauses_delivery(sandbox: Sandbox, tmp_path: Path) -> None:
    """HTTP 401 from the adapter (the static header is wrong) pauses delivery like refused
    credentials on the service transport: no dead letter, resumed after cool_down."""
    await sandbox.config(adapter_header={"name": "X-Api-Key", "value": "right"})
    settings = adapter_settings(tmp_path, sandbox.url, auth_header="X-Api-Key", auth_header_value="wrong",
                                **WITH_LOOKUP)
    async with run_gateway(settings) as g:
        await g.put(M, sample_dossier(M))
        await g.drain()
        st = await g.status(M)
        assert st["delivery"] == "retrying" and st["last_error"]["class"] == "auth_failed"
        assert g.metric("dvcgw_portal_delivery_paused", reason="auth_failed") == 1
        assert (await (await g.operator("GET", "/v1/dead-letters")).json())["items"] == []
        await sandbox.config(adapter_header={"name": "X-Api-Key", "value": "wrong"})
        g.clock.advance(31)
        await g.drain()
        assert (await g.status(M))["delivery"] == "delivered"
