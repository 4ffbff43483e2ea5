"""The OpenAPI 3.1 document of the agency, operator and open routes, as they actually behave."""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web

from core.version import __version__
from gateway import dossier, params
from gateway.appkeys import SETTINGS
from monitoring.metrics import ACCESS_GRANTS, LIMIT_KINDS

_ERR = {"$ref": "#/components/responses/Error"}
# Either header carries the key (gateway/auth.py): each requirement is an alternative.
_AGENCY: list[dict[str, list[str]]] = [{"agencyKey": []}, {"agencyBearer": []}]
_OPERATOR: list[dict[str, list[str]]] = [{"operatorKey": []}, {"operatorBearer": []}]


_MAINTENANCE = {"type": "object", "properties": {
    "enabled": {"type": "boolean"}, "reason": {"type": ["string", "null"]},
    "since": {"type": ["string", "null"], "format": "date-time"}}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _resp(desc: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": desc}
    if schema is not None:
        out["content"] = _json(schema)
    return out


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _ERR for c in codes}


def _mahoso(strict: bool) -> dict[str, Any]:
    return {"name": "MaHoSo", "in": "path", "required": True, "schema": dossier.code_schema(strict),
            "description": "Dossier code; its first dash segment is the unit code the agency must own. "
                           "A malformed code is a 422, checked before the unit (403)."}
_JOB_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


def _id_examples(backend: str, well_formed: str) -> dict[str, Any]:
    """The ids at and past the 64-bit bounds, each with the answer it gets on ``backend``: a fuzzer
    (schemathesis' examples phase) sends those the schema admits."""
    return {name: {"value": value, "summary": f"{label}: " + (
        well_formed if params.is_dead_letter_id(value, backend) else "malformed, 422")}
            for name, (value, label) in params.BOUNDARY_IDS.items()}


def _dead_letter_id(backend: str) -> dict[str, Any]:
    return {"name": "id", "in": "path", "required": True, "schema": params.id_schema(backend),
            "examples": _id_examples(backend, "well formed, 404 unless a dead letter has it")}

_STATUS = {
    "type": "object",
    "required": ["MaHoSo", "portal_code", "accepted_state", "delivered_state", "delivery", "attempts",
                 "next_attempt_at", "last_error", "pending_progress"],
    "properties": {
        "MaHoSo": {"type": "string", "description": "the agency's code"},
        "portal_code": {"type": ["string", "null"],
                        "description": "the code the portal knows the dossier by (spec §8): MaHoSo itself unless "
                                       "the dossier-code rule maps it; null while its portal code is still to be "
                                       "drawn (before its first delivery)"},
        "accepted_state": {"type": ["string", "null"]},
        "delivered_state": {"type": ["string", "null"]},
        "delivery": {"enum": ["pending", "in_flight", "delivered", "retrying", "dead", "parked"]},
        "attempts": {"type": "integer"},
        "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
        "last_error": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
            "class": {"type": "string"}, "code": {"type": "string"},
            "message": {"type": "string", "description": "verbatim from the portal"}}}]},
        "pending_progress": {"type": "integer"},
    },
}
_DEAD = {
    "type": "object",
    "properties": {k: {"type": t} for k, t in [
        ("id", "string"), ("MaHoSo", "string"), ("kind", "string"), ("sequence", "integer"),
        ("reason_class", "string"), ("code", "string"), ("message", "string"), ("attempts", "integer"),
        ("dead_at", "string"), ("replayed", "boolean")]},
}

