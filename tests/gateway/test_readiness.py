"""Issue 14: /readyz runs its sub-checks with a timeout and caches them (2 s passing, 30 s failing,
as X-Road does), and a maintenance mode makes it answer 503 on purpose while the instance serves."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from config.loader import build
from config.schema import HealthSettings
from gateway.health import Readiness
from tests.fakes.portal import FakeClock
from tests.harness import OPERATOR_KEY, Gateway, Sandbox, run_gateway, settings_for
from tests.samples import sample_dossier


class Storage:
    """A check standing in for a storage ping: counts its runs, fails or hangs when told to."""

    def __init__(self) -> None:
        self.runs = 0
        self.failing = False
        self.hang: asyncio.Event | None = None

    async def __call__(self) -> dict[str, Any]:
        self.runs += 1
        if self.hang is not None:
            await self.hang.wait()
        if self.failing:
            raise ConnectionError("down")
        return {"status": "ok"}


def readiness(clock: FakeClock, **health: Any) -> tuple[Readiness, Storage]:
    r = Readiness(build(HealthSettings, health, "health"), clock=clock)
    storage = Storage()
    r.add("storage", storage)
    return r, storage


async def test_a_passing_check_is_cached_for_two_seconds() -> None:
    clock = FakeClock()
    r, storage = readiness(clock)
    first = await r.results()
    assert first["storage"]["status"] == "ok" and first["storage"]["cached"] is False
    clock.advance(1.9)
    second = await r.results()
    assert second["storage"]["cached"] is True and storage.runs == 1
    clock.advance(0.2)
    assert (await r.results())["storage"]["cached"] is False and storage.runs == 2


async def test_a_failing_check_is_cached_for_thirty_seconds_and_names_the_error() -> None:
    clock = FakeClock()
    r, storage = readiness(clock)
    storage.failing = True
    failed = await r.results()
    assert failed["storage"] == {**failed["storage"], "status": "fail", "error": "ConnectionError"}
    assert not r.ok(failed)
    storage.failing = False
    clock.advance(29.0)
    assert (await r.results())["storage"]["status"] == "fail" and storage.runs == 1
    clock.advance(1.5)
    again = await r.results()
    assert again["storage"]["status"] == "ok" and r.ok(again) and storage.runs == 2


async def test_a_check_that_does_not_answer_fails_at_its_timeout_and_concurrent_callers_share_one_run() -> None:
    clock = FakeClock()
    r, storage = readiness(clock, check_timeout="100ms")
    storage.hang = asyncio.Event()  # never set: the check hangs
    results = await asyncio.gather(*(r.results() for _ in range(20)))
    assert storage.runs == 1, "twenty concurrent /readyz must cost one storage ping"
    for res in results:
        assert res["storage"]["status"] == "fail" and "within 0.1s" in res["storage"]["error"]


async def test_readyz_lists_each_check_and_a_portal_outage_does_not_fail_it(gateway: Gateway, sandbox: Sandbox) -> None:
    r = await gateway.client.get("/readyz")
    body = await r.json()
    assert r.status == 200 and body["status"] == "ok"
    assert set(body["checks"]) == {"storage", "portal"}
    for check in body["checks"].values():
        assert {"status", "duration_ms", "cached"} <= set(check)
    assert body["maintenance"] == {"enabled": False, "reason": None, "since": None}
    await sandbox.fault(mode="http503", count=3)
    for i in range(3):
        m = f"000.00.01.H55-240315-0000{i}"
        await gateway.put(m, sample_dossier(m))
    await gateway.drain()
    r = await gateway.client.get("/readyz")
    body = await r.json()
    assert r.status == 200, body
    assert body["checks"]["portal"]["status"] == "fail" and body["checks"]["portal"]["circuit"] == "open"
    assert body["checks"]["portal"]["cached"] is False, "the gate is read live, never cached"


async def test_maintenance_mode_takes_the_instance_out_while_it_keeps_accepting(gateway: Gateway) -> None:
    headers = {"X-API-Key": OPERATOR_KEY}
    r = await gateway.client.put("/v1/maintenance", json={"enabled": True, "reason": "kernel upgrade"},
                                 headers=headers)
    assert r.status == 200, await r.text()
    assert (await r.json())["enabled"] is True
    r = await gateway.client.get("/readyz")
    body = await r.json()
    assert r.status == 503 and body["status"] == "maintenance"
    assert body["maintenance"]["reason"] == "kernel upgrade" and body["maintenance"]["since"]
    m = "000.00.01.H55-240315-00001"
    assert (await gateway.put(m, sample_dossier(m))).status == 202, "maintenance still serves"
    r = await gateway.client.put("/v1/maintenance", json={"enabled": False}, headers=headers)
    assert (await r.json()) == {"enabled": False, "reason": None, "since": None}
    assert (await gateway.client.get("/readyz")).status == 200


async def test_maintenance_requests_are_checked(gateway: Gateway) -> None:
    headers = {"X-API-Key": OPERATOR_KEY}
    assert (await gateway.client.put("/v1/maintenance", json={"enabled": True})).status == 401
    assert (await gateway.client.get("/v1/maintenance")).status == 401
    for body, field in (({"enabled": "yes"}, "enabled"), ({}, "enabled"),
                        ({"enabled": True, "reason": "a\nb"}, "reason"),
                        ({"enabled": True, "reason": "x" * 201}, "reason"),
                        ({"enabled": True, "until": 5}, "until"), ([], "$")):
        r = await gateway.client.put("/v1/maintenance", json=body, headers=headers)
        assert r.status == 422, (body, await r.text())
        assert field in [e["field"] for e in (await r.json())["errors"]], body
    r = await gateway.client.put("/v1/maintenance", data=b"{", headers={**headers, "Content-Type": "application/json"})
    assert r.status == 400
    assert (await (await gateway.client.get("/readyz")).json())["status"] == "ok"


async def test_an_instance_can_start_in_maintenance(sandbox: Sandbox, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, sandbox.url, health={"maintenance": True})
    async with run_gateway(settings) as gw:
        r = await gw.client.get("/readyz")
        assert r.status == 503 and (await r.json())["status"] == "maintenance"
        r = await gw.client.get("/v1/maintenance", headers={"X-API-Key": OPERATOR_KEY})
        assert (await r.json())["enabled"] is True


async def _maintenance_cli(gateway: Gateway, *args: str, key: str = OPERATOR_KEY) -> tuple[int, str, str]:
    url = str(gateway.client.make_url("/"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "maintenance", *args, "--url", url, "--key", key,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_dvcgw_maintenance_turns_the_mode_on_and_off(gateway: Gateway) -> None:
    rc, out, _ = await _maintenance_cli(gateway, "on", "--reason", "disk swap")
    assert rc == 0 and "on since" in out and "disk swap" in out
    assert (await gateway.client.get("/readyz")).status == 503
    rc, out, _ = await _maintenance_cli(gateway, "show")
    assert rc == 0 and "on since" in out
    rc, out, _ = await _maintenance_cli(gateway, "off")
    assert rc == 0 and "off" in out
    assert (await gateway.client.get("/readyz")).status == 200
    rc, _, err = await _maintenance_cli(gateway, "on", key="wrong")
    assert rc == 3 and "401" in err
