"""National-portal (DVCQG) simulator served by ``dvcgw sandbox --port N``. Never expose it publicly.

Portal routes (spec ``national-portal.md`` §2, §3, §5, §9):

``POST /login``
    Header ``dstcode`` and JSON ``{"username", "password"}`` required. Any non-empty pair is
    accepted unless ``/_sandbox/config`` says otherwise. Reply
    ``{"error_code": 0, "message": "Đăng nhập thành công", "session": "<random>"}``; refused:
    ``{"error_code": "1", "message": "Tên đăng nhập hoặc mật khẩu không đúng"}``.
``POST /token``
    OAuth2 client credentials (``grant_type=client_credentials``; client auth Basic or
    ``client_id``/``client_secret`` in the form). Reply
    ``{"access_token", "token_type": "Bearer", "expires_in": 3600}``; 401 ``invalid_client``.
``POST /service``
    ``DongBoHoSoMC``, ``CapNhatTienDoHoSoMC``, ``TraCuuHoSo``, ``LayThuTuc`` (from the shipped
    catalogue ``procedures.json``; ``[]`` for an unknown code), and the citizen-dossier pull under
    the configured ``inbound_service`` name (default ``LayDanhSachHoSoDVCQG``; parameters
    ``cursor``, ``limit``; reply ``result[]`` and the next ``cursor``).
``POST /share``
    ``LayDanhSachTTHC`` (the shipped catalogue's codes and names), ``LayDanhMucCoQuan``,
    ``LayDanhMucLinhVuc`` (empty result).
``POST /adapter/ThemMoi``, ``/adapter/CapNhat``, ``/adapter/DongBoTienTrinh``, ``/adapter/TraCuuHoSo``
    The province-adapter variant (spec §3.4): bare JSON arrays, one URL per operation, behind the
    same front (latency, rate limit, faults, bearer); see :mod:`adapters.sandbox.adapter`.

In front of these four routes sits what an API gateway (NGSP/LGSP, Kong-style) adds: every call
waits ``latency`` seconds before it is answered, and with ``rate_limit`` N > 0 at most N calls
are admitted in any one-second window (sliding); a call over the limit is answered HTTP 429 with
``Retry-After`` (whole seconds until one would be admitted, at least 1) and a JSON body, and
never reaches the portal: it counts in ``throttled``, not in ``calls``, and consumes no fault.
Both come from ``dvcgw sandbox --latency 50ms --rate-limit 100`` and ``/_sandbox/config``.

Every ``/service`` and ``/share`` body is ``{"session", "madonvi", "service", …params}`` with a
``dstcode`` header. An unknown session gets ``{"error_code": "-1", "message": "Phiên làm việc đã
hết hạn, vui lòng đăng nhập lại"}``. Once any token has been issued, every ``/login``,
``/service`` and ``/share`` call must carry a live ``Authorization: Bearer …`` or gets HTTP 401;
a call with a live bearer and *no* ``session`` key is accepted (``auth = "oauth2"``).
Business codes are listed in :mod:`adapters.sandbox.state`.

Admin routes:

``POST /_sandbox/faults``
    ``{"mode": M, "count": N, "retry_after": s, "delay": s, "message": "…", "error_code": "…"}``.
    Modes ``http503``, ``http429`` (``Retry-After`` = ``retry_after``: a number is sent as
    delta-seconds, a string verbatim, e.g. an HTTP-date; absent = no header), ``http403``,
    ``slow`` (wait ``delay`` s, then answer normally), ``reject`` (business rejection with
    ``message``/``error_code``), ``html`` (200 with an HTML page), ``empty`` (200, empty body)
    apply to the next ``count`` (default 1) service calls, queued in order.
    ``expire_sessions`` / ``expire_tokens`` invalidate all sessions / tokens at once (no count).
``POST /_sandbox/config``
    Any of ``{"refuse_logins": bool, "credentials": {user: password} | null,
    "clients": {client_id: secret} | null, "session_ttl": s, "token_ttl": s,
    "latency": s | "50ms", "rate_limit": calls per second (0 = none),
    "adapter_header": {"name", "value"} | null}`` (the header the adapter routes then require).
``POST /_sandbox/dossiers``
    ``{"dossiers": ["<MaHoSo>" | {dossier}, …]}``: mark dossiers as already on the portal.
``GET /_sandbox/dossiers/{MaHoSo}``
    The stored dossier, or 404.
``GET /_sandbox/record``
    ``{"dossiers": {"<MaHoSo>": [entry, …]}, "logins", "login_failures", "tokens",
    "token_methods", "calls", "throttled", "max_in_flight", "stored"}``; entries in arrival order, e.g.
    ``{"service": "DongBoHoSoMC", "isUpdating": "False", "data": {…}, "at": <epoch>,
    "madonvi": "…", "dstcode": "…", "error_code": "00"}`` or
    ``{"service": "CapNhatTienDoHoSoMC", "items": […], …}`` or
    ``{"service": "TraCuuHoSo", "params": {"mahoso": "…"}, …}``. Rejected calls are recorded
    too, with their ``error_code``.
``POST /_sandbox/procedures`` / ``GET /_sandbox/procedures``
    ``{"procedures": [{"MATTHC", "TENTTHC", "LINHVUCTHUCHIEN": […], …}]}``: replace / read the
    catalogue LayDanhSachTTHC and LayThuTuc answer from.
``POST /_sandbox/inbound`` / ``GET /_sandbox/inbound``
    ``{"dossiers": [{"MaHoSo": …, "TrangThaiHoSo": "new", …}]}``: citizen-submitted dossiers the
    pull service hands out, in seeding order (seeding a code again is an update: it moves to the end).
``POST /_sandbox/reset``
    Forget everything; the configuration returns to its start-up values (the command line's).

The payment platform's side (INIT, QUERY, GET_BILL, and CONFIRM callbacks on demand) is described
in :mod:`adapters.sandbox.payment`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import json
import math
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import orjson
from aiohttp import web

from adapters.sandbox import adapter
from adapters.sandbox.payment import DEFAULT_CALLBACK, DEFAULT_SECRET, PAYMENTS, add_payment_routes
from adapters.sandbox.state import (
    FAULT_MODES,
    SESSION_EXPIRED,
    Fault,
    Reply,
    SandboxConfig,
    SandboxState,
    empty_result,
    list_procedures,
    procedure,
    pull_inbound,
    seed_inbound,
)
from config.loader import parse_duration
from core.errors import ConfigError

STATE = web.AppKey("sandbox_state", SandboxState)

Handler = Callable[[SandboxState, dict[str, Any], dict[str, Any]], Reply]
_SERVICES: dict[tuple[str, str], Handler] = {
    ("integration", "DongBoHoSoMC"): SandboxState.sync_dossiers,
    ("integration", "CapNhatTienDoHoSoMC"): SandboxState.push_progress,
    ("integration", "TraCuuHoSo"): SandboxState.lookup,
    ("integration", "LayThuTuc"): procedure,
    ("share", "LayDanhSachTTHC"): list_procedures,
    ("share", "LayDanhMucCoQuan"): lambda _s, p, m: empty_result(p, m),
    ("share", "LayDanhMucLinhVuc"): lambda _s, p, m: empty_result(p, m),
}
_dumps = partial(json.dumps, ensure_ascii=False)


def _reply(reply: Reply, status: int = 200) -> web.Response:
    return web.json_response(reply, status=status, dumps=_dumps)


def _bad(code: str, message: str) -> web.Response:
    return _reply({"error_code": code, "message": message})


def _unauthorized() -> web.Response:
    return _reply({"error": "invalid_token", "message": "Invalid or expired access token"}, status=401)


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    try:  # orjson: a batch of 50 dossiers decoded in a quarter of the stdlib's time
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _bearer_refused(state: SandboxState, request: web.Request) -> bool:
    return state.token_ever_issued and not state.bearer_valid(request.headers.get("Authorization"))


async def _gateway(state: SandboxState) -> web.Response | None:
    """The API gateway's part of a portal call: the rate limit decides on arrival, then the
    answer waits ``latency``, a refusal included. Returns the 429 to send, or None to carry on."""
    wait = state.admit()
    if state.config.latency > 0:
        await asyncio.sleep(state.config.latency)
    if wait is None:
        return None
    return await _fault_response(Fault(mode="http429", retry_after=math.ceil(wait)))


# ── portal routes ────────────────────────────────────────────────────────────────────────


async def login(request: web.Request) -> web.Response:
    """§2.2 login."""
    state = request.app[STATE]
    refused = await _gateway(state)
    if refused is not None:
        return refused
    if _bearer_refused(state, request):
        return _unauthorized()
    if not request.headers.get("dstcode"):
        return _bad("-2", "Thiếu header dstcode")
    body = await _json_object(request)
    if body is None:
        return _bad("-2", "Dữ liệu yêu cầu không phải đối tượng JSON")
    return _reply(state.login(body.get("username"), body.get("password")))


def _client_credentials(authorization: str | None, form: Any) -> tuple[str, str, str]:
    if authorization and authorization.startswith("Basic "):
        try:
            raw = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return "", "", "basic"
        cid, _, secret = raw.partition(":")
        return cid, secret, "basic"
    return str(form.get("client_id", "")), str(form.get("client_secret", "")), "form"


async def token(request: web.Request) -> web.Response:
    """§3.1 client-credentials token endpoint."""
    state = request.app[STATE]
    refused = await _gateway(state)
    if refused is not None:
        return refused
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        return web.json_response({"error": "unsupported_grant_type"}, status=400)
    cid, secret, method = _client_credentials(request.headers.get("Authorization"), form)
    reply = state.issue_token(cid, secret, method)
    if reply is None:
        return web.json_response({"error": "invalid_client"}, status=401)
    return web.json_response(reply)


async def _fault_response(fault: Fault) -> web.Response | None:
    """The HTTP answer a fault forces, or None to carry on (slow, reject)."""
    if fault.mode == "slow":
        await asyncio.sleep(fault.delay)
        return None
    if fault.mode == "http503":
        html = "<html><body><h1>503 Service Unavailable</h1></body></html>"
        return web.Response(status=503, text=html, content_type="text/html")
    if fault.mode == "http429":
        headers = {} if fault.retry_after is None else {"Retry-After": _retry_after_text(fault.retry_after)}
        body = {"error": "quota exceeded", "message": "API rate limit exceeded"}
        return web.json_response(body, status=429, headers=headers)
    if fault.mode == "http403":
        return web.json_response({"error": "forbidden", "message": "Application not subscribed"}, status=403)
    if fault.mode == "html":
        return web.Response(text="<html><body>Hệ thống đang bảo trì</body></html>", content_type="text/html")
    if fault.mode == "empty":
        return web.Response(body=b"", content_type="application/json")
    return None


def _retry_after_text(value: float | str) -> str:
    return value if isinstance(value, str) else str(max(0, round(value)))


def _envelope_problem(state: SandboxState, request: web.Request, body: dict[str, Any] | None) -> Reply | None:
    if not request.headers.get("dstcode"):
        return {"error_code": "-2", "message": "Thiếu header dstcode"}
    if body is None:
        return {"error_code": "-2", "message": "Dữ liệu yêu cầu không phải đối tượng JSON"}
    if "session" in body or not state.bearer_valid(request.headers.get("Authorization")):
        if not state.session_valid(body.get("session")):
            return SESSION_EXPIRED
    madonvi = body.get("madonvi")
    if not isinstance(madonvi, str) or not madonvi:
        return {"error_code": "-2", "message": "Thiếu tham số madonvi"}
    return None


async def _service_call(request: web.Request, endpoint: str) -> web.Response:
    state = request.app[STATE]
    return await _front(state, lambda: _serve(state, request, endpoint))


async def _front(state: SandboxState, serve: Callable[[], Awaitable[web.Response]]) -> web.Response:
    """What every portal call passes first, whatever its transport: the in-flight count, the API
    gateway (latency, rate limit), then the call counted and served."""
    state.in_flight += 1
    state.max_in_flight = max(state.max_in_flight, state.in_flight)
    try:
        refused = await _gateway(state)
        if refused is not None:
            return refused
        state.calls += 1
        return await serve()
    finally:
        state.in_flight -= 1


async def _serve(state: SandboxState, request: web.Request, endpoint: str) -> web.Response:
    fault = state.take_fault(endpoint)
    if fault is not None:
        forced = await _fault_response(fault)
        if forced is not None:
            return forced
    if _bearer_refused(state, request):
        return _unauthorized()
    body = await _json_object(request)
    problem = _envelope_problem(state, request, body)
    if problem is not None or body is None:
        return _reply(problem or SESSION_EXPIRED)
    handler = _handler(state, endpoint, str(body.get("service")))
    if handler is None:
        return _bad("-2", f"Dịch vụ {body.get('service')!s} không được hỗ trợ tại địa chỉ này")
    if fault is not None and fault.mode == "reject":
        return _bad(fault.error_code, fault.message)
    meta = {"madonvi": body["madonvi"], "dstcode": request.headers["dstcode"]}
    return _reply(handler(state, body, meta))


async def adapter_call(request: web.Request) -> web.Response:
    """The province-adapter routes (spec §3.4, :mod:`adapters.sandbox.adapter`) behind the same
    front as ``/service``: API gateway, queued faults (endpoint ``"adapter"``), bearer."""
    state = request.app[STATE]
    return await _front(state, lambda: _serve_adapter(state, request))


async def _serve_adapter(state: SandboxState, request: web.Request) -> web.Response:
    fault = state.take_fault("adapter")
    if fault is not None:
        forced = await _fault_response(fault)
        if forced is not None:
            return forced
        if fault.mode == "reject":
            return adapter.reject(request.path, fault.error_code, fault.message)
    if _bearer_refused(state, request):
        return _unauthorized()
    return await adapter.serve(state, request)


def _handler(state: SandboxState, endpoint: str, name: str) -> Handler | None:
    """The service ``name`` at ``endpoint``; the dossier pull answers on the integration endpoint
    under the configured name (``inbound_service``)."""
    if endpoint == "integration" and name == state.config.inbound_service:
        return pull_inbound
    return _SERVICES.get((endpoint, name))


async def service(request: web.Request) -> web.Response:
    """``adapter_url + integration_endpoint``: dossier services."""
    return await _service_call(request, "integration")


async def share(request: web.Request) -> web.Response:
    """``adapter_url + share_endpoint``: catalogue services."""
    return await _service_call(request, "share")


# ── admin routes ─────────────────────────────────────────────────────────────────────────


def _admin_error(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def _parse_fault(body: dict[str, Any]) -> Fault | str:
    mode = body.get("mode")
    if mode not in FAULT_MODES:
        return f"mode must be one of {sorted(FAULT_MODES)}"
    count = body.get("count", 1)
    retry_after = body.get("retry_after")
    if not isinstance(count, int) or count < 0:
        return "count must be a non-negative integer"
    if retry_after is not None and not isinstance(retry_after, int | float | str):
        return "retry_after must be seconds or an HTTP-date string"
    fault = Fault(mode=mode, remaining=count, retry_after=retry_after, delay=float(body.get("delay", 0.0)))
    if "message" in body:
        fault.message = str(body["message"])
    if "error_code" in body:
        fault.error_code = str(body["error_code"])
    return fault


async def admin_list_faults(request: web.Request) -> web.Response:
    """The faults still queued, in the order they will apply."""
    return web.json_response({"faults": request.app[STATE].queued_faults()})


async def admin_clear_faults(request: web.Request) -> web.Response:
    """Forget every queued fault (what already happened stays in the record)."""
    state = request.app[STATE]
    cleared = len(state.faults)
    state.faults.clear()
    return web.json_response({"ok": True, "cleared": cleared})


async def admin_faults(request: web.Request) -> web.Response:
    """Queue a fault for the next service calls, or expire sessions/tokens now."""
    state = request.app[STATE]
    body = await _json_object(request)
    fault = _parse_fault(body or {})
    if isinstance(fault, str):
        return _admin_error(fault)
    state.add_fault(fault)
    return web.json_response({"ok": True, "pending": sum(f.remaining for f in state.faults)})


_CONFIG_KEYS = {"refuse_logins", "credentials", "clients", "session_ttl", "token_ttl", "latency", "rate_limit",
                "inbound_service", "adapter_header"}


def latency_seconds(value: object) -> float:
    """A latency setting (seconds, or text such as ``"50ms"``) in seconds; raises ConfigError."""
    seconds = float(parse_duration(value, "latency"))
    if seconds < 0:
        raise ConfigError("latency", f"must not be negative; got {value!r}")
    return seconds


def rate_limit_calls(value: object) -> int:
    """A rate-limit setting (whole calls per second, 0 = none); raises ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError("rate_limit", f"expected a whole number of calls per second (0 = none); got {value!r}")
    return value


