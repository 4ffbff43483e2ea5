"""Each outcome class of spec §9 / the issue's table, driven through the real sandbox's faults."""

from __future__ import annotations

from pathlib import Path

from tests.harness import Gateway, Sandbox, run_gateway, settings_for
from tests.samples import sample_dossier, sample_progress

M = "000.00.01.H55-240315-00012"


async def pushes(sandbox: Sandbox, m: str = M) -> list[dict]:
    return [c for c in await sandbox.calls_for(m) if c["service"] == "DongBoHoSoMC"]


async def test_rejected_goes_to_dead_letters_with_the_portal_message(gateway: Gateway, sandbox: Sandbox) -> None:
    """A business rejection is not retried: it becomes a dead letter with the message verbatim."""
    await gateway.put(M, sample_dossier(M))
    await gateway.drain()
    await sandbox.fault(mode="reject", count=1, message="Mã thủ tục không tồn tại trên Cổng DVCQG")
    await gateway.put(M, sample_dossier(M, TrangThaiHoSo="9"))
    await gateway.drain()
    gateway.clock.advance(3600)
    await gateway.drain()
    st = await gateway.status(M)
    assert st["delivery"] == "dead" and st["delivered_state"] == "4" and st["accepted_state"] == "9"
    assert st["last_error"]["class"] == "rejected"
    assert st["last_error"]["message"] == "Mã thủ tục không tồn tại trên Cổng DVCQG"
    r = await gateway.operator("GET", "/v1/dead-letters")
    items = (await r.json())["items"]
    assert [(i["MaHoSo"], i["kind"], i["reason_class"]) for i in items] == [(M, "snapshot", "rejected")]
    assert items[0]["message"] == "Mã thủ tục không tồn tại trên Cổng DVCQG"
    assert gateway.metric("dvcgw_deliveries_total", counterpart="portal", operation="update", outcome="rejected") == 1


async def test_a_failed_lookup_is_retried_never_guessed(gateway: Gateway, sandbox: Sandbox) -> None:
    """TraCuuHoSo answering an error means "unknown" (spec §5.3): retry it, send nothing, dead-letter nothing."""
    await sandbox.fault(mode="reject", count=1, message="Lỗi tra cứu")
    await gateway.put(M, sample_dossier(M))
    await gateway.drain()
    st = await gateway.status(M)
    assert st["delivery"] == "retrying" and st["last_error"]["class"] == "retryable"
    assert await pushes(sandbox) == []
    gateway.clock.advance(6)
    await gateway.drain()
    assert (await gateway.status(M))["delivery"] == "delivered"


async def test_retryable_follows_the_ladder_then_succeeds(gateway: Gateway, sandbox: Sandbox) -> None:
    """A 503 schedules the next attempt per [retry] delays; nothing is sent before it is due."""
    await sandbox.fault(mode="http503", count=2)
    await gateway.put(M, sample_dossier(M))
    await gateway.drain()
    st = await gateway.status(M)
    assert st["delivery"] == "retrying" and st["attempts"] == 1
    assert st["last_error"]["class"] == "retryable"
    calls_before = len(await sandbox.calls_for(M))
    gateway.clock.advance(4)
    await gateway.drain()
    assert len(await sandbox.calls_for(M)) == calls_before  # first delay is 5 s
    gateway.clock.advance(2)
    await gateway.drain()  # second failure: next delay 30 s
    assert (await gateway.status(M))["attempts"] == 2
    gateway.clock.advance(31)
    await gateway.drain()
    st = await gateway.status(M)
    assert st["delivery"] == "delivered" and st["attempts"] == 0
    assert gateway.metric("dvcgw_deliveries_total", counterpart="portal", operation="create", outcome="retryable") == 2


