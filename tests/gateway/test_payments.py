"""Payments end to end: the real gateway app and the real sandbox (portal and payment platform),
both on 127.0.0.1 port 0. The sandbox sends its CONFIRM callbacks to the gateway's real route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.payment_platform import envelope as env
from adapters.payment_platform.envelope import CONFIRM_ORDER, INIT_ORDER, Party
from adapters.payment_platform.service import PaidPayment
from adapters.sandbox.payment import PAYMENTS as SANDBOX_PAYMENTS
from adapters.sandbox.payment import PaymentSandbox
from gateway.appkeys import PAYMENTS
from tests.harness import AGENCY_KEY, OPERATOR_KEY, OTHER_KEY, Gateway, Sandbox, run_gateway, settings_for
from tests.samples import sample_dossier

M = "000.00.01.H55-240315-00012"
SECRET = "test-payment-secret"
PARTNER = "DOITAC-H55"
PAYER = {"HoTenNguoiNop": "Người Nộp Thử", "SoCMNDNguoiNop": "000000000001", "DiaChiNguoiNop": "Xã Thử"}
ITEMS = [{"LoaiPhiLePhi": "1", "MaPhiLePhi": "PHI01", "TenPhiLePhi": "Phí thẩm định", "SoTien": 20000},
         {"LoaiPhiLePhi": "2", "MaPhiLePhi": "LP01", "TenPhiLePhi": "Lệ phí cấp giấy", "SoTien": 5000}]


class Hooks:
    """An on_paid hook that remembers what it was given."""

    def __init__(self) -> None:
        self.calls: list[PaidPayment] = []

    async def __call__(self, paid: PaidPayment) -> None:
        self.calls.append(paid)


@pytest.fixture
async def gw(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Gateway]:
    payment = {"enabled": True, "init_url": f"{sandbox.url}/payment/init",
               "query_url": f"{sandbox.url}/payment/query", "bill_url": f"{sandbox.url}/payment/bill",
               "partner_code": PARTNER, "secret": SECRET, "ip": "203.0.113.10", "timeout": "5s"}
    async with run_gateway(settings_for(tmp_path, sandbox.url, payment=payment)) as gateway:
        platform(sandbox).secret = SECRET
        platform(sandbox).callback_url = str(gateway.client.make_url("/v1/payments/confirm"))
        yield gateway


def platform(sandbox: Sandbox) -> PaymentSandbox:
    return sandbox.app[SANDBOX_PAYMENTS]


async def pay_request(gw: Gateway, mahoso: str = M, key: str = AGENCY_KEY, **body: Any) -> Any:
    r = await gw.client.post("/v1/payments", json={"MaHoSo": mahoso, "items": ITEMS, "payer": PAYER, **body},
                             headers={"X-API-Key": key})
    return r


async def paid_setup(gw: Gateway, sandbox: Sandbox) -> tuple[str, Hooks]:
    """A dossier synced to the portal, a hook registered, a payment created: its reference."""
    assert (await gw.put(M, sample_dossier(M))).status == 202
    await gw.drain()
    hooks = Hooks()
    gw.app[PAYMENTS].on_paid("test", hooks)
    r = await pay_request(gw)
    assert r.status == 201, await r.text()
    return (await r.json())["MaThamChieu"], hooks


async def sandbox_pay(sandbox: Sandbox, ref: str, **body: Any) -> dict[str, Any]:
    async with sandbox.http.post(f"{sandbox.url}/_sandbox/payments/{ref}/pay", json=body) as resp:
        assert resp.status == 200, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data


async def payment(gw: Gateway, ref: str, key: str = AGENCY_KEY) -> dict[str, Any]:
    r = await gw.client.get(f"/v1/payments/{ref}", headers={"X-API-Key": key})
    assert r.status == 200, await r.text()
    data: dict[str, Any] = await r.json()
    return data


async def confirm(gw: Gateway, body: Any) -> dict[str, Any]:
    r = await gw.client.post("/v1/payments/confirm", json=body)
    assert r.status == 200, await r.text()
    data: dict[str, Any] = await r.json()
    return data


async def portal_pushes(sandbox: Sandbox, mahoso: str = M) -> list[dict[str, Any]]:
    return [c for c in await sandbox.calls_for(mahoso) if c["service"] == "DongBoHoSoMC"]


# ---------------------------------------------------------------- INIT


async def test_payment_request_sends_init_with_the_right_checksum(gw: Gateway, sandbox: Sandbox) -> None:
    """201 with the reference (§5), the platform's URL and khoi-tao; the platform got an INIT whose
    MaXacThuc verifies with the shared secret, fee lines mapped and added up, procedure from the dossier."""
    ref, _ = await paid_setup(gw, sandbox)
    txn = platform(sandbox).transactions[ref]
    init = txn["init"]
    assert platform(sandbox).record[-1] == {**platform(sandbox).record[-1], "message": "INIT", "checksum_ok": True}
    assert env.verify(init, INIT_ORDER, SECRET)
    assert ref == env.reference(M, init["ThoiGianGD"]) and ref.startswith("dvc0000001H5524031500012")
    assert init["SoTien"] == "25000" and init["MaDoiTac"] == PARTNER and init["Ip"] == "203.0.113.10"
    info = init["ThongTinBienLai"]
    assert [x["LoaiPhiLePhi"] for x in info["PhiLePhi"]] == ["1", "2"]
    assert info["MaTTHC"] == "1.001612.000.00.00.H55" and info["MaDVC"] == "1.001612.000.00.00.H55.01"
    assert info["MaDonVi"] == "000.00.01.H55" and info["HoTenNguoiNop"] == PAYER["HoTenNguoiNop"]
    body = await payment(gw, ref)
    assert (body["MaHoSo"], body["SoTien"], body["state"]) == (M, 25000, "khoi-tao")
    assert body["UrlThanhToan"].endswith(f"/payment/pay/{ref}")
    assert [h["event"] for h in body["history"]] == ["init"]
    assert gw.metric("dvcgw_payments_total", outcome="initiated") == 1


async def test_init_refused_is_recorded_that_bai_and_answered_502(gw: Gateway, sandbox: Sandbox) -> None:
    """A non-zero error_code: 502 naming the platform's code, the transaction stored that-bai."""
    platform(sandbox).init_error = {"error_code": "7", "message": "Đối tác bị khóa"}
    r = await pay_request(gw)
    assert r.status == 502
    problem = await r.json()
    assert problem["error"] == "payment_refused" and "error_code 7" in problem["message"]
    ref = next(iter(platform(sandbox).record))["MaThamChieu"]
    assert (await payment(gw, ref))["state"] == "that-bai"
    assert gw.metric("dvcgw_payments_total", outcome="init_refused") == 1