def adapter_header(value: object) -> dict[str, str] | None:
    """The adapter routes' required header, ``{"name", "value"}`` strings, or None; raises ConfigError."""
    if value is None:
        return None
    if (not isinstance(value, dict) or set(value) != {"name", "value"}
            or not all(isinstance(v, str) and v for v in value.values())):
        raise ConfigError("adapter_header", 'expected {"name": "<header>", "value": "<text>"} or null')
    return dict(value)


_CHECKED: dict[str, Callable[[object], object]] = {"latency": latency_seconds, "rate_limit": rate_limit_calls,
                                                   "adapter_header": adapter_header}


async def admin_config(request: web.Request) -> web.Response:
    """Change login/token acceptance, lifetimes, latency and rate limit; unknown keys and bad
    latency or rate-limit values are refused, and then nothing is changed."""
    state = request.app[STATE]
    body = await _json_object(request)
    if body is None or not set(body) <= _CONFIG_KEYS:
        return _admin_error(f"expected an object with keys among {sorted(_CONFIG_KEYS)}")
    try:
        values = {key: _CHECKED.get(key, _same)(value) for key, value in body.items()}
    except ConfigError as exc:
        return _admin_error(str(exc))
    for key, value in values.items():
        setattr(state.config, key, value)
    return web.json_response(vars(state.config))


