"""The procedure catalogue (issue 15 §1): pulled from the sandbox's shipped catalogue, kept in its
own file across restarts, served at /v1/procedures, and used by the accept path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.national_portal.client import PortalClient
from adapters.sandbox.state import shipped_procedures
from core.errors import PortalRejected
from gateway.appkeys import CATALOGUE
from gateway.catalogue import Catalogue
from tests.fakes.portal import portal_settings
from tests.harness import AGENCY_KEY, OPERATOR_KEY, Gateway, Sandbox, run_gateway, settings_for
from tests.samples import sample_dossier

M = "000.00.01.H55-240315-00012"
SHIPPED = ["1.000894", "1.001193", "1.001612", "1.003560", "2.000908"]


def catalogue_of(gw: Gateway) -> Catalogue:
    return gw.app[CATALOGUE]


async def get(gw: Gateway, path: str, key: str = AGENCY_KEY) -> tuple[int, Any]:
    r = await gw.client.get(path, headers={"X-API-Key": key})
    return r.status, await r.json()


def without(*names: str, **overrides: Any) -> dict[str, Any]:
    body = sample_dossier(M, **overrides)
    for name in names:
        del body[name]
    return body


# ---------------------------------------------------------------- the portal client


async def test_the_client_reads_both_catalogue_services(sandbox: Sandbox) -> None:
    """LayDanhSachTTHC (share endpoint) lists MATTHC and TENTTHC of every shipped procedure;
    LayThuTuc (integration endpoint, maTTHC) gives one detail with the §5.4 fields, None when unknown."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        client = PortalClient(portal_settings(sandbox.url), http)
        rows = await client.list_procedures()
        detail = await client.procedure("1.000894")
        missing = await client.procedure("9.999999")
        await sandbox.fault("reject", message="Lỗi giả lập", error_code="-9")
        with pytest.raises(PortalRejected) as refused:
            await client.list_procedures()
    assert sorted(r["MATTHC"] for r in rows) == SHIPPED and all(r["TENTTHC"] for r in rows)
    assert detail is not None and detail["TENTTHC"] == "Đăng ký khai sinh"
    assert detail["LINHVUCTHUCHIEN"][0] == {"MALINHVUC": "G09-TP03", "TENLINHVUC": "Hộ tịch"}
    assert {"CACHTHUCTHUCHIEN", "THANHPHANHOSO", "KETQUATHUCHIEN", "CANCUPHAPLY", "COQUANTHUCHIEN"} <= set(detail)
    assert missing is None
    assert refused.value.code == "-9"
    calls = (await sandbox.record())["catalogue_calls"]
    assert calls == {"LayDanhSachTTHC": 1, "LayThuTuc": 2}  # the fault answered before the service


# ---------------------------------------------------------------- pull, cache, restart


async def test_a_pull_is_kept_in_its_file_and_read_back_after_a_restart(sandbox: Sandbox, tmp_path: Path) -> None:
    """One pull stores every procedure with its field from LayThuTuc; a new gateway on the same
    file serves it without pulling (the sandbox's catalogue is emptied in between)."""
    settings = settings_for(tmp_path, sandbox.url)
    async with run_gateway(settings) as gw:
        assert catalogue_of(gw).pulled_at is None and catalogue_of(gw).size == 0
        assert await catalogue_of(gw).pull()
        pulled_at = catalogue_of(gw).pulled_at
        assert gw.metric("dvcgw_catalogue_procedures") == 5
        assert gw.metric("dvcgw_catalogue_pulls_total", result="ok") == 1
    assert (tmp_path / "catalogue.sqlite3").exists()
    await sandbox.admin("procedures", {"procedures": []})
    async with run_gateway(settings) as gw:
        catalogue = catalogue_of(gw)
        assert catalogue.size == 5 and catalogue.pulled_at == pulled_at
        found = catalogue.find("1.001612")
        assert found is not None
        assert (found.ten_tthc, found.ma_linh_vuc, found.ten_linh_vuc) == (
            "Đăng ký thành lập hộ kinh doanh", "G14-KH01", "Thành lập và hoạt động của hộ kinh doanh")
        assert gw.metric("dvcgw_catalogue_procedures") == 5
    assert (await sandbox.record())["catalogue_calls"] == {"LayDanhSachTTHC": 1, "LayThuTuc": 5}


async def test_details_younger_than_the_interval_are_not_fetched_again(sandbox: Sandbox, tmp_path: Path) -> None:
    """A second pull lists the catalogue again but reuses each detail until it is older than
    [catalogue] interval; then every detail is fetched again, and a changed name is taken."""
    async with run_gateway(settings_for(tmp_path, sandbox.url, catalogue={"interval": "1h"})) as gw:
        assert await catalogue_of(gw).pull()
        assert await catalogue_of(gw).pull()
        assert (await sandbox.record())["catalogue_calls"] == {"LayDanhSachTTHC": 2, "LayThuTuc": 5}
        renamed = [dict(p, TENTTHC=p["TENTTHC"] + " (sửa đổi)") for p in sandbox.state.procedures]
        await sandbox.admin("procedures", {"procedures": renamed})
        gw.clock.advance(3601)
        assert await catalogue_of(gw).pull()
        assert (await sandbox.record())["catalogue_calls"] == {"LayDanhSachTTHC": 3, "LayThuTuc": 10}
        found = catalogue_of(gw).find("1.000894")
        assert found is not None and found.ten_tthc == "Đăng ký khai sinh (sửa đổi)"


