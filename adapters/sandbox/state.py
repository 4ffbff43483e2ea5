"""The sandbox's memory and business rules: sessions, tokens, dossiers, the record, faults.

Everything here is synchronous and cheap; :mod:`adapters.sandbox.app` does the HTTP.
Business replies follow the portal's shape ``{"error_code": "<code>", "message": "<Vietnamese>"}``:

======  ==================================================================
code    meaning
======  ==================================================================
"00"    success of ``DongBoHoSoMC`` / ``CapNhatTienDoHoSoMC``
"0"     success of lookups and catalogue calls
"-1"    unknown or expired session ("Phiên làm việc đã hết hạn …")
"-2"    malformed request (dstcode, madonvi, service, isUpdating, data)
"-3"    create of a dossier that already exists ("Hồ sơ X đã tồn tại trên hệ thống")
"-4"    a field failed validation (message names the field)
"-5"    update of a missing dossier, or progress before the dossier exists
"-6"    more than 10 progress items in one call
"-9"    rejection injected through ``POST /_sandbox/faults`` (``reject``)
"1"     login refused
======  ==================================================================

Multi-dossier calls are atomic: one bad dossier rejects the whole call and stores nothing.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

from adapters.sandbox.validation import code_of, dossier_problem, progress_problem

Reply = dict[str, Any]

SESSION_EXPIRED: Reply = {"error_code": "-1", "message": "Phiên làm việc đã hết hạn, vui lòng đăng nhập lại"}
FAULT_MODES = frozenset(
    {"http503", "http429", "http403", "slow", "reject", "html", "empty", "expire_sessions", "expire_tokens"}
)
MAX_PROGRESS = 10
#: [UNCERTAIN] the pull service of citizen-submitted dossiers is not public (spec §1.2): the name the
#: sandbox answers to by default, the same as ``[inbound] service``'s default
INBOUND_SERVICE = "LayDanhSachHoSoDVCQG"
MAX_PULL = 1000


@cache
def shipped_procedures() -> tuple[dict[str, Any], ...]:
    """The procedure catalogue shipped with the project (``adapters/sandbox/procedures.json``):
    LayThuTuc-shaped details (spec §5.4), each with its ``MATTHC``."""
    text = resources.files("adapters.sandbox").joinpath("procedures.json").read_text(encoding="utf-8")
    return tuple(json.loads(text)["procedures"])


def _bad(code: str, message: str) -> Reply:
    return {"error_code": code, "message": message}


@dataclass
class Fault:
    """One injected fault, applied to the next ``remaining`` service calls."""

    mode: str
    remaining: int = 1
    retry_after: float | str | None = None
    delay: float = 0.0
    message: str = "Dữ liệu hồ sơ không hợp lệ (lỗi giả lập)"
    error_code: str = "-9"


@dataclass
class SandboxConfig:
    """Knobs set through ``POST /_sandbox/config``."""

    refuse_logins: bool = False
    credentials: dict[str, str] | None = None  # username → password; None = any non-empty pair
    clients: dict[str, str] | None = None  # client_id → secret; None = any non-empty pair
    session_ttl: float = 0.0  # seconds; 0 = sessions never expire by age
    token_ttl: int = 3600
    latency: float = 0.0  # seconds every portal call waits before it is answered
    rate_limit: int = 0  # portal calls admitted in any one-second window; 0 = no limit
    inbound_service: str = INBOUND_SERVICE  # the name the dossier pull service answers to
    # the adapter routes (/adapter/…) require this header: {"name": …, "value": …}; None = no header
    adapter_header: dict[str, str] | None = None


@dataclass
class SandboxState:
    """All the sandbox remembers; ``reset()`` forgets everything but the start-up configuration."""

    clock: Callable[[], float] = time.monotonic
    startup: SandboxConfig = field(default_factory=SandboxConfig)  # what reset() returns to
    config: SandboxConfig = field(default_factory=SandboxConfig)
    sessions: dict[str, float] = field(default_factory=dict)  # session → issued at
    tokens: dict[str, float] = field(default_factory=dict)  # access token → expires at
    token_ever_issued: bool = False
    dossiers: dict[str, dict[str, Any]] = field(default_factory=dict)
    record: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    faults: deque[Fault] = field(default_factory=deque)
    faulted: list[dict[str, Any]] = field(default_factory=list)  # service calls a fault answered
    logins: int = 0
    login_failures: int = 0
    tokens_issued: int = 0
    token_methods: list[str] = field(default_factory=list)
    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    admitted: deque[float] = field(default_factory=deque)  # admission times of the last second
    throttled: int = 0
    procedures: list[dict[str, Any]] = field(default_factory=lambda: [dict(p) for p in shipped_procedures()])
    catalogue_calls: dict[str, int] = field(default_factory=dict)  # service → calls answered
    inbound: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # MaHoSo → (seq, dossier)
    inbound_seq: int = 0
    pulls: list[dict[str, Any]] = field(default_factory=list)  # the pull calls' bodies (no session), in order

    def reset(self) -> None:
        """Forget sessions, tokens, dossiers, the record and faults; the configuration returns to
        its start-up values."""
        fresh = SandboxState(clock=self.clock, startup=self.startup, config=replace(self.startup))
        self.__dict__.update(fresh.__dict__)

    # ── the API gateway in front of the portal ─────────────────────────────────────────────

    def admit(self) -> float | None:
        """Rate limit, a sliding one-second window: None admits this portal call; otherwise
        the call is refused (and counted in ``throttled``) and the result is the seconds until
        one would be admitted. Refused calls do not count against the window."""
        limit = self.config.rate_limit
        if limit <= 0:
            return None
        now = self.clock()
        window = self.admitted
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) < limit:
            window.append(now)
            return None
        self.throttled += 1
        # the call that must leave the window before one more fits (limit may have been lowered)
        return window[len(window) - limit] + 1.0 - now

    # ── faults ────────────────────────────────────────────────────────────────────────────

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault, or apply the immediate ones (expire_sessions, expire_tokens) now."""
        if fault.mode == "expire_sessions":
            self.sessions.clear()
        elif fault.mode == "expire_tokens":
            self.tokens.clear()
        elif fault.remaining > 0:
            self.faults.append(fault)

    def take_fault(self, endpoint: str) -> Fault | None:
        """The fault for this service call, if any (consumes one of its count; noted in the
        record's ``faulted`` list)."""
        if not self.faults:
            return None
        fault = self.faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            self.faults.popleft()
        self.faulted.append({"mode": fault.mode, "endpoint": endpoint, "at": self.clock()})
        return fault

    def queued_faults(self) -> list[dict[str, Any]]:
        """The faults still waiting, in order (``GET /_sandbox/faults``)."""
        return [dataclasses.asdict(f) for f in self.faults]

    # ── credentials ───────────────────────────────────────────────────────────────────────

    def login(self, username: Any, password: Any) -> Reply:
        """The §2.2 login: a fresh random session, or ``error_code "1"``."""
        if not self._login_allowed(username, password):
            self.login_failures += 1
            return _bad("1", "Tên đăng nhập hoặc mật khẩu không đúng")
        session = secrets.token_urlsafe(18)
        self.sessions[session] = self.clock()
        self.logins += 1
        return {"error_code": 0, "message": "Đăng nhập thành công", "session": session}

    def _login_allowed(self, username: Any, password: Any) -> bool:
        if not (isinstance(username, str) and username and isinstance(password, str) and password):
            return False
        if self.config.refuse_logins:
            return False
        creds = self.config.credentials
        return creds is None or creds.get(username) == password

    def session_valid(self, session: Any) -> bool:
        """True for a session issued here, not expired by an admin switch or by ``session_ttl``."""
        issued = self.sessions.get(session) if isinstance(session, str) else None
        if issued is None:
            return False
        ttl = self.config.session_ttl
        return ttl <= 0 or self.clock() - issued < ttl

    def issue_token(self, client_id: str, client_secret: str, method: str) -> Reply | None:
        """A client-credentials token, or None when the client is refused."""
        clients = self.config.clients
        if not client_id or not client_secret or (clients is not None and clients.get(client_id) != client_secret):
            return None
        token = secrets.token_urlsafe(24)
        ttl = self.config.token_ttl
        self.tokens[token] = self.clock() + ttl
        self.token_ever_issued = True
        self.tokens_issued += 1
        self.token_methods.append(method)
        return {"access_token": token, "token_type": "Bearer", "expires_in": ttl}

    def bearer_valid(self, authorization: str | None) -> bool:
        """True for ``Bearer <token>`` naming a live token issued here."""
        if not authorization or not authorization.startswith("Bearer "):
            return False
        expires = self.tokens.get(authorization[7:].strip())
        return expires is not None and self.clock() < expires

    # ── the record ────────────────────────────────────────────────────────────────────────

    def _note(self, code: str, entry: dict[str, Any]) -> None:
        self.record.setdefault(code, []).append(entry)

    def snapshot(self) -> dict[str, Any]:
        """The ``GET /_sandbox/record`` document."""
        return {
            "dossiers": self.record,
            "logins": self.logins,
            "login_failures": self.login_failures,
            "tokens": self.tokens_issued,
            "token_methods": self.token_methods,
            "calls": self.calls,
            "faulted": self.faulted,
            "throttled": self.throttled,
            "max_in_flight": self.max_in_flight,
            "stored": len(self.dossiers),
            "catalogue_calls": self.catalogue_calls,
            "pulls": self.pulls,
        }

    # ── services ──────────────────────────────────────────────────────────────────────────

    def sync_dossiers(self, params: dict[str, Any], meta: dict[str, Any]) -> Reply:
        """``DongBoHoSoMC``: validate every dossier, then create or update them all, or none."""
        updating = params.get("isUpdating")
        data = params.get("data")
        if updating not in ("True", "False"):
            return _bad("-2", 'Tham số isUpdating phải là chuỗi "True" hoặc "False"')
        if not isinstance(data, list) or not data:
            return _bad("-2", "Tham số data phải là một mảng hồ sơ không rỗng")
        reply = self._check_dossiers(data, updating == "True")
        at = time.time()
        for dossier in data:
            code = code_of(dossier)
            if code is not None:
                entry = {"service": "DongBoHoSoMC", "isUpdating": updating, "data": dossier, "at": at}
                self._note(code, {**entry, **meta, "error_code": reply["error_code"]})
        if reply["error_code"] == "00":
            for dossier in data:
                self.dossiers[dossier["MaHoSo"]] = dossier
        return reply

    def _check_dossiers(self, data: list[Any], updating: bool) -> Reply:
        seen: set[str] = set()
        for dossier in data:
            problem = dossier_problem(dossier)
            if problem is not None:
                return _bad("-4", f"Hồ sơ {code_of(dossier) or '?'}: {problem}")
            code = dossier["MaHoSo"]
            exists = code in self.dossiers or (not updating and code in seen)
            if exists and not updating:
                return _bad("-3", f"Hồ sơ {code} đã tồn tại trên hệ thống")
            if not exists and updating and code not in seen:
                return _bad("-5", f"Hồ sơ {code} không tồn tại trên hệ thống, không thể cập nhật")
            seen.add(code)
        return {"error_code": "00", "message": "Đồng bộ thành công"}

    def push_progress(self, params: dict[str, Any], meta: dict[str, Any]) -> Reply:
        """``CapNhatTienDoHoSoMC``: at most 10 items, each valid, each for a stored dossier."""
        data = params.get("data")
        if not isinstance(data, list) or not data:
            return _bad("-2", "Tham số data phải là một mảng tiến độ không rỗng")
        reply = self._check_progress(data)
        at = time.time()
        by_code: dict[str, list[Any]] = {}
        for item in data:
            code = code_of(item)
            if code is not None:
                by_code.setdefault(code, []).append(item)
        for code, items in by_code.items():
            entry = {"service": "CapNhatTienDoHoSoMC", "items": items, "at": at}
            self._note(code, {**entry, **meta, "error_code": reply["error_code"]})
        return reply

    def _check_progress(self, data: list[Any]) -> Reply:
        if len(data) > MAX_PROGRESS:
            return _bad("-6", f"Mỗi lần gọi chỉ được cập nhật tối đa {MAX_PROGRESS} tiến độ, nhận {len(data)}")
        for item in data:
            problem = progress_problem(item)
            if problem is not None:
                return _bad("-4", f"Tiến độ hồ sơ {code_of(item) or '?'}: {problem}")
            if item["MaHoSo"] not in self.dossiers:
                return _bad("-5", f"Hồ sơ {item['MaHoSo']} chưa tồn tại trên hệ thống, cần đồng bộ hồ sơ trước")
        return {"error_code": "00", "message": "Cập nhật tiến độ thành công"}

    def lookup(self, params: dict[str, Any], meta: dict[str, Any]) -> Reply:
        """``TraCuuHoSo``: ``result`` = [the stored dossier] or []. The key's case is not checked."""
        key = next((k for k in params if k.lower() == "mahoso"), None)
        code = params.get(key) if key is not None else None
        if not isinstance(code, str) or not code:
            return _bad("-2", "Thiếu tham số mahoso")
        self._note(code, {"service": "TraCuuHoSo", "params": {key: code}, "at": time.time(), **meta})
        stored = self.dossiers.get(code)
        return {"error_code": "0", "message": "Thành công", "result": [stored] if stored is not None else []}

    def mark_known(self, entries: list[Any]) -> int:
        """Store dossiers as already on the portal (codes or objects with MaHoSo); returns count."""
        added = 0
        for entry in entries:
            obj = {"MaHoSo": entry} if isinstance(entry, str) else entry
            code = code_of(obj)
            if code is not None:
                self.dossiers[code] = obj
                added += 1
        return added