async def test_retryable_becomes_dead_after_give_up_after(gateway: Gateway, sandbox: Sandbox) -> None:
    """After give_up_after (1 h here) of failures, the events become dead letters (class retryable)."""
    await sandbox.fault(mode="http503", count=1000)
    await gateway.put(M, sample_dossier(M))
    await gateway.progress(M, sample_progress(M, 2))
    for _ in range(40):
        await gateway.drain()
        if (await gateway.status(M))["delivery"] == "dead":
            break
        gateway.clock.advance(121)
        gateway.engine.gate.success()  # keep the breaker out of this test: it has its own
    st = await gateway.status(M)
    assert st["delivery"] == "dead", st
    r = await gateway.operator("GET", "/v1/dead-letters")
    kinds = sorted(i["kind"] for i in (await r.json())["items"])
    assert kinds == ["progress", "progress", "snapshot"]


async def test_throttled_waits_for_retry_after(gateway: Gateway, sandbox: Sandbox) -> None:
    """429 with Retry-After: 90 puts the next attempt 90 s out, not at the first ladder step (5 s)."""
    await sandbox.fault(mode="http429", count=1, retry_after=90)
    await gateway.put(M, sample_dossier(M))
    await gateway.drain()
    st = await gateway.status(M)
    assert st["delivery"] == "retrying" and st["last_error"]["class"] == "throttled"
    gateway.clock.advance(60)
    await gateway.drain()
    assert len(await pushes(sandbox)) == 0
    gateway.clock.advance(31)
    await gateway.drain()
    assert len(await pushes(sandbox)) == 1
    assert gateway.metric("dvcgw_deliveries_total", counterpart="portal", operation="create", outcome="throttled") == 1


async def test_expired_session_logs_in_again_once(gateway: Gateway, sandbox: Sandbox) -> None:
    """auth_expired: the portal's "phiên làm việc đã hết hạn" costs one login, and delivery goes on."""
    await gateway.put(M, sample_dossier(M))
    await gateway.drain()
    logins = (await sandbox.record())["logins"]
    await sandbox.fault(mode="expire_sessions")
    await gateway.put(M, sample_dossier(M, TrangThaiHoSo="9"))
    await gateway.drain()
    assert (await sandbox.record())["logins"] == logins + 1
    assert (await gateway.status(M))["delivered_state"] == "9"


async def test_auth_failed_pauses_delivery_without_dead_letters(gateway: Gateway, sandbox: Sandbox) -> None:
    """Refused credentials pause delivery (readyz body, metric), dead-letter nothing, and resume
    after cool_down once credentials work again."""
    await sandbox.config(refuse_logins=True)
    await gateway.put(M, sample_dossier(M))
    await gateway.drain()
    r = await gateway.client.get("/readyz")
    body = await r.json()
    assert r.status == 200
    assert body["checks"]["portal"]["paused"] is True and body["checks"]["portal"]["reason"] == "auth_failed"
    assert gateway.metric("dvcgw_portal_delivery_paused", reason="auth_failed") == 1
    assert (await (await gateway.operator("GET", "/v1/dead-letters")).json())["items"] == []
    st = await gateway.status(M)
    assert st["delivery"] == "retrying" and st["last_error"]["class"] == "auth_failed" and st["attempts"] == 0
    await sandbox.config(refuse_logins=False)
    gateway.clock.advance(10)
    await gateway.drain()
    assert len(await pushes(sandbox)) == 0  # still paused: cool_down is 30 s
    gateway.clock.advance(21)
    await gateway.drain()
    assert (await gateway.status(M))["delivery"] == "delivered"
    assert gateway.metric("dvcgw_portal_delivery_paused", reason="auth_failed") == 0


async def test_forbidden_pauses_delivery(gateway: Gateway, sandbox: Sandbox) -> None:
    """HTTP 403 from NGSP/LGSP (no subscription) pauses delivery like auth_failed."""
    await sandbox.fault(mode="http403", count=1)
    await gateway.put(M, sample_dossier(M))
    await gateway.drain()
    body = await (await gateway.client.get("/readyz")).json()
    assert body["checks"]["portal"]["reason"] == "forbidden"
    assert (await gateway.status(M))["last_error"]["class"] == "forbidden"
    assert gateway.metric("dvcgw_deliveries_total", counterpart="portal", operation="create", outcome="forbidden") == 1


