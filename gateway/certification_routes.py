"""E-certification routes (docs/certification.md) and their wiring after the signing service.

* ``POST /v1/certifications`` (agency): ``multipart/form-data``, a ``metadata`` part (JSON, spec §4
  field names) and one or more ``file`` parts (one PDF, or JPEG/PNG pages in order) → ``201``
  ``{"record": {...}, "pdf_url": "..."}``.
* ``GET /v1/certifications/{book_id}/{number}`` (open): the record's public part, no requester data.
* ``GET /v1/certifications/{book_id}/{number}/pdf`` (the authority's agencies, the operator): the copy.
* ``POST /v1/certifications/{book_id}/{number}/revoke`` (the authority's agencies, the operator):
  ``{"reason": "..."}``.
* ``GET /v1/certification-books[?authority=]``, ``POST /v1/certification-books/{authority}/open|close``
  (operator; CLI ``dvcgw books list|open|close``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web

from config.schema import AgencySettings, Settings
from core.errors import FieldError, ValidationError
from gateway import certification_results, verify_page
from gateway.appkeys import ACCEPT, JOBS
from gateway.auth import AUTHORITIES, forbid, require_agency, require_operator, require_operator_or_agency
from gateway.handlers import json_body
from gateway.http_errors import HTTPProblem, refuse_encoded_body
from gateway.signing_routes import SERVICE, _problem, _read_limited, read_pdf_request
from monitoring.metrics import CertificationMetrics, Metrics
from signing.certification.books import Entry
from signing.certification.errors import BadState, BookConflict, CertificationError, NoSuchEntry
from signing.certification.service import CertificationService, FilePart, NotAllowed, parse_metadata
from signing.certification.verify import verify
from signing.errors import SigningError, SigningUnavailable
from signing.service import utc_now

CERTIFICATION = web.AppKey("certification_service", CertificationService)
_METADATA_LIMIT = 64 * 1024
_MAX_PARTS = 500
_STATUS: tuple[tuple[type[CertificationError], int], ...] = (
    (NotAllowed, 403), (NoSuchEntry, 404), (BookConflict, 409), (BadState, 409))


def setup_certification(app: web.Application, settings: Settings, instance_metrics: Metrics,
                        *, clock: Callable[[], datetime] = utc_now) -> None:
    """Adds the routes and a cleanup_ctx; must come after :func:`gateway.signing_routes.setup_signing`."""
    metrics = CertificationMetrics(instance_metrics)

    async def certification_ctx(app: web.Application) -> AsyncIterator[None]:
        service = CertificationService(settings.certification, settings.storage.path, app[SERVICE], metrics, clock,
                                       agencies=settings.agencies)
        service.start()
        app[CERTIFICATION] = service
        if JOBS in app and ACCEPT in app:  # the full daemon: copies tied to a dossier reach DVCQG
            certification_results.wire(app, service)
        waits = asyncio.create_task(service.run_waits(), name="certification-remote-waits")
        try:
            yield
        finally:
            waits.cancel()
            await asyncio.gather(waits, return_exceptions=True)
            service.close()

    app.cleanup_ctx.append(certification_ctx)
    r = app.router
    r.add_post("/v1/certifications", post_certification)
    r.add_post("/v1/certifications/verify", post_verify)
    r.add_get("/v1/certifications/{book_id}/{number}", get_certification)
    r.add_get("/v1/certifications/{book_id}/{number}/pdf", get_pdf)
    r.add_post("/v1/certifications/{book_id}/{number}/revoke", post_revoke)
    r.add_get("/v1/certification-books", list_books)
    r.add_post("/v1/certification-books/{authority}/open", open_book)
    r.add_post("/v1/certification-books/{authority}/close", close_book)
    verify_page.add_routes(app)


def problem(exc: Exception) -> HTTPProblem:
    """The house error shape for the certification and signing errors (never a 500 for them)."""
    if isinstance(exc, CertificationError):
        errors = [FieldError(exc.field, exc.message)] if exc.field else []
        status = next((st for cls, st in _STATUS if isinstance(exc, cls)), 422)
        return HTTPProblem(status, exc.code, exc.message, errors)
    if isinstance(exc, ValidationError):
        return HTTPProblem(422, exc.code, "the certification request is not valid", exc.errors)
    return _problem(exc)


_ERRORS = (CertificationError, SigningError, SigningUnavailable, ValidationError)


def pdf_url(entry: Entry) -> str:
    return f"/v1/certifications/{entry.book_id}/{entry.cert_number}/pdf"


async def post_certification(request: web.Request) -> web.Response:
    agency = require_agency(request)
    service = request.app[CERTIFICATION]
    try:
        raw, parts = await _read_request(request, service.settings.max_upload_bytes)
        meta = parse_metadata(raw)
        entry = await service.certify(agency, meta, parts)
    except NotAllowed as exc:  # the authority's agencies do not list this agency
        raise forbid(request, agency, AUTHORITIES, "authority_code", exc.message) from exc
    except _ERRORS as exc:
        raise problem(exc) from exc
    url = pdf_url(entry)
    # 202: the number is reserved and the certifier confirms the remote signature on their phone; the
    # record (Location) turns valid, or void with the reason, once they did or refused
    return web.json_response({"record": entry.record(), "pdf_url": url},
                             status=201 if entry.status == "valid" else 202,
                             headers={"Location": f"/v1/certifications/{entry.book_id}/{entry.cert_number}"},
                             dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


async def _read_request(request: web.Request, limit: int) -> tuple[Any, list[FilePart]]:
    refuse_encoded_body(request)
    if not request.content_type.startswith("multipart/form-data"):
        raise HTTPProblem(415, "unsupported_media_type", "send multipart/form-data with a metadata and file parts")
    if request.content_length is not None and request.content_length > limit + _METADATA_LIMIT:
        raise HTTPProblem(413, "payload_too_large", f"the request is over the {limit}-byte limit")
    reader = await request.multipart()
    raw: Any = None
    parts: list[FilePart] = []
    used = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, aiohttp.BodyPartReader):
            raise ValidationError([FieldError("file", "nested multipart is not accepted")])
        if part.name == "metadata":
            raw = _json(await _read_limited(part, _METADATA_LIMIT, "the metadata part"))
        elif part.name == "file" and len(parts) < _MAX_PARTS:
            data = await _read_limited(part, limit - used, "the files")
            used += len(data)
            parts.append(FilePart(part.headers.get("Content-Type", ""), data))
        else:
            raise ValidationError([FieldError(str(part.name or "?")[:40], "unexpected part (metadata, file)")])
    if raw is None:
        raise ValidationError([FieldError("metadata", "a part named 'metadata' (JSON) is required")])
    return raw, parts


def _json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError([FieldError("metadata", "not valid JSON")]) from exc


async def post_verify(request: web.Request) -> web.Response:
    """Open to anyone (spec §7): the PDF (raw ``application/pdf`` or a multipart ``file`` part) →
    ``{"verdict", "reasons", "record"}`` with the record's public part only."""
    service = request.app[CERTIFICATION]
    try:
        pdf, _ = await read_pdf_request(request, service.signing.settings.max_pdf_bytes)
        result = await verify(service.register, service.signing, pdf)
    except _ERRORS as exc:
        raise problem(exc) from exc
    return web.json_response(result, dumps=_dumps)