def _param(params: dict[str, Any], name: str) -> Any:
    """A parameter whatever the case of its key (the portal matches them so, spec §5 [INFERRED])."""
    key = next((k for k in params if k.lower() == name.lower()), None)
    return params.get(key) if key is not None else None


def _procedure_row(detail: dict[str, Any]) -> dict[str, Any]:
    """A ``LayDanhSachTTHC`` row: code, name and state (the list's other columns are not public)."""
    return {"MATTHC": detail.get("MATTHC"), "TENTTHC": detail.get("TENTTHC"), "TRANGTHAI": detail.get("TRANGTHAI", "1")}


def list_procedures(state: SandboxState, params: dict[str, Any], meta: dict[str, Any]) -> Reply:
    """``LayDanhSachTTHC``: every procedure of the catalogue (code, name, state)."""
    state.catalogue_calls["LayDanhSachTTHC"] = state.catalogue_calls.get("LayDanhSachTTHC", 0) + 1
    return {"error_code": "0", "message": "Thành công", "result": [_procedure_row(p) for p in state.procedures]}


def procedure(state: SandboxState, params: dict[str, Any], meta: dict[str, Any]) -> Reply:
    """``LayThuTuc``: ``result`` = [the procedure's detail] or [] for an unknown ``maTTHC``."""
    state.catalogue_calls["LayThuTuc"] = state.catalogue_calls.get("LayThuTuc", 0) + 1
    code = _param(params, "maTTHC")
    if not isinstance(code, str) or not code:
        return _bad("-2", "Thiếu tham số maTTHC")
    found = [dict(p) for p in state.procedures if p.get("MATTHC") == code]
    return {"error_code": "0", "message": "Thành công", "result": found[:1]}