_KPI_ROW = {
    "type": "object",
    "required": ["indicator", "unit", "period", "period_id", "numerator", "denominator", "ratio", "score",
                 "max_points", "basis", "target", "estimate"],
    "properties": {
        "indicator": {"type": "string", "description": "DOSSIER_SYNC, ON_TIME, ONLINE_SHARE, ... (docs/kpi.md)"},
        "unit": {"type": "string", "description": "a unit code, `all` (the province) or `other`"},
        "period": {"enum": ["month", "quarter", "year"]},
        "period_id": {"type": "string"},
        "numerator": {"type": "integer"}, "denominator": {"type": "integer"},
        "ratio": {"type": "number", "minimum": 0, "maximum": 1, "description": "0 when the denominator is 0"},
        "score": {"type": "number", "description": "estimated points with the spec's formula"},
        "max_points": {"type": "number"},
        "basis": {"enum": ["re", "desc", "gw"], "description": "where the score formula comes from"},
        "target": {"type": ["number", "null"], "description": "the province's configured target rate"},
        "estimate": {"type": "boolean", "description": "always true: the portal's own score is authoritative"},
    },
}
_KPI = {"type": "object", "properties": {
    "period": {"type": "object", "properties": {
        "kind": {"enum": ["month", "quarter", "year"]}, "id": {"type": "string"},
        "start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"}}},
    "computed_at": {"type": "string", "format": "date-time"},
    "rows": {"type": "array", "items": _KPI_ROW},
    "left_out": {"type": "array", "items": {"type": "string"},
                 "description": "indicators of the spec's list not computed (they need the procedure catalogue)"}}}
_KPI_PARAMS = [
    {"name": "period", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]{4}(-(0[1-9]|1[0-2])|-Q[1-4])?$"},
     "description": "`2025-11` (a month), `2025-Q4` (a quarter) or `2025` (a year), 2000..2100; "
                    "default: the current month (local time)"},
    {"name": "unit", "in": "query", "schema": {"type": "string"},
     "description": "a configured unit code, `all` (the province, operator only) or `other`; "
                    "default: every unit the caller may read"},
]