def _key(request: web.Request) -> tuple[str, int]:
    raw = request.match_info["number"]
    if not raw.isdigit() or len(raw) > 9:
        raise HTTPProblem(404, "not_found", "no such certification", [FieldError("number", "expected a number")])
    return request.match_info["book_id"], int(raw)


def _entry(request: web.Request) -> Entry:
    book_id, number = _key(request)
    try:
        return request.app[CERTIFICATION].entry(book_id, number)
    except NoSuchEntry as exc:
        raise problem(exc) from exc


async def get_certification(request: web.Request) -> web.Response:
    """Open to anyone: the public part only (spec §7)."""
    return web.json_response(_entry(request).public(), dumps=_dumps)


def _may_act(request: web.Request, entry: Entry) -> AgencySettings | None:
    agency = require_operator_or_agency(request)
    try:
        request.app[CERTIFICATION].authority_for(agency, entry.authority_code)
    except (NotAllowed, ValidationError) as exc:
        if agency is not None:
            raise forbid(request, agency, AUTHORITIES, "authority_code",
                         "this agency may not act for the certifying authority") from exc
        raise HTTPProblem(403, "not_allowed", "this key may not act for the certifying authority") from exc
    return agency


async def get_pdf(request: web.Request) -> web.Response:
    """The certified copy: for the authority's agencies and the operator, or for anyone holding the
    link given to the dossier (``?token=``, the entry's unguessable download token)."""
    entry = _entry(request)
    token = request.query.get("token", "")
    if not (token and entry.download_token and hmac.compare_digest(token, entry.download_token)):
        _may_act(request, entry)
    pdf = request.app[CERTIFICATION].pdf(entry.book_id, entry.cert_number)
    if pdf is None:
        raise HTTPProblem(404, "not_found", f"certification {entry.cert_number} is {entry.status}: no certified copy")
    name = f"chung-thuc-{entry.cert_number}.pdf"
    return web.Response(body=pdf, content_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def post_revoke(request: web.Request) -> web.Response:
    entry = _entry(request)
    agency = _may_act(request, entry)
    body = await json_body(request)
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise problem(ValidationError([FieldError("reason", "required: why the certification is revoked")]))
    try:
        revoked = await request.app[CERTIFICATION].revoke(agency, entry.book_id, entry.cert_number, reason.strip())
    except _ERRORS as exc:
        raise problem(exc) from exc
    return web.json_response(revoked.public(), dumps=_dumps)


async def list_books(request: web.Request) -> web.Response:
    require_operator(request)
    authority = request.query.get("authority") or None
    books = request.app[CERTIFICATION].list_books(authority)
    return web.json_response({"books": [b.as_json() for b in books]}, dumps=_dumps)


async def open_book(request: web.Request) -> web.Response:
    require_operator(request)
    try:
        book = request.app[CERTIFICATION].open_book(request.match_info["authority"])
    except _ERRORS as exc:
        raise problem(exc) from exc
    return web.json_response(book.as_json(), status=201, dumps=_dumps)


async def close_book(request: web.Request) -> web.Response:
    require_operator(request)
    try:
        book = request.app[CERTIFICATION].close_book(request.match_info["authority"])
    except _ERRORS as exc:
        raise problem(exc) from exc
    return web.json_response(book.as_json(), dumps=_dumps)
