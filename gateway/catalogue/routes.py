"""``GET /v1/procedures`` and ``GET /v1/procedures/{MaTTHC}``: the catalogue, for agencies and the operator.

The list is paged by procedure code (``?cursor=`` the last code of the previous page, ``next`` in
the answer) and filtered by ``?q=`` (code or name contains it, case and accents ignored) and
``?MaLinhVuc=`` (the field's code, exactly). Checks run in the order 400 (two keys)/401, 404
(catalogue disabled), 400/422 (parameters), 404 (unknown code).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from core.errors import FieldError
from gateway import params
from gateway.appkeys import CATALOGUE
from gateway.auth import require_operator_or_agency
from gateway.catalogue.service import Catalogue
from gateway.catalogue.store import Procedure
from gateway.http_errors import HTTPProblem
from gateway.times import iso_utc

#: longest ?q=, ?MaLinhVuc= and ?cursor= taken
MAX_PARAM_CHARS = 200


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/procedures", list_procedures)
    app.router.add_get("/v1/procedures/{MaTTHC}", get_procedure)


def summary_json(p: Procedure) -> dict[str, Any]:
    return {"MaTTHC": p.ma_tthc, "TenTTHC": p.ten_tthc, "MaLinhVuc": p.ma_linh_vuc, "TenLinhVuc": p.ten_linh_vuc}


def detail_json(p: Procedure) -> dict[str, Any]:
    """The summary, the ``LayDanhSachTTHC`` row and the ``LayThuTuc`` detail as the portal sent them."""
    return {**summary_json(p), "row": p.row, "detail": p.detail, "detail_fetched_at": iso_utc(p.detail_at)}


def _json(body: dict[str, Any]) -> web.Response:
    """Vietnamese names as UTF-8, not \\u escapes."""
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _catalogue(request: web.Request) -> Catalogue:
    require_operator_or_agency(request)
    catalogue = request.app.get(CATALOGUE)
    if catalogue is None:
        raise HTTPProblem(404, "not_found", "the procedure catalogue is disabled ([catalogue] enabled = false)")
    return catalogue


def _text_param(request: web.Request, name: str) -> str:
    value = request.query.get(name, "")
    if len(value) > MAX_PARAM_CHARS:
        raise HTTPProblem(422, "validation_failed", f"the {name} parameter is too long",
                          [FieldError(name, f"at most {MAX_PARAM_CHARS} characters")])
    return value


async def list_procedures(request: web.Request) -> web.Response:
    """``GET /v1/procedures?q=&MaLinhVuc=&limit=&cursor=``."""
    catalogue = _catalogue(request)
    limit = params.page_limit(request.query.get("limit"))
    query, field, after = (_text_param(request, n) for n in ("q", "MaLinhVuc", "cursor"))
    page = catalogue.search(query, field, after, limit + 1)
    more = len(page) > limit
    page = page[:limit]
    return _json({
        "items": [summary_json(p) for p in page],
        "next": page[-1].ma_tthc if more else None,
        "catalogue": {"procedures": catalogue.size, "pulled_at": iso_utc(catalogue.pulled_at)},
    })


async def get_procedure(request: web.Request) -> web.Response:
    """``GET /v1/procedures/{MaTTHC}``: one procedure, or 404 naming MaTTHC."""
    catalogue = _catalogue(request)
    ma_tthc = request.match_info["MaTTHC"]
    found = catalogue.find(ma_tthc) if len(ma_tthc) <= MAX_PARAM_CHARS else None
    if found is None:
        empty = "" if catalogue.size else " (the catalogue is empty: it has not been pulled yet)"
        raise HTTPProblem(404, "not_found", f"no such procedure in the catalogue{empty}",
                          [FieldError("MaTTHC", "not in the national procedure catalogue")])
    return _json(detail_json(found))
