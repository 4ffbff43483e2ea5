"""The ``provincial`` topic's job handler: one inbound dossier to the provincial system.

The handler returns when the provincial system took the dossier (2xx) or already holds that
version (409, "already exists"): the job is done. ProvincialThrottled and ProvincialUnavailable
are TransientErrors (the outbox retries on the ``[retry]`` ladder, honouring Retry-After);
ProvincialRejected is a PermanentError (a dead letter with the receiver's code and message, which
an operator replays through ``/v1/jobs/dead-letters/{id}/replay`` once the cause is fixed). Each
attempt is counted in ``dvcgw_deliveries_total{counterpart="provincial", operation="dossier"}``.

A job whose dossier has a newer version already delivered (a dead letter replayed after the next
version went through: the jobs of a key pass a dead-lettered one) is done without a call: sending
it would put an older state of the dossier over a newer one in the provincial system.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from adapters.provincial_system.client import ProvincialClient
from adapters.provincial_system.errors import ProvincialRejected, ProvincialThrottled, ProvincialUnavailable
from monitoring.metrics import PROVINCIAL, PROVINCIAL_OPERATION, Metrics
from queues.jobs import DONE, Job, Jobs

log = logging.getLogger("dvcgw.inbound")


async def superseded(jobs: Jobs, job: Job) -> bool:
    """Whether a later job of the same dossier is already done."""
    return any(state == DONE and int(later.id) > int(job.id) for state, later in await jobs.history(job.topic, job.key))


def provincial_handler(client: ProvincialClient, metrics: Metrics, jobs: Jobs) -> Callable[[Job], Awaitable[None]]:
    """The handler to register with ``jobs.handle("provincial", …)``."""

    def count(outcome: str) -> None:
        metrics.deliveries.labels(PROVINCIAL, PROVINCIAL_OPERATION, outcome).inc()

    async def deliver(job: Job) -> None:
        if await superseded(jobs, job):
            log.info("inbound dossier %s: job %s skipped, a newer version was delivered", job.key[:64], job.id)
            return
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
