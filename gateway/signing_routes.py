"""Agency endpoints for signing and validation, and the application wiring.

* ``POST /v1/signatures``: raw ``application/pdf`` (options as query parameters) or
  ``multipart/form-data`` with a ``file`` part (the PDF) and an ``options`` part (JSON).
  Local keys: ``200`` with the signed PDF, headers ``X-Signature-Level`` and
  ``X-Signature-Downgraded``. Remote keys: ``202 {"id", "state"}``.
* ``GET /v1/signatures/{id}``: a remote job's state; ``Accept: application/pdf`` returns the
  signed PDF once ``completed`` (JSON carries it as ``pdf_base64`` too).
* ``POST /v1/signatures/validate``: the PDF (raw or multipart) → ``{"signatures": [report …]}``.
* ``POST /v1/signatures/callbacks/{id}?token=…``: webhook for the remote signer; it only wakes the
  poller, which asks the signer itself (the webhook body is not trusted).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web

from config.schema import Settings
from core.errors import FieldError, ValidationError
from gateway.auth import SIGNING_KEYS, forbid, require_agency
from gateway.http_errors import HTTPProblem, refuse_encoded_body
from monitoring.metrics import Metrics, SigningMetrics
from monitoring.tracing import trace_config
from signing.errors import BadPdf, KeyNotAllowed, PdfTooLarge, SigningError, SigningUnavailable
from signing.jobs import Job
from signing.options import SignOptions, options_from_query, parse_options
from signing.service import SigningService, callback_token, utc_now

SERVICE = web.AppKey("signing_service", SigningService)
_OPTIONS_LIMIT = 64 * 1024
_CHUNK = 64 * 1024


def setup_signing(app: web.Application, settings: Settings, instance_metrics: Metrics,
                  *, clock: Callable[[], datetime] = utc_now) -> None:
    """Adds the /v1/signatures routes and a cleanup_ctx (process pool, signers, job store, remote poller).
    The signing families register on ``instance_metrics``' registry; the remote signer's session is traced."""
    metrics = SigningMetrics(instance_metrics)

    async def signing_ctx(app: web.Application) -> AsyncIterator[None]:
        traced = [trace_config(instance_metrics, "remote_signer")]
        async with aiohttp.ClientSession(trace_configs=traced) as session:
            service = SigningService(settings.signing, settings.storage.path, metrics, session, clock)
            try:
                await service.start()
                app[SERVICE] = service
                yield
            finally:
                await service.close()

    app.cleanup_ctx.append(signing_ctx)
    app.router.add_post("/v1/signatures", post_signature)
    app.router.add_post("/v1/signatures/validate", post_validate)
    app.router.add_get("/v1/signatures/{id}", get_signature)
    app.router.add_post("/v1/signatures/callbacks/{id}", post_callback)


#: HTTP status by signing error class (the most specific first); any other SigningError is 422.
_STATUS: tuple[tuple[type[SigningError], int], ...] = ((KeyNotAllowed, 403), (PdfTooLarge, 413))


def _problem(exc: Exception) -> HTTPProblem:
    if isinstance(exc, SigningUnavailable):
        return HTTPProblem(503, exc.code, exc.message, headers={"Retry-After": "30"})
    if isinstance(exc, SigningError):
        errors = [FieldError(exc.field, exc.message)] if exc.field else []
        status = next((st for cls, st in _STATUS if isinstance(exc, cls)), 422)
        return HTTPProblem(status, exc.code, exc.message, errors)
    if isinstance(exc, ValidationError):
        return HTTPProblem(422, exc.code, "the signing options are not valid", exc.errors)
    raise exc


async def post_signature(request: web.Request) -> web.StreamResponse:
    agency = require_agency(request)
    service = request.app[SERVICE]
    try:
        pdf, raw_opts = await read_pdf_request(request, service.settings.max_pdf_bytes)
        opts = parse_options(raw_opts) if raw_opts is not None else _query_options(request)
        result = await service.sign(agency, pdf, opts)
    except KeyNotAllowed as exc:  # the key's [[signing.keys]] agencies do not list this agency
        raise forbid(request, agency, SIGNING_KEYS, "key", exc.message) from exc
    except (SigningError, SigningUnavailable, ValidationError) as exc:
        raise _problem(exc) from exc
    if isinstance(result, Job):
        return web.json_response({"id": result.id, "state": result.public_state}, status=202,
                                 headers={"Location": f"/v1/signatures/{result.id}"})
    return web.Response(body=result.pdf, content_type="application/pdf", headers={
        "X-Signature-Level": result.level, "X-Signature-Downgraded": "true" if result.downgraded else "false"})


def _query_options(request: web.Request) -> SignOptions:
    if "options" in request.query:
        try:
            return parse_options(json.loads(request.query["options"]))
        except json.JSONDecodeError as exc:
            raise ValidationError([FieldError("options", "not valid JSON")]) from exc
    return options_from_query(dict(request.query))


async def post_validate(request: web.Request) -> web.Response:
    require_agency(request)
    service = request.app[SERVICE]
    try:
        pdf, _ = await read_pdf_request(request, service.settings.max_pdf_bytes)
        reports = await service.validate(pdf)
    except (SigningError, SigningUnavailable, ValidationError) as exc:
        raise _problem(exc) from exc
    return web.json_response({"signatures": reports})


async def get_signature(request: web.Request) -> web.Response:
    agency = require_agency(request)
    job = request.app[SERVICE].job(agency, request.match_info["id"])
    if job is None:
        raise HTTPProblem(404, "not_found", "no such signing job for this agency")
    if job.state == "completed" and job.result_pdf and "application/pdf" in request.headers.get("Accept", ""):
        return web.Response(body=job.result_pdf, content_type="application/pdf",
                            headers={"X-Signature-Level": job.level})
    return web.json_response(job_json(job))


def job_json(job: Job) -> dict[str, Any]:
    body: dict[str, Any] = {"id": job.id, "state": job.public_state, "key": job.key_alias, "level": job.level}
    if job.error:
        body["message"] = job.error
    if job.state == "completed" and job.result_pdf:
        body["pdf_base64"] = base64.b64encode(job.result_pdf).decode()
    return body


async def post_callback(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    assert service.store is not None
    job = service.store.get(request.match_info["id"])
    if job is None or request.query.get("token") != callback_token(job):
        raise HTTPProblem(404, "not_found", "no such signing job")
    service.wake()
    return web.json_response({"ok": True})


# ---------------------------------------------------------------- request body


async def read_pdf_request(request: web.Request, limit: int) -> tuple[bytes, Any | None]:
    """The PDF and, for multipart, the decoded ``options`` JSON; raises PdfTooLarge, BadPdf, ValidationError
    (and 415 for a Content-Encoding, as every route with a body)."""
    refuse_encoded_body(request)
    if request.content_length is not None and request.content_length > limit + _OPTIONS_LIMIT:
        raise PdfTooLarge(f"the request is larger than the {limit}-byte limit")
    if request.content_type.startswith("multipart/"):
        return await _read_multipart(request, limit)
    if request.content_type != "application/pdf":
        raise HTTPProblem(415, "unsupported_media_type", "send application/pdf or multipart/form-data")
    return check_pdf(await _read_limited(request.content, limit, "the PDF")), None


async def _read_multipart(request: web.Request, limit: int) -> tuple[bytes, Any | None]:
    reader = await request.multipart()
    pdf: bytes | None = None
    options: Any | None = None
    while (part := await reader.next()) is not None:
        if not isinstance(part, aiohttp.BodyPartReader):
            continue
        if part.name == "options":
            options = _json_part(await _read_limited(part, _OPTIONS_LIMIT, "the options part"))
        elif part.name in ("file", "pdf"):
            pdf = await _read_limited(part, limit, "the PDF")
    if pdf is None:
        raise ValidationError([FieldError("file", "a multipart part named 'file' with the PDF is required")])
    return check_pdf(pdf), options


def _json_part(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError([FieldError("options", "not valid JSON")]) from exc


async def _read_limited(stream: Any, limit: int, what: str) -> bytes:
    buf = bytearray()
    while True:
        chunk = await (stream.read_chunk(_CHUNK) if isinstance(stream, aiohttp.BodyPartReader)
                       else stream.read(_CHUNK))
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            raise PdfTooLarge(f"{what} is larger than the {limit}-byte limit")


def check_pdf(data: bytes) -> bytes:
    """Cheap first check (the worker parses it fully): a PDF header in the first KB."""
    if not data:
        raise BadPdf("the request has no PDF", field="file")
    if b"%PDF-" not in data[:1024]:
        raise BadPdf("not a PDF: no %PDF- header", field="file")
    return data
