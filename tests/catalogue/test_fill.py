"""The accept path and the catalogue (issue 15 §1): names filled when left out, TenTTHC no longer
required when the catalogue can name the procedure, strictness "warn" and "reject" for unknown codes,
and no judgement while the catalogue is empty."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.appkeys import CATALOGUE
from gateway.dossier import dossier_json_schema
from tests.harness import Gateway, Sandbox, run_gateway, settings_for
from tests.samples import sample_dossier

M = "000.00.01.H55-240315-00012"
UNKNOWN = "9.999999.000.00.00.H55"


def without(*names: str, **overrides: Any) -> dict[str, Any]:
    body = sample_dossier(M, **overrides)
    for name in names:
        del body[name]
    return body


async def pushed(gw: Gateway, sandbox: Sandbox) -> dict[str, Any]:
    """What the portal received for M (the last DongBoHoSoMC's dossier)."""
    await gw.drain()
    calls = [c for c in await sandbox.calls_for(M) if c["service"] == "DongBoHoSoMC"]
    return dict(calls[-1]["data"])


@asynccontextmanager
async def pulled_gateway(sandbox: Sandbox, tmp_path: Path, **catalogue: Any) -> AsyncIterator[Gateway]:
    """A gateway whose catalogue was pulled from the sandbox's shipped one."""
    async with run_gateway(settings_for(tmp_path, sandbox.url, catalogue=catalogue)) as gw:
        assert await gw.app[CATALOGUE].pull()
        yield gw


async def test_left_out_names_are_filled_from_the_catalogue(sandbox: Sandbox, tmp_path: Path) -> None:
    """A snapshot without TenTTHC, MaLinhVuc and TenLinhVuc (absent, null, blank) is accepted and
    reaches the portal with the names of its procedure (the long form of MaTTHC finds its national part)."""
    async with pulled_gateway(sandbox, tmp_path) as gw:
        r = await gw.put(M, without("TenTTHC", MaLinhVuc=None, TenLinhVuc="  "))
        assert r.status == 202, await r.text()
        sent = await pushed(gw, sandbox)
    assert sent["MaTTHC"] == "1.001612.000.00.00.H55"
    assert (sent["TenTTHC"], sent["MaLinhVuc"], sent["TenLinhVuc"]) == (
        "Đăng ký thành lập hộ kinh doanh", "G14-KH01", "Thành lập và hoạt động của hộ kinh doanh")


async def test_what_the_agency_sent_is_kept(sandbox: Sandbox, tmp_path: Path) -> None:
    """Names the agency sent are never replaced; only the missing one is filled."""
    async with pulled_gateway(sandbox, tmp_path) as gw:
        r = await gw.put(M, without("MaLinhVuc", TenTTHC="Tên riêng của tỉnh", TenLinhVuc="Lĩnh vực riêng"))
        assert r.status == 202, await r.text()
        sent = await pushed(gw, sandbox)
    assert (sent["TenTTHC"], sent["MaLinhVuc"], sent["TenLinhVuc"]) == ("Tên riêng của tỉnh", "G14-KH01",
                                                                       "Lĩnh vực riêng")


async def test_warn_accepts_an_unknown_code_counts_and_logs_it_without_personal_data(
        sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """strictness "warn": an unknown MaTTHC (with its TenTTHC) is accepted, counted, and logged with the
    code and the agency, never the owner's name or number; without TenTTHC it is a 422 naming TenTTHC."""
    async with pulled_gateway(sandbox, tmp_path, strictness="warn") as gw:
        with caplog.at_level(logging.WARNING, logger="dvcgw.catalogue"):
            r = await gw.put(M, sample_dossier(M, MaTTHC=UNKNOWN))
        assert r.status == 202, await r.text()
        assert gw.metric("dvcgw_catalogue_unknown_procedures_total", action="accepted") == 1
        r = await gw.put(M, without("TenTTHC", MaTTHC=UNKNOWN))
        body = await r.json()
        assert r.status == 422 and [e["field"] for e in body["errors"]] == ["TenTTHC"]
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert UNKNOWN in logged and "000.00.01.H55" in logged
    owner = sample_dossier(M)
    assert owner["ChuHoSo"] not in logged and owner["SoGiayToChuHoSo"] not in logged


async def test_reject_refuses_an_unknown_code_naming_it(sandbox: Sandbox, tmp_path: Path) -> None:
    """strictness "reject": an unknown MaTTHC is a 422 (error unknown_procedure) naming MaTTHC, and
    nothing is stored; a known one is accepted."""
    async with pulled_gateway(sandbox, tmp_path, strictness="reject") as gw:
        r = await gw.put(M, sample_dossier(M, MaTTHC=UNKNOWN))
        body = await r.json()
        assert r.status == 422 and body["error"] == "unknown_procedure"
        assert body["errors"][0]["field"] == "MaTTHC" and "catalogue" in body["errors"][0]["message"]
        assert gw.metric("dvcgw_catalogue_unknown_procedures_total", action="refused") == 1
        assert await gw.queue.status(M) is None
        assert (await gw.put(M, sample_dossier(M))).status == 202


async def test_an_empty_catalogue_rejects_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    """Never pulled, even under "reject": an unknown code is accepted (nothing to judge it by) and
    not counted; TenTTHC is then needed from the agency, as before the catalogue."""
    async with run_gateway(settings_for(tmp_path, sandbox.url, catalogue={"strictness": "reject"})) as gw:
        assert (await gw.put(M, sample_dossier(M, MaTTHC=UNKNOWN))).status == 202
        assert gw.metric("dvcgw_catalogue_unknown_procedures_total", action="refused") == 0
        r = await gw.put(M, without("TenTTHC"))
        assert r.status == 422 and [e["field"] for e in (await r.json())["errors"]] == ["TenTTHC"]


async def test_a_disabled_catalogue_keeps_tenthc_required(sandbox: Sandbox, tmp_path: Path) -> None:
    """[catalogue] enabled = false: a snapshot without TenTTHC is refused naming it."""
    async with run_gateway(settings_for(tmp_path, sandbox.url, catalogue={"enabled": False})) as gw:
        r = await gw.put(M, without("TenTTHC"))
        assert r.status == 422 and (await r.json())["errors"][0]["field"] == "TenTTHC"


def test_the_json_schema_no_longer_requires_tenthc() -> None:
    """The published schema follows the validator: TenTTHC optional, described as filled."""
    schema = dossier_json_schema()
    assert "TenTTHC" not in schema["required"] and "MaTTHC" in schema["required"]
    assert "procedure catalogue" in schema["properties"]["TenTTHC"]["description"]