@pytest.mark.parametrize(("change", "field"), [
    ({"items": [{**ITEMS[0], "SoTien": "20000"}]}, "items[0].SoTien"),
    ({"items": [{**ITEMS[0], "SoTien": 0}]}, "items[0].SoTien"),
    ({"items": [{**ITEMS[0], "LoaiPhiLePhi": "Phi"}]}, "items[0].LoaiPhiLePhi"),
    ({"items": []}, "items"),
    ({"payer": {"SoCMNDNguoiNop": "1"}}, "payer.HoTenNguoiNop"),
    ({"payer": {**PAYER, "DiaChiNguoiNop": "a\x00b"}}, "payer.DiaChiNguoiNop"),
    ({"extra": 1}, "extra"),
    ({"MaHoSo": "000.00.01.H55 x"}, "MaHoSo"),
])
async def test_bad_requests_are_422_naming_the_field(gw: Gateway, change: dict[str, Any], field: str) -> None:
    """Validation errors are 422 in the house shape, naming the field; nothing is sent."""
    body = {"MaHoSo": M, "items": ITEMS, "payer": PAYER, **change}
    r = await gw.client.post("/v1/payments", json=body, headers={"X-API-Key": AGENCY_KEY})
    assert r.status == 422, await r.text()
    assert field in [e["field"] for e in (await r.json())["errors"]]


