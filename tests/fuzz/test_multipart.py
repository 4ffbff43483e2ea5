"""Malformed multipart bodies on every upload route (signing, validation, certification and its
verification, the /verify page) are the client's mistake: 400 ``malformed_multipart`` in the house
shape, never a 500. schemathesis found them (issue 17): aiohttp's reader raises ``ValueError`` for
a missing boundary and a protocol error for a broken part header from inside the handler, which
the error middleware answered 500 and the log scrubber then reported as "answered 400". And the
certification number in the path is ASCII digits only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from yarl import URL

from tests.fuzz.seal import seal_key
from tests.harness import AGENCY_KEY, UNIT, Gateway, Sandbox, run_gateway, settings_for

ROUTES = ("/v1/signatures", "/v1/signatures/validate", "/v1/certifications", "/v1/certifications/verify", "/verify")
BOUNDARY = "a222103b9b30b1f9e8be6882ecedb1d2"


@pytest.fixture
async def gw(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Gateway]:
    key_file, cert_file = seal_key(tmp_path)
    settings = settings_for(
        tmp_path, sandbox.url,
        signing={"workers": 1, "trust_roots": [str(cert_file)],
                 "keys": [{"alias": "seal", "source": "file", "key_file": str(key_file),
                           "cert_file": str(cert_file), "agencies": [UNIT]}]},
        certification={"authorities": [{"code": "000.00.99.H55", "name": "UBND xã Thử", "key": "seal",
                                        "agencies": [UNIT]}]})
    async with run_gateway(settings) as gateway:
        yield gateway


@pytest.mark.parametrize("content_type, body", [
    ("multipart/form-data", b"--x\r\n\r\n--x--\r\n"),
    (f"multipart/form-data; boundary={BOUNDARY}", f"--{BOUNDARY}\r\n[]--{BOUNDARY}--\r\n".encode()),
    ("multipart/form-data; boundary=" + "b" * 80, b"--" + b"b" * 80 + b"--\r\n"),
], ids=["no-boundary", "broken-part-header", "boundary-too-long"])
async def test_a_malformed_multipart_body_is_400(gw: Gateway, content_type: str, body: bytes) -> None:
    for route in ROUTES:
        r = await gw.client.post(route, data=body, headers={"Content-Type": content_type, "X-API-Key": AGENCY_KEY})
        assert r.status == 400, (route, r.status, await r.text())
        got = await r.json()
        assert got["error"] == "malformed_multipart" and set(got) == {"error", "message", "errors"}, got


@pytest.mark.parametrize("number", ["%C2%B2", "%D9%A1", "0%C2%B2", "1234567890"],
                         ids=["superscript-two", "arabic-one", "zero-superscript-two", "ten-digits"])
async def test_a_certification_number_is_ascii_digits(gw: Gateway, number: str) -> None:
    """``{number}`` of the certification routes is 1 to 9 ASCII digits, else 404 naming ``number``:
    "²" passed ``str.isdigit()`` and made ``int()`` raise (a 500, found by the schemathesis hooks'
    Unicode digits) and "١" was read as certification 1."""
    for method, path in (("GET", "/v1/certifications/b/{}"), ("GET", "/v1/certifications/b/{}/pdf"),
                         ("POST", "/v1/certifications/b/{}/revoke")):
        r = await gw.client.request(method, URL(path.format(number), encoded=True), json={"reason": "x"},
                                    headers={"X-API-Key": AGENCY_KEY})
        assert r.status == 404, (method, path, r.status, await r.text())
        assert [e["field"] for e in (await r.json())["errors"]] == ["number"]