async def test_circuit_opens_after_threshold_and_closes_after_a_good_probe(gateway: Gateway,
                                                                         sandbox: Sandbox) -> None:
    """3 consecutive transient failures open the circuit; no call is made while open; after
    cool_down one probe goes, and its success closes the circuit."""
    await sandbox.fault(mode="http503", count=3)
    for i in range(3):
        await gateway.put(f"000.00.01.H55-240315-0000{i}", sample_dossier(f"000.00.01.H55-240315-0000{i}"))
    await gateway.drain()
    assert gateway.engine.gate.state == "open"
    assert gateway.metric("dvcgw_circuit_state", counterpart="portal") == 2
    calls = (await sandbox.record())["calls"]
    gateway.clock.advance(6)  # the dossiers are due again, but the circuit is open
    await gateway.drain()
    assert (await sandbox.record())["calls"] == calls
    r = await gateway.client.get("/readyz")
    assert r.status == 200 and (await r.json())["checks"]["portal"]["circuit"] == "open"
    gateway.clock.advance(30)
    await gateway.drain()
    assert gateway.engine.gate.state == "closed"
    for i in range(3):
        assert (await gateway.status(f"000.00.01.H55-240315-0000{i}"))["delivery"] == "delivered"


async def test_batch_rejection_is_split_per_dossier(sandbox: Sandbox, tmp_path: Path) -> None:
    """With batch_size 5 a rejected batch is retried one dossier at a time: one bad dossier cannot
    hide the others' results."""
    settings = settings_for(tmp_path, sandbox.url, portal={"batch_size": 5, "lookup_before_create": False})
    codes = [f"000.00.01.H55-240315-0010{i}" for i in range(5)]
    async with run_gateway(settings) as gw:
        for m in codes:
            await gw.put(m, sample_dossier(m))
        await sandbox.fault(mode="reject", count=2, message="Dữ liệu không hợp lệ")
        await gw.drain()
        delivery = [(await gw.status(m))["delivery"] for m in codes]
        assert sorted(delivery) == ["dead"] + ["delivered"] * 4
        rec = await sandbox.record()
        batches = {len(c["data"]) if isinstance(c.get("data"), list) else 1
                   for m in codes for c in rec["dossiers"].get(m, []) if c["service"] == "DongBoHoSoMC"}
        assert rec["calls"] >= 6 and batches
        dead = (await (await gw.operator("GET", "/v1/dead-letters")).json())["items"]
        assert len(dead) == 1 and dead[0]["message"] == "Dữ liệu không hợp lệ"


async def test_no_personal_data_in_logs_or_metrics(gateway: Gateway, sandbox: Sandbox, caplog) -> None:
    """Through rejections, outages and validation errors, no owner name, ID number, phone or e-mail
    reaches a log line or a metric label."""
    import logging

    caplog.set_level(logging.DEBUG)
    body = sample_dossier(M)
    personal = [body["ChuHoSo"], body["SoGiayToChuHoSo"], body["SoDienThoai"], body["Email"]]
    await gateway.put(M, body)
    await gateway.drain()
    await sandbox.fault(mode="reject", count=1)
    await gateway.put(M, sample_dossier(M, TrangThaiHoSo="9"))
    await sandbox.fault(mode="http503", count=1)
    await gateway.put("000.00.01.H55-240315-00099", sample_dossier("000.00.01.H55-240315-00099"))
    await gateway.drain()
    r = await gateway.put(M, sample_dossier(M, SoGiayToChuHoSo=12345, ChuHoSo=""))
    assert r.status == 422
    answer = await r.text()
    metrics = await (await gateway.client.get("/metrics")).text()
    for value in personal:
        assert value not in caplog.text
        assert value not in metrics
    assert "12345" not in answer