async def test_agency_must_own_the_unit(gw: Gateway, sandbox: Sandbox) -> None:
    """Another agency's dossier: 403 naming MaHoSo; its payment cannot be read either; no key: 401."""
    assert (await pay_request(gw, key=OTHER_KEY)).status == 403
    assert (await gw.client.post("/v1/payments", json={})).status == 401
    ref, _ = await paid_setup(gw, sandbox)
    r = await gw.client.get(f"/v1/payments/{ref}", headers={"X-API-Key": OTHER_KEY})
    assert r.status == 403
    assert (await payment(gw, ref, key=OPERATOR_KEY))["MaThamChieu"] == ref
    assert (await gw.client.get("/v1/payments/nope", headers={"X-API-Key": AGENCY_KEY})).status == 404


# ---------------------------------------------------------------- CONFIRM


async def test_confirm_marks_the_dossier_paid_and_resyncs_it(gw: Gateway, sandbox: Sandbox) -> None:
    """A valid CONFIRM: ack 00, thanh-cong, the hooks called once with the record, and the dossier
    synced again to the portal with DuocThanhToanTrucTuyen "1" through the core sync."""
    ref, hooks = await paid_setup(gw, sandbox)
    sent = await sandbox_pay(sandbox, ref)
    assert sent["ack"]["MaLoi"] == "00" and sent["ack"]["MaXacThuc"] == sent["confirm"]["MaXacThuc"]
    body = await payment(gw, ref)
    assert body["state"] == "thanh-cong" and body["MaGiaoDich"] == sent["confirm"]["MaGiaoDich"]
    assert [h["event"] for h in body["history"]] == ["init", "confirm"]
    assert len(hooks.calls) == 1
    paid = hooks.calls[0]
    assert (paid.mahoso, paid.reference, paid.amount, paid.payer.name) == (M, ref, 25000, PAYER["HoTenNguoiNop"])
    assert [line.amount for line in paid.items] == [20000, 5000]
    assert paid.platform_transaction == sent["confirm"]["MaGiaoDich"]
    assert paid.paid_time == sent["confirm"]["ThoiGianGD"]
    assert (paid.context.ma_tthc, paid.context.ma_don_vi) == ("1.001612.000.00.00.H55", "000.00.01.H55")
    await gw.drain()
    pushes = await portal_pushes(sandbox)
    assert [p["data"]["DuocThanhToanTrucTuyen"] for p in pushes] == ["0", "1"]
    assert pushes[-1]["isUpdating"] == "True"
    assert gw.metric("dvcgw_payment_callbacks_total", result="accepted") == 1
    assert gw.metric("dvcgw_payments_total", outcome="paid") == 1


async def test_replayed_callback_has_no_second_effect(gw: Gateway, sandbox: Sandbox) -> None:
    """The same CONFIRM again: the same acknowledgement, no state change, no history row, hooks not
    called again, no second push of the dossier."""
    ref, hooks = await paid_setup(gw, sandbox)
    first = await sandbox_pay(sandbox, ref)
    await gw.drain()
    await gw.app[PAYMENTS].reconcile()  # the receipt is fetched (one history row of its own)
    before = (await payment(gw, ref))["history"]
    async with sandbox.http.post(f"{sandbox.url}/_sandbox/payments/{ref}/resend") as resp:
        again = await resp.json()
    assert again["ack"] == first["ack"]
    assert await confirm(gw, first["confirm"]) == first["ack"]
    await gw.drain()
    await gw.app[PAYMENTS].reconcile()
    assert (await payment(gw, ref))["history"] == before
    assert len(hooks.calls) == 1
    assert len(await portal_pushes(sandbox)) == 2
    assert gw.metric("dvcgw_payment_callbacks_total", result="duplicate") == 2