def _same(value: object) -> object:
    return value


async def admin_dossiers(request: web.Request) -> web.Response:
    """Mark dossiers as already known to the portal."""
    body = await _json_object(request)
    entries = (body or {}).get("dossiers")
    if not isinstance(entries, list):
        return _admin_error('expected {"dossiers": [...]}')
    return web.json_response({"added": request.app[STATE].mark_known(entries)})


async def admin_dossier(request: web.Request) -> web.Response:
    """One stored dossier, as the portal holds it."""
    stored = request.app[STATE].dossiers.get(request.match_info["code"])
    if stored is None:
        raise web.HTTPNotFound()
    return web.json_response(stored, dumps=_dumps)


async def admin_procedures(request: web.Request) -> web.Response:
    """Replace the procedure catalogue: ``{"procedures": [LayThuTuc-shaped objects with MATTHC]}``."""
    body = await _json_object(request)
    procedures = (body or {}).get("procedures")
    if not isinstance(procedures, list) or not all(isinstance(p, dict) and isinstance(p.get("MATTHC"), str)
                                                   for p in procedures):
        return _admin_error('expected {"procedures": [{"MATTHC": "...", "TENTTHC": "...", ...}, ...]}')
    request.app[STATE].procedures = [dict(p) for p in procedures]
    return web.json_response({"procedures": len(procedures)})


