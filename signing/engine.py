"""Worker-process side of signing and validation (CPU-bound pyHanko work).

The parent submits picklable jobs to a process pool; each worker was initialised once by
:func:`init_worker`, which parses every local key (or opens its PKCS#11 session) and keeps it,
together with an event loop, aiohttp sessions (TSA, traced; OCSP, CRL) and the per-(key, level)
placeholder sizes. Results come back as :class:`WorkerResult` data, never as exceptions, so
nothing depends on pickling exception classes.

Revocation answers are fetched afresh for every validation, except when the caller asks for a
bounded reuse (:func:`validate` with ``revocation_cache`` > 0, the certification's check before
``valid``): then one pyHanko ``Fetchers`` object (public certvalidator API) serves the worker's
checks until the earliest of that age, the ``nextUpdate`` of any answer it holds, and a check that
did not pass.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import aiohttp
from asn1crypto import cms, crl, ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfReadError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes, Signer
from pyhanko.sign.signers.pdf_signer import PdfTBSDocument, PdfTimeStamper
from pyhanko.sign.validation import dss as pdf_dss
from pyhanko.stamp import TextStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError, ValidationError
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
from pyhanko_certvalidator.fetchers.api import Fetchers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from config.schema import SigningSettings
from monitoring.tracing import CallLog, CounterpartCall, trace_config
from signing import keys, report
from signing.options import Level, SignOptions
from signing.tsa import AllTsaFailed, FailoverTimeStamper, TsaCall

FONT_PATH = Path(__file__).parent / "fonts" / "DejaVuSans-1000upem.ttf"
_DOCMDP = {"no_changes": fields.MDPPerm.NO_CHANGES, "form_filling": fields.MDPPerm.FILL_FORMS,
           "annotate": fields.MDPPerm.ANNOTATE}


@dataclass(frozen=True)
class WorkerResult:
    """Outcome of one job. ``error`` is a short code (``invalid_pdf``, ``tsa_unavailable`` …)."""

    pdf: bytes = b""
    level: str = ""
    downgraded: bool = False
    tsa_calls: tuple[TsaCall, ...] = ()
    http_calls: tuple[CounterpartCall, ...] = ()  # outbound requests (TSA), for the parent's metrics
    error: str = ""
    message: str = ""
    field: str = ""
    reports: tuple[dict[str, Any], ...] = ()
    prepared: PreparedRemote | None = None


@dataclass(frozen=True)
class PreparedRemote:
    """A half-signed document: the PDF with its placeholder and what the remote signer must sign."""

    pdf: bytes
    document_digest: bytes
    reserved_start: int
    reserved_end: int
    signed_attrs: bytes
    tbs_hash: bytes


@dataclass(frozen=True)
class SignJob:
    alias: str
    pdf: bytes
    options: SignOptions
    signing_time: datetime


@dataclass(frozen=True)
class RemotePrepareJob(SignJob):
    chain_der: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class RemoteFinishJob:
    alias: str
    level: Level
    prepared: PreparedRemote
    signature: bytes
    chain_der: tuple[bytes, ...]


@dataclass
class _Worker:
    settings: SigningSettings
    signers: dict[str, Signer]
    loop: asyncio.AbstractEventLoop
    trust_roots: list[asn1_x509.Certificate]
    font: GlyphAccumulatorFactory
    reserved: dict[tuple[str, str], int] = field(default_factory=dict)
    session: aiohttp.ClientSession | None = None  # OCSP, CRL
    tsa_session: aiohttp.ClientSession | None = None  # traced into ``calls``
    calls: CallLog = field(default_factory=CallLog)
    stampers: list[FailoverTimeStamper] = field(default_factory=list)  # the current job's
    revocation: RevocationCache | None = None  # reused answers for validate(revocation_cache > 0)


@dataclass
class RevocationCache:
    """Fetched OCSP responses and CRLs (pyHanko keeps them in its ``Fetchers``), reused until ``until``."""

    fetchers: Fetchers
    until: datetime


#: a cached answer is dropped this long before its own nextUpdate (the check's clock runs on)
NEXT_UPDATE_MARGIN = timedelta(seconds=10)

_W: _Worker | None = None


class _JobFailed(Exception):
    def __init__(self, code: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def load_trust_roots(paths: tuple[str, ...]) -> list[asn1_x509.Certificate]:
    """Certificates from PEM or DER files; the OS store is never consulted."""
    from cryptography.hazmat.primitives.serialization import Encoding
    out = []
    for p in paths:
        for c in keys._load_certs(p):
            out.append(asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)))
    return out


def init_worker(settings: SigningSettings) -> None:
    """Process-pool initializer: parse keys once, open PKCS#11 sessions, make the loop."""
    global _W
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    signers = {ks.alias: keys.load_signer(ks) for ks in settings.keys if ks.source != "remote"}
    for s in signers.values():
        loop.run_until_complete(keys.ensure_loaded(s))
    _W = _Worker(settings, signers, loop, load_trust_roots(settings.trust_roots),
                 GlyphAccumulatorFactory(str(FONT_PATH)))