async def test_tampered_checksum_is_rejected_and_recorded(gw: Gateway, sandbox: Sandbox) -> None:
    """A CONFIRM whose amount was changed after signing, and one with a wrong MaXacThuc: 99,
    recorded with its reason, the transaction still khoi-tao, no hook."""
    ref, hooks = await paid_setup(gw, sandbox)
    lost = await sandbox_pay(sandbox, ref, deliver=False)
    tampered = {**lost["confirm"], "SoTien": 2500}
    ack = await confirm(gw, tampered)
    assert ack["MaLoi"] == "99" and ack["MaXacThuc"] == tampered["MaXacThuc"]
    bad = await sandbox_pay(sandbox, ref, checksum="bad")
    assert bad["ack"]["MaLoi"] == "99"
    body = await payment(gw, ref)
    assert body["state"] == "khoi-tao" and hooks.calls == []
    assert [h["event"] for h in body["history"]] == ["init", "callback_rejected", "callback_rejected"]
    rejected = gw.app[PAYMENTS].rejected_callbacks()
    assert [(c["result"], c["ref"]) for c in rejected] == [("bad_checksum", ref)] * 2
    assert gw.metric("dvcgw_payment_callbacks_total", result="bad_checksum") == 2


async def test_amount_mismatch_is_rejected(gw: Gateway, sandbox: Sandbox) -> None:
    """A correctly signed CONFIRM for another amount than the INIT's: 99, recorded, nothing paid."""
    ref, hooks = await paid_setup(gw, sandbox)
    sent = await sandbox_pay(sandbox, ref, amount=24000)
    assert env.verify(sent["confirm"], CONFIRM_ORDER, SECRET)
    assert sent["ack"]["MaLoi"] == "99"
    assert (await payment(gw, ref))["state"] == "khoi-tao" and hooks.calls == []
    assert gw.app[PAYMENTS].rejected_callbacks()[-1]["result"] == "amount_mismatch"
    assert gw.metric("dvcgw_payment_callbacks_total", result="amount_mismatch") == 1


async def test_unknown_reference_and_other_partner_are_rejected(gw: Gateway, sandbox: Sandbox) -> None:
    """Correctly signed CONFIRMs for a reference never created, or for another partner: 99 each;
    a body that is not a CONFIRM at all: 99 too, always HTTP 200."""
    ours = Party(PARTNER, SECRET)
    fields = {"amount": 25000, "ma_loi": "00", "ma_giao_dich": "PG1", "ma_ngan_hang": "B",
              "thoi_gian": "20240315093512", "thong_tin": "x"}
    assert (await confirm(gw, env.confirm_message(ours, ref="dvcNOPE", **fields)))["MaLoi"] == "99"
    ref, _ = await paid_setup(gw, sandbox)
    other = env.confirm_message(Party("OTHER", SECRET), ref=ref, **fields)
    assert (await confirm(gw, other))["MaLoi"] == "99"
    r = await gw.client.post("/v1/payments/confirm", data=b"not json", headers={"Content-Type": "text/plain"})
    assert r.status == 200 and (await r.json())["MaLoi"] == "99"
    results = [c["result"] for c in gw.app[PAYMENTS].rejected_callbacks()]
    assert results == ["unknown_reference", "wrong_partner", "malformed"]
    assert (await payment(gw, ref))["state"] == "khoi-tao"


async def test_not_paid_then_a_late_payment(gw: Gateway, sandbox: Sandbox) -> None:
    """MaLoi other than 00: that-bai, ack 00 (processed); the platform later says paid: thanh-cong."""
    ref, hooks = await paid_setup(gw, sandbox)
    failed = await sandbox_pay(sandbox, ref, outcome="failed")
    assert failed["ack"]["MaLoi"] == "00"
    assert (await payment(gw, ref))["state"] == "that-bai"
    await sandbox_pay(sandbox, ref, outcome="paid")
    assert (await payment(gw, ref))["state"] == "thanh-cong" and len(hooks.calls) == 1


# ---------------------------------------------------------------- reconciliation


