"""``create_app(settings)``: the daemon as one aiohttp application in one process.

Every route goes through one middleware chain. Each resource is its own ``cleanup_ctx`` (queue →
provincial client → jobs → 766 indicators → sync engine → procedure catalogue → inbound puller →
signing), so clean-up runs in reverse order and only for what started. The
delivery engine runs as a task in the same event loop. Handlers reach resources through the typed
``AppKey``s of :mod:`gateway.appkeys`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from adapters.national_portal import portal_client
from adapters.provincial_system.client import ProvincialClient
from config.schema import Settings
from gateway import backup_routes, handlers, job_routes, message_log, ops_routes, payment_routes, receipts
from gateway.accept import Acceptor
from gateway.appkeys import (
    ACCEPT,
    CATALOGUE,
    CLOCK,
    ENGINE,
    INBOUND,
    JOBS,
    KPI,
    LIFECYCLE,
    METRICS,
    PAYMENTS,
    PORTAL_CLIENT,
    PORTAL_CODES,
    PROVINCIAL_CLIENT,
    PRUNER,
    QUEUE,
    SETTINGS,
    Lifecycle,
)
from gateway.auth import KEYRING, KeyRing
from gateway.catalogue import Catalogue
from gateway.catalogue import routes as catalogue_routes
from gateway.inbound.delivery import provincial_handler
from gateway.inbound.puller import InboundPuller
from gateway.limits import LIMITER, Limiter, largest_body, limits_middleware
from gateway.middleware import error_middleware
from gateway.portalcode.mapping import CodedPortal, CodeMapper
from gateway.requestlog import echo_request_id, request_context
from gateway.sync import SyncEngine
from monitoring.kpi import KpiService
from monitoring.metrics import PORTAL, PROVINCIAL, Metrics
from queues.api import QueueBackend
from queues.jobs import PROVINCIAL as PROVINCIAL_TOPIC
from queues.retention import Pruner
from queues.sqlite import MemoryQueue, SQLiteQueue, store_options


def make_queue(settings: Settings, metrics: Metrics, clock: Callable[[], float]) -> QueueBackend:
    q = settings.queue
    if q.backend == "memory":
        return MemoryQueue(lease_s=q.lease, clock=clock)
    if q.backend == "kafka":
        from queues.kafka import KafkaQueue

        return KafkaQueue(settings, metrics_registry=metrics.registry)  # type: ignore[no-any-return]
    return SQLiteQueue(settings.storage.path, clock=clock, **store_options(settings))


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time, run_engine: bool = True,
               metrics: Metrics | None = None) -> web.Application:
    """The whole daemon. With ``run_engine=False`` the sync engine is built but not started: tests
    drive it through ``app[ENGINE].drain()``."""
    metrics = metrics or Metrics()
    request_ctx = request_context(access_log=settings.server.access_log, metrics=metrics)
    # the limits come after the error middleware: their 429s leave in the house shape like any other
    # the message log's between them: it sees the final status, and refuses (when halted) in the house shape
    app = web.Application(client_max_size=largest_body(settings),
                          middlewares=[request_ctx, *message_log.middlewares(settings), error_middleware,
                                       limits_middleware])
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[CLOCK] = clock
    message_log.setup(app, settings, clock)  # first: every session and route records into it; closed last
    app[LIFECYCLE] = Lifecycle()
    app[KEYRING] = KeyRing(settings.agencies, settings.operator)
    app[LIMITER] = Limiter(settings, clock)
    metrics.init_agencies(a.code for a in settings.agencies)
    if settings.payment.enabled:  # before the queue: the accept path asks it which dossiers are paid
        app.cleanup_ctx.append(payment_routes.store_ctx)
    app.cleanup_ctx.append(_queue_ctx)
    app.cleanup_ctx.append(_retention_ctx(run_engine))
    if settings.provincial.url:
        app.cleanup_ctx.append(_provincial_ctx)  # before the jobs: its session outlives their worker
    if settings.receipts.enabled:
        app.cleanup_ctx.append(receipts.client_ctx)  # before the jobs: the client outlives their worker
    app.cleanup_ctx.append(job_routes.jobs_ctx())
    if settings.receipts.enabled:
        app.cleanup_ctx.append(receipts.jobs_ctx)  # the handler and the payments' hook, before any worker
    if settings.kpi.enabled:
        app.cleanup_ctx.append(_kpi_ctx)
    app.cleanup_ctx.append(_engine_ctx(run_engine))
    if settings.payment.enabled:
        app.cleanup_ctx.append(payment_routes.loop_ctx(run_engine))
        payment_routes.add_routes(app)
        if settings.receipts.enabled:
            receipts.add_routes(app)
    if settings.catalogue.enabled:
        app.cleanup_ctx.append(_catalogue_ctx(run_engine))
    if settings.provincial.url:
        app.cleanup_ctx.append(_inbound_ctx(run_engine))
    _setup_signing(app, settings, metrics)
    message_log.setup_sealing(app, settings, run_engine)  # on the signing service: after it
    handlers.add_routes(app, signing=signing_enabled(settings))
    catalogue_routes.add_routes(app)
    ops_routes.setup_readiness(app)
    message_log.add_readiness(app)
    ops_routes.add_routes(app)
    backup_routes.add_routes(app)
    job_routes.add_routes(app)
    if run_engine:
        app.on_startup.append(job_routes.start_worker)
    app.on_startup.append(_ready)
    app.on_response_prepare.append(echo_request_id)
    app.on_shutdown.append(_draining)
    app.on_response_prepare.append(_server_header)
    return app


#: What the ``Server`` header says: no software name or version for a prober to match (issue 13).
SERVER_HEADER = "dvcgw"


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    """aiohttp would send ``Server: Python/3.x aiohttp/3.y``; it only fills the header when unset."""
    response.headers["Server"] = SERVER_HEADER


def _setup_signing(app: web.Application, settings: Settings, metrics: Metrics) -> None:
    """Signing, then e-certification (which signs through the signing service), where configured."""
    if not signing_enabled(settings):
        return
    from gateway.signing_routes import setup_signing

    setup_signing(app, settings, metrics)
    if settings.certification.authorities:
        from gateway.certification_routes import setup_certification

        setup_certification(app, settings, metrics)


def signing_enabled(settings: Settings) -> bool:
    """Signing routes (and their process pool) start only where [signing] is configured."""
    return bool(settings.signing.keys or settings.signing.trust_roots)


async def _ready(app: web.Application) -> None:
    app[LIFECYCLE].state = "ready"


async def _draining(app: web.Application) -> None:
    app[LIFECYCLE].state = "draining"


async def _queue_ctx(app: web.Application) -> AsyncIterator[None]:
    queue = make_queue(app[SETTINGS], app[METRICS], app[CLOCK])
    await queue.start()
    app[QUEUE] = queue
    payments = app.get(PAYMENTS)
    app[ACCEPT] = Acceptor(queue, app[METRICS], app[SETTINGS], paid=payments.is_paid if payments else None)
    yield
    await queue.close()


def _retention_ctx(run: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    """The pruning pass over the queue store (personal data at rest, queues/retention.py): on its
    interval when ``run``; tests drive ``app[PRUNER].run_once()``."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pruner = Pruner(app[QUEUE], app[SETTINGS].storage, app[CLOCK])
        app[PRUNER] = pruner
        task = asyncio.create_task(pruner.run(), name="dvcgw-retention") if run else None
        yield
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    return ctx


