"""Issue 15 end to end, every counterpart a real server on 127.0.0.1: the sandbox (the national
portal, its inbound pull and the payment platform), the fake provincial one-stop system, the fake
VNPT e-receipt tenant, and the real gateway between them.

1. a citizen's dossier is seeded on the portal;
2. it is pulled and delivered to the provincial system;
3. the agency (the provincial system) syncs it and asks for its fees to be paid;
4. the platform sends a valid CONFIRM;
5. the dossier reaches the portal again with DuocThanhToanTrucTuyen = "1";
6. a receipt per fee kind is issued on VNPT under the §8 fkeys, with the payment's lines;
and then an operator's refund cancels both receipts. Each step is asserted on the counterparts'
own records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.sandbox.payment import PAYMENTS as SANDBOX_PAYMENTS
from gateway.appkeys import INBOUND, JOBS, PAYMENTS
from tests.fakes.portal import dossier
from tests.fakes.provincial import FakeProvincial, running_provincial
from tests.fakes.vnpt import ADMIN, SERVICE, FakeVnpt, running_vnpt
from tests.harness import AGENCY_KEY, OPERATOR_KEY, Gateway, Sandbox, run_gateway, settings_for
from tests.samples import sample_dossier

pytestmark = pytest.mark.usefixtures("loopback_only")

M = "000.00.01.H55-241206-00042"
SECRET = "e2e-payment-secret"
PARTNER = "DOITAC-H55"
PAYER = {"HoTenNguoiNop": "Người Nộp Thử", "SoCMNDNguoiNop": "000000000001", "DiaChiNguoiNop": "Xã Thử"}
ITEMS = [{"LoaiPhiLePhi": "1", "MaPhiLePhi": "PHI01", "TenPhiLePhi": "Phí thẩm định", "SoTien": 20000},
         {"LoaiPhiLePhi": "2", "MaPhiLePhi": "LP01", "TenPhiLePhi": "Lệ phí cấp giấy", "SoTien": 5000}]


@dataclass
class World:
    gw: Gateway
    sandbox: Sandbox
    prov: FakeProvincial
    vnpt: FakeVnpt

    async def portal_pushes(self) -> list[dict[str, Any]]:
        return [c for c in await self.sandbox.calls_for(M) if c["service"] == "DongBoHoSoMC"]


@pytest.fixture
async def world(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[World]:
    async with running_provincial() as prov, running_vnpt() as vnpt:
        settings = settings_for(
            tmp_path, sandbox.url,
            inbound={"enabled": True},
            provincial={"url": prov.url, "auth_header": prov.auth_header, "auth_value": prov.auth_value},
            catalogue={"enabled": False},
            payment={"enabled": True, "init_url": f"{sandbox.url}/payment/init",
                     "query_url": f"{sandbox.url}/payment/query", "bill_url": f"{sandbox.url}/payment/bill",
                     "partner_code": PARTNER, "secret": SECRET, "ip": "203.0.113.10", "timeout": "5s"},
            receipts={"enabled": True, "base_url": vnpt.url, "account": ADMIN[0], "acpass": ADMIN[1],
                      "username": SERVICE[0], "password": SERVICE[1], "timeout": "5s", "wsdl_timeout": "5s"})
        async with run_gateway(settings) as gw:
            platform = sandbox.app[SANDBOX_PAYMENTS]
            platform.secret = SECRET
            platform.callback_url = str(gw.client.make_url("/v1/payments/confirm"))
            yield World(gw, sandbox, prov, vnpt)


async def test_a_citizen_dossier_is_delivered_paid_synced_and_receipted(world: World) -> None:
    gw, sandbox = world.gw, world.sandbox
    # 1-2. seeded on the portal, pulled, delivered to the provincial system
    citizen = dossier(M, TrangThaiHoSo="new", KenhThucHien="2")
    await sandbox.admin("inbound", {"dossiers": [citizen]})
    await gw.app[INBOUND].pull()
    await gw.app[JOBS].drain()
    assert world.prov.stored[M]["dossier"] == citizen and world.prov.stored[M]["TrangThaiHoSo"] == "2"

    # 3. the provincial system syncs it (fees due, not yet paid) and asks for the payment
    snapshot = sample_dossier(M, KenhThucHien="2", DuocThanhToanTrucTuyen="0")
    assert (await gw.put(M, snapshot)).status == 202
    await gw.drain()
    assert [p["data"]["DuocThanhToanTrucTuyen"] for p in await world.portal_pushes()] == ["0"]
    r = await gw.client.post("/v1/payments", json={"MaHoSo": M, "items": ITEMS, "payer": PAYER},
                             headers={"X-API-Key": AGENCY_KEY})
    assert r.status == 201, await r.text()
    ref = (await r.json())["MaThamChieu"]

    # 4. the platform confirms (a valid checksum, through the gateway's real callback route)
    async with sandbox.http.post(f"{sandbox.url}/_sandbox/payments/{ref}/pay", json={}) as resp:
        assert resp.status == 200, await resp.text()
    state = await (await gw.client.get(f"/v1/payments/{ref}", headers={"X-API-Key": AGENCY_KEY})).json()
    assert state["state"] == "thanh-cong"

    # 5. the portal gets the dossier again, paid online
    await gw.drain()
    assert [p["data"]["DuocThanhToanTrucTuyen"] for p in await world.portal_pushes()] == ["0", "1"]

    # 6. one receipt per fee kind on VNPT, under the §8 keys, with the payment's lines and payer
    await gw.app[JOBS].drain()
    assert sorted(world.vnpt.receipts) == [f"{M}-LEPHI-1", f"{M}-PHI-1"]
    invoices = {c.invoices[0]["key"]: c.invoices[0] for c in world.vnpt.calls_of("ImportAndPublishInv")}
    assert [(p["ProdName"], p["Amount"]) for p in invoices[f"{M}-PHI-1"]["Products"]] == [("Phí thẩm định", "20000")]
    assert [(p["ProdName"], p["Amount"]) for p in invoices[f"{M}-LEPHI-1"]["Products"]] == [
        ("Lệ phí cấp giấy", "5000")]
    assert {inv["Invoice"]["CusName"] for inv in invoices.values()} == {PAYER["HoTenNguoiNop"]}
    assert {inv["Invoice"]["CusCode"] for inv in invoices.values()} == {M}
    history = [(h["event"], h["detail"].split()[0]) for h in
               (await (await gw.client.get(f"/v1/payments/{ref}", headers={"X-API-Key": AGENCY_KEY})).json())["history"]
               if h["event"].startswith("receipt")]
    assert sorted(history) == sorted([("receipt_queued", f"{M}-PHI-1"), ("receipt_queued", f"{M}-LEPHI-1"),
                                      ("receipt_issued", f"{M}-PHI-1"), ("receipt_issued", f"{M}-LEPHI-1")])

    # a replayed CONFIRM changes nothing: no third push, no second receipt
    async with sandbox.http.post(f"{sandbox.url}/_sandbox/payments/{ref}/resend", json={}) as resp:
        assert resp.status == 200, await resp.text()
    await gw.drain()
    await gw.app[JOBS].drain()
    assert len(await world.portal_pushes()) == 2 and len(world.vnpt.calls_of("ImportAndPublishInv")) == 2

    # a refund cancels both receipts (un-confirm, then cancel, per key)
    r = await gw.client.post(f"/v1/payments/{ref}/refund", headers={"X-API-Key": OPERATOR_KEY})
    assert r.status == 202, await r.text()
    assert sorted((await r.json())["cancelling"]) == [f"{M}-LEPHI-1", f"{M}-PHI-1"]
    await gw.app[JOBS].drain()
    assert {k: v.status for k, v in world.vnpt.receipts.items()} == {f"{M}-PHI-1": "CANCELLED",
                                                                       f"{M}-LEPHI-1": "CANCELLED"}
    r = await gw.client.post(f"/v1/payments/{ref}/refund", headers={"X-API-Key": OPERATOR_KEY})
    assert r.status == 409


async def test_a_second_payment_of_the_dossier_gets_new_receipt_keys(world: World) -> None:
    """k counts up per kind: the second payment's receipt is <MaHoSo>-PHI-2, never a reuse."""
    gw = world.gw
    assert (await gw.put(M, sample_dossier(M))).status == 202
    await gw.drain()
    refs = []
    for _ in range(2):
        r = await gw.client.post("/v1/payments", json={"MaHoSo": M, "items": ITEMS[:1], "payer": PAYER},
                                 headers={"X-API-Key": AGENCY_KEY})
        assert r.status == 201, await r.text()
        refs.append((await r.json())["MaThamChieu"])
        async with world.sandbox.http.post(f"{world.sandbox.url}/_sandbox/payments/{refs[-1]}/pay", json={}) as resp:
            assert resp.status == 200
        await gw.app[JOBS].drain()
    assert sorted(world.vnpt.receipts) == [f"{M}-PHI-1", f"{M}-PHI-2"]
    assert gw.app[PAYMENTS].transaction(refs[1]) is not None


async def test_every_route_of_the_full_app_is_documented(world: World) -> None:
    """With inbound, payments and receipts on, the served OpenAPI document lists exactly the routes
    served (the refund route among them)."""
    from tests.gateway.test_http_api import documented_routes, served_routes

    doc = await (await world.gw.client.get("/openapi.json")).json()
    assert ("/v1/payments/{MaThamChieu}/refund", "post") in documented_routes(doc)
    assert served_routes(world.gw) == documented_routes(doc)
