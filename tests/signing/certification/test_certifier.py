"""signing_mode "certifier" and "both" (spec §2.3): the certifier's personal key behind the remote
(CSC-style, confirm-on-phone) signing service, then, for "both", the authority's seal over it.

Real gateway, real signing service and poller, the fake remote signer on 127.0.0.1 (a person
confirms with POST /_test/confirm/{tid}), the test PKI and TSA."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.signing.certification.client import call, certify, metadata, operator
from tests.signing.certification.conftest import BOTH, CERTIFIER_ONLY
from tests.signing.certification.scans import pdftotext, scan_pdf
from tests.signing.checks import pdfsig
from tests.signing.client import validate
from tests.signing.conftest import Gateway
from tests.signing.env import AGENCY_KEYS, World

PDF = "application/pdf"


def _serial(world: World, name: str) -> str:
    return format(world.pki.signer(name).cert.serial_number, "x")


async def _record_once(gw: Gateway, rec: dict[str, Any], status: str, deadline: float = 30.0) -> dict[str, Any]:
    """Polls the public record (a real condition, bounded) until it leaves ``reserved``."""
    url = f"{gw.url}/v1/certifications/{rec['book_id']}/{rec['cert_number']}"
    end = time.monotonic() + deadline
    while True:
        body: dict[str, Any] = (await call("GET", url)).json()
        if body["status"] != "reserved" or time.monotonic() > end:
            assert body["status"] == status, body
            return body
        await asyncio.sleep(0.05)


def _new_transaction(world: World, before: set[str]) -> str:
    """The certifier's confirmation request: asked before the 202 was answered."""
    (tid,) = set(world.remote.pending()) - before
    return tid


async def _press(world: World, tid: str, what: str = "confirm") -> None:
    async with aiohttp.ClientSession() as s, s.post(f"{world.remote_url}/_test/{what}/{tid}") as r:
        assert r.status == 200


async def test_certifier_mode_signs_with_the_certifiers_remote_key(cert_gw: Gateway, world: World,
                                                                   tmp_path: Path) -> None:
    """signing_mode "certifier" with a remote credential that signs at once: 201, one signature, by
    the certifier's certificate, B-T, validating with pyHanko and pdfsig; the block is there."""
    r = await certify(cert_gw.url, [(scan_pdf(1), PDF)], metadata(authority_code=CERTIFIER_ONLY,
                                                                  certifier_id="tp-auto"))
    assert r.status == 201, r.body
    rec = r.json()["record"]
    pdf = (await call("GET", cert_gw.url + r.json()["pdf_url"], AGENCY_KEYS["STP"])).body
    status, reports = await validate(cert_gw.url, pdf)
    assert status == 200
    [sig] = reports["signatures"]
    assert (sig["indication"], sig["covers_whole_document"]) == ("TOTAL-PASSED", True) and sig["timestamp"]["valid"]
    assert sig["signer"]["serial"] == _serial(world, "remote-auto") == rec["signers"][0]["serial"]
    assert f"Số chứng thực: {rec['cert_number']}" in pdftotext(pdf, 1)
    (tmp_path / "c.pdf").write_bytes(pdf)
    assert pdfsig(tmp_path / "c.pdf") == [{"valid": True, "total": True}]
    verdict = (await call("POST", f"{cert_gw.url}/v1/certifications/verify", data=pdf,
                          headers={"Content-Type": PDF})).json()
    assert verdict["verdict"] == "valid", verdict


async def test_both_waits_for_the_certifier_then_seals(cert_gw: Gateway, world: World, tmp_path: Path) -> None:
    """signing_mode "both" with a confirm-on-phone credential: 202 with the reserved record; nothing
    is valid until the certifier confirms; then the authority's seal is added over the certifier's
    signature (certifier first, spec §2.3), both validate (pyHanko, pdfsig), the record names both
    signers and verification says valid."""
    before = set(world.remote.pending())
    r = await certify(cert_gw.url, [(scan_pdf(2), PDF)], metadata(authority_code=BOTH, certifier_id="tp-phone"))
    assert r.status == 202, r.body
    rec = r.json()["record"]
    assert rec["status"] == "reserved" and r.headers["Location"].endswith(f"/{rec['cert_number']}")
    tid = _new_transaction(world, before)
    pdf_url = f"{cert_gw.url}/v1/certifications/{rec['book_id']}/{rec['cert_number']}/pdf"
    assert (await call("GET", pdf_url, AGENCY_KEYS["STP"])).status == 404  # not certified yet
    await _press(world, tid)
    final = await _record_once(cert_gw, rec, "valid")
    pdf = (await call("GET", pdf_url, AGENCY_KEYS["STP"])).body
    status, reports = await validate(cert_gw.url, pdf)
    assert status == 200
    first, second = reports["signatures"]
    assert first["signer"]["serial"] == _serial(world, "remote")  # the certifier first
    assert second["signer"]["serial"] == _serial(world, "file")  # then the authority's seal over it
    assert [s["indication"] for s in (first, second)] == ["TOTAL-PASSED", "TOTAL-PASSED"]
    assert (first["covers_whole_document"], second["covers_whole_document"]) == (False, True)
    assert [s["serial"] for s in final["signers"]] == [first["signer"]["serial"], second["signer"]["serial"]]
    (tmp_path / "both.pdf").write_bytes(pdf)
    assert pdfsig(tmp_path / "both.pdf") == [{"valid": True, "total": False}, {"valid": True, "total": True}]
    verdict = (await call("POST", f"{cert_gw.url}/v1/certifications/verify", data=pdf,
                          headers={"Content-Type": PDF})).json()
    assert verdict["verdict"] == "valid", verdict


async def test_certifier_refusal_voids_and_next_takes_next(cert_gw: Gateway, world: World) -> None:
    """The certifier rejects on the phone: the entry becomes void with the reason (its number stays
    used), and the next certification of that authority takes the next number."""
    before = set(world.remote.pending())
    r = await certify(cert_gw.url, [(scan_pdf(1), PDF)], metadata(authority_code=BOTH, certifier_id="tp-phone"))
    assert r.status == 202, r.body
    rec = r.json()["record"]
    await _press(world, _new_transaction(world, before), "reject")
    void = await _record_once(cert_gw, rec, "void")
    assert "rejected" in void["void_reason"]
    nxt = await certify(cert_gw.url, [(scan_pdf(1), PDF)], metadata(authority_code=BOTH, certifier_id="tp-auto"))
    assert nxt.status == 201, nxt.body
    assert (nxt.json()["record"]["book_id"], nxt.json()["record"]["cert_number"]) == (rec["book_id"],
                                                                                        rec["cert_number"] + 1)


async def test_certifier_id_is_checked_before_a_number_is_taken(cert_gw: Gateway) -> None:
    """A missing or unknown certifier_id for "both"/"certifier", or one given to an "authority"-mode
    authority: 422 naming certifier_id, and no number is taken."""
    books = f"{cert_gw.url}/v1/certification-books?authority={BOTH}"
    taken = sum(b["current_number"] for b in (await call("GET", books, operator())).json()["books"])
    scan = [(scan_pdf(1), PDF)]
    for meta in (metadata(authority_code=BOTH), metadata(authority_code=BOTH, certifier_id="nobody"),
                 metadata(authority_code=CERTIFIER_ONLY, certifier_id=7), metadata(certifier_id="tp-auto")):
        r = await certify(cert_gw.url, scan, meta)
        assert r.status == 422 and "certifier_id" in [e["field"] for e in r.json()["errors"]], r.body
    assert sum(b["current_number"] for b in (await call("GET", books, operator())).json()["books"]) == taken
