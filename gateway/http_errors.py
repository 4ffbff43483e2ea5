"""The one error shape every HTTP answer uses.

``{"error": "<code>", "message": "...", "errors": [{"field": "...", "message": "..."}]}``

A 422 whose list was cut also carries ``"more_errors": <n>``, the number of problems found and
not listed; absent, the list is complete. A 403 for a missing grant also carries ``"grant"`` and a
refusal for a limit ``"limit"`` (gateway/auth.py, gateway/limits.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from aiohttp import web

from core.errors import FieldError


def error_body(code: str, message: str, errors: Sequence[FieldError] = (), more_errors: int = 0,
               extra: Mapping[str, str | int] | None = None) -> dict[str, object]:
    body: dict[str, object] = {"error": code, "message": message, "errors": [e.as_json() for e in errors]}
    if more_errors:
        body["more_errors"] = more_errors
    body.update(extra or {})
    return body


def json_error(status: int, code: str, message: str, errors: Sequence[FieldError] = (),
               headers: dict[str, str] | None = None, more_errors: int = 0) -> web.Response:
    """A JSON error response with the house shape."""
    return web.json_response(error_body(code, message, errors, more_errors), status=status, headers=headers)


class HTTPProblem(web.HTTPException):
    """Raise from a handler to answer with the house error shape and the given status."""

    def __init__(self, status: int, code: str, message: str, errors: Sequence[FieldError] = (),
                 headers: dict[str, str] | None = None, extra: Mapping[str, str | int] | None = None) -> None:
        self.status_code = status
        self.code, self.message, self.errors = code, message, tuple(errors)
        super().__init__(text=None, headers=headers, content_type="application/json")
        self.text = json.dumps(error_body(code, message, errors, extra=extra), ensure_ascii=False)


def refuse_encoded_body(request: web.Request) -> None:
    """Raise 415 naming the encoding when the body has a ``Content-Encoding`` other than identity.

    The API takes plain bodies only (docs/decisions.md, issue 13): aiohttp would otherwise
    inflate gzip and deflate itself, or fail on an encoding it lacks a library for, so what an
    agency may send would depend on the install. Checked before the body is read.
    """
    codings = [c.strip() for h in request.headers.getall("Content-Encoding", []) for c in h.split(",")]
    other = [c for c in codings if c.lower() not in ("", "identity")]
    if other:
        raise HTTPProblem(415, "unsupported_media_type",
                          f"Content-Encoding {other[0][:20]!r} is not accepted; send the body uncompressed "
                          f"(Content-Encoding absent or identity)")
