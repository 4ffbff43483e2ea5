"""The agency/operator HTTP contract: status codes, the error shape, dead-letter routes, OpenAPI."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from gateway import openapi
from tests.harness import AGENCY_KEY, OPERATOR_KEY, OTHER_KEY, Gateway, Sandbox, run_gateway, settings_for
from tests.samples import sample_dossier, sample_progress

M = "000.00.01.H55-240315-00012"


def assert_shape(body: dict[str, Any], code: str) -> None:
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], list)


async def test_missing_or_unknown_key_is_401(gateway: Gateway) -> None:
    """No key and an unknown key both get 401 in the house error shape."""
    r = await gateway.client.put(f"/v1/dossiers/{M}", json=sample_dossier(M))
    assert r.status == 401
    assert_shape(await r.json(), "unauthenticated")
    r = await gateway.put(M, sample_dossier(M), key="not-a-key")
    assert r.status == 401


async def test_unit_outside_the_agency_is_403(gateway: Gateway) -> None:
    """An agency may only send dossiers of its own units (first dash segment of MaHoSo)."""
    r = await gateway.put(M, sample_dossier(M), key=OTHER_KEY)
    assert r.status == 403
    body = await r.json()
    assert_shape(body, "forbidden")
    assert body["errors"][0]["field"] == "MaHoSo"
    r = await gateway.client.get(f"/v1/dossiers/{M}", headers={"X-API-Key": OTHER_KEY})
    assert r.status == 403


async def test_body_over_the_limit_is_413(gateway: Gateway) -> None:
    """A body over max_body_bytes gets 413 and nothing is accepted."""
    big = sample_dossier(M, GhiChu="x" * 1_100_000)
    r = await gateway.put(M, big)
    assert r.status == 413
    assert_shape(await r.json(), "payload_too_large")
    r = await gateway.client.get(f"/v1/dossiers/{M}", headers={"X-API-Key": AGENCY_KEY})
    assert r.status == 404


async def test_non_json_content_type_is_415(gateway: Gateway) -> None:
    """Only JSON bodies are taken."""
    r = await gateway.client.put(f"/v1/dossiers/{M}", data="MaHoSo=1",
                                 headers={"X-API-Key": AGENCY_KEY, "Content-Type": "text/plain"})
    assert r.status == 415
    assert_shape(await r.json(), "unsupported_media_type")


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe", b"", b"[1,"])
async def test_unparseable_body_is_400(gateway: Gateway, raw: bytes) -> None:
    """A body that does not parse as JSON gets 400, never 500."""
    r = await gateway.client.put(f"/v1/dossiers/{M}", data=raw,
                                 headers={"X-API-Key": AGENCY_KEY, "Content-Type": "application/json"})
    assert r.status == 400
    assert_shape(await r.json(), "malformed_json")


BAD_INPUTS = [
    ("missing MaTTHC", {"MaTTHC": None}, "MaTTHC"),
    ("impossible date", {"NgayTiepNhan": "20240230120000"}, "NgayTiepNhan"),
    ("code outside its table", {"KenhThucHien": "9"}, "KenhThucHien"),
    ("state outside its table", {"TrangThaiHoSo": "11"}, "TrangThaiHoSo"),
    ("unknown field (a typo)", {"TrangThaiHoso": "4"}, "TrangThaiHoso"),
    ("body code differs from path", {"MaHoSo": "000.00.01.H55-240315-99999"}, "MaHoSo"),
    ("list row not an object", {"TaiLieuNop": ["x"]}, "TaiLieuNop[0]"),
    ("nested required field", {"DanhSachLePhi": [{"Gia": "1000"}]}, "DanhSachLePhi[0].TenPhiLePhi"),
    ("negative fee", {"DanhSachLePhi": [{"TenPhiLePhi": "Lệ phí", "Gia": "-5"}]}, "DanhSachLePhi[0].Gia"),
    ("bad URL", {"DanhSachGiayToKetQua": [{"TenGiayTo": "GCN", "DuongDanTepTinKetQua": "ftp:x"}]},
     "DanhSachGiayToKetQua[0].DuongDanTepTinKetQua"),
    ("boolean as code", {"LoaiDoiTuong": True}, "LoaiDoiTuong"),
]


@pytest.mark.parametrize(("label", "change", "field"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
async def test_bad_input_is_422_naming_the_field(gateway: Gateway, label: str, change: dict[str, Any],
                                                 field: str) -> None:
    """Each bad input gets 422 with an entry naming its field, and nothing is accepted."""
    body = sample_dossier(M)
    for k, v in change.items():
        if v is None:
            body.pop(k)
        else:
            body[k] = v
    r = await gateway.put(M, body)
    assert r.status == 422, label
    out = await r.json()
    assert_shape(out, "validation_failed")
    assert field in [e["field"] for e in out["errors"]], out
    assert (await gateway.client.get(f"/v1/dossiers/{M}", headers={"X-API-Key": AGENCY_KEY})).status == 404


async def test_bad_input_never_costs_what_was_accepted(gateway: Gateway, sandbox: Sandbox) -> None:
    """A rejected request after an accepted one leaves the accepted event in place and delivered."""
    assert (await gateway.put(M, sample_dossier(M))).status == 202
    assert (await gateway.put(M, sample_dossier(M, NgayTiepNhan="2024"))).status == 422
    assert (await gateway.progress(M, [{"MaHoSo": M}])).status == 422
    await gateway.drain()
    st = await gateway.status(M)
    assert st["delivery"] == "delivered" and st["delivered_state"] == "4"


async def test_forbidden_transition_is_409_only_when_enforced(sandbox: Sandbox, tmp_path: Path) -> None:
    """10 → 4 leaves a final state: counted as unusual by default, refused with 409 under enforce."""
    async with run_gateway(settings_for(tmp_path / "a", sandbox.url)) as gw:
        assert (await gw.put(M, sample_dossier(M, TrangThaiHoSo="10"))).status == 202
        assert (await gw.put(M, sample_dossier(M, TrangThaiHoSo="4"))).status == 202
        assert gw.metric("dvcgw_unusual_transitions_total", **{"from": "10", "to": "4"}) == 1
    async with run_gateway(settings_for(tmp_path / "b", sandbox.url, transitions={"enforce": True})) as gw:
        assert (await gw.put(M, sample_dossier(M, TrangThaiHoSo="10"))).status == 202
        r = await gw.put(M, sample_dossier(M, TrangThaiHoSo="4"))
        assert r.status == 409
        body = await r.json()
        assert_shape(body, "invalid_transition")
        assert "10" in body["message"] and "4" in body["message"]
        assert (await gw.status(M))["accepted_state"] == "10"


async def test_status_of_an_unknown_dossier_is_404(gateway: Gateway) -> None:
    """GET of a dossier the gateway never accepted is 404 in the house shape."""
    r = await gateway.client.get(f"/v1/dossiers/{M}", headers={"X-API-Key": AGENCY_KEY})
    assert r.status == 404
    assert_shape(await r.json(), "not_found")


async def test_operator_routes_need_the_operator_key(gateway: Gateway) -> None:
    """Agencies cannot list or replay dead letters: 403 naming the operator grant (issue 17)."""
    r = await gateway.client.get("/v1/dead-letters", headers={"X-API-Key": AGENCY_KEY})
    assert r.status == 403 and (await r.json())["grant"] == "operator"
    assert (await gateway.operator("POST", "/v1/dead-letters/1/replay")).status == 404
    assert (await gateway.operator("DELETE", "/v1/dead-letters/1")).status == 404


async def _dead_then_newer(gateway: Gateway, sandbox: Sandbox) -> str:
    """A dead snapshot (state 9) whose successor (state 10) was delivered after it."""
    await gateway.put(M, sample_dossier(M))
    await gateway.drain()
    await sandbox.fault(mode="reject", count=1, message="Từ chối")
    await gateway.put(M, sample_dossier(M, TrangThaiHoSo="9"))
    await gateway.drain()
    items = (await (await gateway.operator("GET", "/v1/dead-letters")).json())["items"]
    assert len(items) == 1
    return str(items[0]["id"])


async def test_replay_redelivers_and_refuses_a_second_replay(gateway: Gateway, sandbox: Sandbox) -> None:
    """Replay re-enters the dead snapshot; it is delivered; replaying it again is 409."""
    dl = await _dead_then_newer(gateway, sandbox)
    r = await gateway.operator("POST", f"/v1/dead-letters/{dl}/replay")
    assert r.status == 202 and (await r.json())["result"] == "replayed"
    await gateway.drain()
    assert (await gateway.status(M))["delivered_state"] == "9"
    assert (await gateway.operator("POST", f"/v1/dead-letters/{dl}/replay")).status == 409
    assert (await (await gateway.operator("GET", "/v1/dead-letters")).json())["items"] == []


async def test_replay_of_a_superseded_snapshot_sends_nothing(gateway: Gateway, sandbox: Sandbox) -> None:
    """A dead snapshot overtaken by a delivered newer one is reported superseded and never sent."""
    dl = await _dead_then_newer(gateway, sandbox)
    await gateway.put(M, sample_dossier(M, TrangThaiHoSo="10"))
    await gateway.drain()
    before = len(await sandbox.calls_for(M))
    r = await gateway.operator("POST", f"/v1/dead-letters/{dl}/replay")
    assert r.status == 202 and (await r.json())["result"] == "superseded"
    await gateway.drain()
    assert len(await sandbox.calls_for(M)) == before
    assert (await gateway.status(M))["delivered_state"] == "10"


async def _cli(gateway: Gateway, *args: str) -> tuple[int, str, str]:
    url = str(gateway.client.make_url("/"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "dlq", "--url", url, "--key", OPERATOR_KEY, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_lists_shows_replays_and_drops(gateway: Gateway, sandbox: Sandbox) -> None:
    """`dvcgw dlq` drives the operator API: list, show, replay (superseded), drop, and errors."""
    dl = await _dead_then_newer(gateway, sandbox)
    rc, out, _ = await _cli(gateway, "list")
    assert rc == 0 and M in out and "Từ chối" in out
    rc, out, _ = await _cli(gateway, "show", dl)
    assert rc == 0 and json.loads(out)["reason_class"] == "rejected"
    await gateway.put(M, sample_dossier(M, TrangThaiHoSo="10"))
    await gateway.drain()
    rc, out, _ = await _cli(gateway, "replay", dl)
    assert rc == 0 and json.loads(out)["result"] == "superseded"
    rc, _, err = await _cli(gateway, "replay", dl)
    assert rc == 3 and "409" in err
    rc, _, _ = await _cli(gateway, "drop", dl)
    assert rc == 0
    rc, _, err = await _cli(gateway, "show", "424242")
    assert rc == 3 and "404" in err


async def test_readyz_healthz_and_metrics(gateway: Gateway) -> None:
    """Liveness, readiness (storage ok, circuit closed) and the first metric families are served."""
    assert (await gateway.client.get("/healthz")).status == 200
    r = await gateway.client.get("/readyz")
    body = await r.json()
    assert r.status == 200 and body["checks"]["storage"]["status"] == "ok"
    assert body["checks"]["portal"]["circuit"] == "closed"
    await gateway.put(M, sample_dossier(M))
    await gateway.progress(M, sample_progress(M, 2))
    text = await (await gateway.client.get("/metrics")).text()
    for name in ("dvcgw_events_accepted_total", "dvcgw_queue_dossiers", "dvcgw_oldest_pending_age_seconds",
                 "dvcgw_dead_letters", "dvcgw_circuit_state", "dvcgw_accept_duration_seconds"):
        assert name in text, name
    assert 'dvcgw_events_accepted_total{kind="progress"} 2.0' in text
    assert M not in text  # never a dossier code in a label


def served_routes(gw: Gateway) -> set[tuple[str, str]]:
    served = set()
    for route in gw.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD" and path:
            served.add((path, route.method.lower()))
    return served


def documented_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p, m) for p, ops in doc["paths"].items() for m in ops if m != "parameters"}


async def test_openapi_is_valid_and_lists_every_route(gateway: Gateway) -> None:
    """/openapi.json is a valid OpenAPI 3.1 document describing every route the app serves."""
    doc = await (await gateway.client.get("/openapi.json")).json()
    validate(doc)
    assert served_routes(gateway) == documented_routes(doc)


def secured_operations(doc: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, list[str]]]]:
    return {(p, m): op["security"] for p, ops in doc["paths"].items() for m, op in ops.items()
            if m != "parameters" and "security" in op}


async def test_openapi_declares_the_bearer_scheme_beside_the_api_key(gateway: Gateway) -> None:
    """``Authorization: Bearer <key>`` is accepted wherever ``X-API-Key`` is, so the served document
    declares it as an alternative on every secured operation; both alternatives really work."""
    doc = await (await gateway.client.get("/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    for who in ("agency", "operator"):
        assert schemes[f"{who}Bearer"]["type"] == "http" and schemes[f"{who}Bearer"]["scheme"] == "bearer"
    secured = secured_operations(doc) | secured_operations(openapi.document(signing=True))
    assert len(secured) >= 7
    for operation, security in secured.items():
        assert security in ([{"agencyKey": []}, {"agencyBearer": []}],
                            [{"operatorKey": []}, {"operatorBearer": []}],
                            # read by both (GET /v1/kpi: the operator, or an agency for its own units)
                            [{"operatorKey": []}, {"operatorBearer": []}, {"agencyKey": []}, {"agencyBearer": []}],
                            ), operation
    r = await gateway.client.get(f"/v1/dossiers/{M}", headers={"Authorization": f"Bearer {AGENCY_KEY}"})
    assert r.status == 404, await r.text()
    r = await gateway.client.get("/v1/dead-letters", headers={"Authorization": f"Bearer {OPERATOR_KEY}"})
    assert r.status == 200, await r.text()


async def test_openapi_lists_the_signing_routes_when_signing_is_configured(sandbox: Sandbox,
                                                                          tmp_path: Path) -> None:
    """With [signing] configured, /openapi.json still describes exactly the routes served."""
    from tests.fakes.signing_pki import TestPki

    root, _ = TestPki(base_url="http://127.0.0.1:1").write_roots(tmp_path)
    settings = settings_for(tmp_path, sandbox.url, signing={"trust_roots": [str(root)]})
    async with run_gateway(settings) as gw:
        doc = await (await gw.client.get("/openapi.json")).json()
        validate(doc)
        assert served_routes(gw) == documented_routes(doc)
        assert ("/v1/signatures", "post") in served_routes(gw)