async def test_query_reconciliation_closes_a_payment_whose_callback_was_lost(gw: Gateway, sandbox: Sandbox) -> None:
    """The callback is lost: nothing happens before pending_after; after it, QUERY finds the payment
    paid, the dossier is re-synced with DuocThanhToanTrucTuyen "1", hooks run once, and the
    platform's receipt PDF is fetched (GET_BILL) and served."""
    ref, hooks = await paid_setup(gw, sandbox)
    await sandbox_pay(sandbox, ref, deliver=False)
    await gw.app[PAYMENTS].reconcile()
    assert (await payment(gw, ref))["state"] == "khoi-tao"
    assert [r["message"] for r in platform(sandbox).record] == ["INIT"]
    gw.clock.advance(301)
    await gw.app[PAYMENTS].reconcile()
    body = await payment(gw, ref)
    assert body["state"] == "thanh-cong" and [h["event"] for h in body["history"]][:2] == ["init", "query"]
    assert len(hooks.calls) == 1
    queries = [r for r in platform(sandbox).record if r["message"] == "QUERY"]
    assert len(queries) == 1 and queries[0]["checksum_ok"]
    await gw.drain()
    assert [p["data"]["DuocThanhToanTrucTuyen"] for p in await portal_pushes(sandbox)] == ["0", "1"]
    await gw.app[PAYMENTS].reconcile()
    assert len(hooks.calls) == 1
    assert [r["message"] for r in platform(sandbox).record].count("GET_BILL") == 1
    r = await gw.client.get(f"/v1/payments/{ref}/bill", headers={"X-API-Key": AGENCY_KEY})
    assert r.status == 200 and r.content_type == "application/pdf"
    assert (await r.read()).startswith(b"%PDF-")
    assert gw.metric("dvcgw_payment_reconciliations_total", result="paid") == 1


async def test_unpaid_transaction_is_asked_again_then_expires(gw: Gateway, sandbox: Sandbox) -> None:
    """Not paid yet: QUERY again with backoff; give_up_after the INIT: het-han. A late CONFIRM is
    still taken (het-han → thanh-cong)."""
    ref, hooks = await paid_setup(gw, sandbox)
    gw.clock.advance(301)
    await gw.app[PAYMENTS].reconcile()
    assert (await payment(gw, ref))["state"] == "khoi-tao"
    gw.clock.advance(30)
    await gw.app[PAYMENTS].reconcile()  # not due yet: the next QUERY waits interval (60 s)
    assert [r["message"] for r in platform(sandbox).record].count("QUERY") == 1
    gw.clock.advance(86400)
    await gw.app[PAYMENTS].reconcile()
    assert (await payment(gw, ref))["state"] == "het-han"
    assert gw.metric("dvcgw_payments_total", outcome="expired") == 1
    await sandbox_pay(sandbox, ref)
    assert (await payment(gw, ref))["state"] == "thanh-cong" and len(hooks.calls) == 1


# ---------------------------------------------------------------- the accept path keeps the mark


async def test_a_resend_never_takes_the_mark_back(gw: Gateway, sandbox: Sandbox) -> None:
    """After the payment, an agency snapshot saying 0 is stored and synced with 1; one saying 2
    (the province's gateway) keeps 2."""
    ref, _ = await paid_setup(gw, sandbox)
    await sandbox_pay(sandbox, ref)
    await gw.drain()
    assert (await gw.put(M, sample_dossier(M, TrangThaiHoSo="5", DuocThanhToanTrucTuyen="0"))).status == 202
    await gw.drain()
    assert (await gw.put(M, sample_dossier(M, TrangThaiHoSo="4", DuocThanhToanTrucTuyen="2"))).status == 202
    await gw.drain()
    pushes = await portal_pushes(sandbox)
    assert [(p["data"]["TrangThaiHoSo"], p["data"]["DuocThanhToanTrucTuyen"]) for p in pushes] == [
        ("4", "0"), ("4", "1"), ("5", "1"), ("4", "2")]


