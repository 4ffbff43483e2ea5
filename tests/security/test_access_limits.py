"""Per-agency limits (issue 17): a token-bucket rate and requests in progress (429 with
Retry-After), a body size (413) and a JSON depth (400), each naming its limit, counted per agency
in dvcgw_limit_refusals_total, defaults from [limits] overridden by an agency's own table."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.limits import too_deep
from tests.harness import AGENCY_KEY, OTHER_KEY, OTHER_UNIT, UNIT, Gateway, Sandbox, run_gateway, settings_for
from tests.samples import sample_dossier

M = f"{UNIT}-240315-00001"


def _agencies(**own: Any) -> list[dict[str, Any]]:
    """UNIT with its own ``limits`` table; OTHER_UNIT on the [limits] defaults."""
    return [{"code": UNIT, "api_key": AGENCY_KEY, "units": [UNIT], "procedures": ["*"], "limits": own},
            {"code": OTHER_UNIT, "api_key": OTHER_KEY, "units": [OTHER_UNIT], "procedures": ["*"]}]


async def _refused(r: aiohttp.ClientResponse, status: int, limit: str) -> dict[str, Any]:
    assert r.status == status, await r.text()
    body: dict[str, Any] = await r.json()
    assert body["limit"] == limit, body
    return body


async def test_the_rate_is_a_token_bucket_with_retry_after(sandbox: Sandbox, tmp_path: Path) -> None:
    """With rate 0.5/s and bursts of 3: three requests pass, the fourth is 429 with Retry-After 2
    (one token takes 2 s); after 2 s on the app's clock one more passes, then 429 again. Another
    agency has its own bucket. The operator is not limited."""
    settings = settings_for(tmp_path, sandbox.url, agencies=_agencies(rate=0.5, burst=3), limits={"rate": 100.0})
    async with run_gateway(settings) as gw:
        assert [(await gw.put(M, sample_dossier(M))).status for _ in range(3)] == [202] * 3
        over = await gw.put(M, sample_dossier(M))
        body = await _refused(over, 429, "rate")
        assert over.headers["Retry-After"] == "2" and body["error"] == "too_many_requests"
        assert (await gw.client.get("/v1/kpi", headers={"X-API-Key": OTHER_KEY})).status != 429
        gw.clock.advance(1.0)
        assert (await gw.put(M, sample_dossier(M))).headers["Retry-After"] == "1"
        gw.clock.advance(1.0)
        assert (await gw.put(M, sample_dossier(M))).status == 202
        assert (await gw.put(M, sample_dossier(M))).status == 429
        for _ in range(5):
            assert (await gw.operator("GET", "/v1/dead-letters")).status == 200
        assert gw.metric("dvcgw_limit_refusals_total", agency=UNIT, limit="rate") == 3
        assert gw.metric("dvcgw_limit_refusals_total", agency=OTHER_UNIT, limit="rate") == 0
        assert gw.metric("dvcgw_events_accepted_total", kind="snapshot") == 4  # a 429 stores nothing


class _Stalled:
    """A request body that stops after its first bytes until released."""

    def __init__(self, raw: bytes) -> None:
        self.raw, self.release = raw, asyncio.Event()

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.raw[:10]
        await self.release.wait()
        yield self.raw[10:]


async def test_requests_in_progress_are_limited_with_retry_after(sandbox: Sandbox, tmp_path: Path) -> None:
    """With max_concurrent 1, a second request while the first one's body is still arriving is
    429 ``concurrency`` with Retry-After; once the first is answered the next one passes."""
    settings = settings_for(tmp_path, sandbox.url, agencies=_agencies(max_concurrent=1))
    raw = json.dumps(sample_dossier(M)).encode()
    async with run_gateway(settings) as gw:
        stalled = _Stalled(raw)
        first = asyncio.create_task(gw.client.put(
            f"/v1/dossiers/{M}", data=stalled.chunks(),
            headers={"X-API-Key": AGENCY_KEY, "Content-Type": "application/json"}))
        await _until_in_progress(gw)
        second = await gw.put(M, sample_dossier(M))
        await _refused(second, 429, "concurrency")
        assert second.headers["Retry-After"] == "1"
        assert (await gw.put(M, sample_dossier(M), key=OTHER_KEY)).status == 403  # others are not held up
        stalled.release.set()
        assert (await first).status == 202
        assert (await gw.put(M, sample_dossier(M))).status == 202
        assert gw.metric("dvcgw_limit_refusals_total", agency=UNIT, limit="concurrency") == 1


async def _until_in_progress(gw: Gateway) -> None:
    """Poll (bounded) until the stalled request is inside the handler: the limiter counts it."""
    from gateway.limits import LIMITER

    limiter = gw.app[LIMITER]
    for _ in range(500):
        if limiter.admit(UNIT) is not None:
            return
        limiter.release(UNIT)
        await asyncio.sleep(0.01)
    raise AssertionError("the stalled request never reached the handler")


async def test_a_body_over_the_agency_size_is_413(sandbox: Sandbox, tmp_path: Path) -> None:
    """An agency's own max_body_bytes (below [server] max_body_bytes): 413 naming body_size, with
    or without Content-Length (chunked); the other agency keeps the server's limit."""
    settings = settings_for(tmp_path, sandbox.url, agencies=_agencies(max_body_bytes=2048))
    big = sample_dossier(M, TrichYeuHoSo="x" * 3000)
    async with run_gateway(settings) as gw:
        await _refused(await gw.put(M, big), 413, "body_size")

        async def chunked() -> AsyncIterator[bytes]:
            yield json.dumps(big).encode()

        r = await gw.client.put(f"/v1/dossiers/{M}", data=chunked(),
                                headers={"X-API-Key": AGENCY_KEY, "Content-Type": "application/json"})
        body = await _refused(r, 413, "body_size")
        assert body["errors"][0]["field"] == "body" and "2048" in body["message"]
        o = f"{OTHER_UNIT}-240315-00001"
        assert (await gw.put(o, sample_dossier(o, TrichYeuHoSo="x" * 3000), key=OTHER_KEY)).status == 202
        assert gw.metric("dvcgw_limit_refusals_total", agency=UNIT, limit="body_size") == 2


