"""The ``provincial`` topic's job handler: one inbound dossier to the provincial system.

The handler returns when the provincial system took the dossier (2xx) or already holds that
version (409, "already exists"): the job is done. ProvincialThrottled and ProvincialUnavailable
are TransientErrors (the outbox retries on the ``[retry]`` ladder, honouring Retry-After);
ProvincialRejected is a PermanentError (a dead letter with the receiver's code and message, which
an operator replays through ``/v1/jobs/dead-letters/{id}/replay`` once the cause is fixed). Each
attempt is counted in ``dvcgw_deliveries_total{counterpart="provincial", operation="dossier"}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from adapters.provincial_system.client import ProvincialClient
from adapters.provincial_system.errors import ProvincialRejected, ProvincialThrottled, ProvincialUnavailable
from monitoring.metrics import PROVINCIAL, PROVINCIAL_OPERATION, Metrics
from queues.jobs import Job


def provincial_handler(client: ProvincialClient, metrics: Metrics) -> Callable[[Job], Awaitable[None]]:
    """The handler to register with ``jobs.handle("provincial", …)``."""

    def count(outcome: str) -> None:
        metrics.deliveries.labels(PROVINCIAL, PROVINCIAL_OPERATION, outcome).inc()

    async def deliver(job: Job) -> None:
        try:
            outcome = await client.deliver(job.payload)
        except ProvincialThrottled:
            count("throttled")
            raise
        except ProvincialUnavailable:
            count("retryable")
            raise
        except ProvincialRejected:
            count("rejected")
            raise
        count(outcome)

    return deliver
