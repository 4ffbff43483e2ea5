"""Typed keys through which handlers reach the application's resources (aiohttp ``AppKey``s)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from adapters.national_portal.client import PortalClient
from adapters.payment_platform.service import PaymentService
from adapters.provincial_system.client import ProvincialClient
from adapters.vnpt_receipts import ReceiptsClient
from config.schema import Settings
from gateway.accept import Acceptor
from gateway.catalogue import Catalogue
from gateway.health import Readiness
from gateway.inbound.puller import InboundPuller
from gateway.portalcode.mapping import CodeMapper
from gateway.sync import SyncEngine
from monitoring.kpi import KpiService
from monitoring.metrics import Metrics
from queues.api import QueueBackend
from queues.jobs import Jobs
from queues.retention import Pruner


@dataclass
class Lifecycle:
    """Readiness: the gateway accepts work only between start-up and draining."""

    state: str = "starting"  # starting | ready | draining


SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
QUEUE = web.AppKey("queue", QueueBackend)  # type: ignore[type-abstract]
ENGINE = web.AppKey("engine", SyncEngine)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
ACCEPT = web.AppKey("accept", Acceptor)
READINESS = web.AppKey("readiness", Readiness)
#: The 766 indicators (monitoring/kpi); absent when ``[kpi] enabled = false``.
KPI = web.AppKey("kpi", KpiService)
#: The payment platform's service (adapters/payment_platform); absent unless ``[payment] enabled``.
PAYMENTS = web.AppKey("payments", PaymentService)
#: The national-portal client the sync engine uses; the catalogue and the inbound puller share it
#: (one session per account, spec §2.5).
PORTAL_CLIENT = web.AppKey("portal_client", PortalClient)
#: The procedure catalogue (gateway/catalogue); absent when ``[catalogue] enabled = false``.
CATALOGUE = web.AppKey("catalogue", Catalogue)
#: The dossier-code rule (spec §8, gateway/portalcode): local code → portal code.
PORTAL_CODES = web.AppKey("portal_codes", CodeMapper)
#: Durable jobs (queues/jobs.py): provincial delivery, e-receipts.
JOBS = web.AppKey("jobs", Jobs)
#: the retention pass over the queue store (queues/retention.py)
PRUNER = web.AppKey("pruner", Pruner)
#: The provincial system's REST client (adapters/provincial_system); absent without ``[provincial] url``.
PROVINCIAL_CLIENT = web.AppKey("provincial_client", ProvincialClient)
#: The inbound dossier puller (gateway/inbound); absent unless ``[inbound] enabled``.
INBOUND = web.AppKey("inbound", InboundPuller)
#: The VNPT e-receipt client (adapters/vnpt_receipts); absent unless ``[receipts] enabled``.
RECEIPTS = web.AppKey("receipts", ReceiptsClient)
