"""Inbound dossiers (issue 15 §2): seeded on the sandbox portal, pulled with a persisted cursor,
states mapped through spec §7.9, delivered once per version to the fake provincial system through
the jobs outbox, with retries, dead letters and replay."""

from __future__ import annotations

import logging

import pytest

from adapters.provincial_system.envelope import version_of
from tests.inbound.conftest import Run, citizen, code


async def test_seeded_dossiers_are_pulled_and_delivered(run_world: Run, caplog: pytest.LogCaptureFixture) -> None:
    """Three citizen dossiers reach the provincial system as pulled, with their version, the portal's
    textual state and its §7.9 code (none for ``interoperating``, which is counted and logged without
    personal data), behind the configured auth header; the cursor moves to the last one."""
    async with run_world() as w:
        dossiers = [citizen(1, "new"), citizen(2, "processing"), citizen(3, "interoperating")]
        await w.seed(*dossiers)
        with caplog.at_level(logging.WARNING, logger="dvcgw.inbound"):
            done = await w.pull_and_deliver()
        assert (done.pages, done.queued, done.unchanged, done.unknown_states) == (1, 3, 0, 1)
        assert await w.puller.cursor() == "3"
        assert w.gw.metric("dvcgw_deliveries_total", counterpart="provincial", operation="dossier",
                           outcome="ok") == 3
        assert w.gw.metric("dvcgw_inbound_dossiers_total", result="queued") == 3
        assert w.gw.metric("dvcgw_inbound_unknown_states_total", state="unknown") == 1
        assert w.gw.metric("dvcgw_inbound_pulls_total", result="ok") == 1
    stored = w.prov.stored
    assert sorted(stored) == [code(1), code(2), code(3)]
    assert [(stored[code(n)]["TrangThaiDVCQG"], stored[code(n)]["TrangThaiHoSo"]) for n in (1, 2, 3)] == [
        ("new", "2"), ("processing", "4"), ("interoperating", None)]
    assert stored[code(1)]["dossier"] == dossiers[0] and stored[code(1)]["source"] == "DVCQG"
    assert stored[code(1)]["version"] == version_of(dossiers[0])
    assert [r.idempotency_key for r in w.prov.received] == [f"{code(n)}:{version_of(d)}"
                                                           for n, d in zip((1, 2, 3), dossiers, strict=True)]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert code(3) in logged and "interoperating" in logged
    assert dossiers[0]["ChuHoSo"] not in logged


async def test_a_dossier_pulled_twice_is_delivered_once_unless_it_changed(run_world: Run) -> None:
    """The portal hands the same dossier out again (seeded anew, unchanged): nothing is queued or
    sent. Changed (its state moved on): it is delivered again, and the provincial system holds the
    new version."""
    async with run_world() as w:
        await w.seed(citizen(1, "new"))
        await w.pull_and_deliver()
        await w.seed(citizen(1, "new"))
        again = await w.pull_and_deliver()
        assert (again.queued, again.unchanged) == (0, 1)
        assert len(w.prov.received) == 1
        assert w.gw.metric("dvcgw_inbound_dossiers_total", result="unchanged") == 1
        changed = citizen(1, "processing")
        await w.seed(changed)
        moved = await w.pull_and_deliver()
        assert (moved.queued, moved.unchanged) == (1, 0)
    assert [r.status for r in w.prov.received] == [201, 200]
    assert w.prov.stored[code(1)]["version"] == version_of(changed)
    assert w.prov.stored[code(1)]["TrangThaiHoSo"] == "4"


async def test_5xx_and_429_are_retried_then_delivered(run_world: Run) -> None:
    """Two 503s and a 429 (Retry-After 7): the job stays pending, each retry comes when its delay
    (the [retry] ladder, then Retry-After) has passed, and the fourth attempt delivers it."""
    async with run_world() as w:
        w.prov.fail(503, count=2)
        w.prov.fail(429, retry_after="7")
        await w.seed(citizen(1))
        await w.pull_and_deliver()
        assert w.prov.stored == {}
        for wait in (5, 30, 6):  # ladder 5 s, 30 s; then Retry-After 7 s: 6 s is too early
            w.gw.clock.advance(wait)
            await w.jobs.drain()
        assert w.prov.stored == {} and len(w.prov.received) == 3
        w.gw.clock.advance(1)
        await w.jobs.drain()
        assert code(1) in w.prov.stored
        labels = {"counterpart": "provincial", "operation": "dossier"}
        assert [w.gw.metric("dvcgw_deliveries_total", **labels, outcome=o) for o in
                ("retryable", "throttled", "ok")] == [2, 1, 1]


