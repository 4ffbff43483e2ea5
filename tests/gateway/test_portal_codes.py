"""The dossier-code rule of spec §8, end to end: the real gateway and sync engine against the real
sandbox (127.0.0.1 port 0), the rule's own SQLite file in the test's folder."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from config.schema import Settings
from core.errors import PortalRejected
from gateway.dossier import validate_snapshot
from gateway.portalcode.mapping import CodeMapper, generated_code
from tests.harness import OTHER_KEY, OTHER_UNIT, UNIT, Sandbox, run_gateway, settings_for
from tests.samples import sample_dossier, sample_progress

M = "000.00.01.H55-240315-00012"  # unit 000.00.01.H55, outside province H56
M2 = "000.00.01.H55-240315-00013"
PREFIX = "000.00.01.H56"  # the unit's MaDinhDanh
FIRST = f"{PREFIX}-240315-00001"


def rule_settings(tmp_path: Path, url: str, **portal: Any) -> Settings:
    s = settings_for(tmp_path, url, portal={"province_code": "H56", **portal})
    first = dataclasses.replace(s.agencies[0], madinhdanh={UNIT: PREFIX})
    return dataclasses.replace(s, agencies=(first, *s.agencies[1:]))


def services(calls: list[dict[str, Any]]) -> list[str]:
    return [c["service"] for c in calls]


async def test_a_generated_code_carries_the_dossier_and_its_progress(sandbox: Sandbox, tmp_path: Path) -> None:
    """Steps 3–5: a unit outside the province gets <MaDinhDanh>-<yyMMdd of NgayTiepNhan>-00001,
    checked with TraCuuHoSo first; the create, its progress and the next update all carry it; the
    agency keeps its own code, and the status shows both."""
    async with run_gateway(rule_settings(tmp_path, sandbox.url)) as gw:
        assert (await gw.put(M, sample_dossier(M))).status == 202
        assert (await gw.progress(M, sample_progress(M, 3))).status == 202
        await gw.drain()
        assert (await gw.put(M, sample_dossier(M, TrangThaiHoSo="9"))).status == 202
        await gw.drain()
        st = await gw.status(M)
    assert services(await sandbox.calls_for(M)) == ["TraCuuHoSo"]  # is the local code itself there? no
    calls = await sandbox.calls_for(FIRST)
    assert services(calls) == ["TraCuuHoSo", "DongBoHoSoMC", "CapNhatTienDoHoSoMC", "DongBoHoSoMC"]
    assert [c.get("isUpdating") for c in calls if c["service"] == "DongBoHoSoMC"] == ["False", "True"]
    sent = calls[1]["data"]
    assert sent == {**validate_snapshot(M, sample_dossier(M)).payload, "MaHoSo": FIRST}
    assert {i["MaHoSo"] for i in calls[2]["items"]} == {FIRST} and len(calls[2]["items"]) == 3
    assert (st["MaHoSo"], st["portal_code"], st["delivery"]) == (M, FIRST, "delivered")


async def test_numbers_follow_per_unit_and_day_and_are_never_reused(sandbox: Sandbox, tmp_path: Path) -> None:
    """The sequence is per MaDinhDanh and per day of NgayTiepNhan, kept in its own file: after a
    restart the next dossier of the day draws the next number, and known dossiers keep theirs."""
    other_day = "000.00.01.H55-240316-00001"
    settings = rule_settings(tmp_path, sandbox.url)
    async with run_gateway(settings) as gw:
        await gw.put(M, sample_dossier(M))
        await gw.put(M2, sample_dossier(M2))
        await gw.put(other_day, sample_dossier(other_day, NgayTiepNhan="20240316080000"))
        await gw.drain()
        codes = [(await gw.status(m))["portal_code"] for m in (M, M2, other_day)]
    assert sorted(codes[:2]) == [FIRST, f"{PREFIX}-240315-00002"] and codes[2] == f"{PREFIX}-240316-00001"
    third = "000.00.01.H55-240315-00099"
    async with run_gateway(settings) as gw:
        await gw.put(third, sample_dossier(third))
        await gw.progress(M, sample_progress(M, 1))
        await gw.drain()
        assert (await gw.status(third))["portal_code"] == f"{PREFIX}-240315-00003"
        assert (await gw.status(M))["portal_code"] == codes[0]
    progress_calls = [c for c in await sandbox.calls_for(codes[0]) if c["service"] == "CapNhatTienDoHoSoMC"]
    assert len(progress_calls) == 1
    with sqlite3.connect(tmp_path / "portal_codes.sqlite3") as conn:
        assert conn.execute("SELECT last FROM seq WHERE prefix = ? AND day = '240315'", (PREFIX,)).fetchone() == (3,)


async def test_a_generated_code_the_portal_has_is_skipped(sandbox: Sandbox, tmp_path: Path) -> None:
    """Step 5: the first number's code is already on the portal (another system drew it), so the
    dossier takes the next number; the dossier on the portal is left alone."""
    await sandbox.know({"MaHoSo": FIRST})
    async with run_gateway(rule_settings(tmp_path, sandbox.url)) as gw:
        await gw.put(M, sample_dossier(M))
        await gw.drain()
        assert (await gw.status(M))["portal_code"] == f"{PREFIX}-240315-00002"
    assert services(await sandbox.calls_for(FIRST)) == ["TraCuuHoSo"]
    assert sandbox.state.dossiers[FIRST] == {"MaHoSo": FIRST}


async def test_the_alternative_code_is_used_and_never_forwarded(sandbox: Sandbox, tmp_path: Path) -> None:
    """Step 2: MaHoSoKhac becomes the portal code; the field itself never reaches the portal."""
    alt = "000.00.01.H56-240315-77777"
    async with run_gateway(rule_settings(tmp_path, sandbox.url)) as gw:
        await gw.put(M, sample_dossier(M, MaHoSoKhac=alt))
        await gw.drain()
        await gw.put(M, sample_dossier(M, TrangThaiHoSo="9"))  # without it: the mapping holds
        await gw.drain()
        assert (await gw.status(M))["portal_code"] == alt
    pushes = [c for c in await sandbox.calls_for(alt) if c["service"] == "DongBoHoSoMC"]
    assert [p["isUpdating"] for p in pushes] == ["False", "True"]
    assert all("MaHoSoKhac" not in p["data"] and p["data"]["MaHoSo"] == alt for p in pushes)


async def test_a_local_code_the_portal_already_has_is_kept(sandbox: Sandbox, tmp_path: Path) -> None:
    """Gateway addition: a dossier synced under its local code before the rule was configured
    keeps that code (no second copy under a generated one)."""
    await sandbox.know(validate_snapshot(M, sample_dossier(M)).payload)
    async with run_gateway(rule_settings(tmp_path, sandbox.url)) as gw:
        await gw.put(M, sample_dossier(M, TrangThaiHoSo="9"))
        await gw.progress(M, sample_progress(M, 1))
        await gw.drain()
        assert (await gw.status(M))["portal_code"] == M
    calls = await sandbox.calls_for(M)
    assert services(calls) == ["TraCuuHoSo", "DongBoHoSoMC", "CapNhatTienDoHoSoMC"]
    assert calls[1]["isUpdating"] == "True"
    assert len(sandbox.state.dossiers) == 1


async def test_a_refused_check_is_retried_never_guessed(sandbox: Sandbox, tmp_path: Path) -> None:
    """A TraCuuHoSo answered with an error while a code is checked means "unknown": the delivery
    is retried on the ladder, nothing is sent, nothing dead-lettered, no number adopted."""
    async with run_gateway(rule_settings(tmp_path, sandbox.url, lookup_before_create=False)) as gw:
        await sandbox.fault(mode="reject", count=1, message="Lỗi tra cứu")
        await gw.put(M, sample_dossier(M))
        await gw.drain()
        st = await gw.status(M)
        assert (st["delivery"], st["last_error"]["class"], st["portal_code"]) == ("retrying", "retryable", None)
        assert sandbox.state.dossiers == {}
        gw.clock.advance(6)
        await gw.drain()
        assert (await gw.status(M))["portal_code"] == FIRST
        assert (await (await gw.operator("GET", "/v1/dead-letters")).json())["items"] == []


async def test_units_without_an_identifier_and_the_rule_off_send_codes_unchanged(sandbox: Sandbox,
                                                                               tmp_path: Path) -> None:
    """A unit with no madinhdanh keeps its codes (no lookup of its own, no file row); with no
    province code the rule is off: codes unchanged, MaHoSoKhac not stored, no file at all."""
    other = f"{OTHER_UNIT}-240315-00001"
    async with run_gateway(rule_settings(tmp_path, sandbox.url)) as gw:
        await gw.put(other, sample_dossier(other), key=OTHER_KEY)
        await gw.drain()
        r = await gw.client.get(f"/v1/dossiers/{other}", headers={"X-API-Key": OTHER_KEY})
        assert (await r.json())["portal_code"] == other
    assert services(await sandbox.calls_for(other)) == ["TraCuuHoSo", "DongBoHoSoMC"]
    off = tmp_path / "off"
    off.mkdir()
    async with run_gateway(settings_for(off, sandbox.url)) as gw:
        await gw.put(M, sample_dossier(M, MaHoSoKhac="000.00.01.H56-240315-55555"))
        await gw.drain()
        assert (await gw.status(M))["portal_code"] == M
    assert "MaHoSoKhac" not in sandbox.state.dossiers[M]
    assert not (off / "portal_codes.sqlite3").exists()


async def test_the_rule_over_the_adapter_transport(sandbox: Sandbox, tmp_path: Path) -> None:
    """The rule works the same over the province adapter (its lookup URL checks the codes)."""
    settings = rule_settings(tmp_path, sandbox.url, transport="adapter", auth="none",
                             adapter={"lookup_url": "/adapter/TraCuuHoSo"})
    async with run_gateway(settings) as gw:
        await gw.put(M, sample_dossier(M))
        await gw.progress(M, sample_progress(M, 2))
        await gw.drain()
        assert (await gw.status(M))["portal_code"] == FIRST
    calls = await sandbox.calls_for(FIRST)
    assert services(calls) == ["TraCuuHoSo", "DongBoHoSoMC", "CapNhatTienDoHoSoMC"]
    assert all(c["transport"] == "adapter" for c in calls)


# ── the mapper alone ─────────────────────────────────────────────────────────────────────


async def test_mapper_steps_without_the_network(tmp_path: Path) -> None:
    """Step 1 (the province code in the first segment) sends the code unchanged without asking the
    portal; a unit's code is decided once and then read back from the file; generated codes have
    five digits at least."""
    asked: list[str] = []

    async def portal_has(code: str) -> bool:  # a stand-in portal holding nothing
        asked.append(code)
        return False

    mapper = CodeMapper("H56", {UNIT: PREFIX}, tmp_path / "c.sqlite3", portal_has)
    await mapper.start()
    try:
        inside = "000.00.09.H56-240315-00001"
        assert (await mapper.resolve(inside, None)) is not None and asked == []
        assert await mapper.known(inside) == inside
        assert await mapper.known(M) is None
        assert await mapper.resolve(M, None) is None  # no snapshot yet: not decided
        first = await mapper.resolve(M, {"NgayTiepNhan": "20240315093000"})
        assert first is not None and first.code == FIRST and first.on_portal is False
        assert asked == [M, FIRST]
        again = await mapper.resolve(M, {"NgayTiepNhan": "20240401000000"})
        assert again is not None and again.code == FIRST and asked == [M, FIRST]
    finally:
        await mapper.close()
    assert generated_code(PREFIX, "240315", 123456) == f"{PREFIX}-240315-123456"


async def test_an_alternative_code_taken_by_another_dossier_is_refused(tmp_path: Path) -> None:
    """Two local dossiers may not share one portal code: the second MaHoSoKhac is refused
    (PortalRejected, code "code_rule": a dead letter for a person to fix)."""
    async def portal_has(code: str) -> bool:
        return False

    mapper = CodeMapper("H56", {UNIT: PREFIX}, tmp_path / "c.sqlite3", portal_has)
    await mapper.start()
    try:
        alt = {"NgayTiepNhan": "20240315093000", "MaHoSoKhac": "X-1"}
        assert (await mapper.resolve(M, alt)) is not None
        with pytest.raises(PortalRejected) as info:
            await mapper.resolve(M2, alt)
        assert info.value.code == "code_rule"
    finally:
        await mapper.close()


async def test_a_batch_carries_each_dossiers_portal_code(sandbox: Sandbox, tmp_path: Path) -> None:
    """With batch_size > 1 each dossier of a batch goes under its own portal code; a MaHoSoKhac
    already taken by another dossier dead-letters that snapshot alone (the engine splits the batch,
    as for a portal rejection), and the others are delivered."""
    codes = [f"000.00.01.H55-240315-0010{i}" for i in range(3)]
    async with run_gateway(rule_settings(tmp_path, sandbox.url, batch_size=3, lookup_before_create=False)) as gw:
        await gw.put(codes[0], sample_dossier(codes[0], MaHoSoKhac="000.00.01.H56-240315-90000"))
        await gw.drain()
        for m in codes[1:]:
            await gw.put(m, sample_dossier(m))
        await gw.put(M, sample_dossier(M, MaHoSoKhac="000.00.01.H56-240315-90000"))
        await gw.drain()
        portal = [(await gw.status(m))["portal_code"] for m in codes[1:]]
        st = await gw.status(M)
    assert sorted(portal) == [FIRST, f"{PREFIX}-240315-00002"]
    assert set(portal) <= set(sandbox.state.dossiers)
    assert (st["delivery"], st["last_error"]["code"], st["portal_code"]) == ("dead", "code_rule", None)
