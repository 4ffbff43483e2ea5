"""The operator routes of the durable jobs on the real app: counts, dead letters, replay, drop;
and their metrics on /metrics. A test handler on topic "t" stands in for a counterpart."""

from __future__ import annotations

from core.errors import PermanentError
from gateway.appkeys import JOBS
from queues.jobs import Job
from tests.harness import AGENCY_KEY, Gateway


async def test_dead_jobs_are_listed_replayed_and_dropped(gateway: Gateway) -> None:
    jobs = gateway.app[JOBS]
    failing = {"A", "B"}
    done: list[str] = []

    async def handler(job: Job) -> None:
        if job.key in failing:
            raise PermanentError("the counterpart refused it")
        done.append(job.key)

    jobs.handle("t", handler)
    for key in ("A", "B", "C"):
        await jobs.put("t", key, {"secret": "Nguyễn Văn A"})
    await jobs.drain()

    r = await gateway.operator("GET", "/v1/jobs/dead-letters")
    assert r.status == 200
    page = await r.json()
    assert [(d["key"], d["code"]) for d in page["items"]] == [("A", "PermanentError"), ("B", "PermanentError")]
    assert "Nguyễn" not in await r.text()  # payloads are never shown
    a_id, b_id = (d["id"] for d in page["items"])

    r = await gateway.operator("GET", f"/v1/jobs/dead-letters/{a_id}")
    assert r.status == 200 and (await r.json())["key"] == "A"

    failing.clear()
    r = await gateway.operator("POST", f"/v1/jobs/dead-letters/{a_id}/replay")
    assert r.status == 202
    await jobs.drain()
    assert done == ["C", "A"]
    r = await gateway.operator("POST", f"/v1/jobs/dead-letters/{a_id}/replay")
    assert r.status == 404

    r = await gateway.operator("DELETE", f"/v1/jobs/dead-letters/{b_id}")
    assert r.status == 204
    r = await gateway.operator("GET", "/v1/jobs")
    assert (await r.json()) == {"topics": {"t": {"done": 2}}}

    await gateway.client.get("/metrics")
    assert gateway.metric("dvcgw_jobs", topic="t", state="done") == 2
    assert gateway.metric("dvcgw_job_runs_total", topic="t", outcome="dead") == 2
    assert gateway.metric("dvcgw_job_runs_total", topic="t", outcome="ok") == 2


async def test_job_routes_are_for_the_operator_and_check_ids(gateway: Gateway) -> None:
    r = await gateway.client.get("/v1/jobs/dead-letters", headers={"X-API-Key": AGENCY_KEY})
    assert r.status == 403  # an agency lacks the operator grant (as for /v1/dead-letters)
    r = await gateway.client.get("/v1/jobs")
    assert r.status == 401
    r = await gateway.operator("POST", "/v1/jobs/dead-letters/abc/replay")
    assert r.status == 422 and (await r.json())["errors"][0]["field"] == "id"
    r = await gateway.operator("GET", "/v1/jobs/dead-letters?cursor=x")
    assert r.status == 422
    r = await gateway.operator("GET", "/v1/jobs/dead-letters/999")
    assert r.status == 404