async def test_a_4xx_is_dead_lettered_with_its_code_and_replayed(run_world: Run) -> None:
    """A 422 is not retried: the job is a dead letter carrying the receiver's code and the status
    (not the receiver's text, which may quote the citizen), listed on /v1/jobs/dead-letters;
    replayed (the cause fixed), it is delivered."""
    async with run_world() as w:
        w.prov.fail(422)
        await w.seed(citizen(1))
        await w.pull_and_deliver()
        w.gw.clock.advance(3600)
        await w.jobs.drain()
        assert len(w.prov.received) == 1 and w.prov.stored == {}
        r = await w.gw.operator("GET", "/v1/jobs/dead-letters?topic=provincial")
        letters = (await r.json())["items"]
        assert [(d["key"], d["code"]) for d in letters] == [(code(1), "fault422")]
        assert "HTTP 422" in letters[0]["message"] and "Lỗi giả lập" not in letters[0]["message"]
        assert w.gw.metric("dvcgw_deliveries_total", counterpart="provincial", operation="dossier",
                           outcome="rejected") == 1
        r = await w.gw.operator("POST", f"/v1/jobs/dead-letters/{letters[0]['id']}/replay")
        assert r.status in (200, 202), await r.text()
        await w.jobs.drain()
        assert code(1) in w.prov.stored


async def test_a_wrong_credential_is_refused_by_the_receiver(run_world: Run) -> None:
    """The fake checks the auth header: a wrong value is a 401, a dead letter naming it."""
    async with run_world(provincial={"auth_value": "wrong"}) as w:
        await w.seed(citizen(1))
        await w.pull_and_deliver()
        r = await w.gw.operator("GET", "/v1/jobs/dead-letters")
        assert [d["code"] for d in (await r.json())["items"]] == ["unauthorized"]
    assert w.prov.stored == {} and w.prov.received[0].status == 401


async def test_a_version_the_receiver_holds_is_done(run_world: Run) -> None:
    """409 (the receiver already has this version, e.g. it was delivered before the gateway's
    record of it was lost) completes the job: counted as exists, no dead letter."""
    async with run_world() as w:
        first = citizen(1)
        await w.seed(first)
        w.prov.stored[code(1)] = {"MaHoSo": code(1), "version": version_of(first)}
        await w.pull_and_deliver()
        assert w.prov.received[0].status == 409
        assert w.gw.metric("dvcgw_deliveries_total", counterpart="provincial", operation="dossier",
                           outcome="exists") == 1
        r = await w.gw.operator("GET", "/v1/jobs/dead-letters")
        assert (await r.json())["items"] == []


async def test_the_cursor_survives_a_restart(run_world: Run) -> None:
    """Pages of two: the cursor is written after each page and read back by a new gateway on the
    same files, whose first pull asks from there and queues only what was seeded since."""
    async with run_world(page_size=2) as w:
        await w.seed(citizen(1), citizen(2), citizen(3))
        done = await w.pull_and_deliver()
        assert (done.pages, done.cursors) == (2, ["2", "3"])
    async with run_world(page_size=2) as w:
        assert await w.puller.cursor() == "3"
        await w.seed(citizen(4))
        done = await w.pull_and_deliver()
        assert (done.queued, done.unchanged) == (1, 0)
    pulls = (await w.sandbox.record())["pulls"]
    assert [p["cursor"] for p in pulls] == ["", "2", "3"]
    assert sorted(w.prov.stored) == [code(n) for n in (1, 2, 3, 4)]


async def test_a_failed_pull_keeps_the_cursor(run_world: Run) -> None:
    """A portal outage ends the round, counted as failed; the cursor stays, the next round reads
    the same dossiers."""
    async with run_world() as w:
        await w.seed(citizen(1))
        await w.sandbox.fault("http503")
        done = await w.pull_and_deliver()
        assert done.failed and done.pages == 0 and await w.puller.cursor() == ""
        assert w.gw.metric("dvcgw_inbound_pulls_total", result="failed") == 1
        done = await w.pull_and_deliver()
        assert done.queued == 1 and code(1) in w.prov.stored


async def test_the_service_name_and_parameters_are_configurable(run_world: Run) -> None:
    """[inbound] service, params, cursor_param, page_size_param: what the pull sends (spec §1.2:
    not public, so configured)."""
    async with run_world(service="LayHoSoCongDan", params=["maDonViNhan=000.00.01.H55", "loai=1"],
                         page_size=10) as w:
        await w.sandbox.config(inbound_service="LayHoSoCongDan")
        await w.seed(citizen(1))
        done = await w.pull_and_deliver()
        assert done.queued == 1
    (pull,) = (await w.sandbox.record())["pulls"]
    assert pull["service"] == "LayHoSoCongDan" and pull["maDonViNhan"] == "000.00.01.H55" and pull["loai"] == "1"
    assert (pull["cursor"], pull["limit"]) == ("", "10")


async def test_a_replayed_older_version_does_not_overwrite_a_newer_one(run_world: Run) -> None:
    """Version A is refused (dead letter), version B goes through; replaying A afterwards sends
    nothing: the provincial system keeps B."""
    async with run_world() as w:
        w.prov.fail(422)
        await w.seed(citizen(1, "new"))
        await w.pull_and_deliver()
        newer = citizen(1, "processing")
        await w.seed(newer)
        await w.pull_and_deliver()
        assert w.prov.stored[code(1)]["version"] == version_of(newer)
        (letter,) = (await (await w.gw.operator("GET", "/v1/jobs/dead-letters")).json())["items"]
        r = await w.gw.operator("POST", f"/v1/jobs/dead-letters/{letter['id']}/replay")
        assert r.status in (200, 202)
        await w.jobs.drain()
        assert len(w.prov.received) == 2 and w.prov.stored[code(1)]["version"] == version_of(newer)
