"""Deny by default (issue 17): each grant missing in turn gets its own 403, in the house error
shape with ``"grant"`` and the field, a WARNING on dvcgw.access with the agency and the route
template (never the dossier code), and one count in dvcgw_access_refusals_total."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.pdfs import one_page_pdf
from tests.harness import AGENCY_KEY, OTHER_KEY, OTHER_UNIT, UNIT, Gateway, Sandbox, run_gateway, settings_for
from tests.monitoring.traffic import CERT_AUTHORITY, signing_section
from tests.samples import sample_dossier
from tests.signing.env import World

M = f"{UNIT}-240315-00001"
PROCEDURE = str(sample_dossier(M)["MaTTHC"])  # "1.001612.000.00.00.H55"


def _agency(code: str, key: str, **grants: Any) -> dict[str, Any]:
    return {"code": code, "api_key": key, "units": [code], **grants}


async def _refused(r: aiohttp.ClientResponse, grant: str, field: str) -> dict[str, Any]:
    assert r.status == 403, await r.text()
    body: dict[str, Any] = await r.json()
    assert body["error"] == "forbidden" and body["grant"] == grant, body
    assert [e["field"] for e in body["errors"]] == [field], body
    return body


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "dvcgw.access"]


async def test_a_unit_not_granted_is_403_units(sandbox: Sandbox, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """Another agency's unit: 403 grant ``units`` naming MaHoSo; the log line names the agency and
    the route template, not the dossier code; the refusal is counted for that agency."""
    caplog.set_level(logging.WARNING, "dvcgw.access")
    async with run_gateway(settings_for(tmp_path, sandbox.url)) as gw:
        r = await gw.put(M, sample_dossier(M), key=OTHER_KEY)
        await _refused(r, "units", "MaHoSo")
        assert gw.metric("dvcgw_access_refusals_total", agency=OTHER_UNIT, grant="units") == 1
        assert gw.metric("dvcgw_access_refusals_total", agency=UNIT, grant="units") == 0
    assert _lines(caplog) == [f"forbidden: agency {OTHER_UNIT} lacks the units grant for PUT /v1/dossiers/{{MaHoSo}}"]
    assert M not in caplog.text


@pytest.mark.parametrize("procedures", [[], ["2.*", "1.001612.000.00.00.H56"]])
async def test_a_procedure_not_granted_is_403_procedures(sandbox: Sandbox, tmp_path: Path,
                                                        procedures: list[str]) -> None:
    """No procedure pattern (the default) or none matching the snapshot's MaTTHC: 403 grant
    ``procedures`` naming MaTTHC, and nothing is stored."""
    settings = settings_for(tmp_path, sandbox.url, agencies=[_agency(UNIT, AGENCY_KEY, procedures=procedures)])
    async with run_gateway(settings) as gw:
        await _refused(await gw.put(M, sample_dossier(M)), "procedures", "MaTTHC")
        assert await gw.queue.status(M) is None
        assert gw.metric("dvcgw_access_refusals_total", agency=UNIT, grant="procedures") == 1


@pytest.mark.parametrize("pattern", ["*", "1.0016*", PROCEDURE, "1.00161[0-9].*"])
async def test_a_matching_procedure_pattern_is_accepted(sandbox: Sandbox, tmp_path: Path, pattern: str) -> None:
    """A glob pattern that matches the MaTTHC lets the snapshot in (202)."""
    settings = settings_for(tmp_path, sandbox.url, agencies=[_agency(UNIT, AGENCY_KEY, procedures=[pattern])])
    async with run_gateway(settings) as gw:
        r = await gw.put(M, sample_dossier(M))
        assert r.status == 202, await r.text()


async def test_an_operator_route_is_403_operator_for_an_agency(gateway: Gateway) -> None:
    """An agency's valid key on an operator route: 403 grant ``operator`` (401 stays for no key or
    an unknown one)."""
    for method, path in (("GET", "/v1/dead-letters"), ("GET", "/v1/jobs"), ("PUT", "/v1/maintenance")):
        r = await gateway.client.request(method, path, headers={"X-API-Key": AGENCY_KEY}, json={"enabled": True})
        await _refused(r, "operator", "X-API-Key")
    assert (await gateway.client.get("/v1/dead-letters")).status == 401
    assert (await gateway.client.get("/v1/dead-letters", headers={"X-API-Key": "nope"})).status == 401
    assert gateway.metric("dvcgw_access_refusals_total", agency=UNIT, grant="operator") == 3
    assert (await gateway.operator("GET", "/v1/dead-letters")).status == 200


@pytest.fixture
async def signing_gateway(sandbox: Sandbox, signing_world: World, tmp_path: Path) -> Any:
    """Signing with one key and one certifying authority, both granted to UNIT only (on the key's
    and the authority's ``agencies``)."""
    settings = settings_for(tmp_path, sandbox.url, signing=signing_section(signing_world), certification={
        "authorities": [{"code": CERT_AUTHORITY, "name": "UBND xã A", "key": "file-pem", "agencies": [UNIT]}]})
    async with run_gateway(settings) as gw:
        yield gw


async def test_a_signing_key_not_granted_is_403_signing_keys(signing_gateway: Gateway) -> None:
    """A key whose ``agencies`` do not list the caller: 403 grant ``signing_keys`` naming key."""
    r = await signing_gateway.client.post("/v1/signatures?key=file-pem&level=B-B", data=one_page_pdf(),
                                          headers={"X-API-Key": OTHER_KEY, "Content-Type": "application/pdf"})
    await _refused(r, "signing_keys", "key")
    assert signing_gateway.metric("dvcgw_access_refusals_total", agency=OTHER_UNIT, grant="signing_keys") == 1


async def test_an_authority_not_granted_is_403_authorities(signing_gateway: Gateway) -> None:
    """Certifying for an authority whose ``agencies`` do not list the caller: 403 grant
    ``authorities`` naming authority_code, before any number is taken."""
    form = aiohttp.FormData()
    form.add_field("metadata", json.dumps({
        "authority_code": CERT_AUTHORITY, "certifier_name": "Nguyễn Văn A", "certifier_title": "Công chức",
        "requester_name": "Trần Thị B", "requester_id_no": "001099000001", "document_name": "Giấy khai sinh"}),
        content_type="application/json")
    form.add_field("file", one_page_pdf(), filename="scan.pdf", content_type="application/pdf")
    r = await signing_gateway.client.post("/v1/certifications", data=form, headers={"X-API-Key": OTHER_KEY})
    await _refused(r, "authorities", "authority_code")
    assert signing_gateway.metric("dvcgw_access_refusals_total", agency=OTHER_UNIT, grant="authorities") == 1
