"""Path and query parameters checked at the HTTP edge, before any store sees them.

Dead-letter ids and the dead-letter cursor have the shape of the backend's ids: on the SQLite
store (and the in-memory one) a decimal row id, 0..2^63-1 (SQLite's INTEGER; a larger number made
the store raise ``OverflowError``, a 500); on Kafka an opaque token (today 32 hex digits). A
malformed value is a 422 naming the parameter; a well-formed unknown id is the handler's 404.
The OpenAPI document takes its schemas from :func:`id_schema`, so the two cannot disagree.
"""

from __future__ import annotations

import re
from typing import Any

from core.codes import is_unit_code
from core.errors import FieldError
from gateway.http_errors import HTTPProblem
from monitoring.kpi import Period, PeriodError, parse_period

MAX_ROW_ID = 2**63 - 1
_ROW_ID = re.compile(r"[0-9]{1,19}")  # ASCII digits only: str.isdigit() also takes "١" and "²"
_TOKEN = re.compile(r"[0-9A-Za-z_-]{1,64}")
MAX_PAGE = 1000


def id_schema(backend: str) -> dict[str, Any]:
    """JSON Schema of a dead-letter id (and cursor) on ``backend``."""
    if backend == "kafka":
        return {"type": "string", "pattern": "^[0-9A-Za-z_-]{1,64}$", "maxLength": 64,
                "description": "Dead-letter id as listed (Kafka backend: an opaque token)."}
    return {"type": "string", "pattern": "^[0-9]{1,19}$", "maxLength": 19,
            "description": f"Dead-letter id as listed: a decimal number from 0 to {MAX_ROW_ID}."}


# Ids at and past the 64-bit bounds (issue 13): the OpenAPI document gives them as the id's and
# the cursor's examples, each with the answer it gets, and the fuzz test sends every one of them.
BOUNDARY_IDS = {
    "zero": ("0", "0"),
    "int64-max": ("9223372036854775807", "2^63-1, the largest signed 64-bit number"),
    "int64-max-plus-1": ("9223372036854775808", "2^63"),
    "uint64-max-plus-1": ("18446744073709551616", "2^64"),
    "26-digits": ("99999999999999999999999999", "26 digits"),
    "negative": ("-1", "-1"),
}


def is_dead_letter_id(value: str, backend: str) -> bool:
    """Whether ``value`` has the shape of a dead-letter id on ``backend``."""
    if backend == "kafka":
        return _TOKEN.fullmatch(value) is not None
    return _ROW_ID.fullmatch(value) is not None and int(value) <= MAX_ROW_ID


def dead_letter_id(value: str, backend: str, name: str = "id") -> str:
    """``value`` if it is a well-formed dead-letter id on ``backend``; else 422 naming ``name``."""
    if is_dead_letter_id(value, backend):
        return value
    if backend == "kafka":
        raise _malformed(name, "expected the id of a listed dead letter (letters, digits, '_' or '-', "
                               "at most 64)")
    raise _malformed(name, f"expected the id of a listed dead letter: a decimal number from 0 to {MAX_ROW_ID}")


def page_limit(value: str | None, default: int = 100) -> int:
    """The dead-letter page size ``?limit=``, 1..1000; else 400 naming ``limit``.

    ASCII digits only, as for ids: ``str.isdigit()`` also takes "²" (which ``int()`` refuses) and
    ``int()`` refuses more than 4,300 digits; either was a 500.
    """
    if value is None:
        return default
    if _ROW_ID.fullmatch(value) and 1 <= int(value) <= MAX_PAGE:
        return int(value)
    raise HTTPProblem(400, "bad_request", f"limit must be an integer from 1 to {MAX_PAGE}",
                      [FieldError("limit", f"expected 1..{MAX_PAGE}")])


def _malformed(name: str, message: str) -> HTTPProblem:
    return HTTPProblem(422, "validation_failed", f"the {name} parameter is malformed", [FieldError(name, message)])


def kpi_period(value: str | None, default: str, offset_s: int) -> Period:
    """``?period=``: ``2025-11`` | ``2025-Q4`` | ``2025`` (``default`` when absent); else 422."""
    try:
        return parse_period(default if value is None else value, offset_s)
    except PeriodError as exc:
        raise _malformed("period", str(exc)) from exc


def kpi_unit(value: str | None, units: tuple[str, ...], special: tuple[str, ...]) -> str | None:
    """``?unit=``: one of ``units`` (the configured unit codes) or ``special`` (``all``, ``other``);
    None when absent; else 422 naming ``unit``."""
    if value is None or value in units or value in special:
        return value
    if not is_unit_code(value):
        raise _malformed("unit", f"expected a unit code such as \"000.00.01.H56\" or {' or '.join(special)}")
    raise _malformed("unit", "not one of the configured agencies' units")