async def admin_list_procedures(request: web.Request) -> web.Response:
    """The procedure catalogue the sandbox serves."""
    return web.json_response({"procedures": request.app[STATE].procedures}, dumps=_dumps)


async def admin_inbound(request: web.Request) -> web.Response:
    """Seed citizen-submitted dossiers for the pull service: ``{"dossiers": [{dossier}, …]}``."""
    body = await _json_object(request)
    dossiers = (body or {}).get("dossiers")
    if not isinstance(dossiers, list):
        return _admin_error('expected {"dossiers": [{"MaHoSo": "...", ...}, ...]}')
    state = request.app[STATE]
    added = seed_inbound(state, dossiers)
    if isinstance(added, str):
        return _admin_error(added)
    return web.json_response({"added": added, "cursor": str(state.inbound_seq)})


async def admin_list_inbound(request: web.Request) -> web.Response:
    """The seeded dossiers in pull order, each with its sequence number."""
    rows = sorted(request.app[STATE].inbound.values(), key=lambda r: r[0])
    return web.json_response({"dossiers": [{"seq": seq, "dossier": d} for seq, d in rows]}, dumps=_dumps)


async def admin_record(request: web.Request) -> web.Response:
    """Everything received, per dossier, in arrival order, plus counters."""
    return web.json_response(request.app[STATE].snapshot(), dumps=_dumps)


