"""Operator routes of the durable jobs (:mod:`queues.jobs`): their dead letters, and replay.

``GET /v1/jobs`` counts jobs by topic and state; ``GET /v1/jobs/dead-letters`` pages the dead
letters (``?topic=`` narrows to one topic); ``GET|DELETE /v1/jobs/dead-letters/{id}`` shows or
forgets one; ``POST /v1/jobs/dead-letters/{id}/replay`` runs it again. Payloads are never shown
here: they name people (a payer, a citizen); an operator fixes the cause and replays.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway import params
from gateway.appkeys import CLOCK, JOBS, METRICS, SETTINGS
from gateway.auth import require_operator
from gateway.http_errors import HTTPProblem
from queues.jobs import Jobs


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/jobs", counts)
    app.router.add_get("/v1/jobs/dead-letters", list_dead)
    app.router.add_get("/v1/jobs/dead-letters/{id}", get_dead)
    app.router.add_post("/v1/jobs/dead-letters/{id}/replay", replay)
    app.router.add_delete("/v1/jobs/dead-letters/{id}", drop)


def jobs_ctx() -> Callable[[web.Application], AsyncIterator[None]]:
    """The jobs' cleanup context: the file is opened before the routes serve. The worker is
    started by :func:`start_worker` once every handler has registered on ``app[JOBS]`` (in their
    own contexts, after this one); tests without it drive the jobs with ``app[JOBS].drain()``."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        metrics = app[METRICS]
        jobs = Jobs(settings.jobs.file(settings.storage.path), settings.retry, concurrency=settings.jobs.concurrency,
                    clock=app[CLOCK], observer=metrics.job_run)
        await jobs.start()
        app[JOBS] = jobs
        await jobs.prune(app[CLOCK]() - float(settings.jobs.keep_done))
        yield
        await jobs.close()

    return ctx


async def start_worker(app: web.Application) -> None:
    """on_startup: every handler is registered by now."""
    app[JOBS].start_worker()


async def counts(request: web.Request) -> web.Response:
    require_operator(request)
    out: dict[str, dict[str, int]] = {}
    for (topic, state), n in (await request.app[JOBS].counts()).items():
        out.setdefault(topic, {})[state] = n
    return web.json_response({"topics": out})


def _id(request: web.Request) -> str:
    """The path's job id: the jobs' file is SQLite, so the dead-letter ids' rule (gateway.params)."""
    return params.dead_letter_id(request.match_info["id"], "sqlite")


async def list_dead(request: web.Request) -> web.Response:
    require_operator(request)
    limit = params.page_limit(request.query.get("limit"))
    cursor = request.query.get("cursor")  # "" is malformed, as in gateway.handlers
    if cursor is not None:
        cursor = params.dead_letter_id(cursor, "sqlite", "cursor")
    items, nxt = await request.app[JOBS].dead_letters(cursor, limit, request.query.get("topic") or None)
    return web.json_response({"items": [d.as_json() for d in items], "next": nxt})


async def get_dead(request: web.Request) -> web.Response:
    require_operator(request)
    dead = await request.app[JOBS].dead_letter(_id(request))
    if dead is None:
        raise HTTPProblem(404, "not_found", "no such dead-lettered job")
    return web.json_response(dead.as_json())


async def replay(request: web.Request) -> web.Response:
    require_operator(request)
    job_id = _id(request)
    if not await request.app[JOBS].replay(job_id):
        raise HTTPProblem(404, "not_found", "no such dead-lettered job")
    return web.json_response({"id": job_id, "result": "replayed"}, status=202)


async def drop(request: web.Request) -> web.Response:
    require_operator(request)
    if not await request.app[JOBS].drop(_id(request)):
        raise HTTPProblem(404, "not_found", "no such dead-lettered job")
    return web.Response(status=204)