def _paths(backend: str, strict: bool) -> dict[str, Any]:
    return {
        "/v1/dossiers/{MaHoSo}": {
            "parameters": [_mahoso(strict)],
            "put": {
                "summary": "Accept one dossier snapshot (DVCQG field names, spec §6.1)",
                "security": _AGENCY,
                "requestBody": {"required": True, "content": _json({"$ref": "#/components/schemas/Dossier"})},
                "responses": {"202": _resp("Durable; will be delivered", {
                    "type": "object", "properties": {"event_id": {"type": "string"},
                                                     "sequence": {"type": "integer"}}}),
                              **_errors(400, 401, 403, 409, 413, 415, 422, 503)},
            },
            "get": {
                "summary": "Sync status of one dossier",
                "security": _AGENCY,
                "responses": {"200": _resp("Status", _STATUS), **_errors(400, 401, 403, 404, 422)},
            },
        },
        "/v1/dossiers/{MaHoSo}/progress": {
            "parameters": [_mahoso(strict)],
            "post": {
                "summary": "Accept one progress item or a list of them (spec §6.9), in the order they happened",
                "security": _AGENCY,
                "requestBody": {"required": True, "content": _json({"oneOf": [
                    {"$ref": "#/components/schemas/Progress"},
                    {"type": "array", "items": {"$ref": "#/components/schemas/Progress"}, "minItems": 1}]})},
                "responses": {"202": _resp("Durable", {"type": "object", "properties": {
                    "event_ids": {"type": "array", "items": {"type": "string"}}, "sequence": {"type": "integer"}}}),
                              **_errors(400, 401, 403, 413, 415, 422, 503)},
            },
        },
        "/v1/dead-letters": {"get": {
            "summary": "Dead letters, oldest first",
            "security": _OPERATOR,
            "parameters": [{"name": "cursor", "in": "query", "schema": params.id_schema(backend),
                            "description": "The `next` of the previous page",
                            "examples": _id_examples(backend, "well formed, 200 and a page")},
                           {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                       "maximum": 1000}}],
            "responses": {"200": _resp("A page", {"type": "object", "properties": {
                "items": {"type": "array", "items": _DEAD}, "next": {"type": ["string", "null"]}}}),
                          **_errors(400, 401, 422)},
        }},
        "/v1/dead-letters/{id}": {
            "parameters": [_dead_letter_id(backend)],
            "get": {"summary": "One dead letter", "security": _OPERATOR,
                    "responses": {"200": _resp("The dead letter", _DEAD), **_errors(400, 401, 404, 422)}},
            "delete": {"summary": "Drop a dead letter", "security": _OPERATOR,
                       "responses": {"204": _resp("Dropped"), **_errors(400, 401, 404, 422)}},
        },
        "/v1/dead-letters/{id}/replay": {
            "parameters": [_dead_letter_id(backend)],
            "post": {"summary": "Re-enter the event at the head of the retry ladder", "security": _OPERATOR,
                     "responses": {"202": _resp("replayed, or superseded (a newer state was delivered)", {
                         "type": "object", "properties": {"id": {"type": "string"},
                                                          "result": {"enum": ["replayed", "superseded"]}}}),
                                   **_errors(400, 401, 404, 409, 422)}},
        },
        "/v1/maintenance": {
            "get": {"summary": "Whether the instance is in maintenance mode", "security": _OPERATOR,
                    "responses": {"200": _resp("The mode", _MAINTENANCE), **_errors(400, 401)}},
            "put": {"summary": "Turn maintenance mode on or off: /readyz answers 503 while it is on, and the "
                               "instance keeps serving", "security": _OPERATOR,
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "additionalProperties": False, "required": ["enabled"],
                        "properties": {"enabled": {"type": "boolean"},
                                       "reason": {"type": "string", "maxLength": 200}}}}}},
                    "responses": {"200": _resp("The mode now", _MAINTENANCE), **_errors(400, 401, 415, 422)}},
        },
        "/v1/backup": {
            "post": {"summary": "A consistent copy of every SQLite file of the instance, taken while it runs "
                                "(dvcgw backup): a tar stream of the copies and manifest.json (sizes, SHA-256, "
                                "schema versions); one backup at a time", "security": _OPERATOR,
                     "responses": {"200": {"description": "The backup as a tar stream",
                                           "content": {"application/x-tar": {"schema": {
                                               "type": "string", "format": "binary"}}}},
                                   **_errors(400, 401, 409, 503)}},
        },
        "/status": {"get": {
            "summary": "The operator's status page (HTML, Vietnamese or English, refreshes itself): sync "
                       "health, queue, dead letters by reason, portal circuit, 766 indicators",
            "parameters": [{"name": "lang", "in": "query", "schema": {"type": "string"},
                            "description": "vi or en; otherwise Accept-Language, then Vietnamese"}],
            "responses": {"200": {"description": "HTML page",
                                  "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/v1/kpi": {"get": {
            "summary": "The 766 indicators of one period, estimated live (docs/kpi.md)",
            "description": "The operator key reads every unit and the province (`all`); an agency key its own "
                           "units only (403 for another unit).",
            "security": [*_OPERATOR, *_AGENCY],
            "parameters": _KPI_PARAMS,
            "responses": {"200": _resp("The figures", _KPI), **_errors(400, 401, 403, 404, 422)},
        }},
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _resp("Alive")}}},
        "/readyz": {"get": {"summary": "Readiness: cached sub-checks (2 s when passing, 30 s when failing); a "
                                       "portal outage is reported in the body, not failed",
                            "responses": {"200": _resp("Accepting work"),
                                          "503": _resp("Storage unusable, starting, draining or in maintenance")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics",
                             "responses": {"200": {"description": "text exposition format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _resp("OpenAPI 3.1")}}},
    }


_PROCEDURE_FIELDS: dict[str, Any] = {
    "MaTTHC": {"type": "string"}, "TenTTHC": {"type": "string"},
    "MaLinhVuc": {"type": "string", "description": "LINHVUCTHUCHIEN[0].MALINHVUC of LayThuTuc; \"\" if unknown"},
    "TenLinhVuc": {"type": "string"}}
_PROCEDURE_SUMMARY = {"type": "object", "required": list(_PROCEDURE_FIELDS), "properties": _PROCEDURE_FIELDS}
_PROCEDURE = {"type": "object", "required": list(_PROCEDURE_FIELDS), "properties": {
    **_PROCEDURE_FIELDS,
    "row": {"type": "object", "description": "The LayDanhSachTTHC row, as the portal sent it"},
    "detail": {"type": ["object", "null"], "description": "LayThuTuc's result[0] (spec §5.4, upper-case "
                                                          "fields as sent); null until fetched"},
    "detail_fetched_at": {"type": ["string", "null"], "format": "date-time"}}}
_TEXT_PARAM = {"type": "string", "maxLength": 200}


def _catalogue_paths() -> dict[str, Any]:
    return {
        "/v1/procedures": {"get": {
            "summary": "The national procedure catalogue (LayDanhSachTTHC + LayThuTuc, pulled daily), by MaTTHC",
            "security": [*_OPERATOR, *_AGENCY],
            "parameters": [
                {"name": "q", "in": "query", "schema": _TEXT_PARAM,
                 "description": "code or name contains this (case and Vietnamese accents ignored)"},
                {"name": "MaLinhVuc", "in": "query", "schema": _TEXT_PARAM, "description": "the field's code"},
                {"name": "cursor", "in": "query", "schema": _TEXT_PARAM,
                 "description": "The `next` of the previous page"},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            "responses": {"200": _resp("A page", {"type": "object", "properties": {
                "items": {"type": "array", "items": _PROCEDURE_SUMMARY}, "next": {"type": ["string", "null"]},
                "catalogue": {"type": "object", "properties": {
                    "procedures": {"type": "integer"},
                    "pulled_at": {"type": ["string", "null"], "format": "date-time",
                                  "description": "null: never pulled (the catalogue is empty)"}}}}}),
                **_errors(400, 401, 404, 422)}}},
        "/v1/procedures/{MaTTHC}": {
            "parameters": [{"name": "MaTTHC", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "National code (1.001612), or the province's long form "
                                           "(1.001612.000.00.00.H55), which finds its national part"}],
            "get": {"summary": "One procedure of the catalogue", "security": [*_OPERATOR, *_AGENCY],
                    "responses": {"200": _resp("The procedure", _PROCEDURE), **_errors(400, 401, 404)}}},
    }


_PDF = {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}
_PDF_IN = {**_PDF, "multipart/form-data": {"schema": {"type": "object", "properties": {
    "file": {"type": "string", "format": "binary"},
    "options": {"type": "string", "description": "JSON signing options (docs/signing.md)"}}}}}
_JOB = {"type": "object", "properties": {"id": {"type": "string"}, "state": {
    "enum": ["pending", "completed", "failed"]}, "key": {"type": "string"}, "level": {"type": "string"},
    "message": {"type": "string"}, "pdf_base64": {"type": "string"}}}


_DEAD_JOB = {"type": "object", "properties": {
    "id": {"type": "string"}, "topic": {"enum": ["provincial", "receipt"]}, "key": {"type": "string"},
    "code": {"type": "string"}, "message": {"type": "string"}, "attempts": {"type": "integer"},
    "dead_at": {"type": "number"}, "created_at": {"type": "number"}, "replayed": {"type": "boolean"}}}
_JOB_DL_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}


def _job_paths() -> dict[str, Any]:
    """The operator routes of the durable jobs (gateway/job_routes.py)."""
    return {
        "/v1/jobs": {"get": {
            "summary": "Durable jobs (provincial delivery, e-receipts) by topic and state", "security": _OPERATOR,
            "responses": {"200": _resp("Counts", {"type": "object", "properties": {"topics": {"type": "object"}}}),
                          **_errors(400, 401)}}},
        "/v1/jobs/dead-letters": {"get": {
            "summary": "Dead-lettered jobs, oldest first (payloads are never shown)", "security": _OPERATOR,
            "parameters": [{"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]+$"}},
                           {"name": "topic", "in": "query", "schema": {"type": "string"}},
                           {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                       "maximum": 1000}}],
            "responses": {"200": _resp("A page", {"type": "object", "properties": {
                "items": {"type": "array", "items": _DEAD_JOB}, "next": {"type": ["string", "null"]}}}),
                          **_errors(400, 401, 422)}}},
        "/v1/jobs/dead-letters/{id}": {
            "parameters": [_JOB_DL_ID],
            "get": {"summary": "One dead-lettered job", "security": _OPERATOR,
                    "responses": {"200": _resp("The job", _DEAD_JOB), **_errors(400, 401, 404, 422)}},
            "delete": {"summary": "Forget a dead-lettered job", "security": _OPERATOR,
                       "responses": {"204": _resp("Dropped"), **_errors(400, 401, 404, 422)}}},
        "/v1/jobs/dead-letters/{id}/replay": {
            "parameters": [_JOB_DL_ID],
            "post": {"summary": "Run a dead-lettered job again, from the head of the retry ladder",
                     "security": _OPERATOR,
                     "responses": {"202": _resp("Replayed"), **_errors(400, 401, 404, 422)}}},
    }


def _signing_paths() -> dict[str, Any]:
    return {
        "/v1/signatures": {"post": {
            "summary": "Sign a PDF (PAdES B-B/B-T/B-LT/B-LTA); options in docs/signing.md",
            "security": _AGENCY,
            "requestBody": {"required": True, "content": _PDF_IN},
            "responses": {"200": {"description": "The signed PDF", "content": _PDF},
                          "202": _resp("Remote key: the job waits for confirmation", _JOB),
                          **_errors(400, 401, 403, 413, 415, 422, 503)}}},
        "/v1/signatures/{id}": {"parameters": [_JOB_ID], "get": {
            "summary": "A remote signing job", "security": _AGENCY,
            "responses": {"200": _resp("The job", _JOB), **_errors(400, 401, 404)}}},
        "/v1/signatures/validate": {"post": {
            "summary": "Validate every signature of a PDF", "security": _AGENCY,
            "requestBody": {"required": True, "content": _PDF_IN},
            "responses": {"200": _resp("One report per signature", {"type": "object", "properties": {
                "signatures": {"type": "array", "items": {"type": "object"}}}}),
                **_errors(400, 401, 413, 415, 422)}}},
        "/v1/signatures/callbacks/{id}": {"parameters": [_JOB_ID], "post": {
            "summary": "Webhook of the remote signing service (authenticated by its token query parameter)",
            "parameters": [{"name": "token", "in": "query", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _resp("Noted; the job asks the service for the result"),
                          **_errors(404)}}},
    }


_BOOK = {"name": "book_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
         "description": "The book's opaque id (its printed name, e.g. 01/2025-SCTĐT/BS, is in the record)"}
_NUMBER = {"name": "number", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}
_AUTHORITY = {"name": "authority", "in": "path", "required": True, "schema": {"type": "string"}}
_RECORD = {"type": "object", "description": "The record (e-certification.md §4); the public part has no requester data"}
_BOOKS = {"type": "object", "properties": {"books": {"type": "array", "items": {"type": "object"}}}}


def _certification_paths() -> dict[str, Any]:
    either: list[dict[str, list[str]]] = [*_OPERATOR, *_AGENCY]
    multipart = {"multipart/form-data": {"schema": {"type": "object", "required": ["metadata", "file"], "properties": {
        "metadata": {"type": "string", "description": "JSON: authority_code, certifier_name, certifier_title, "
                     "requester_name, requester_id_no, document_name, [paper_copies], [dossier_code], "
                     "[stamp_position {x, y}], [certifier_id] (signing_mode certifier or both)"},
        "file": {"type": "array", "items": {"type": "string", "format": "binary"},
                 "description": "One PDF, or JPEG/PNG pages in order"}}}}}
    return {
        "/v1/certifications": {"post": {
            "summary": "Certify a copy from its original (docs/certification.md)", "security": _AGENCY,
            "requestBody": {"required": True, "content": multipart},
            "responses": {"201": _resp("The record and pdf_url", {"type": "object", "properties": {
                "record": _RECORD, "pdf_url": {"type": "string"}}}),
                "202": _resp("The number is reserved; the certifier confirms the remote signature, and the "
                             "record (Location) then becomes valid, or void with the reason",
                             {"type": "object", "properties": {"record": _RECORD, "pdf_url": {"type": "string"}}}),
                **_errors(401, 403, 413, 415, 422, 503)}}},
        "/verify": {
            "get": {"summary": "The public verification page (HTML form, Vietnamese, no JavaScript)",
                    "responses": {"200": {"description": "HTML page",
                                          "content": {"text/html": {"schema": {"type": "string"}}}}}},
            "post": {"summary": "The form's upload (multipart file): the verdict as an HTML page",
                     "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                         "type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}}}},
                     "responses": {"200": {"description": "HTML page with the verdict",
                                           "content": {"text/html": {"schema": {"type": "string"}}}},
                                   "422": {"description": "HTML page: the file could not be read",
                                           "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/v1/certifications/verify": {"post": {
            "summary": "Verify a certified copy (open, no key): hash, record status, signature, block, changes",
            "requestBody": {"required": True, "content": _PDF_IN},
            "responses": {"200": _resp("The verdict", {"type": "object", "required": ["verdict", "reasons", "record"],
                                                       "properties": {
                "verdict": {"enum": ["valid", "invalid", "revoked", "unknown"]},
                "reasons": {"type": "array", "items": {"type": "object"}},
                "record": {"anyOf": [_RECORD, {"type": "null"}]}}}),
                **_errors(413, 415, 422)}}},
        "/v1/certifications/{book_id}/{number}": {"parameters": [_BOOK, _NUMBER], "get": {
            "summary": "The public part of a certification record (open, no key)",
            "responses": {"200": _resp("The public record", _RECORD), **_errors(404)}}},
        "/v1/certifications/{book_id}/{number}/pdf": {"parameters": [_BOOK, _NUMBER], "get": {
            "summary": "The certified copy", "security": either,
            "responses": {"200": {"description": "The certified PDF", "content": _PDF}, **_errors(401, 403, 404)}}},
        "/v1/certifications/{book_id}/{number}/revoke": {"parameters": [_BOOK, _NUMBER], "post": {
            "summary": "Revoke a valid certification, with a reason", "security": either,
            "requestBody": {"required": True, "content": _json({"type": "object", "required": ["reason"],
                                                                "properties": {"reason": {"type": "string"}}})},
            "responses": {"200": _resp("The revoked public record", _RECORD),
                          **_errors(400, 401, 403, 404, 409, 415, 422)}}},
        "/v1/certification-books": {"get": {
            "summary": "Register books", "security": _OPERATOR,
            "parameters": [{"name": "authority", "in": "query", "required": False, "schema": {"type": "string"}}],
            "responses": {"200": _resp("Books", _BOOKS), **_errors(401)}}},
        "/v1/certification-books/{authority}/open": {"parameters": [_AUTHORITY], "post": {
            "summary": "Open a new book (none may be open)", "security": _OPERATOR,
            "responses": {"201": _resp("The book"), **_errors(401, 409, 422)}}},
        "/v1/certification-books/{authority}/close": {"parameters": [_AUTHORITY], "post": {
            "summary": "Close the open book", "security": _OPERATOR,
            "responses": {"200": _resp("The book"), **_errors(401, 409, 422)}}},
    }


_EITHER: list[dict[str, list[str]]] = [*_OPERATOR, *_AGENCY]
_REF = {"name": "MaThamChieu", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 255},
        "description": "The payment's reference (payment-platform.md §5), as answered by POST /v1/payments."}
_TEXT = {"type": "string"}
_PAYMENT_REQUEST = {
    "type": "object", "required": ["MaHoSo", "items", "payer"], "additionalProperties": False,
    "properties": {
        "MaHoSo": {"type": "string", "description": "The dossier; its unit must be one of the agency's."},
        "items": {"type": "array", "minItems": 1, "maxItems": 50, "items": {
            "type": "object", "required": ["LoaiPhiLePhi", "MaPhiLePhi", "TenPhiLePhi", "SoTien"],
            "additionalProperties": False, "properties": {
                "LoaiPhiLePhi": {"enum": ["1", "2"], "description": "1 phí (fee), 2 lệ phí (charge)"},
                "MaPhiLePhi": {"type": "string", "minLength": 1, "maxLength": 100},
                "TenPhiLePhi": {"type": "string", "minLength": 1, "maxLength": 500},
                "SoTien": {"type": "integer", "minimum": 1, "description": "VND"}}}},
        "payer": {"type": "object", "required": ["HoTenNguoiNop"], "additionalProperties": False, "properties": {
            "HoTenNguoiNop": {"type": "string", "minLength": 1, "maxLength": 200},
            "SoCMNDNguoiNop": {"type": "string", "maxLength": 50},
            "DiaChiNguoiNop": {"type": "string", "maxLength": 500}}},
        "MaTTHC": {"type": "string", "maxLength": 100, "description": "default: the dossier's newest snapshot"},
        "TenTTHC": {"type": "string", "maxLength": 1000, "description": "default: the dossier's newest snapshot"},
        "TenDonVi": {"type": "string", "maxLength": 500},
    },
}
_STATE = {"enum": ["khoi-tao", "thanh-cong", "that-bai", "het-han"]}
_PAYMENT = {"type": "object", "properties": {
    "MaThamChieu": _TEXT, "MaHoSo": _TEXT, "SoTien": {"type": "integer"}, "state": _STATE,
    "UrlThanhToan": {"type": ["string", "null"]}, "MaGiaoDich": {"type": ["string", "null"]},
    "paid_at": {"type": ["string", "null"], "format": "date-time"},
    "history": {"type": "array", "items": {"type": "object", "properties": {
        "at": {"type": "string", "format": "date-time"}, "event": _TEXT, "state": _STATE, "detail": _TEXT}}}}}
_ACK = {"type": "object", "properties": {k: _TEXT for k in (
    "MaLoi", "MoTaLoi", "MaDoiTac", "MaThamChieu", "ThoiGianGD", "MaXacThuc")}}


def _payment_paths() -> dict[str, Any]:
    return {
        "/v1/payments": {"post": {
            "summary": "Ask the national payment platform for a payment of a dossier's fees (INIT)",
            "security": _AGENCY,
            "requestBody": {"required": True, "content": _json(_PAYMENT_REQUEST)},
            "responses": {"201": _resp("Created on the platform: send the citizen to UrlThanhToan", {
                "type": "object", "properties": {"MaThamChieu": _TEXT, "UrlThanhToan": _TEXT, "state": _STATE}}),
                **_errors(400, 401, 403, 413, 415, 422, 502, 503)}}},
        "/v1/payments/confirm": {"post": {
            "summary": "The payment platform's CONFIRM callback (authenticated by its MaXacThuc checksum)",
            "requestBody": {"required": True, "content": _json({"type": "object"})},
            "responses": {"200": _resp("Always 200: MaLoi 00 processed, 99 rejected (payment-platform.md §8.2)",
                                       _ACK)}}},
        "/v1/payments/{MaThamChieu}": {"parameters": [_REF], "get": {
            "summary": "A payment, its local state and history", "security": _EITHER,
            "responses": {"200": _resp("The payment", _PAYMENT), **_errors(400, 401, 403, 404)}}},
        "/v1/payments/{MaThamChieu}/bill": {"parameters": [_REF], "get": {
            "summary": "The platform's receipt PDF of a paid payment (GET_BILL)", "security": _EITHER,
            "responses": {"200": {"description": "The receipt", "content": {"application/pdf": {
                "schema": {"type": "string", "format": "binary"}}}},
                **_errors(400, 401, 403, 404, 409, 502, 503)}}},
    }


_REFUND_PATH = {"/v1/payments/{MaThamChieu}/refund": {"parameters": [_REF], "post": {
    "summary": "Record a paid payment's refund and cancel its e-receipts on VNPT (durable jobs)",
    "security": _OPERATOR,
    "responses": {"202": _resp("The receipt keys being cancelled", {"type": "object", "properties": {
        "MaThamChieu": _TEXT, "cancelling": {"type": "array", "items": _TEXT}}}),
        **_errors(400, 401, 404, 409)}}}}


def _body_schemas(strict: bool) -> dict[str, Any]:
    """The Dossier and Progress schemas, their ``MaHoSo`` held to the path's code format (a body
    code must equal the path's)."""
    snapshot, progress = dossier.dossier_json_schema(), dossier.progress_json_schema()
    snapshot["properties"]["MaHoSo"] = dossier.code_schema(strict)
    for shape in (progress["oneOf"][0], progress["oneOf"][1]["items"]):
        shape["properties"]["MaHoSo"] = {"anyOf": [dossier.code_schema(strict), {"type": "null"},
                                                   {"type": "string", "pattern": r"^\s*$"}],
                                         "description": "Left out, null or blank: the path's code."}
    return {"Dossier": snapshot, "Progress": progress}


@cache
def document(signing: bool = False, backend: str = "sqlite", strict_code: bool = False,
             payments: bool = False, receipts: bool = False, certification: bool = False) -> dict[str, Any]:
    """The document for an app with (or without) the signing routes, on queue ``backend``, with
    (or without) ``[dossiers] strict_code``, with (or without) the payment routes, and the refund
    route where e-receipts are on too."""
    return _with_access_answers({
        "openapi": "3.1.0",
        "info": {"title": "dvc-gateway", "version": __version__,
                 "description": "Agency, operator and health API of the DVCQG sync gateway."},
        "paths": {**_paths(backend, strict_code), **_job_paths(), **_catalogue_paths(),
                  **(_signing_paths() if signing else {}), **(_payment_paths() if payments else {}),
                  **(_REFUND_PATH if payments and receipts else {}),
                  **(_certification_paths() if signing and certification else {})},
        "components": {
            "securitySchemes": {
                "agencyKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "operatorKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "agencyBearer": {"type": "http", "scheme": "bearer",
                                 "description": "The agency key as `Authorization: Bearer <key>`. With "
                                                "X-API-Key as well, both must carry the same key (else 400)."},
                "operatorBearer": {"type": "http", "scheme": "bearer",
                                   "description": "The operator key as `Authorization: Bearer <key>`. With "
                                                  "X-API-Key as well, both must carry the same key (else 400)."},
            },
            "schemas": {
                **_body_schemas(strict_code),
                "Error": {"type": "object", "required": ["error", "message", "errors"], "properties": {
                    "error": {"type": "string"}, "message": {"type": "string"},
                    "errors": {"type": "array", "maxItems": 50, "items": {"type": "object", "properties": {
                        "field": {"type": "string"}, "message": {"type": "string"}}}},
                    "more_errors": {"type": "integer", "minimum": 1, "description": (
                        "Only when the list was cut: how many more problems were found and not listed. "
                        "The check stops looking after 1000 problems (the message says so).")},
                    "grant": {"type": "string", "enum": list(ACCESS_GRANTS), "description": (
                        "Only on a 403 for a missing grant: which one (docs/decisions.md, issue 17).")},
                    "limit": {"type": "string", "enum": list(LIMIT_KINDS), "description": (
                        "Only on a refusal for a per-agency limit: which one (429 rate and concurrency "
                        "with Retry-After, 413 body_size, 400 json_depth).")}}},
            },
            "responses": {"Error": {"description": "Error (house shape)",
                                    "content": _json({"$ref": "#/components/schemas/Error"})}},
        },
    })


_AGENCY_SCHEMES = {"agencyKey", "agencyBearer"}


def _with_access_answers(doc: dict[str, Any]) -> dict[str, Any]:
    """Issue 17's answers on every secured operation: an agency's 429 (rate, requests in progress),
    and 403 on operator-only operations (an agency lacks the operator grant)."""
    for item in doc["paths"].values():
        for op in item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue  # a path item's "parameters"
            schemes = {name for alt in op.get("security", ()) for name in alt}
            if schemes & _AGENCY_SCHEMES:
                op["responses"].setdefault("429", _ERR)
            elif schemes:
                op["responses"].setdefault("403", _ERR)
    return doc


def _served(request: web.Request, signing: bool) -> web.Response:
    settings = request.app[SETTINGS]
    return web.json_response(document(signing, settings.queue.backend, settings.dossiers.strict_code,
                                      settings.payment.enabled, settings.receipts.enabled,
                                      bool(settings.certification.authorities)))


async def serve(request: web.Request) -> web.Response:
    return _served(request, signing=False)


async def serve_full(request: web.Request) -> web.Response:
    """The document including the signing routes (where [signing] is configured)."""
    return _served(request, signing=True)