async def test_json_nested_deeper_than_the_limit_is_400(sandbox: Sandbox, tmp_path: Path) -> None:
    """A dossier nests 3 levels; with max_json_depth 3 it passes, one level more is 400
    ``json_too_deep`` naming json_depth, before any field is validated."""
    settings = settings_for(tmp_path, sandbox.url, agencies=_agencies(max_json_depth=3))
    async with run_gateway(settings) as gw:
        assert (await gw.put(M, sample_dossier(M))).status == 202
        deeper = sample_dossier(M, TaiLieuNop=[{"TepDinhKem": [{"x": 1}]}])
        body = await _refused(await gw.put(M, deeper), 400, "json_depth")
        assert body["error"] == "json_too_deep"
        assert gw.metric("dvcgw_limit_refusals_total", agency=UNIT, limit="json_depth") == 1


class _Mapping(dict[str, object]):
    """Not one of JSON's own types: too_deep must still open it (the element-by-element path)."""


@pytest.mark.parametrize(("value", "depth"), [
    (1, 0), ("x", 0), ({}, 1), ([], 1),
    ({f"k{i}": i for i in range(1000)}, 1),  # scalars only
    ([{}] * 1000, 2),  # containers only, all empty
    ([[1], [[2]]], 3),
    ({"a": 1, "b": "x", "c": None, "d": [1, {"e": [True]}], "f": 2.5}, 4),  # mixed JSON types
    ([1, _Mapping(a=[[1]])], 4),  # a type of its own among the children
    ([_Mapping(a=1)], 2),
])
def test_too_deep_counts_the_levels_whatever_the_children_types(value: object, depth: int) -> None:
    """Children of JSON's own types (scalars only, containers only, mixed) and of other types find
    the same depth: deeper than depth - 1, not deeper than depth."""
    assert not too_deep(value, depth)
    if depth:
        assert too_deep(value, depth - 1)
