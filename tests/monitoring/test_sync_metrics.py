"""The sync families of issue 14 recorded by the real engine, queue and HTTP edge (the sandbox as portal)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.harness import Gateway, Sandbox, run_gateway, settings_for
from tests.samples import sample_dossier, sample_progress

UNIT = "000.00.01.H55"
M = f"{UNIT}-240315-00012"


async def test_sync_lag_runs_from_acceptance_to_the_portal_accepting(gateway: Gateway, sandbox: Sandbox) -> None:
    """Accepted at t, the portal down until t + 7 (one 503, the first retry step is 5 s, the clock
    moves 7 s): the snapshot's lag is 7 s; progress accepted then is delivered at once (lag 0)."""
    await sandbox.fault(mode="http503", count=1)
    await gateway.put(M, sample_dossier(M))
    await gateway.drain()
    gateway.clock.advance(7)
    await gateway.progress(M, sample_progress(M, 2))
    await gateway.drain()
    lag = "dvcgw_sync_lag_seconds"
    assert gateway.metric(f"{lag}_count", kind="snapshot") == 1
    assert gateway.metric(f"{lag}_sum", kind="snapshot") == 7
    assert gateway.metric(f"{lag}_bucket", kind="snapshot", le="5.0") == 0
    assert gateway.metric(f"{lag}_bucket", kind="snapshot", le="10.0") == 1
    assert gateway.metric(f"{lag}_count", kind="progress") == 2
    assert gateway.metric(f"{lag}_sum", kind="progress") == 0


async def test_one_429_holding_back_a_batch_counts_its_wait_once(sandbox: Sandbox, tmp_path: Path) -> None:
    """Three creates in one DongBoHoSoMC batch answered 429 with Retry-After: 90: one 429, 90 s waited
    (not 270), three throttled attempts; a 429 without Retry-After waits the retry ladder's step
    (30 s: the dossiers' second attempt)."""
    settings = settings_for(tmp_path, sandbox.url, portal={"batch_size": 3, "lookup_before_create": False})
    async with run_gateway(settings) as gw:
        await sandbox.fault(mode="http429", count=1, retry_after=90)
        for i in range(3):
            await gw.put(f"{M}{i}", sample_dossier(f"{M}{i}"))
        await gw.drain()
        assert gw.metric("dvcgw_throttled_total", counterpart="portal") == 1
        assert gw.metric("dvcgw_throttled_wait_seconds_total", counterpart="portal") == 90
        assert gw.metric("dvcgw_deliveries_total", counterpart="portal", operation="create", outcome="throttled") == 3
        gw.clock.advance(91)
        await sandbox.fault(mode="http429", count=1)  # no Retry-After
        await gw.drain()
        assert gw.metric("dvcgw_throttled_total", counterpart="portal") == 2
        assert gw.metric("dvcgw_throttled_wait_seconds_total", counterpart="portal") == 90 + 30


async def test_dead_letters_are_exported_by_reason(gateway: Gateway, sandbox: Sandbox) -> None:
    """/metrics shows dead letters per reason, the usual reasons at 0 rather than absent; a replayed
    letter leaves the count."""
    await gateway.put(M, sample_dossier(M))
    await gateway.drain()
    await sandbox.fault(mode="reject", count=1, message="Mã thủ tục không tồn tại trên Cổng DVCQG")
    await gateway.put(M, sample_dossier(M, TrangThaiHoSo="9"))
    await gateway.drain()
    assert await dead_letters(gateway) == {"rejected": 1, "exists": 0, "retryable": 0}
    items = (await (await gateway.operator("GET", "/v1/dead-letters")).json())["items"]
    assert (await gateway.operator("POST", f"/v1/dead-letters/{items[0]['id']}/replay")).status == 202
    assert await dead_letters(gateway) == {"rejected": 0, "exists": 0, "retryable": 0}


async def test_requests_are_counted_by_route_template_never_by_path(gateway: Gateway) -> None:
    """dvcgw_http_requests_total: the matched template, ``unmatched`` for any unknown path (one
    series however many), ``other`` for an unusual method, the status as a class."""
    await gateway.put(M, sample_dossier(M))
    await gateway.put(M, {"MaHoSo": M})  # 422
    for path in ("/a", "/b", f"/v2/{M}"):
        await gateway.client.get(path)
    await gateway.client.request("PROPFIND", "/v1/dossiers/x")
    route = "/v1/dossiers/{MaHoSo}"
    assert gateway.metric("dvcgw_http_requests_total", route=route, method="PUT", status="2xx") == 1
    assert gateway.metric("dvcgw_http_requests_total", route=route, method="PUT", status="4xx") == 1
    assert gateway.metric("dvcgw_http_requests_total", route="unmatched", method="GET", status="4xx") == 3
    assert gateway.metric("dvcgw_http_requests_total", route="unmatched", method="other", status="4xx") == 1
    text = await (await gateway.client.get("/metrics")).text()
    assert M not in text  # never a raw path
    assert '"/a"' not in text and '"/b"' not in text


async def dead_letters(gw: Gateway) -> dict[str, float]:
    text = await (await gw.client.get("/metrics")).text()
    (fam,) = [f for f in text_string_to_metric_families(text) if f.name == "dvcgw_dead_letters"]
    return {s.labels["reason"]: s.value for s in fam.samples}
