"""The sandbox's province-adapter routes (spec §3.4): one URL per operation, bare JSON arrays.

Served beside the service API on the same state, so a dossier created through one is known to the
other. Every route sits behind the same API gateway (latency, rate limit), the same queued faults
(endpoint ``"adapter"`` in the record's ``faulted``) and, once a token was issued, the same bearer
check; with ``/_sandbox/config {"adapter_header": {"name", "value"}}`` it also wants that header
(else HTTP 401). No ``session``, ``madonvi`` or ``dstcode`` is needed.

``POST /adapter/ThemMoi``, ``POST /adapter/CapNhat``
    ``[dossier, …]``: create or update, atomically, with the service API's rules. Replies
    ``{"error_code": "0", "message": "Thêm mới hồ sơ thành công"}`` (``"Cập nhật hồ sơ thành
    công"``); a create of a stored dossier ``{"error_code": "0", "message": "Hồ sơ X đã tồn tại
    trên hệ thống"}`` (code "0" and no "thành công": TH's §5.6 case); other refusals keep the
    service API's codes (``"-4"`` a field, ``"-5"`` an update of a missing dossier, ``"-2"`` a body
    that is not a non-empty array).
``POST /adapter/DongBoTienTrinh``
    ``[item ×≤10]``: plain text (``text/plain``) ``Cập nhật tiến độ hồ sơ thành công``, or
    ``Cập nhật tiến độ không thành công: <reason>``.
``POST /adapter/TraCuuHoSo``
    ``{"mahoso": …}`` → ``{"error_code": "0", "message": "Thành công", "result": [dossier] | []}``
    (the variant has no lookup in TH: this is the sandbox's model of one, spec [UNCERTAIN]).

Record entries carry ``"transport": "adapter"`` (and ``dstcode`` when one was sent); dossier
pushes carry ``isUpdating`` as the service API's do, so tests read both the same way.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from adapters.sandbox.state import Reply, SandboxState

CREATE = "/adapter/ThemMoi"
UPDATE = "/adapter/CapNhat"
PROGRESS = "/adapter/DongBoTienTrinh"
LOOKUP = "/adapter/TraCuuHoSo"
PATHS = (CREATE, UPDATE, PROGRESS, LOOKUP)
_EXISTS = "-3"
_DONE = "00"
_NOT_ARRAY: Reply = {"error_code": "-2", "message": "Dữ liệu yêu cầu phải là một mảng JSON không rỗng"}
_NOT_OBJECT: Reply = {"error_code": "-2", "message": "Dữ liệu yêu cầu phải là một đối tượng JSON"}


def _header_ok(state: SandboxState, request: web.Request) -> bool:
    wanted = state.config.adapter_header
    return wanted is None or request.headers.get(wanted.get("name", "")) == wanted.get("value")


async def serve(state: SandboxState, request: web.Request) -> web.Response:
    """Answer one adapter call that passed the front (API gateway, faults, bearer): the static
    header check, then the operation of ``request.path``."""
    if not _header_ok(state, request):
        return web.json_response({"error": "unauthorized", "message": "Missing or wrong API key"}, status=401)
    return await _serve(state, request)


async def _serve(state: SandboxState, request: web.Request) -> web.Response:
    try:
        body: Any = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = None
    meta: dict[str, Any] = {"transport": "adapter"}
    if request.headers.get("dstcode"):
        meta["dstcode"] = request.headers["dstcode"]
    path = request.path
    if path == LOOKUP:
        reply = state.lookup(body, meta) if isinstance(body, dict) else _NOT_OBJECT
        return _json(reply)
    if path == PROGRESS:
        return _progress(state, body, meta)
    return _json(_sync(state, body, meta, updating=path == UPDATE))


def _sync(state: SandboxState, body: Any, meta: dict[str, Any], *, updating: bool) -> Reply:
    if not isinstance(body, list) or not body:
        return _NOT_ARRAY
    reply = state.sync_dossiers({"isUpdating": "True" if updating else "False", "data": body}, meta)
    if reply["error_code"] == _DONE:
        return {"error_code": "0", "message": "Cập nhật hồ sơ thành công" if updating else "Thêm mới hồ sơ thành công"}
    if reply["error_code"] == _EXISTS:
        return {"error_code": "0", "message": reply["message"]}
    return reply


def _progress(state: SandboxState, body: Any, meta: dict[str, Any]) -> web.Response:
    reply = state.push_progress({"data": body}, meta) if isinstance(body, list) else _NOT_ARRAY
    if reply["error_code"] == _DONE:
        return web.Response(text="Cập nhật tiến độ hồ sơ thành công")
    return web.Response(text=f"Cập nhật tiến độ không thành công: {reply['message']}")


def _json(reply: Reply) -> web.Response:
    return web.Response(body=orjson.dumps(reply), content_type="application/json")


def reject(path: str, code: str, message: str) -> web.Response:
    """An injected ``reject`` fault, in the shape of ``path``'s replies."""
    if path == PROGRESS:
        return web.Response(text=f"Cập nhật tiến độ không thành công: {message}")
    return _json({"error_code": code, "message": message})