async def test_paid_dossiers_survive_a_restart(sandbox: Sandbox, tmp_path: Path) -> None:
    """The paid set is read back from the payments' own file: after a restart the overlay still applies."""
    payment_cfg = {"enabled": True, "init_url": f"{sandbox.url}/payment/init",
                   "query_url": f"{sandbox.url}/payment/query", "bill_url": f"{sandbox.url}/payment/bill",
                   "partner_code": PARTNER, "secret": SECRET}
    settings = settings_for(tmp_path, sandbox.url, payment=payment_cfg)
    async with run_gateway(settings) as first:
        platform(sandbox).secret = SECRET
        platform(sandbox).callback_url = str(first.client.make_url("/v1/payments/confirm"))
        ref, _ = await paid_setup(first, sandbox)
        await sandbox_pay(sandbox, ref)
        await first.drain()
    assert (tmp_path / "payments.sqlite3").exists()
    async with run_gateway(settings) as second:
        assert second.app[PAYMENTS].is_paid(M)
        assert (await second.put(M, sample_dossier(M, TrangThaiHoSo="5"))).status == 202
        await second.drain()
    assert (await portal_pushes(sandbox))[-1]["data"]["DuocThanhToanTrucTuyen"] == "1"


async def test_openapi_lists_the_payment_routes_when_enabled(gw: Gateway) -> None:
    """With [payment] enabled, /openapi.json is still valid and describes exactly the routes served."""
    from openapi_spec_validator import validate

    from tests.gateway.test_http_api import documented_routes, served_routes

    doc = await (await gw.client.get("/openapi.json")).json()
    validate(doc)
    assert served_routes(gw) == documented_routes(doc)
    assert ("/v1/payments/confirm", "post") in served_routes(gw)
    assert "security" not in doc["paths"]["/v1/payments/confirm"]["post"]


# ---------------------------------------------------------------- hooks, transport


async def test_a_transient_hook_failure_is_retried_and_a_permanent_one_is_not(gw: Gateway, sandbox: Sandbox) -> None:
    """A hook raising TransientError runs again at the next reconciliation pass until it succeeds;
    one raising anything else is recorded failed and never run again; the others run once."""
    from core.errors import PermanentError, TransientError

    calls = {"flaky": 0, "broken": 0}

    async def flaky(paid: PaidPayment) -> None:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise TransientError("receipt service down")

    async def broken(paid: PaidPayment) -> None:
        calls["broken"] += 1
        raise PermanentError("cannot ever work")

    gw.app[PAYMENTS].on_paid("flaky", flaky)
    gw.app[PAYMENTS].on_paid("broken", broken)
    ref, hooks = await paid_setup(gw, sandbox)
    await sandbox_pay(sandbox, ref)
    assert calls == {"flaky": 1, "broken": 1} and len(hooks.calls) == 1
    await gw.app[PAYMENTS].reconcile()
    await gw.app[PAYMENTS].reconcile()
    assert calls == {"flaky": 2, "broken": 1} and len(hooks.calls) == 1


async def test_a_hook_registered_later_never_runs_for_older_payments(gw: Gateway, sandbox: Sandbox) -> None:
    """A payment promises the hooks registered when it was paid (stored with it), no others."""
    ref, hooks = await paid_setup(gw, sandbox)
    await sandbox_pay(sandbox, ref)
    late = Hooks()
    gw.app[PAYMENTS].on_paid("late", late)
    await gw.app[PAYMENTS].reconcile()
    assert late.calls == [] and len(hooks.calls) == 1


async def test_platform_unreachable_is_503_and_that_bai(sandbox: Sandbox, tmp_path: Path) -> None:
    """INIT without an answer (nothing listens): 503 with Retry-After, the attempt recorded that-bai."""
    from tests.fakes.portal import ClosingServer

    closing = ClosingServer()
    dead = await closing.start()
    try:
        cfg = {"enabled": True, "init_url": f"{dead}/init", "query_url": f"{dead}/q", "bill_url": f"{dead}/b",
               "partner_code": PARTNER, "secret": SECRET}
        async with run_gateway(settings_for(tmp_path, sandbox.url, payment=cfg)) as gateway:
            r = await pay_request(gateway)
            assert r.status == 503 and r.headers["Retry-After"] == "30"
            assert (await r.json())["error"] == "payment_platform_unavailable"
            assert gateway.metric("dvcgw_payments_total", outcome="init_unknown") == 1
    finally:
        await closing.stop()