def ping() -> int:
    """Proves the initializer ran (keys loaded); returns the number of local signers."""
    return len(_state().signers)


def _state() -> _Worker:
    if _W is None:
        raise RuntimeError("signing worker not initialised")
    return _W


def _run(coro: Any) -> WorkerResult:
    """Runs one job; its result carries the job's TSA attempts and traced requests, also when it failed
    (every TSA down is exactly when the parent must see them)."""
    w = _state()
    try:
        result: WorkerResult = w.loop.run_until_complete(coro)
    except _JobFailed as exc:
        result = WorkerResult(error=exc.code, message=exc.message, field=exc.field)
    finally:  # a job that raised must not leave its calls to the next one
        tsa_calls = tuple(call for ts in w.stampers for call in ts.take_calls())
        w.stampers.clear()
        http_calls = w.calls.take()
    return dataclasses.replace(result, tsa_calls=tsa_calls, http_calls=http_calls)


def _session() -> aiohttp.ClientSession:
    w = _state()
    if w.session is None or w.session.closed:
        w.session = aiohttp.ClientSession()
    return w.session


def _tsa_session() -> aiohttp.ClientSession:
    w = _state()
    if w.tsa_session is None or w.tsa_session.closed:
        w.tsa_session = aiohttp.ClientSession(trace_configs=[trace_config(w.calls, "tsa", operation="timestamp")])
    return w.tsa_session


def _timestamper() -> FailoverTimeStamper:
    """A time-stamper for the current job (:func:`_run` collects its attempts)."""
    w = _state()
    s = w.settings
    ts = FailoverTimeStamper(s.tsa_urls, _tsa_session(), timeout=s.tsa_timeout, attempts=s.tsa_attempts)
    w.stampers.append(ts)
    return ts


def _vc_kwargs(fetchers: Fetchers | None = None) -> dict[str, Any]:
    """A validation context's settings: hard-fail revocation, fetched through the worker's session;
    with ``fetchers``, through that (shared, caching) object instead of a fresh one."""
    source = {"fetcher_backend": _fetcher_backend()} if fetchers is None else {"fetchers": fetchers}
    return {"trust_roots": _state().trust_roots, "allow_fetching": True, "revocation_mode": "hard-fail", **source}


def _fetcher_backend() -> AIOHttpFetcherBackend:
    return AIOHttpFetcherBackend(_session(), per_request_timeout=_state().settings.tsa_timeout)


def _validation_context() -> ValidationContext:
    return ValidationContext(**_vc_kwargs())


# ---------------------------------------------------------------- input


