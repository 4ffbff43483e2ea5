"""The signing service: key registry, process pool, remote-job store and poller.

Contracts (errors from :mod:`signing.errors`, :class:`core.errors.ValidationError`):

* :meth:`SigningService.sign` returns :class:`Signed` for local keys, or the durable
  :class:`~signing.jobs.Job` for remote keys (the agency gets 202); raises KeyNotAllowed,
  UnknownKey, BadPdf, SigningError, SigningUnavailable.
* :meth:`SigningService.validate` returns one report dict per signature; raises BadPdf.
* Remote jobs advance in :meth:`poll_once` (run by the background poller, woken by webhooks).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp

from config.schema import AgencySettings, SigningKeySettings, SigningSettings
from core.errors import ConfigError, FieldError, TransientError, ValidationError
from monitoring.metrics import SigningMetrics
from signing import engine, keys
from signing.errors import BadPdf, KeyNotAllowed, LevelNotAvailable, SigningError, SigningUnavailable, UnknownKey
from signing.jobs import Job, JobStore, jobs_path
from signing.options import SignOptions
from signing.remote import HashResult, RemoteSigner

log = logging.getLogger("dvcgw.signing")
Clock = Callable[[], datetime]
T = TypeVar("T")
_UNAVAILABLE = {"tsa_unavailable", "revocation_unavailable", "remote_signer_unavailable"}
_ERRORS: dict[str, type[SigningError]] = {"invalid_pdf": BadPdf, "unknown_key": UnknownKey}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Signed:
    pdf: bytes
    level: str
    downgraded: bool


def raise_for(res: engine.WorkerResult) -> None:
    """Turns a worker's error code into the matching exception from our tree."""
    if not res.error:
        return
    if res.error in _UNAVAILABLE:
        raise SigningUnavailable(res.message, code=res.error)
    if res.error == "invalid_options":
        raise ValidationError([FieldError(res.field, res.message)])
    exc = _ERRORS.get(res.error, SigningError)(res.message, field=res.field)
    if exc.__class__ is SigningError:
        exc.code = res.error
    raise exc


def callback_token(job: Job) -> str:
    """Unguessable per-job token for the webhook URL (derived, so it survives restarts)."""
    return hashlib.sha256(b"dvcgw-cb" + job.id.encode() + job.tbs_hash).hexdigest()[:32]