def seed_inbound(state: SandboxState, dossiers: list[Any]) -> int | str:
    """Citizen-submitted dossiers appear on the portal (``POST /_sandbox/inbound``): each object
    with a ``MaHoSo`` goes to the end of the pull order, replacing an earlier one of that code (an
    update). Returns how many, or a problem (nothing seeded)."""
    if not all(isinstance(d, dict) and isinstance(d.get("MaHoSo"), str) and d["MaHoSo"] for d in dossiers):
        return "every dossier must be an object with a MaHoSo string"
    for d in dossiers:
        state.inbound_seq += 1
        state.inbound[d["MaHoSo"]] = (state.inbound_seq, d)
    return len(dossiers)


def pull_inbound(state: SandboxState, params: dict[str, Any], meta: dict[str, Any]) -> Reply:
    """The dossier pull: those seeded after ``cursor`` (a sequence number; "" or absent: from the
    start), at most ``limit`` (default 50), oldest first; ``cursor`` in the reply is the last one's."""
    cursor, limit = _param(params, "cursor"), _param(params, "limit")
    state.pulls.append({k: v for k, v in params.items() if k != "session"})
    after = 0 if cursor in (None, "") else int(cursor) if isinstance(cursor, str) and cursor.isdigit() else -1
    size = 50 if limit in (None, "") else int(limit) if str(limit).isdigit() else -1
    if after < 0 or not 1 <= size <= MAX_PULL:
        return _bad("-2", f"Tham số cursor hoặc limit không hợp lệ (limit 1..{MAX_PULL})")
    page = sorted((seq, d) for seq, d in state.inbound.values() if seq > after)[:size]
    last = page[-1][0] if page else after
    return {"error_code": "0", "message": "Thành công", "result": [d for _, d in page], "cursor": str(last)}


def empty_result(params: dict[str, Any], meta: dict[str, Any]) -> Reply:
    """Catalogue services (``LayDanhSachTTHC`` …) and ``LayThuTuc``: an empty ``result``."""
    return {"error_code": "0", "message": "Thành công", "result": []}
