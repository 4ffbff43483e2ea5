"""The running message log: :class:`AuditLog` takes entries from the event loop and writes them in
batches on the store's thread; :class:`Sealer` seals the chain head on a schedule and decides
whether agency requests are refused (``[audit] halt_after_unsealed``).

Cost on the event loop per exchange: one small object appended to a list. Hashing, chaining,
encryption and the insert run on the store's worker thread, a batch every ``write_interval``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson

from audit.chain import Entry, leaf, tree
from audit.store import AuditStore, BodyCipher, Head
from config.schema import AuditSettings
from core.sqlitefile import Synchronous
from monitoring.metrics import AuditMetrics

log = logging.getLogger("dvcgw.audit")
Clock = Callable[[], float]
#: signs the statement (bytes) with the gateway's own key: a detached CMS signature, DER
SignFn = Callable[[bytes], Awaitable[bytes]]
#: time-stamps a SHA-256 digest: an RFC 3161 token (ContentInfo), DER
StampFn = Callable[[bytes], Awaitable[bytes]]
_BATCH = 2000


class AuditLog:
    def __init__(self, settings: AuditSettings, path: Path, metrics: AuditMetrics, *, clock: Clock = time.time,
                 synchronous: Synchronous = "full") -> None:
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.keeps_bodies = settings.bodies == "full"
        cipher = BodyCipher(bytes.fromhex(settings.key)) if self.keeps_bodies else None
        self.store = AuditStore(path, synchronous=synchronous, cipher=cipher)
        self._pending: list[Entry] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()
        self.grew = asyncio.Event()  # set after each write: the sealer counts unsealed records

    async def start(self) -> None:
        await self.store.start()
        self._writer = asyncio.create_task(self._write_loop(), name="dvcgw-audit-writer")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        await self.flush()
        await self.store.close()

    @property
    def recorded_seq(self) -> int:
        """The seq the last recorded exchange will have (written or still queued)."""
        return self.store.head.seq + len(self._pending)

    def record(self, kind: str, client: str, server: str, operation: str, status: int,
               request: bytes, response: bytes) -> None:
        """Queues one exchange for the next batch (never blocks, never raises for the caller)."""
        self._pending.append(Entry(self.clock(), kind, client, server, operation, status, request, response))
        if len(self._pending) >= _BATCH:
            self._wake.set()

    async def _write_loop(self) -> None:
        interval = float(self.settings.write_interval)
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # the batch stays queued; the next round tries again
                log.exception("message log: a batch could not be written; it is kept and retried")

    async def flush(self) -> Head:
        """Writes everything recorded so far (tests and the sealer call it; so does the writer)."""
        async with self._flushing:
            batch, self._pending = self._pending, []
            if not batch:
                return self.store.head
            started = time.perf_counter()
            try:
                head = await self.store.append(batch)
            except BaseException:
                self._pending[:0] = batch
                raise
            self.metrics.write_duration.observe(time.perf_counter() - started)
            for kind in {e.kind for e in batch}:
                self.metrics.records.labels(kind).inc(sum(1 for e in batch if e.kind == kind))
            self.grew.set()
            return head


class Sealer:
    """Seals every ``seal_interval`` (or once ``seal_records`` are unsealed): signs the chain head's
    statement, then time-stamps every seal not yet stamped in one token over their hash tree (so
    seals made while the TSA was down are stamped together once it is back).

    ``covered_at`` is when the whole log was last covered by a stamped seal (a round with nothing
    new to seal counts: nothing is unsealed). With ``halt_after_unsealed`` > 0, :meth:`halt_reason`
    says why agency requests must be refused once that is older than the setting.
    """

    def __init__(self, audit: AuditLog, sign: SignFn, stamp: StampFn, *, key_alias: str) -> None:
        self.audit = audit
        self.settings = audit.settings
        self.metrics = audit.metrics
        self.clock = audit.clock
        self._sign, self._stamp, self._alias = sign, stamp, key_alias
        self.covered_at = self.clock()
        self.covered_seq = 0
        self.last_error = ""
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self, run: bool) -> None:
        last = await self.audit.store.last_seal()
        stamped_at = await self.audit.store.last_stamped_at()
        head = self.audit.store.head
        if last is not None and last.stamp_id is not None and last.head_seq == head.seq:
            self.covered_seq = head.seq
        elif stamped_at is not None:
            self.covered_at = stamped_at  # unsealed records from before the restart: the grace runs on
        self.metrics.last_seal.set(self.covered_at)
        self.metrics.unsealed.set_function(lambda: self.audit.recorded_seq - self.covered_seq)
        self.metrics.halted.set_function(lambda: 1 if self.halt_reason() else 0)
        if run:
            self._task = asyncio.create_task(self._loop(), name="dvcgw-audit-sealer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            deadline = asyncio.get_running_loop().time() + float(self.settings.seal_interval)
            while self.audit.store.head.seq - self.covered_seq < self.settings.seal_records:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                self.audit.grew.clear()
                try:
                    await asyncio.wait_for(self.audit.grew.wait(), timeout=left)
                except TimeoutError:
                    break
            await self.seal_once()
            await self._prune()

    async def seal_once(self) -> bool:
        """One sealing round; True when the whole log as of its start is sealed and stamped."""
        async with self._lock:
            started = self.clock()
            head = await self.audit.flush()
            try:
                await self._seal_head(head, started)
            except Exception as exc:
                self._failed("sign_failed", exc)
                return False
            try:
                await self._stamp_pending()
            except Exception as exc:
                self._failed("stamp_failed", exc)
                return False
            self.covered_at, self.covered_seq, self.last_error = started, head.seq, ""
            self.metrics.seals.labels("ok").inc()
            self.metrics.last_seal.set(started)
            return True

    async def _seal_head(self, head: Head, at: float) -> None:
        last = await self.audit.store.last_seal()
        if head.seq == 0 or (last is not None and last.head_seq == head.seq):
            return  # nothing new since the last seal
        statement = orjson.dumps({"v": 1, "log": "dvcgw-audit", "head_seq": head.seq, "head_hash": head.hash,
                                  "sealed_at": at, "key": self._alias}, option=orjson.OPT_SORT_KEYS)
        signature = await self._sign(statement)
        await self.audit.store.add_seal(head, at, statement, signature)

    async def _stamp_pending(self) -> None:
        pending = await self.audit.store.unstamped()
        if not pending:
            return
        root, paths = tree([leaf(s.statement, s.signature) for s in pending])
        token = await self._stamp(root)
        await self.audit.store.stamp(pending, root, token, self.clock(), paths)

    def _failed(self, outcome: str, exc: Exception) -> None:
        self.last_error = f"{outcome}: {type(exc).__name__}: {exc}"[:300]
        self.metrics.seals.labels(outcome).inc()
        log.warning("message log: sealing failed (%s); records are still accepted and kept", self.last_error)

    def halt_reason(self) -> str:
        """Why agency requests are refused now; "" while they are accepted."""
        limit = float(self.settings.halt_after_unsealed)
        if limit <= 0 or self.audit.recorded_seq <= self.covered_seq:
            return ""  # off, or nothing unsealed: a TSA outage with no traffic stops nothing
        unsealed_for = self.clock() - self.covered_at
        if unsealed_for <= limit:
            return ""
        return (f"the message log has not been sealed for {unsealed_for:.0f} s ([audit] halt_after_unsealed "
                f"{limit:.0f} s); last sealing error: {self.last_error or 'none recorded'}")

    async def _prune(self) -> None:
        keep = float(self.settings.retention)
        if keep <= 0:
            return
        try:
            n = await self.audit.store.prune(self.clock() - keep)
        except Exception:
            log.exception("message log: pruning failed")
            return
        if n:
            log.info("message log: %d records older than the retention, exported and sealed, pruned", n)
