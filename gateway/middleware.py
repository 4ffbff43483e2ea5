"""Every answer, error or not, leaves in the house shape; nothing a client sends produces a 500."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from core.errors import QueueUnavailable, ValidationError
from gateway.http_errors import HTTPProblem, error_body, json_error

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
    except Exception as exc:
        status, body, headers = problem_answer(exc, request.method, request.rel_url.path)
        return web.json_response(body, status=status, headers=headers or None)


def problem_answer(exc: Exception, method: str, path: str) -> tuple[int, dict[str, object], dict[str, str]]:
    """The house answer to an exception out of a handler: (status, body, extra headers). Shared by
    the middleware and the HTTP front's own accept routes (gateway.front)."""
    if isinstance(exc, HTTPProblem):
        return exc.status_code, error_body(exc.code, exc.message, exc.errors), _keep_headers(exc)
    if isinstance(exc, ValidationError):
        return 422, error_body(exc.code, "the request body failed validation", exc.errors), {}
    if isinstance(exc, QueueUnavailable):
        log.error("queue unavailable: %s", exc)
        return 503, error_body("storage_unavailable", "the gateway cannot store work right now; retry"), \
            {"Retry-After": "5"}
    log.error("unhandled error in %s %s", method, path, exc_info=exc)
    return 500, error_body("internal_error", "internal error; the event was not accepted"), {}


def _keep_headers(exc: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
