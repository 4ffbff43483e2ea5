"""Hostile and malformed input at the HTTP edge (issue 13, "Hostile input" and "Bad input").

Each test sends what an attacker or a careless client sent to the real app on 127.0.0.1, and
checks the answer: the documented status in the house error shape, bounded CPU time and size,
and nothing stored or delivered that should not be.
"""

from __future__ import annotations

from typing import Any

from tests.harness import Gateway


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
