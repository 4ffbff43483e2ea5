"""Hostile and malformed input at the HTTP edge (issue 13, "Hostile input" and "Bad input").

Each test sends what an attacker or a careless client sent to the real app on 127.0.0.1, and
checks the answer: the documented status in the house error shape, bounded CPU time and size,
and nothing stored or delivered that should not be.
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest

from tests.harness import AGENCY_KEY, OTHER_KEY, Gateway
from tests.samples import sample_dossier

M = "000.00.01.H55-240315-00012"


def assert_shape(body: dict[str, Any], code: str) -> None:
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], list)


# ---------------------------------------------------------------- Server header


async def test_server_header_names_no_software_versions(gateway: Gateway) -> None:
    """Every answer, matched route or not, says ``Server: dvcgw``: no Python or aiohttp version."""
    for path in ("/healthz", "/no-such-route", "/v1/dossiers/x"):
        r = await gateway.client.get(path)
        assert r.headers.get("Server") == "dvcgw", (path, r.headers.get("Server"))


# ---------------------------------------------------------------- more than one key


@pytest.mark.parametrize("headers", [
    [("X-API-Key", AGENCY_KEY), ("X-API-Key", OTHER_KEY)],
    [("X-API-Key", OTHER_KEY), ("X-API-Key", AGENCY_KEY)],
    [("X-API-Key", AGENCY_KEY), ("X-API-Key", AGENCY_KEY)],
    [("X-API-Key", AGENCY_KEY), ("Authorization", f"Bearer {OTHER_KEY}")],
    [("Authorization", f"Bearer {AGENCY_KEY}"), ("Authorization", f"Bearer {AGENCY_KEY}")],
], ids=["two-keys", "two-keys-reversed", "same-key-twice", "header-and-bearer-differ", "two-bearers"])
async def test_more_than_one_key_is_400(gateway: Gateway, headers: list[tuple[str, str]]) -> None:
    """A request presenting more than one key is refused with 400 before any key is looked up, on
    agency and operator routes alike: no route may pick the first or the last."""
    for path in (f"/v1/dossiers/{M}", "/v1/dead-letters"):
        r = await gateway.client.get(path, headers=headers)
        assert r.status == 400, (path, r.status, await r.text())
        body = await r.json()
        assert_shape(body, "bad_request")
        assert "more than one" in body["message"]


async def test_the_same_key_in_both_places_is_one_key(gateway: Gateway) -> None:
    """``X-API-Key`` and ``Authorization: Bearer`` carrying the same key count as one key."""
    r = await gateway.client.get(f"/v1/dossiers/{M}", headers={
        "X-API-Key": AGENCY_KEY, "Authorization": f"Bearer {AGENCY_KEY}"})
    assert r.status == 404  # authenticated; the gateway has no event for the dossier yet
    r = await gateway.client.get(f"/v1/dossiers/{M}", headers={
        "X-API-Key": AGENCY_KEY, "Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status == 404  # a Basic credential is not a key


# ---------------------------------------------------------------- Content-Encoding


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "GZIP", "identity, gzip"])
async def test_an_encoded_body_is_415_naming_the_encoding(gateway: Gateway, encoding: str) -> None:
    """A body with any ``Content-Encoding`` but ``identity`` is refused with 415 naming the
    encoding, before it is read, and nothing is stored: the API takes plain JSON only."""
    raw = json.dumps(sample_dossier(M)).encode()
    body = zlib.compress(raw) if encoding == "deflate" else gzip.compress(raw)
    r = await gateway.client.put(f"/v1/dossiers/{M}", data=body, headers={
        "X-API-Key": AGENCY_KEY, "Content-Type": "application/json", "Content-Encoding": encoding})
    assert r.status == 415, await r.text()
    reply = await r.json()
    assert_shape(reply, "unsupported_media_type")
    assert encoding.split(",")[-1].strip() in reply["message"]
    r = await gateway.client.get(f"/v1/dossiers/{M}", headers={"X-API-Key": AGENCY_KEY})
    assert r.status == 404


async def test_identity_encoding_is_plain_json(gateway: Gateway) -> None:
    """``Content-Encoding: identity`` means no encoding: the body is taken."""
    r = await gateway.client.put(f"/v1/dossiers/{M}", data=json.dumps(sample_dossier(M)).encode(), headers={
        "X-API-Key": AGENCY_KEY, "Content-Type": "application/json", "Content-Encoding": "identity"})
    assert r.status == 202, await r.text()
