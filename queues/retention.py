"""The pruning pass: personal data at rest (issue 17, docs/security.md).

Once a dossier's final state (``queues.api.FINAL_STATES``) has been delivered, its event payloads
(ID numbers, names, phone numbers, e-mail addresses) are kept ``[storage] retention`` longer, then
pruned by the queue backend itself (:meth:`queues.api.QueueBackend.prune`), in transactions of at
most ``[storage] prune_batch`` dossiers, every ``[storage] prune_interval``. What remains is what
the status API (the ``dossiers`` row / the Kafka dossier state), the dead-letter list (id, kind,
sequence, error, attempts) and the 766 indicators (their own file, written at delivery time) read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from config.schema import StorageSettings
from core.errors import QueueUnavailable
from queues.api import QueueBackend

log = logging.getLogger("dvcgw.retention")


class Pruner:
    """Runs the pass now (:meth:`run_once`, what tests drive) or on its interval (:meth:`run`)."""

    def __init__(self, queue: QueueBackend, storage: StorageSettings, clock: Callable[[], float]) -> None:
        self._queue = queue
        self._retention = float(storage.retention)
        self._batch = storage.prune_batch
        self._interval = float(storage.prune_interval)
        self._clock = clock

    async def run_once(self) -> int:
        """Prune every dossier due now, a batch per transaction; return how many were pruned.
        Raises QueueUnavailable from the backend."""
        before = self._clock() - self._retention
        total = 0
        while True:
            n = await self._queue.prune(before, self._batch)
            total += n
            if n < self._batch:
                break
            await asyncio.sleep(0)  # the store's other work goes between two batches
        if total:
            log.info("retention: payloads of %d finished dossiers pruned", total)
        return total

    async def run(self) -> None:
        """Forever: a pass, then ``prune_interval`` of sleep. A failed pass is logged and tried again
        at the next interval (nothing is lost by waiting)."""
        while True:
            try:
                await self.run_once()
            except QueueUnavailable as exc:
                log.warning("retention: pruning pass failed, next try in %.0f s: %s", self._interval, exc)
            await asyncio.sleep(self._interval)