async def test_access_token_is_sent_as_bearer(sandbox: Sandbox, tmp_path: Path) -> None:
    """[payment] access_token (or access_token_file) goes out as Authorization: Bearer."""
    token = tmp_path / "token"
    token.write_text("tok-123\n")
    cfg = {"enabled": True, "init_url": f"{sandbox.url}/payment/init", "query_url": f"{sandbox.url}/payment/query",
           "bill_url": f"{sandbox.url}/payment/bill", "partner_code": PARTNER, "secret": SECRET,
           "access_token_file": str(token)}
    async with run_gateway(settings_for(tmp_path, sandbox.url, payment=cfg)) as gateway:
        platform(sandbox).secret = SECRET
        r = await pay_request(gateway)
        assert r.status == 201, await r.text()
        ref = (await r.json())["MaThamChieu"]
    assert platform(sandbox).transactions[ref]["bearer"] == "Bearer tok-123"


# ---------------------------------------------------------------- hostile input, personal data


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


async def test_hostile_callbacks_get_99_never_a_500(gw: Gateway, sandbox: Sandbox) -> None:
    """Whatever arrives at the callback, the answer is HTTP 200 in the platform's shape: a body over
    the size limit, an array, deep nesting, a non-ASCII checksum, fields of the wrong type."""
    ref, hooks = await paid_setup(gw, sandbox)
    lost = (await sandbox_pay(sandbox, ref, deliver=False))["confirm"]
    bodies: list[Any] = [[lost], {"a": nested(200)}, {**lost, "MaXacThuc": "é" * 64},
                         {**lost, "SoTien": 25000.0}, {**lost, "MaLoi": None}, {**lost, "MaThamChieu": ["x"]},
                         {**lost, "SoTien": True}]
    for body in bodies:
        assert (await confirm(gw, body))["MaLoi"] == "99", body
    r = await gw.client.post("/v1/payments/confirm", data=b"{" + b" " * 2_000_000 + b"}",
                             headers={"Content-Type": "application/json"})
    assert r.status == 200 and (await r.json())["MaLoi"] == "99"
    assert (await payment(gw, ref))["state"] == "khoi-tao" and hooks.calls == []
    assert gw.metric("dvcgw_payment_callbacks_total", result="malformed") >= 6


async def test_hostile_payment_requests_are_4xx(gw: Gateway) -> None:
    """Too many lines, a huge amount, a path reference too long, a body that is not an object."""
    many = [ITEMS[0]] * 51
    assert (await pay_request(gw, items=many)).status == 422
    r = await pay_request(gw, items=[{**ITEMS[0], "SoTien": 10**13}])
    assert r.status == 422 and "items" in [e["field"] for e in (await r.json())["errors"]]
    r = await gw.client.post("/v1/payments", json=[1], headers={"X-API-Key": AGENCY_KEY})
    assert r.status == 422
    r = await gw.client.get("/v1/payments/" + "d" * 300, headers={"X-API-Key": AGENCY_KEY})
    assert r.status == 404


async def test_no_payer_data_in_the_logs(gw: Gateway, sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    """The payer's name, ID number and address never reach a log line, on success, on refusals or
    on reconciliation; the secret neither."""
    import logging

    caplog.set_level(logging.DEBUG)
    ref, _ = await paid_setup(gw, sandbox)
    await sandbox_pay(sandbox, ref, amount=1)
    await sandbox_pay(sandbox, ref, checksum="bad")
    await sandbox_pay(sandbox, ref, deliver=False)
    gw.clock.advance(301)
    await gw.app[PAYMENTS].reconcile()
    await gw.drain()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "paid (query)" in text
    for secret in (*PAYER.values(), SECRET):
        assert secret not in text
