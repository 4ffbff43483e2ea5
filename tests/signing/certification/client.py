"""HTTP helpers for the certification tests (real requests to the gateway on 127.0.0.1)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.signing.certification.conftest import HOA_BINH, OPERATOR_KEY
from tests.signing.client import Reply, headers

REQUESTER = {"requester_name": "Trần Thị Bích", "requester_id_no": "079199000123"}


def metadata(**over: Any) -> dict[str, Any]:
    return {"authority_code": HOA_BINH, "certifier_name": "Nguyễn Văn Ánh",
            "certifier_title": "Công chức Tư pháp – Hộ tịch", "document_name": "Giấy khai sinh",
            **REQUESTER, **over}


async def certify(url: str, files: list[tuple[bytes, str]], meta: dict[str, Any] | None = None,
                  agency: str = "STP", raw_meta: str | None = None) -> Reply:
    form = aiohttp.FormData()
    if meta is not None or raw_meta is not None:
        form.add_field("metadata", raw_meta if raw_meta is not None else json.dumps(meta),
                       content_type="application/json")
    for i, (data, ctype) in enumerate(files):
        form.add_field("file", data, filename=f"page{i}", content_type=ctype)
    async with aiohttp.ClientSession() as s, s.post(f"{url}/v1/certifications", data=form,
                                                    headers=headers(agency)) as r:
        return Reply(r.status, dict(r.headers), await r.read())


async def call(method: str, url: str, key: str | None = None, headers: dict[str, str] | None = None,
               **kw: Any) -> Reply:
    h = ({"X-API-Key": key} if key else {}) | (headers or {})
    async with aiohttp.ClientSession() as s, s.request(method, url, headers=h, **kw) as r:
        return Reply(r.status, dict(r.headers), await r.read())


def operator() -> str:
    return OPERATOR_KEY