def open_writer(pdf: bytes) -> IncrementalPdfFileWriter:
    """An incremental writer over the input; raises _JobFailed(invalid_pdf) for garbage or encryption."""
    try:
        reader = PdfFileReader(BytesIO(pdf), strict=False)
        if reader.encrypted:
            raise _JobFailed("invalid_pdf", "the PDF is encrypted; send it without encryption")
        _ = reader.root["/Pages"]
        return IncrementalPdfFileWriter.from_reader(reader)
    except _JobFailed:
        raise
    except (PdfReadError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise _JobFailed("invalid_pdf", f"not a readable PDF: {type(exc).__name__}") from exc


def _field_name(writer: IncrementalPdfFileWriter, wanted: str | None) -> str:
    if wanted:
        return wanted
    taken = {name for name, _, _ in fields.enumerate_sig_fields(writer.prev, filled_status=None)}
    n = len(taken) + 1
    while f"Signature{n}" in taken:
        n += 1
    return f"Signature{n}"


# ---------------------------------------------------------------- local signing


def sign_local(job: SignJob) -> WorkerResult:
    """Signs with a key this worker holds, at the requested level (B-B if downgraded)."""
    return _run(_sign_local(job))


async def _sign_local(job: SignJob) -> WorkerResult:
    w = _state()
    signer = w.signers.get(job.alias)
    if signer is None:
        raise _JobFailed("unknown_key", f"key {job.alias!r} is not held by this worker", "key")
    ts = _timestamper() if job.options.needs_tsa() else None
    try:
        pdf = await _sign_with(signer, job, job.options.level, ts)
        return WorkerResult(pdf=pdf, level=job.options.level)
    except AllTsaFailed as exc:
        if not w.settings.allow_downgrade:
            raise _JobFailed("tsa_unavailable", f"{exc}; the {job.options.level} signature needs a time-stamp"
                             ) from exc
    pdf = await _sign_with(signer, job, "B-B", None)
    return WorkerResult(pdf=pdf, level="B-B", downgraded=True)


async def _sign_with(signer: Signer, job: SignJob, level: Level, ts: FailoverTimeStamper | None) -> bytes:
    writer = open_writer(job.pdf)
    pdf_signer, params = _pdf_signer(writer, signer, job.options, level, ts)
    try:
        return await _run_signing(pdf_signer, writer, job, level, params)
    except (AllTsaFailed, _JobFailed):
        raise
    except (PathValidationError, PathBuildingError, ValidationError) as exc:
        raise _JobFailed("certificate_invalid", f"the signing certificate does not validate: {exc}") from exc
    except (PyHankoSigningError, PdfReadError) as exc:
        if isinstance(exc.__cause__, PathValidationError | PathBuildingError):
            raise _JobFailed("certificate_invalid",
                             f"the signing certificate does not validate: {exc.__cause__}") from exc
        raise _JobFailed("signing_failed", f"pyHanko could not sign: {exc}") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise _JobFailed("revocation_unavailable", f"revocation data could not be fetched: {exc}") from exc


def _pdf_signer(writer: IncrementalPdfFileWriter, signer: Signer, opts: SignOptions, level: Level,
                ts: FailoverTimeStamper | None) -> tuple[signers.PdfSigner, dict[str, str] | None]:
    lt = level in ("B-LT", "B-LTA")
    name = _field_name(writer, opts.field_name)
    meta = signers.PdfSignatureMetadata(
        field_name=name, reason=opts.reason, location=opts.location, md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES, certify=opts.certify,
        docmdp_permissions=_DOCMDP[opts.docmdp], embed_validation_info=lt, use_pades_lta=level == "B-LTA",
        validation_context=_validation_context() if lt else None,
    )
    spec, style, params = _appearance(writer, name, opts)
    return signers.PdfSigner(meta, signer, timestamper=ts, stamp_style=style, new_field_spec=spec), params


def _appearance(writer: IncrementalPdfFileWriter, name: str, opts: SignOptions
                ) -> tuple[fields.SigFieldSpec, TextStampStyle | None, dict[str, str] | None]:
    app = opts.appearance
    if app is None:
        return fields.SigFieldSpec(sig_field_name=name), None, None
    pages = int(writer.root["/Pages"]["/Count"])
    if app.page >= pages:
        raise _JobFailed("invalid_options", f"the PDF has {pages} page(s)", "appearance.page")
    style = TextStampStyle(stamp_text=app.text, border_width=1,
                           text_box_style=TextBoxStyle(font=_state().font))
    spec = fields.SigFieldSpec(sig_field_name=name, on_page=app.page, box=app.box)
    return spec, style, dict(app.params)


async def _run_signing(pdf_signer: signers.PdfSigner, writer: IncrementalPdfFileWriter, job: SignJob,
                       level: Level, params: dict[str, str] | None) -> bytes:
    """pyHanko's async_sign_pdf, with the clock's signing time and a cached placeholder size."""
    session = pdf_signer.init_signing_session(writer)
    session.system_time = job.signing_time
    vinfo = await session.perform_presign_validation(writer)
    reserved = await _reserved(session, vinfo, job.alias, level)
    tbs = session.prepare_tbs_document(validation_info=vinfo, bytes_reserved=reserved,
                                       appearance_text_params=params)
    prepared, output = tbs.digest_tbs_document(output=BytesIO())
    attrs = PdfCMSSignedAttributes(
        signing_time=job.signing_time, adobe_revinfo_attr=None if vinfo is None else vinfo.adobe_revinfo_attr,
        cades_signed_attrs=pdf_signer.signature_meta.cades_signed_attr_spec,
    )
    post = await tbs.perform_signature(document_digest=prepared.document_digest, pdf_cms_signed_attrs=attrs)
    await post.post_signature_processing(output)
    return bytes(output.getvalue())  # type: ignore[attr-defined]


async def _reserved(session: Any, vinfo: Any, alias: str, level: str) -> int:
    """Placeholder size, estimated with a dry-run signature once per (key, level) and cached."""
    w = _state()
    size = w.reserved.get((alias, level))
    if size is None:
        size = int(await session.estimate_signature_container_size(vinfo, tight=False))
        w.reserved[(alias, level)] = size
    return size


# ---------------------------------------------------------------- remote (hash) signing


def prepare_remote(job: RemotePrepareJob) -> WorkerResult:
    """Builds the placeholder document and the signed attributes whose hash the remote key signs."""
    return _run(_prepare_remote(job))


def _external(chain_der: tuple[bytes, ...], value: bytes | int) -> signers.ExternalSigner:
    certs = [asn1_x509.Certificate.load(c) for c in chain_der]
    registry = SimpleCertificateStore.from_certs(certs[1:])  # type: ignore[no-untyped-call]
    return signers.ExternalSigner(certs[0], registry, signature_value=value)


async def _prepare_remote(job: RemotePrepareJob) -> WorkerResult:
    size = x509.load_der_x509_certificate(job.chain_der[0]).public_key()
    ext = _external(job.chain_der, getattr(size, "key_size", 2048) // 8 + 16)
    writer = open_writer(job.pdf)
    # the CMS level is B-B or B-T here; DSS and document time-stamps are added when finishing
    ts = _timestamper() if job.options.needs_tsa() else None
    cms_level: Level = "B-T" if ts else "B-B"
    pdf_signer, params = _pdf_signer(writer, ext, job.options, cms_level, ts)
    try:
        session = pdf_signer.init_signing_session(writer)
        session.system_time = job.signing_time
        reserved = await _reserved(session, None, job.alias, job.options.level)
    except AllTsaFailed as exc:
        raise _JobFailed("tsa_unavailable", str(exc)) from exc
    tbs = session.prepare_tbs_document(validation_info=None, bytes_reserved=reserved,
                                       appearance_text_params=params)
    prepared, output = tbs.digest_tbs_document(output=BytesIO())
    attrs = await ext.signed_attrs(prepared.document_digest, "sha256", use_pades=True,
                                   attr_settings=PdfCMSSignedAttributes(signing_time=job.signing_time))
    der = attrs.dump()
    pdf = bytes(output.getvalue())  # type: ignore[attr-defined]
    state = PreparedRemote(pdf, prepared.document_digest, prepared.reserved_region_start,
                           prepared.reserved_region_end, der, hashlib.sha256(der).digest())
    return WorkerResult(prepared=state, level=job.options.level)


def finish_remote(job: RemoteFinishJob) -> WorkerResult:
    """Embeds the remote signature value; adds time-stamp, DSS and document time-stamp per level."""
    return _run(_finish_remote(job))


def _check_signature_value(cert_der: bytes, signed_attrs: bytes, sig: bytes) -> None:
    pub = x509.load_der_x509_certificate(cert_der).public_key()
    try:
        if isinstance(pub, rsa.RSAPublicKey):
            pub.verify(sig, signed_attrs, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(sig, signed_attrs, ec.ECDSA(hashes.SHA256()))
        else:
            raise _JobFailed("signing_failed", "unsupported remote key type")
    except InvalidSignature as exc:
        raise _JobFailed("remote_signature_invalid", "the remote signer returned an invalid signature value"
                         ) from exc


async def _finish_remote(job: RemoteFinishJob) -> WorkerResult:
    p = job.prepared
    _check_signature_value(job.chain_der[0], p.signed_attrs, job.signature)
    ts = _timestamper() if job.level != "B-B" else None
    ext = _external(job.chain_der, job.signature)
    try:
        sig_cms = await ext.async_sign_prescribed_attributes(
            "sha256", signed_attrs=cms.CMSAttributes.load(p.signed_attrs), timestamper=ts)
    except AllTsaFailed as exc:
        raise _JobFailed("tsa_unavailable", str(exc)) from exc
    out = BytesIO(p.pdf)
    digest = PreparedByteRangeDigest(p.document_digest, p.reserved_start, p.reserved_end)
    await PdfTBSDocument.async_finish_signing(out, digest, sig_cms)
    pdf = bytes(out.getvalue())
    if job.level in ("B-LT", "B-LTA"):
        pdf = await _add_ltv(pdf, job.level, ts)
    return WorkerResult(pdf=pdf, level=job.level)


async def _add_ltv(pdf: bytes, level: Level, ts: FailoverTimeStamper | None) -> bytes:
    vc = _validation_context()
    try:
        sig = PdfFileReader(BytesIO(pdf)).embedded_signatures[-1]
        out = await pdf_dss.async_add_validation_info(sig, vc, output=BytesIO())
        if level == "B-LTA" and ts is not None:
            writer = IncrementalPdfFileWriter(out)
            out = await PdfTimeStamper(ts).async_timestamp_pdf(writer, "sha256", vc, output=BytesIO())
    except AllTsaFailed as exc:
        raise _JobFailed("tsa_unavailable", str(exc)) from exc
    except (PathValidationError, PathBuildingError, ValidationError) as exc:
        raise _JobFailed("certificate_invalid", f"the signing certificate does not validate: {exc}") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise _JobFailed("revocation_unavailable", f"revocation data could not be fetched: {exc}") from exc
    return bytes(out.getvalue())  # type: ignore[attr-defined]


# ---------------------------------------------------------------- validation


def validate(pdf: bytes, revocation_cache: float = 0.0) -> WorkerResult:
    """One report per signature (see :mod:`signing.report`). ``revocation_cache`` > 0: revocation
    answers this worker fetched in the last that-many seconds are reused (never past their own
    nextUpdate); 0 = every answer is fetched now."""
    return _run(_validate(pdf, revocation_cache))


async def _validate(pdf: bytes, revocation_cache: float = 0.0) -> WorkerResult:
    reader = open_writer(pdf).prev
    dss = pdf_dss.DocumentSecurityStore.read_dss(reader) if "/DSS" in reader.root else None
    fetchers = _cached_fetchers(revocation_cache)
    reports: list[dict[str, Any]] = []
    complete = False
    try:
        for sig in reader.embedded_signatures:
            # one context for a signature and its time-stamp token (pyHanko's own default): the chain
            # they share (the issuing CA's CRL) is fetched and checked once, not twice
            vc = _dss_context(dss, fetchers)
            reports.append(await report.validate_one(sig, vc, vc))
        complete = True
    finally:
        if fetchers is not None:
            _keep_revocation(reports, complete)
    return WorkerResult(reports=tuple(reports))


def _dss_context(dss: pdf_dss.DocumentSecurityStore | None, fetchers: Fetchers | None = None) -> ValidationContext:
    """A context per signature (contexts keep what they fetch; ``fetchers`` None = a fresh one),
    preloaded with the DSS."""
    if dss is None:
        return ValidationContext(**_vc_kwargs(fetchers))
    return dss.as_validation_context(_vc_kwargs(fetchers))


def _cached_fetchers(max_age: float) -> Fetchers | None:
    """The worker's shared fetchers while they are younger than ``max_age`` seconds and before the
    earliest nextUpdate of what they hold; None when ``max_age`` is 0 (fetch everything now)."""
    if max_age <= 0:
        return None
    w = _state()
    now = datetime.now(UTC)
    if w.revocation is None or now >= w.revocation.until:
        w.revocation = RevocationCache(_fetcher_backend().get_fetchers(), now + timedelta(seconds=max_age))
    return w.revocation.fetchers


def _keep_revocation(reports: list[dict[str, Any]], complete: bool) -> None:
    """After a check: forget everything if it did not pass or did not finish (a responder that
    failed, or an answer that did not fit, is asked again next time); else shorten the lifetime to
    the earliest nextUpdate among the answers now held."""
    w = _state()
    if w.revocation is None:
        return
    if not complete or any(r["indication"] != report.PASSED for r in reports):
        w.revocation = None
        return
    f = w.revocation.fetchers
    try:
        next_update = earliest_next_update(f.ocsp_fetcher.fetched_responses(), f.crl_fetcher.fetched_crls())
    except (ValueError, KeyError, TypeError):  # an answer whose validity cannot be read is not kept
        w.revocation = None
        return
    if next_update is not None:
        w.revocation.until = min(w.revocation.until, next_update - NEXT_UPDATE_MARGIN)


def earliest_next_update(ocsps: Iterable[ocsp.OCSPResponse], crls: Iterable[crl.CertificateList]) -> datetime | None:
    """The earliest nextUpdate of these OCSP responses (every single response in them) and CRLs;
    None when none carries one."""
    times: list[datetime] = []
    for resp in ocsps:
        basic = resp["response_bytes"]["response"].parsed
        times += [r["next_update"].native for r in basic["tbs_response_data"]["responses"]
                  if r["next_update"].native is not None]
    for cl in crls:
        if cl["tbs_cert_list"]["next_update"].native is not None:
            times.append(cl["tbs_cert_list"]["next_update"].native)
    return min(times, default=None)


# ---------------------------------------------------------------- raw data (the message log's seals)


def sign_data(alias: str, data: bytes) -> WorkerResult:
    """A detached CMS signature (DER, in ``pdf``) over ``data`` with a local key: the message log's
    seal (audit/). Error ``unknown_key`` for a key this worker does not hold."""
    return _run(_sign_data(alias, data))


async def _sign_data(alias: str, data: bytes) -> WorkerResult:
    signer = _state().signers.get(alias)
    if signer is None:
        raise _JobFailed("unknown_key", f"no local signing key {alias!r}", "key")
    try:
        info = await signer.async_sign_general_data(data, "sha256", detached=True)
    except PyHankoSigningError as exc:
        raise _JobFailed("signing_failed", f"the key could not sign: {exc}") from exc
    return WorkerResult(pdf=info.dump())


def timestamp_digest(digest: bytes) -> WorkerResult:
    """An RFC 3161 token (ContentInfo DER, in ``pdf``) over a SHA-256 ``digest``, from the
    configured TSAs in order; error ``tsa_unavailable`` when every one failed."""
    return _run(_timestamp_digest(digest))


async def _timestamp_digest(digest: bytes) -> WorkerResult:
    try:
        token = await _timestamper().async_timestamp(digest, "sha256")
    except AllTsaFailed as exc:
        raise _JobFailed("tsa_unavailable", str(exc)) from exc
    return WorkerResult(pdf=token.dump())