async def _kpi_ctx(app: web.Application) -> AsyncIterator[None]:
    """The 766 indicators: started before the engine that feeds them, closed (last facts written)
    after it stopped."""
    kpi = KpiService(app[SETTINGS], app[CLOCK], app[METRICS].kpi_facts)
    await kpi.start()
    app[KPI] = kpi
    yield
    await kpi.close()


def _engine_ctx(run: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        timeout = aiohttp.ClientTimeout(total=settings.portal.timeout)
        connector = aiohttp.TCPConnector(limit=settings.portal.max_concurrency * 2)
        # latency per service (429s counted as throttled), and the message log's records
        async with message_log.counterpart_session(app, PORTAL, timeout=timeout, connector=connector) as session:
            portal = portal_client(settings.portal, session, metrics=app[METRICS])
            codes = CodeMapper.from_settings(settings, portal.lookup, clock=app[CLOCK])
            await codes.start()
            app[PORTAL_CODES] = codes
            kpi = app.get(KPI)
            engine = SyncEngine(app[QUEUE], CodedPortal(portal, codes), settings, app[METRICS], clock=app[CLOCK],
                                observer=kpi.observe if kpi is not None else None)
            app[ENGINE] = engine
            app[PORTAL_CLIENT] = portal
            task = asyncio.create_task(engine.run(), name="dvcgw-sync") if run else None
            yield
            await engine.stop(settings.server.shutdown_grace)
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await codes.close()

    return ctx


def _catalogue_ctx(run: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    """The procedure catalogue: read from its file before the first request, pulled on its
    schedule (when ``run``) through the engine's portal client; closed before the engine."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        catalogue = Catalogue(app[SETTINGS], app[PORTAL_CLIENT], app[METRICS], app[CLOCK])
        await catalogue.start()
        app[CATALOGUE] = catalogue
        if run:
            catalogue.start_puller()
        yield
        await catalogue.close()

    return ctx


async def _provincial_ctx(app: web.Application) -> AsyncIterator[None]:
    """The provincial system's client and its session (latency on the ``provincial`` trace hooks).
    Registered before the jobs, so that the session closes only after their worker stopped."""
    settings = app[SETTINGS].provincial
    async with message_log.counterpart_session(app, PROVINCIAL, operation="dossier") as session:
        app[PROVINCIAL_CLIENT] = ProvincialClient(settings, session)
        yield


def _inbound_ctx(run: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    """Inbound dossiers: the ``provincial`` topic's handler on the jobs (registered before their
    worker starts), and, where ``[inbound] enabled``, the puller on the engine's portal client."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        app[JOBS].handle(PROVINCIAL_TOPIC, provincial_handler(app[PROVINCIAL_CLIENT], app[METRICS], app[JOBS]))
        puller: InboundPuller | None = None
        if settings.inbound.enabled:
            puller = InboundPuller(settings, app[PORTAL_CLIENT], app[JOBS], app[METRICS], app[CLOCK])
            await puller.start()
            app[INBOUND] = puller
            if run:
                puller.start_puller()
        yield
        if puller is not None:
            await puller.close()

    return ctx
