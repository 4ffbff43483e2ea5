"""Certify a copy (spec §2, §3.3): reserve → stamp → sign (the existing signing service) → check → record.

Contracts (errors from :mod:`signing.certification.errors`, :mod:`signing.errors`,
:class:`core.errors.ValidationError`):

* :func:`parse_metadata` raises ValidationError naming every bad field.
* :meth:`CertificationService.certify` returns the ``valid`` :class:`Entry`; raises ValidationError,
  NotAllowed, BadDocument before a number is taken; once a number is reserved, any failure
  (SigningUnavailable, SigningError, a signature that does not validate, even cancellation) makes
  the entry ``void`` with the reason and is re-raised: the number stays consumed, never reused.
* There is no second signing path: the stamped PDF goes through :meth:`SigningService.sign` with
  the authority's configured key, and :meth:`SigningService.validate` checks it before the entry
  becomes ``valid`` (spec §2.3, TH's ``CapSoVaDongDau`` check).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from config.schema import AgencySettings, CertificationAuthoritySettings, CertificationSettings, CertifierSettings
from core.errors import ConfigError, FieldError, ValidationError
from monitoring.metrics import CertificationMetrics
from signing.certification import stamp
from signing.certification.books import VN_TZ, Book, Books, Entry, NewEntry, RemoteWait, books_path, fee_on
from signing.certification.errors import BadState, CertificationError
from signing.certification.verify import unchanged_since
from signing.errors import SigningError
from signing.jobs import Job
from signing.options import SignOptions
from signing.report import PASSED
from signing.service import Signed, SigningService

log = logging.getLogger("dvcgw.certification")
Clock = Callable[[], datetime]
_TEXT_FIELDS = ("authority_code", "certifier_name", "certifier_title", "requester_name", "requester_id_no",
                "document_name")
_PRINTED = ("certifier_name", "certifier_title")  # on the block (the authority's name comes from settings)
_KNOWN = {*_TEXT_FIELDS, "paper_copies", "dossier_code", "stamp_position", "certifier_id"}
#: the signatures' reasons (PDF /Reason): the certifier's, then the authority's seal
CERTIFIER_REASON = "Người thực hiện chứng thực"
AUTHORITY_REASON = "Chứng thực bản sao từ bản chính"
_MAX_TEXT = 200


class NotAllowed(CertificationError):
    """The agency may not certify for that authority (403)."""

    code = "not_allowed"


class SignatureRejected(CertificationError):
    """The freshly signed copy did not validate (the entry is void)."""

    code = "signature_not_valid"


@dataclass(frozen=True)
class Metadata:
    authority_code: str
    certifier_name: str
    certifier_title: str
    requester_name: str
    requester_id_no: str
    document_name: str
    paper_copies: int = 0
    dossier_code: str = ""
    stamp_position: stamp.Position | None = None
    certifier_id: str = ""  # which configured certifier signs (signing_mode "certifier" and "both")

    def __repr__(self) -> str:  # never print requester data by accident
        return f"Metadata({self.authority_code}, {self.document_name!r})"


@dataclass(frozen=True)
class FilePart:
    content_type: str
    data: bytes


def parse_metadata(raw: object) -> Metadata:
    """Checks the ``metadata`` JSON (spec §4 field names); raises ValidationError listing every bad field."""
    if not isinstance(raw, dict):
        raise ValidationError([FieldError("metadata", "expected a JSON object")])
    errors = [FieldError(k, "unknown field") for k in sorted(set(raw) - _KNOWN)]
    texts = {n: _text(raw.get(n), n, errors) for n in _TEXT_FIELDS}
    for name in _PRINTED:
        if texts[name] and not stamp.printable(texts[name]):
            errors.append(FieldError(name, "has characters the certification block cannot print (Latin and "
                                           "Vietnamese letters, digits and common punctuation only)"))
    copies = raw.get("paper_copies", 0)
    if not isinstance(copies, int) or isinstance(copies, bool) or not 0 <= copies <= 100:
        errors.append(FieldError("paper_copies", "expected an integer from 0 to 100"))
    dossier = raw.get("dossier_code", "")
    if not isinstance(dossier, str) or len(dossier) > 100:
        errors.append(FieldError("dossier_code", "expected a string (the dossier's MaHoSo)"))
    position = _position(raw.get("stamp_position"), errors)
    certifier = raw.get("certifier_id", "")
    if not isinstance(certifier, str) or len(certifier) > 100:
        errors.append(FieldError("certifier_id", "expected a string (a configured certifier's id)"))
    if errors:
        raise ValidationError(errors)
    return Metadata(**texts, paper_copies=copies, dossier_code=dossier, stamp_position=position,  # type: ignore[arg-type]
                    certifier_id=certifier)


def _text(value: object, name: str, errors: list[FieldError]) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_TEXT:
        errors.append(FieldError(name, f"required: a non-empty string of at most {_MAX_TEXT} characters"))
        return ""
    if any(unicodedata.category(c).startswith("C") for c in value):
        errors.append(FieldError(name, "control characters are not allowed"))
    return unicodedata.normalize("NFC", value.strip())


def _position(value: object, errors: list[FieldError]) -> stamp.Position | None:
    if value is None:
        return None
    ok = isinstance(value, dict) and set(value) == {"x", "y"} and all(
        isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 14400 for v in value.values())
    if not ok:
        errors.append(FieldError("stamp_position", "expected {\"x\": points, \"y\": points} (lower-left corner)"))
        return None
    assert isinstance(value, dict)
    return stamp.Position(float(value["x"]), float(value["y"]))


def assemble(parts: list[FilePart]) -> bytes:
    """One PDF part as is, or JPEG/PNG parts assembled in order; raises BadDocument / ValidationError."""
    if not parts:
        raise ValidationError([FieldError("file", "at least one file part (the scan) is required")])
    if any(p.data[:1024].find(b"%PDF-") >= 0 for p in parts):
        if len(parts) != 1:
            raise ValidationError([FieldError("file", "send one PDF, or JPEG/PNG pages, not several PDFs or a mix")])
        return parts[0].data
    return stamp.images_to_pdf([p.data for p in parts])


class CertificationService:
    """One per application; :meth:`start` and :meth:`close` run in its cleanup_ctx (after signing's)."""

    def __init__(self, settings: CertificationSettings, storage_path: str, signing: SigningService,
                 metrics: CertificationMetrics, clock: Clock, agencies: tuple[AgencySettings, ...] = ()) -> None:
        self.settings = settings
        self._agencies = {a.code: a for a in agencies}  # who asked, for the signatures finished later
        self.signing = signing
        self.metrics = metrics
        self.clock = clock
        self._path = Path(settings.path) if settings.path else books_path(storage_path)
        self._authorities = {a.code: a for a in settings.authorities}
        self.books: Books | None = None
        #: called with each valid entry tied to a dossier (the gateway puts a durable job that adds
        #: the copy's link to the dossier for DVCQG); a failure there is logged, the copy stays valid
        self.on_issued: Callable[[Entry], Awaitable[None]] | None = None

    def start(self) -> None:
        """Opens the register and voids interrupted reservations; raises ConfigError for an authority
        name the block cannot print."""
        for i, auth in enumerate(self.settings.authorities):
            if not stamp.printable(auth.name):
                raise ConfigError(f"certification.authorities[{i}].name",
                                  "has characters the certification block cannot print")
        self.books = Books(self._path)
        voided = self.books.void_interrupted()
        if voided:
            log.warning("%d certification(s) were cut off by a stop while signing; recorded as void", voided)
        self.metrics.active_authorities.set_function(self._active_authorities)

    def close(self) -> None:
        if self.books is not None:
            self.books.close()

    def _active_authorities(self) -> float:
        """Authorities with an open electronic book and at least one valid record (the 766 evidence, spec §9)."""
        assert self.books is not None
        open_ = {b.authority_code for b in self.books.books() if b.closed_at is None}
        valid = {a for (a, s), n in self.books.counts().items() if s == "valid" and n}
        return float(len(open_ & valid & set(self._authorities)))

    def authority_for(self, agency: AgencySettings | None, code: str) -> CertificationAuthoritySettings:
        """The configured authority if ``agency`` may act for it (``None`` = the operator)."""
        auth = self._authorities.get(code)
        if auth is None:
            raise ValidationError([FieldError("authority_code", f"no certifying authority {code!r} is configured")])
        if agency is not None and agency.code not in auth.agencies:
            raise NotAllowed(f"agency {agency.code} may not certify for authority {code}", field="authority_code")
        return auth

    # ------------------------------------------------------------ certify

    async def certify(self, agency: AgencySettings, meta: Metadata, parts: list[FilePart]) -> Entry:
        auth = self.authority_for(agency, meta.authority_code)
        if meta.dossier_code and not self.settings.public_base_url:
            raise ValidationError([FieldError("dossier_code", "this gateway has no [certification] public_base_url: "
                                              "it cannot give the dossier a link to the copy")])
        certifier = self.certifier_for(auth, meta.certifier_id)
        scan = await asyncio.to_thread(assemble, parts)
        # one read of the scan: its page count, and whether the block fits, before a number is taken
        pages, _ = await asyncio.to_thread(stamp.inspect, scan, meta.stamp_position)
        start = time.perf_counter()
        books = self._books()
        now = self.clock()
        entry = await self._reserve(books, self._new_entry(auth, meta, pages, scan, now), now)
        final = await self._voiding(auth.code, entry, self._stamp_and_sign(agency, auth, certifier, meta, entry, scan))
        if final.status == "reserved":  # a certifier confirms the remote signature later (advance_waits)
            return final
        self.metrics.duration.observe(time.perf_counter() - start)
        await self._issued(final)
        return final

    def certifier_for(self, auth: CertificationAuthoritySettings, certifier_id: str) -> CertifierSettings | None:
        """The request's certifier when the authority's certifiers sign (checked before a number is taken)."""
        if auth.signing_mode == "authority":
            if certifier_id:
                raise ValidationError([FieldError("certifier_id", f"authority {auth.code} signs with its own key "
                                                  "only (signing_mode \"authority\"); leave certifier_id out")])
            return None
        certifier = next((c for c in auth.certifiers if c.id == certifier_id), None)
        if certifier is None:
            ids = ", ".join(c.id for c in auth.certifiers)
            raise ValidationError([FieldError("certifier_id", f"required: one of the certifiers configured for "
                                              f"authority {auth.code} ({ids})")])
        return certifier

    async def _reserve(self, books: Books, new: NewEntry, now: datetime) -> Entry:
        """Takes the number. A request abandoned while the reservation commits in its thread still
        gets its entry voided (not left ``reserved`` until the next start)."""
        reservation = asyncio.ensure_future(asyncio.to_thread(books.reserve, new, now))
        try:
            return await asyncio.shield(reservation)
        except asyncio.CancelledError:
            entry = await reservation  # a reservation that failed took no number: its error goes up
            await self._void(new.authority_code, entry, "cancelled: the request was abandoned while numbering")
            raise

    async def _voiding(self, authority_code: str, entry: Entry, work: Awaitable[Entry]) -> Entry:
        """Runs the work on a reserved entry; any failure voids the entry with its reason and is re-raised."""
        try:
            return await work
        except BaseException as exc:
            await self._void(authority_code, entry, _reason(exc))
            raise

    async def _void(self, authority_code: str, entry: Entry, reason: str) -> None:
        """``reserved`` → ``void`` (shielded: it completes even when the request is cancelled again). An
        entry that already left ``reserved`` (its ``valid`` commit raced a cancellation) stays as it is."""
        try:
            await asyncio.shield(asyncio.to_thread(self._books().void, entry.book_id, entry.cert_number, reason))
        except BadState:
            log.warning("certification %s/%d failed after it left reserved; left as it is (%s)",
                        entry.book_id, entry.cert_number, reason[:100])
            return
        self.metrics.certifications.labels(authority_code, "voided").inc()
        log.warning("certification %s/%d void: %s", entry.book_id, entry.cert_number, reason)

    async def _issued(self, final: Entry) -> None:
        self.metrics.certifications.labels(final.authority_code, "issued").inc()
        if final.dossier_code and self.on_issued is not None:
            try:
                await self.on_issued(final)
            except Exception:
                log.exception("certification %s/%d is valid, but its dossier link was not queued",
                              final.book_id, final.cert_number)

    def download_url(self, entry: Entry) -> str:
        """The copy's public link (no key: the entry's unguessable token), for DanhSachGiayToKetQua."""
        base = self.settings.public_base_url.rstrip("/")
        return f"{base}/v1/certifications/{entry.book_id}/{entry.cert_number}/pdf?token={entry.download_token}"

    def _new_entry(self, auth: CertificationAuthoritySettings, meta: Metadata, pages: int, scan: bytes,
                   now: datetime) -> NewEntry:
        fee = fee_on(now.astimezone(VN_TZ).date(), pages, self.settings.fee_schedules)
        return NewEntry(auth.code, auth.name, meta.certifier_name, meta.certifier_title, meta.requester_name,
                        meta.requester_id_no, meta.document_name, pages, fee,
                        paper_copies=meta.paper_copies, dossier_code=meta.dossier_code,
                        original_sha256=hashlib.sha256(scan).hexdigest())

    async def _stamp_and_sign(self, agency: AgencySettings, auth: CertificationAuthoritySettings,
                              certifier: CertifierSettings | None, meta: Metadata, entry: Entry, scan: bytes) -> Entry:
        """Stamps, then signs in the spec §2.3 order: the certifier first (their personal key, normally
        remote: the answer may be a job a person confirms later), then the authority's seal over it."""
        text = stamp.StampText(entry.cert_number, entry.book_name, entry.certified_date.astimezone(VN_TZ),
                               meta.certifier_name, meta.certifier_title, auth.name)
        pdf = await self.signing.offload(stamp.stamp_last_page, scan, text, meta.stamp_position)
        if certifier is not None:
            result = await self.signing.sign(agency, pdf, self._options(certifier.key, CERTIFIER_REASON, auth))
            if isinstance(result, Job):
                if result.state != "completed":
                    return await self._wait(agency, entry, result)
                assert result.result_pdf is not None
                pdf = result.result_pdf
            else:
                pdf = result.pdf
        return await self._seal_and_finalize(agency, auth, entry, pdf)

    def _options(self, key: str, reason: str, auth: CertificationAuthoritySettings) -> SignOptions:
        return SignOptions(key=key, level=self.settings.level, reason=reason, location=auth.name)

    async def _wait(self, agency: AgencySettings, entry: Entry, job: Job) -> Entry:
        if job.state == "failed":
            raise SignatureRejected(f"the certifier's remote signature failed: {job.error}")
        await asyncio.to_thread(self._books().wait_remote, entry.book_id, entry.cert_number, job.id, agency.code)
        return entry

    async def _seal_and_finalize(self, agency: AgencySettings, auth: CertificationAuthoritySettings, entry: Entry,
                                 pdf: bytes) -> Entry:
        """The authority's signature (modes "authority" and "both"), the check, then ``valid``."""
        if auth.signing_mode != "certifier":
            result = await self.signing.sign(agency, pdf, self._options(auth.key, AUTHORITY_REASON, auth))
            if not isinstance(result, Signed):  # remote authority keys are refused at load
                raise SignatureRejected("the authority's key is a remote key; not supported for certification")
            pdf = result.pdf
        signers = await self._check(pdf)
        sha = hashlib.sha256(pdf).hexdigest()
        books = self._books()
        return await asyncio.to_thread(books.finalize, entry.book_id, entry.cert_number, sha, signers, pdf)

    # ------------------------------------------------------------ remote certifier signatures

    async def run_waits(self) -> None:
        """Background loop (the gateway's cleanup_ctx): finishes the certifications whose certifier
        confirmed, and voids those whose remote signature failed, at the signing poll interval."""
        while True:
            try:
                await self.advance_waits()
            except Exception:
                log.exception("certifications waiting for a remote signature were not advanced")
            await asyncio.sleep(self.signing.settings.remote_poll_interval)

    async def advance_waits(self) -> int:
        """One pass over the entries waiting for a certifier's remote signature; returns how many left
        ``reserved`` (valid or void)."""
        books = self._books()
        done = 0
        for wait in await asyncio.to_thread(books.remote_waits):
            assert self.signing.store is not None
            job = self.signing.store.get(wait.job_id)
            if job is not None and job.state not in ("completed", "failed"):
                continue
            done += 1
            try:
                await self._finish_wait(wait, job)
            except Exception:  # voided with the reason by _voiding; the HTTP request is long gone
                pass
        return done

    async def _finish_wait(self, wait: RemoteWait, job: Job | None) -> None:
        entry = self.entry(wait.book_id, wait.cert_number)
        auth = self._authorities.get(entry.authority_code)
        agency = self._agencies.get(wait.agency)

        async def finish() -> Entry:
            if auth is None or agency is None:
                raise SignatureRejected("the authority or agency is no longer configured")
            if job is None or job.state == "failed" or job.result_pdf is None:
                raise SignatureRejected("the certifier's remote signature failed: "
                                        + (job.error if job is not None else "the signing job is gone"))
            return await self._seal_and_finalize(agency, auth, entry, job.result_pdf)

        # not in the latency histogram: the time a person took to confirm is not the gateway's latency
        final = await self._voiding(entry.authority_code, entry, finish())
        await self._issued(final)

    async def _check(self, pdf: bytes) -> list[dict[str, Any]]:
        """Every signature of the copy validates (spec §2.3) → the signer data for the record (§4)."""
        # revocation answers may come from the worker's bounded cache ([certification] revocation_cache)
        reports = await self.signing.validate(pdf, revocation_cache=self.settings.revocation_cache)
        sigs = [r for r in reports if r["type"] == "signature"]
        # the last signature covers the whole file; an earlier one (the certifier's) only saw the
        # authority's signature added after it (pyHanko: form filling, the level of a new signature)
        bad = [r for r in sigs if r["indication"] != PASSED]
        bad += [r for r in sigs[-1:] if not unchanged_since(r)]
        bad += [r for r in sigs[:-1] if r.get("modification_level") not in ("form_filling", "lta_updates")]
        if not sigs or bad:
            why = (bad[0]["sub_indication"] or "changed after signing") if bad else "no signature"
            raise SignatureRejected(f"the signed copy does not validate ({why})")
        return [{"serial": r["signer"]["serial"], "subject": r["signer"]["subject"],
                 "signing_time": r["signing_time"], "tsa_time": (r["timestamp"] or {}).get("time")} for r in sigs]

    # ------------------------------------------------------------ register

    @property
    def register(self) -> Books:
        return self._books()

    def _books(self) -> Books:
        assert self.books is not None, "CertificationService.start() was not called"
        return self.books

    def entry(self, book_id: str, number: int) -> Entry:
        return self._books().entry(book_id, number)

    def pdf(self, book_id: str, number: int) -> bytes | None:
        return self._books().pdf(book_id, number)

    async def revoke(self, agency: AgencySettings | None, book_id: str, number: int, reason: str) -> Entry:
        entry = self.entry(book_id, number)
        self.authority_for(agency, entry.authority_code)
        by = agency.code if agency is not None else "operator"
        revoked = await asyncio.to_thread(self._books().revoke, book_id, number, reason, by, self.clock())
        self.metrics.certifications.labels(entry.authority_code, "revoked").inc()
        return revoked

    def list_books(self, authority_code: str | None = None) -> list[Book]:
        return self._books().books(authority_code)

    def open_book(self, authority_code: str) -> Book:
        self.authority_for(None, authority_code)
        return self._books().open_book(authority_code, self.clock())

    def close_book(self, authority_code: str) -> Book:
        self.authority_for(None, authority_code)
        return self._books().close_book(authority_code, self.clock())


def _reason(exc: BaseException) -> str:
    """A short reason for the void entry: the error's code and message, never a traceback."""
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled: the request was abandoned while signing"
    code = getattr(exc, "code", type(exc).__name__)
    message = getattr(exc, "message", "") or str(exc)
    if not isinstance(exc, SigningError | CertificationError | ValidationError) and not hasattr(exc, "code"):
        message = type(exc).__name__
    return f"{code}: {message}"[:500]