async def test_a_failed_or_empty_pull_keeps_the_previous_catalogue(sandbox: Sandbox, tmp_path: Path) -> None:
    """A portal outage, or an empty LayDanhSachTTHC while a catalogue is held, leaves the held one
    in use (and its pull time), counted as failed; a failed LayThuTuc keeps that procedure's detail."""
    async with run_gateway(settings_for(tmp_path, sandbox.url, catalogue={"interval": "1h"})) as gw:
        catalogue = catalogue_of(gw)
        assert await catalogue.pull()
        pulled_at = catalogue.pulled_at
        held = catalogue.find("1.003560")
        await sandbox.fault("http503")
        assert not await catalogue.pull()
        await sandbox.admin("procedures", {"procedures": []})
        assert not await catalogue.pull()
        assert catalogue.size == 5 and catalogue.pulled_at == pulled_at
        assert gw.metric("dvcgw_catalogue_pulls_total", result="failed") == 2
        await sandbox.admin("procedures", {"procedures": list(shipped_procedures())})
        gw.clock.advance(3601)  # every detail is due again ...
        await sandbox.fault("slow", delay=0, count=1)  # ... the list call is answered ...
        await sandbox.fault("http503", count=5)  # ... and every LayThuTuc fails
        assert await catalogue.pull()
        assert catalogue.pulled_at != pulled_at
        kept = catalogue.find("1.003560")
        assert held is not None and kept is not None
        assert (kept.ma_linh_vuc, kept.detail, kept.detail_at) == (held.ma_linh_vuc, held.detail, held.detail_at)


# ---------------------------------------------------------------- routes


@pytest.fixture
async def pulled(sandbox: Sandbox, tmp_path: Path) -> Any:
    async with run_gateway(settings_for(tmp_path, sandbox.url)) as gw:
        assert await catalogue_of(gw).pull()
        yield gw


async def test_procedures_are_listed_filtered_and_paged(pulled: Gateway) -> None:
    """?q= matches code or name, case and accents ignored; ?MaLinhVuc= exactly; pages follow
    ``next``; the operator may read too."""
    status, page = await get(pulled, "/v1/procedures")
    assert status == 200 and [p["MaTTHC"] for p in page["items"]] == SHIPPED and page["next"] is None
    assert page["catalogue"]["procedures"] == 5 and page["catalogue"]["pulled_at"]
    _, found = await get(pulled, "/v1/procedures?q=DANG%20KY")
    assert [p["MaTTHC"] for p in found["items"]] == ["1.000894", "1.001193", "1.001612"]
    _, by_field = await get(pulled, "/v1/procedures?MaLinhVuc=G09-TP03", key=OPERATOR_KEY)
    assert [(p["MaTTHC"], p["TenLinhVuc"]) for p in by_field["items"]] == [("1.000894", "Hộ tịch"),
                                                                           ("1.001193", "Hộ tịch")]
    _, first = await get(pulled, "/v1/procedures?limit=2")
    _, second = await get(pulled, f"/v1/procedures?limit=2&cursor={first['next']}")
    _, third = await get(pulled, f"/v1/procedures?limit=2&cursor={second['next']}")
    assert [p["MaTTHC"] for p in first["items"] + second["items"] + third["items"]] == SHIPPED
    assert third["next"] is None
    _, code = await get(pulled, "/v1/procedures?q=1.0035")
    assert [p["MaTTHC"] for p in code["items"]] == ["1.003560"]


async def test_one_procedure_and_the_404_naming_it(pulled: Gateway) -> None:
    """GET /v1/procedures/{MaTTHC}: the summary plus the portal's row and detail as sent; the
    province's long form of a code finds its national part; an unknown code is a 404 naming MaTTHC."""
    status, one = await get(pulled, "/v1/procedures/1.000894")
    assert status == 200
    assert (one["TenTTHC"], one["MaLinhVuc"]) == ("Đăng ký khai sinh", "G09-TP03")
    assert one["detail"]["KETQUATHUCHIEN"] == [{"MAKETQUA": "KQ002", "TENKETQUA": "Giấy khai sinh (bản chính)"}]
    assert one["row"]["MATTHC"] == "1.000894" and one["detail_fetched_at"]
    status, long_form = await get(pulled, "/v1/procedures/1.000894.000.00.00.H55")
    assert status == 200 and long_form["MaTTHC"] == "1.000894"
    status, missing = await get(pulled, "/v1/procedures/9.999999")
    assert status == 404 and missing["error"] == "not_found" and "catalogue" in missing["message"]
    assert missing["errors"][0]["field"] == "MaTTHC"


async def test_the_routes_refuse_what_they_must(pulled: Gateway) -> None:
    """No key: 401; a bad limit: 400 naming limit; an over-long q: 422 naming q (never a 500)."""
    r = await pulled.client.get("/v1/procedures")
    assert r.status == 401
    status, body = await get(pulled, "/v1/procedures?limit=0")
    assert status == 400 and body["errors"][0]["field"] == "limit"
    status, body = await get(pulled, "/v1/procedures?q=" + "x" * 201)
    assert status == 422 and body["errors"][0]["field"] == "q"


async def test_disabled_catalogue_routes_are_404(sandbox: Sandbox, tmp_path: Path) -> None:
    """[catalogue] enabled = false: no catalogue, the routes say so."""
    async with run_gateway(settings_for(tmp_path, sandbox.url, catalogue={"enabled": False})) as gw:
        status, body = await get(gw, "/v1/procedures")
        assert status == 404 and "disabled" in body["message"]
        status, _ = await get(gw, "/v1/procedures/1.000894")
        assert status == 404