class SigningService:
    """One per application; :meth:`start` and :meth:`close` are driven by its cleanup_ctx."""

    def __init__(self, settings: SigningSettings, storage_path: str, metrics: SigningMetrics,
                 session: aiohttp.ClientSession, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self._session = session
        self._storage_path = storage_path
        self._keys = {k.alias: k for k in settings.keys}
        self._infos: dict[str, keys.KeyInfo] = {}
        self._remotes: dict[str, RemoteSigner] = {}
        self._pool: ProcessPoolExecutor | None = None
        self.store: JobStore | None = None
        self._wake = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._busy: set[str] = set()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Checks and loads keys, starts the pool and the remote-job poller; raises ConfigError."""
        for ks in self.settings.keys:
            keys.check_key_settings(ks)
        await self._load_local_infos()
        self._remotes = {ks.alias: RemoteSigner(ks, self._session, timeout=self.settings.tsa_timeout)
                         for ks in self.settings.keys if ks.source == "remote"}
        self._start_pool()
        await self._warm_pool()
        self.store = JobStore(jobs_path(self._storage_path))
        self._poller = asyncio.create_task(self._poll_loop(), name="signing-remote-poller")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
        if self.store is not None:
            self.store.close()

    async def _load_local_infos(self) -> None:
        for ks in self.settings.keys:
            if ks.source == "file":
                fk = keys.read_file_key(ks)
                info = keys.key_info_from_signer(ks, keys.CachedKeySigner(fk))
            elif ks.source == "pkcs11":
                info = await asyncio.to_thread(_pkcs11_info, ks)
            else:
                continue
            self._set_info(info)

    def _set_info(self, info: keys.KeyInfo) -> None:
        self._infos[info.alias] = info
        not_after = info.not_after
        self.metrics.cert_expiry.labels(info.alias).set_function(
            lambda: (not_after - self.clock()).total_seconds())

    def _start_pool(self) -> None:
        n = self.settings.workers or os.cpu_count() or 1
        self._workers = n
        self._pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=engine.init_worker, initargs=(self.settings,))

    async def _warm_pool(self) -> None:
        try:
            await asyncio.gather(*(self._in_pool(engine.ping) for _ in range(self._workers)))
        except BrokenProcessPool as exc:
            raise ConfigError("signing.keys", "a signing worker could not load its keys") from exc

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs a picklable, module-level CPU-bound ``fn`` in the signing worker pool (e.g. the
        certification block, which would otherwise hold this process's GIL for tens of ms)."""
        return await self._in_pool(fn, *args)

    async def _in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # ------------------------------------------------------------ keys

    def key_for(self, agency: AgencySettings, alias: str) -> SigningKeySettings:
        """The key if this agency may use it; raises UnknownKey or KeyNotAllowed."""
        ks = self._keys.get(alias)
        if ks is None:
            raise UnknownKey(f"no signing key {alias!r}", field="key")
        if agency.code not in ks.agencies:
            raise KeyNotAllowed(f"agency {agency.code} may not use key {alias!r}", field="key")
        return ks

    # ------------------------------------------------------------ signing

    async def sign(self, agency: AgencySettings, pdf: bytes, opts: SignOptions) -> Signed | Job:
        ks = self.key_for(agency, opts.key)
        try:
            self._require_tsa_for(opts)
            if ks.source == "remote":
                job = await self._start_remote(agency, ks, pdf, opts)
                self._count(ks.alias, opts.level, "pending" if job.state != "failed" else "error")
                return job
            return await self._sign_local(ks, pdf, opts)
        except SigningUnavailable:
            self._count(ks.alias, opts.level, "unavailable")
            raise
        except (SigningError, ValidationError):
            self._count(ks.alias, opts.level, "rejected")
            raise

    def _require_tsa_for(self, opts: SignOptions) -> None:
        """B-T and above need a time-stamp: with no TSA configured (and no downgrade allowed) no
        retry can ever help, so the request is refused as such, not answered 503."""
        if opts.level != "B-B" and not self.settings.tsa_urls and not self.settings.allow_downgrade:
            raise LevelNotAvailable(f"level {opts.level} needs a time-stamp, and no time-stamping authority is "
                                    "configured ([signing] tsa_urls); ask for B-B or configure a TSA", field="level")

    def _count(self, alias: str, level: str, outcome: str) -> None:
        self.metrics.signatures.labels(alias, level, outcome).inc()

    def _record_tsa(self, res: engine.WorkerResult) -> None:
        """The worker's TSA attempts (in order: the last one per URL says whether it is available)
        and its outbound HTTP requests, traced in the worker, into this process's metrics."""
        for call in res.tsa_calls:
            self.metrics.tsa_duration.labels(call.url).observe(call.seconds)
            self.metrics.tsa_available.labels(call.url).set(1 if call.ok else 0)
            if not call.ok:
                self.metrics.tsa_failures.labels(call.url).inc()
        for http in res.http_calls:
            self.metrics.calls.counterpart_call(http.counterpart, http.operation, http.status, http.seconds)

    async def _sign_local(self, ks: SigningKeySettings, pdf: bytes, opts: SignOptions) -> Signed:
        start = time.perf_counter()
        res = await self._in_pool(engine.sign_local, engine.SignJob(ks.alias, pdf, opts, self.clock()))
        self._record_tsa(res)
        raise_for(res)
        self.metrics.signing_duration.observe(time.perf_counter() - start)
        self._count(ks.alias, opts.level, "downgraded" if res.downgraded else "ok")
        return Signed(res.pdf, res.level, res.downgraded)

    async def validate(self, pdf: bytes, revocation_cache: float = 0.0) -> list[dict[str, Any]]:
        """``revocation_cache`` > 0 lets the worker reuse OCSP responses and CRLs it fetched in the
        last that-many seconds (never past their nextUpdate); 0 fetches them now (see engine.validate)."""
        res = await self._in_pool(engine.validate, pdf, revocation_cache)
        raise_for(res)
        for r in res.reports:
            self.metrics.validations.labels(r["indication"]).inc()
        return list(res.reports)

    async def sign_data(self, alias: str, data: bytes) -> bytes:
        """A detached CMS signature over ``data`` with the gateway's own local key ``alias`` (the
        message log's seals; no agency grant applies). Raises UnknownKey, SigningError."""
        res = await self._in_pool(engine.sign_data, alias, data)
        raise_for(res)
        return res.pdf

    async def timestamp(self, digest: bytes) -> bytes:
        """An RFC 3161 token (DER) over a SHA-256 digest from ``[signing] tsa_urls`` (with failover);
        raises SigningUnavailable when every TSA failed. Attempts go into the TSA metrics."""
        res = await self._in_pool(engine.timestamp_digest, digest)
        self._record_tsa(res)
        raise_for(res)
        return res.pdf

    # ------------------------------------------------------------ remote jobs

    def job(self, agency: AgencySettings, job_id: str) -> Job | None:
        assert self.store is not None
        job = self.store.get(job_id)
        return job if job is not None and job.agency == agency.code else None

    async def _start_remote(self, agency: AgencySettings, ks: SigningKeySettings, pdf: bytes,
                            opts: SignOptions) -> Job:
        assert self.store is not None
        chain = tuple(await self._remotes[ks.alias].certificates())
        if ks.alias not in self._infos:
            self._set_info(keys.key_info_from_der(ks, list(chain)))
        res = await self._in_pool(engine.prepare_remote,
                                  engine.RemotePrepareJob(ks.alias, pdf, opts, self.clock(), chain_der=chain))
        self._record_tsa(res)
        raise_for(res)
        assert res.prepared is not None
        job = self._new_job(agency, ks, opts, res.prepared)
        self.store.insert(job)  # durable before anyone is asked to confirm, and before the 202
        for _ in range(2):  # ask; if signed at once, embed it now
            current = self.store.get(job.id)
            assert current is not None
            if current.state not in ("prepared", "signed"):
                return current
            try:
                await self._advance_exclusive(current)
            except TransientError as exc:
                log.warning("remote job %s not advanced; the poller retries: %s", job.id, exc)
            except SigningError as exc:
                self._fail(current, exc.message)
                raise
        fresh = self.store.get(job.id)
        assert fresh is not None
        return fresh

    def _new_job(self, agency: AgencySettings, ks: SigningKeySettings, opts: SignOptions,
                 p: engine.PreparedRemote) -> Job:
        now = time.time()
        return Job(uuid.uuid4().hex, agency.code, ks.alias, opts.level, "prepared", "", p.pdf, p.document_digest,
                   p.reserved_start, p.reserved_end, p.signed_attrs, p.tbs_hash, None, None, "", now, now)

    def wake(self) -> None:
        """Makes the poller look at open jobs now (webhook from the remote signer)."""
        self._wake.set()

    async def _poll_loop(self) -> None:
        while True:
            await self.poll_once()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.remote_poll_interval)
            except TimeoutError:
                pass
            self._wake.clear()

    async def poll_once(self) -> None:
        """Advances every open job one step; transient failures leave the job for the next round."""
        assert self.store is not None
        for job in self.store.open_jobs():
            try:
                await self._advance_exclusive(job)
            except TransientError as exc:
                log.info("remote job %s waits: %s", job.id, exc)
            except SigningError as exc:
                self._fail(job, exc.message)
            except Exception:
                log.exception("remote job %s failed unexpectedly", job.id)
                self._fail(job, "internal error while finishing the signature")

    async def _advance_exclusive(self, job: Job) -> None:
        """One step for one job, never run twice at once for the same job."""
        if job.id in self._busy:
            return
        self._busy.add(job.id)
        try:
            await self._advance(job)
        finally:
            self._busy.discard(job.id)

    async def _advance(self, job: Job) -> None:
        if time.time() - job.created_at > self.settings.remote_job_timeout:
            self._fail(job, "not confirmed in time")
        elif job.state == "prepared":
            await self._ask_remote(job)
        elif job.state == "pending":
            self._apply(job, await self._remotes[job.key_alias].status(job.transaction_id))
        elif job.state == "signed":
            await self._finish(job)

    async def _ask_remote(self, job: Job) -> None:
        url = ""
        if self.settings.callback_base_url:
            url = (f"{self.settings.callback_base_url.rstrip('/')}/v1/signatures/callbacks/{job.id}"
                   f"?token={callback_token(job)}")
        self._apply(job, await self._remotes[job.key_alias].sign_hash(job.tbs_hash, f"dvcgw:{job.id}", url))

    def _apply(self, job: Job, result: HashResult) -> None:
        assert self.store is not None
        if result.state == "signed":
            self.store.update(job.id, time.time(), state="signed", signature=result.signature)
            self.wake()
        elif result.state in ("rejected", "expired"):
            self._fail(job, f"the signer {result.state} the request")
        elif result.transaction_id and result.transaction_id != job.transaction_id:
            self.store.update(job.id, time.time(), state="pending", transaction_id=result.transaction_id)

    async def _finish(self, job: Job) -> None:
        assert self.store is not None and job.signature is not None
        chain = tuple(await self._remotes[job.key_alias].certificates())
        res = await self._finish_at(job, job.level, chain)
        if res.error == "tsa_unavailable" and self.settings.allow_downgrade:
            res = await self._finish_at(job, "B-B", chain)
        if res.error in _UNAVAILABLE:
            raise SigningUnavailable(res.message, code=res.error)
        if res.error:
            self._fail(job, res.message)
            return
        downgraded = res.level != job.level
        self.store.update(job.id, time.time(), state="completed", result_pdf=res.pdf, level=res.level,
                          error="downgraded to B-B: every TSA failed" if downgraded else "")
        self._count(job.key_alias, job.level, "downgraded" if downgraded else "ok")

    async def _finish_at(self, job: Job, level: str, chain: tuple[bytes, ...]) -> engine.WorkerResult:
        prepared = engine.PreparedRemote(job.prepared_pdf, job.document_digest, job.reserved_start,
                                         job.reserved_end, job.signed_attrs, job.tbs_hash)
        assert job.signature is not None
        res = await self._in_pool(engine.finish_remote, engine.RemoteFinishJob(
            job.key_alias, level, prepared, job.signature, chain))  # type: ignore[arg-type]
        self._record_tsa(res)
        return res

    def _fail(self, job: Job, reason: str) -> None:
        assert self.store is not None
        self.store.update(job.id, time.time(), state="failed", error=reason)
        self._count(job.key_alias, job.level, "error")


def _pkcs11_info(ks: SigningKeySettings) -> keys.KeyInfo:
    """Reads the certificate from the token in the parent (the session is closed again)."""
    signer = keys.load_signer(ks)
    try:
        asyncio.run(keys.ensure_loaded(signer))
        return keys.key_info_from_signer(ks, signer)
    finally:
        session = getattr(signer, "pkcs11_session", None)
        if session is not None:
            session.close()