async def admin_reset(request: web.Request) -> web.Response:
    """Forget everything (the payment platform's side too)."""
    request.app[STATE].reset()
    request.app[PAYMENTS].reset()
    return web.json_response({"ok": True})


def create_sandbox_app(*, clock: Callable[[], float] | None = None, latency: float = 0.0,
                       rate_limit: int = 0, payment_secret: str = DEFAULT_SECRET,
                       payment_callback: str = DEFAULT_CALLBACK) -> web.Application:
    """The simulator as an aiohttp application (``clock`` drives session/token expiry and the
    rate-limit window); ``latency`` (s) and ``rate_limit`` (calls/s) are its start-up values. The
    payment platform's side (adapters/sandbox/payment.py) checksums with ``payment_secret`` and
    sends CONFIRM callbacks to ``payment_callback``."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    startup = SandboxConfig(latency=latency, rate_limit=rate_limit)
    app[STATE] = SandboxState(clock=clock, startup=startup) if clock is not None else SandboxState(startup=startup)
    app[STATE].reset()
    app.router.add_post("/login", login)
    app.router.add_post("/token", token)
    app.router.add_post("/service", service)
    app.router.add_post("/share", share)
    for path in adapter.PATHS:
        app.router.add_post(path, adapter_call)
    app.router.add_post("/_sandbox/faults", admin_faults)
    app.router.add_get("/_sandbox/faults", admin_list_faults)
    app.router.add_delete("/_sandbox/faults", admin_clear_faults)
    app.router.add_post("/_sandbox/config", admin_config)
    app.router.add_post("/_sandbox/dossiers", admin_dossiers)
    app.router.add_get("/_sandbox/dossiers/{code}", admin_dossier)
    app.router.add_get("/_sandbox/record", admin_record)
    app.router.add_post("/_sandbox/procedures", admin_procedures)
    app.router.add_get("/_sandbox/procedures", admin_list_procedures)
    app.router.add_post("/_sandbox/inbound", admin_inbound)
    app.router.add_get("/_sandbox/inbound", admin_list_inbound)
    app.router.add_post("/_sandbox/reset", admin_reset)
    add_payment_routes(app, secret=payment_secret, callback_url=payment_callback)
    return app


def freeze_survivors(phase: str, info: dict[str, int]) -> None:
    """``dvcgw sandbox``'s hook in ``gc.callbacks``: after each full collection, what survived it
    is frozen (``gc.freeze``), so that later collections do not walk it again.

    The sandbox keeps every dossier and call it is sent (``/_sandbox/record``), and each full
    collection walked all of them: at 2 GB (a gateway delivering 3,600 events a second fills that
    in about 3 minutes) one took 1.5 s, during which no portal call was answered, and the pauses
    grow with the heap. Frozen objects are still freed by their reference counts; only a
    reference cycle alive at a freeze that becomes garbage afterwards is never collected (a call
    in flight at that moment)."""
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def run_sandbox(host: str = "127.0.0.1", port: int = 9000, *, latency: object = 0.0, rate_limit: object = 0,
                payment_secret: str = DEFAULT_SECRET, payment_callback: str = DEFAULT_CALLBACK) -> None:
    """Serve the simulator until interrupted (blocking; used by ``dvcgw sandbox``). ``latency``
    is seconds or text such as ``"50ms"``; raises ConfigError for a bad latency or rate limit.
    Survivors of full collections are frozen (:func:`freeze_survivors`): the process only, not
    the application, which tests run inside their own process."""
    app = create_sandbox_app(latency=latency_seconds(latency), rate_limit=rate_limit_calls(rate_limit),
                             payment_secret=payment_secret, payment_callback=payment_callback)
    if freeze_survivors not in gc.callbacks:
        gc.callbacks.append(freeze_survivors)
    web.run_app(app, host=host, port=port, access_log=None)
