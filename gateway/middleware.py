"""Every answer, error or not, leaves in the house shape; nothing a client sends produces a 500.

This is where domain errors get their HTTP status: the code below the edge raises from the error
tree (core.errors) and never chooses a status itself."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from core.errors import FieldError, QueueUnavailable, TransitionRefused, ValidationError
from gateway.http_errors import HTTPProblem, json_error
from gateway.requestlog import client_gone, route_template

log = logging.getLogger("dvcgw.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
    422: "validation_failed", 503: "unavailable",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HTTPProblem:
        raise
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        code = _CODES.get(exc.status, "error")
        return json_error(exc.status, code, exc.reason, headers=_keep_headers(exc))
    except ValidationError as exc:
        return json_error(422, exc.code, _validation_message(exc), exc.errors, more_errors=exc.more_errors)
    except TransitionRefused as exc:
        return json_error(409, "invalid_transition", str(exc),
                          [FieldError("TrangThaiHoSo", f"transition {exc.previous} → {exc.new} is not allowed")])
    except QueueUnavailable as exc:
        log.error("queue unavailable: %s", exc)
        return json_error(503, "storage_unavailable", "the gateway cannot store work right now; retry",
                          headers={"Retry-After": "5"})
    except Exception as exc:
        if client_gone(request):
            raise  # the client left mid-request: one INFO line from gateway.requestlog, no 500
        log.error("unhandled error in %s %s", request.method, route_template(request), exc_info=exc)
        return json_error(500, "internal_error", _internal_error_message(request.method))


def _validation_message(exc: ValidationError) -> str:
    """The 422's message: says when the list is cut, and when the check stopped looking."""
    listed, found = len(exc.errors), len(exc.errors) + exc.more_errors
    if exc.stopped:
        return (f"the request body failed validation; the check stopped after {found} problems, "
                f"there may be more (the first {listed} are listed)")
    if exc.more_errors:
        return f"the request body failed validation; {found} problems, the first {listed} are listed"
    return "the request body failed validation"


def _internal_error_message(method: str) -> str:
    """What is true of any route after an unexpected error: a read changed nothing; a write may have
    failed before or after its effect (say, after the append was durable), so the client looks first."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return "internal error; nothing was changed"
    return ("internal error; the request may or may not have taken effect: check (for a dossier, "
            "GET /v1/dossiers/{MaHoSo}) before sending it again")


def _keep_headers(exc: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
