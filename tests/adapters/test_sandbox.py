"""The national-portal sandbox enforces the spec as strictly as the portal (§2, §5, §6, §9),
driven with raw HTTP so that nothing in the client can hide a wire mistake."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from adapters.sandbox.app import freeze_survivors, run_sandbox
from core.errors import ConfigError
from tests.fakes.portal import DSTCODE, MADONVI, FakeClock, SandboxHandle, dossier, progress, running_sandbox

CODE = "000.00.01.H56-240315-00101"


async def login(sb: SandboxHandle, **headers: str) -> dict[str, Any]:
    hdrs = {"dstcode": DSTCODE, **headers}
    async with sb.http.post(f"{sb.url}/login", json={"username": "u", "password": "p"}, headers=hdrs) as resp:
        assert resp.status == 200
        data: dict[str, Any] = await resp.json()
        return data


async def call(sb: SandboxHandle, service: str, session: str | None, path: str = "service", **params: Any) -> Any:
    body: dict[str, Any] = {"madonvi": MADONVI, "service": service, **params}
    if session is not None:
        body["session"] = session
    async with sb.http.post(f"{sb.url}/{path}", json=body, headers={"dstcode": DSTCODE}) as resp:
        assert resp.status == 200
        return await resp.json()


@pytest.fixture
async def session(sandbox: SandboxHandle) -> str:
    reply = await login(sandbox)
    return str(reply["session"])


async def create(sb: SandboxHandle, session: str, *dossiers: dict[str, Any]) -> Any:
    return await call(sb, "DongBoHoSoMC", session, isUpdating="False", data=list(dossiers))


async def test_login_reply_shape(sandbox: SandboxHandle) -> None:
    """§2.2: login answers error_code 0 (a number) with a session; each login is counted."""
    reply = await login(sandbox)
    assert reply["error_code"] == 0 and reply["message"] == "Đăng nhập thành công"
    assert isinstance(reply["session"], str) and len(reply["session"]) >= 16
    assert (await sandbox.record())["logins"] == 1


async def test_login_without_dstcode_refused(sandbox: SandboxHandle) -> None:
    """§2.2: the dstcode header is required, on the login too."""
    async with sandbox.http.post(f"{sandbox.url}/login", json={"username": "u", "password": "p"}) as resp:
        reply = await resp.json()
    assert reply["error_code"] != 0 and "session" not in reply


async def test_unknown_session(sandbox: SandboxHandle) -> None:
    """§9: an unknown session gets error_code "-1" and a Vietnamese "log in again" message."""
    reply = await call(sandbox, "TraCuuHoSo", "not-a-session", mahoso=CODE)
    assert reply == {"error_code": "-1", "message": "Phiên làm việc đã hết hạn, vui lòng đăng nhập lại"}


async def test_create_lookup_update(sandbox: SandboxHandle, session: str) -> None:
    """§5: create answers "00", lookup returns [the stored dossier], update replaces it."""
    assert (await call(sandbox, "TraCuuHoSo", session, mahoso=CODE))["result"] == []
    assert await create(sandbox, session, dossier(CODE)) == {"error_code": "00", "message": "Đồng bộ thành công"}
    assert (await call(sandbox, "TraCuuHoSo", session, mahoso=CODE))["result"] == [dossier(CODE)]
    reply = await call(sandbox, "DongBoHoSoMC", session, isUpdating="True", data=[dossier(CODE, TrangThaiHoSo="4")])
    assert reply["error_code"] == "00"
    assert sandbox.state.dossiers[CODE]["TrangThaiHoSo"] == "4"


async def test_create_of_existing_is_minus_three(sandbox: SandboxHandle, session: str) -> None:
    """§9: creating an existing dossier answers -3 "Hồ sơ <MaHoSo> đã tồn tại trên hệ thống"."""
    await create(sandbox, session, dossier(CODE))
    reply = await create(sandbox, session, dossier(CODE))
    assert reply == {"error_code": "-3", "message": f"Hồ sơ {CODE} đã tồn tại trên hệ thống"}


async def test_update_of_missing_is_rejected(sandbox: SandboxHandle, session: str) -> None:
    """§5.1: an update of a dossier the portal lacks is a business rejection, nothing stored."""
    reply = await call(sandbox, "DongBoHoSoMC", session, isUpdating="True", data=[dossier(CODE)])
    assert reply["error_code"] == "-5" and "đã tồn tại" not in reply["message"]
    assert CODE not in sandbox.state.dossiers


@pytest.mark.parametrize("value", [False, "false", "0", None])
async def test_is_updating_must_be_the_string(sandbox: SandboxHandle, session: str, value: Any) -> None:
    """§5.1: isUpdating must be exactly the string "True" or "False"."""
    reply = await call(sandbox, "DongBoHoSoMC", session, isUpdating=value, data=[dossier(CODE)])
    assert reply["error_code"] == "-2" and "isUpdating" in reply["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("NgayTiepNhan", "2024-03-15 09:30:00"),
        ("NgayTiepNhan", "20240230093000"),  # 30 February
        ("NgayHenTra", "202403221700"),
        ("TrangThaiHoSo", 4),
        ("KenhThucHien", "4"),
        ("MaTTHC", None),
        ("DanhSachLePhi", None),
        ("TrichYeuHoSo", "x" * 1001),
    ],
)
async def test_dossier_field_validation(sandbox: SandboxHandle, session: str, field: str, value: Any) -> None:
    """§6.0/§6.1: bad dates, non-string scalars, out-of-table codes, null lists and over-long
    texts are rejected with a message naming the field; nothing is stored."""
    reply = await create(sandbox, session, dossier(CODE, **{field: value}))
    assert reply["error_code"] == "-4" and field in reply["message"]
    assert CODE not in sandbox.state.dossiers


@pytest.mark.parametrize("field", ["MaHoSo", "MaTTHC", "TenTTHC", "KenhThucHien", "ChuHoSo", "NgayTiepNhan"])
async def test_required_fields(sandbox: SandboxHandle, session: str, field: str) -> None:
    """§6.1: each required field must be present and non-empty."""
    d = dossier(CODE)
    del d[field]
    reply = await create(sandbox, session, d)
    assert reply["error_code"] == "-4" and field in reply["message"]


async def test_integer_exceptions_and_nested_strings(sandbox: SandboxHandle, session: str) -> None:
    """§6.0: SoLuong/LoaiGiayTo of DanhSachTepDinhKemKhac may be integers; other nested scalars
    may not (e.g. a numeric Gia in DanhSachLePhi)."""
    assert (await create(sandbox, session, dossier(CODE)))["error_code"] == "00"
    bad = dossier(CODE + "-2", DanhSachLePhi=[{"TenPhiLePhi": "Lệ phí", "Gia": 50000}])
    reply = await create(sandbox, session, bad)
    assert reply["error_code"] == "-4" and "DanhSachLePhi.Gia" in reply["message"]


async def test_batch_is_atomic(sandbox: SandboxHandle, session: str) -> None:
    """One invalid dossier rejects the whole DongBoHoSoMC call: no dossier of it is stored."""
    reply = await create(sandbox, session, dossier(CODE), dossier(CODE + "-2", NgayTiepNhan="hôm nay"))
    assert reply["error_code"] == "-4" and CODE + "-2" in reply["message"]
    assert sandbox.state.dossiers == {}


async def test_progress_rules(sandbox: SandboxHandle, session: str) -> None:
    """§5.2/§6.9: progress before the dossier exists is refused; at most 10 items per call;
    ThoiDiemXuLy must be a portal date; 10 valid items are accepted and recorded in order."""
    assert (await call(sandbox, "CapNhatTienDoHoSoMC", session, data=[progress(CODE)]))["error_code"] == "-5"
    await create(sandbox, session, dossier(CODE))
    eleven = [progress(CODE, n) for n in range(11)]
    assert (await call(sandbox, "CapNhatTienDoHoSoMC", session, data=eleven))["error_code"] == "-6"
    bad = [progress(CODE, ThoiDiemXuLy="15/03/2024")]
    assert (await call(sandbox, "CapNhatTienDoHoSoMC", session, data=bad))["error_code"] == "-4"
    reply = await call(sandbox, "CapNhatTienDoHoSoMC", session, data=eleven[:10])
    assert reply["error_code"] == "00"
    entries = (await sandbox.record())["dossiers"][CODE]
    assert [i["NoiDungXuLy"] for i in entries[-1]["items"]] == [f"Bước {n}" for n in range(10)]


async def test_share_catalogue_lists_the_shipped_procedures(sandbox: SandboxHandle, session: str) -> None:
    """§5.5: LayDanhSachTTHC on the share endpoint lists the shipped catalogue (MATTHC, TENTTHC); on
    the wrong endpoint a service is refused; LayThuTuc answers one §5.4 detail, or [] for an unknown
    code, and needs maTTHC (its key in any case)."""
    reply = await call(sandbox, "LayDanhSachTTHC", session, path="share")
    assert reply["error_code"] == "0" and len(reply["result"]) == 5
    assert all(row["MATTHC"] and row["TENTTHC"] for row in reply["result"])
    assert (await call(sandbox, "LayDanhSachTTHC", session))["error_code"] == "-2"
    detail = await call(sandbox, "LayThuTuc", session, maTTHC="1.001193")
    assert detail["result"][0]["TENTTHC"] == "Đăng ký kết hôn" and detail["result"][0]["TRANGTHAI"] == "1"
    assert (await call(sandbox, "LayThuTuc", session, MATTHC="1.001193"))["result"] == detail["result"]
    assert (await call(sandbox, "LayThuTuc", session, maTTHC="9.999999"))["result"] == []
    assert (await call(sandbox, "LayThuTuc", session))["error_code"] == "-2"


async def test_bearer_required_once_tokens_exist(sandbox: SandboxHandle, session: str) -> None:
    """§3.3: after a token has been issued, a call with a missing or bad bearer gets HTTP 401;
    a live bearer without a session is accepted (auth = "oauth2")."""
    async with sandbox.http.post(
        f"{sandbox.url}/token", data={"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"}
    ) as resp:
        token = (await resp.json())["access_token"]
    body = {"madonvi": MADONVI, "service": "TraCuuHoSo", "mahoso": CODE}
    for auth, status in (("Bearer nope", 401), ("", 401), (f"Bearer {token}", 200)):
        headers = {"dstcode": DSTCODE, **({"Authorization": auth} if auth else {})}
        async with sandbox.http.post(f"{sandbox.url}/service", json=body, headers=headers) as resp:
            assert resp.status == status


async def test_faults_apply_to_the_next_n_calls(sandbox: SandboxHandle, session: str) -> None:
    """Admin: a fault with count N hits exactly the next N service calls; reset forgets all."""
    await sandbox.fault("http503", count=2)
    statuses = []
    for _ in range(3):
        async with sandbox.http.post(
            f"{sandbox.url}/service",
            json={"session": session, "madonvi": MADONVI, "service": "TraCuuHoSo", "mahoso": CODE},
            headers={"dstcode": DSTCODE},
        ) as resp:
            statuses.append(resp.status)
    assert statuses == [503, 503, 200]
    await sandbox.admin("reset")
    assert (await sandbox.record())["calls"] == 0 and sandbox.state.sessions == {}


async def test_faulted_calls_are_in_the_record_and_queued_faults_can_be_listed_and_cleared(
        sandbox: SandboxHandle, session: str) -> None:
    """Admin (issue 13): every call a fault answered is listed in the record's ``faulted``, in order;
    GET /_sandbox/faults lists what is still queued, DELETE clears it, and the next call is normal."""
    await sandbox.fault("http503", count=1)
    await sandbox.fault("reject", count=3)
    body = {"session": session, "madonvi": MADONVI, "service": "TraCuuHoSo", "mahoso": CODE}
    statuses = []
    for _ in range(2):
        async with sandbox.http.post(f"{sandbox.url}/service", json=body, headers={"dstcode": DSTCODE}) as resp:
            statuses.append(resp.status)
    assert statuses == [503, 200]
    async with sandbox.http.get(f"{sandbox.url}/_sandbox/faults") as resp:
        queued = (await resp.json())["faults"]
    assert [(f["mode"], f["remaining"]) for f in queued] == [("reject", 2)]
    async with sandbox.http.delete(f"{sandbox.url}/_sandbox/faults") as resp:
        assert (await resp.json()) == {"ok": True, "cleared": 1}
    assert (await call(sandbox, "TraCuuHoSo", session, mahoso=CODE))["error_code"] == "0"
    faulted = (await sandbox.record())["faulted"]
    assert [(f["mode"], f["endpoint"]) for f in faulted] == [("http503", "integration"), ("reject", "integration")]


async def test_admin_refuses_unknown_fault(sandbox: SandboxHandle) -> None:
    """Admin: an unknown fault mode is a 400, not silently ignored."""
    async with sandbox.http.post(f"{sandbox.url}/_sandbox/faults", json={"mode": "explode"}) as resp:
        assert resp.status == 400


async def test_session_ttl_on_the_sandbox_clock() -> None:
    """Admin config session_ttl: a session older than the TTL (sandbox clock) is refused with -1."""
    clock = FakeClock()
    async with running_sandbox(clock=clock) as sb:
        await sb.admin("config", {"session_ttl": 60})
        session = str((await login(sb))["session"])
        clock.advance(59)
        assert (await call(sb, "TraCuuHoSo", session, mahoso=CODE))["error_code"] == "0"
        clock.advance(2)
        assert (await call(sb, "TraCuuHoSo", session, mahoso=CODE))["error_code"] == "-1"


# ── the API gateway in front of the portal: rate limit and latency ──────────────────────


async def lookup_status(sb: SandboxHandle, session: str) -> tuple[int, str | None, Any]:
    """One TraCuuHoSo: (HTTP status, Retry-After, JSON body)."""
    body = {"session": session, "madonvi": MADONVI, "service": "TraCuuHoSo", "mahoso": CODE}
    async with sb.http.post(f"{sb.url}/service", json=body, headers={"dstcode": DSTCODE}) as resp:
        return resp.status, resp.headers.get("Retry-After"), await resp.json()


@asynccontextmanager
async def sandbox_started_with(**startup: Any) -> AsyncIterator[SandboxHandle]:
    """The sandbox app as ``dvcgw sandbox --latency … --rate-limit …`` builds it, on port 0."""
    async with running_sandbox(FakeClock(), **startup) as sb:
        yield sb


async def test_rate_limit_burst_gets_429_with_retry_after() -> None:
    """Rate limit 5/s (sliding one-second window): of a burst of 8 concurrent calls exactly 5 are
    served and 3 answered 429 with Retry-After "1" and a JSON body; refused calls never reach the
    portal (not in calls, counted in throttled) and do not use up the window."""
    clock = FakeClock()
    async with running_sandbox(clock=clock) as sb:
        session = str((await login(sb))["session"])
        await sb.admin("config", {"rate_limit": 5})
        answers = await asyncio.gather(*(lookup_status(sb, session) for _ in range(8)))
        assert sorted(status for status, _, _ in answers) == [200] * 5 + [429] * 3
        refused = [(ra, body) for status, ra, body in answers if status == 429]
        assert refused == [("1", {"error": "quota exceeded", "message": "API rate limit exceeded"})] * 3
        record = await sb.record()
        assert (record["calls"], record["throttled"]) == (5, 3)


async def test_rate_limit_window_slides() -> None:
    """The window is the last second, on the sandbox clock: a call is refused until the oldest
    admitted call is a full second old, then exactly one more fits per call that left."""
    clock = FakeClock()
    async with running_sandbox(clock=clock) as sb:
        session = str((await login(sb))["session"])
        await sb.admin("config", {"rate_limit": 2})
        assert (await lookup_status(sb, session))[0] == 200
        clock.advance(0.5)
        assert (await lookup_status(sb, session))[0] == 200
        assert (await lookup_status(sb, session))[:2] == (429, "1")  # 0.5 s to wait: whole seconds, at least 1
        clock.advance(0.5)  # the first call leaves the window, the second is still in it
        assert [(await lookup_status(sb, session))[0] for _ in range(2)] == [200, 429]
        clock.advance(1.0)  # both admitted calls leave it
        assert [(await lookup_status(sb, session))[0] for _ in range(3)] == [200, 200, 429]


async def test_rate_limit_covers_login_and_token_and_survives_reset() -> None:
    """Started with a rate limit (as ``--rate-limit 1``): /login and /token count against it and
    are refused with 429 too; reset keeps the start-up value, admin config can lift it."""
    async with sandbox_started_with(rate_limit=1) as sb:
        assert (await login(sb))["error_code"] == 0
        async with sb.http.post(f"{sb.url}/login", json={"username": "u", "password": "p"},
                                headers={"dstcode": DSTCODE}) as resp:
            assert (resp.status, resp.headers.get("Retry-After")) == (429, "1")
        form = {"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"}
        async with sb.http.post(f"{sb.url}/token", data=form) as resp:
            assert resp.status == 429
        await sb.admin("reset")
        assert sb.state.config.rate_limit == 1 and (await sb.record())["throttled"] == 0
        await sb.admin("config", {"rate_limit": 0})
        replies = [await login(sb) for _ in range(3)]
        assert [r["error_code"] for r in replies] == [0, 0, 0]


async def test_latency_delays_every_portal_call(sandbox: SandboxHandle) -> None:
    """Admin config latency "200ms": a login, a service call and a 429 each take at least 0.2 s
    (loop clock); the admin routes are not delayed (a 1-hour latency does not hold them up)."""
    loop = asyncio.get_running_loop()
    await sandbox.admin("config", {"latency": "200ms"})
    started = loop.time()
    session = str((await login(sandbox))["session"])
    assert loop.time() - started >= 0.2
    await sandbox.admin("config", {"rate_limit": 1})
    started = loop.time()
    status, _, _ = await lookup_status(sandbox, session)
    assert status == 200 and loop.time() - started >= 0.2
    started = loop.time()
    status, _, _ = await lookup_status(sandbox, session)
    assert status == 429 and loop.time() - started >= 0.2
    await sandbox.admin("config", {"latency": 3600})
    async with asyncio.timeout(30):
        await sandbox.record()
        assert (await sandbox.admin("config", {"latency": 0}))["latency"] == 0


async def test_latency_set_at_start_up() -> None:
    """Started with a latency (as ``--latency 150ms``): the first call already waits it."""
    loop = asyncio.get_running_loop()
    async with sandbox_started_with(latency=0.15) as sb:
        started = loop.time()
        await login(sb)
        assert loop.time() - started >= 0.15


@pytest.mark.parametrize("body", [{"latency": "fast"}, {"latency": -1}, {"latency": True}, {"rate_limit": 2.5},
                                  {"rate_limit": -1}, {"rate_limit": "100"}, {"rate_limit": 5, "latency": "x"}])
async def test_admin_config_refuses_bad_latency_or_rate(sandbox: SandboxHandle, body: dict[str, Any]) -> None:
    """Admin config: a latency that is not a duration ≥ 0 or a rate limit that is not a whole
    number ≥ 0 is a 400, and nothing of that request is applied."""
    async with sandbox.http.post(f"{sandbox.url}/_sandbox/config", json=body) as resp:
        assert resp.status == 400
    assert (sandbox.state.config.latency, sandbox.state.config.rate_limit) == (0.0, 0)


def test_start_up_values_are_checked() -> None:
    """``dvcgw sandbox --latency``/``--rate-limit`` go through the same checks: bad values are
    configuration errors before anything is served."""
    with pytest.raises(ConfigError):
        run_sandbox("127.0.0.1", 0, latency="soon")
    with pytest.raises(ConfigError):
        run_sandbox("127.0.0.1", 0, rate_limit=-5)


def test_the_sandbox_freezes_what_survives_a_full_collection() -> None:
    """Only a full collection's end freezes (its start, or a young generation's, does not), and
    what is frozen is what the heap held: later collections no longer walk the stored dossiers."""
    assert gc.get_freeze_count() == 0
    try:
        freeze_survivors("start", {"generation": 2})
        freeze_survivors("stop", {"generation": 0})
        freeze_survivors("stop", {"generation": 1})
        assert gc.get_freeze_count() == 0
        kept = [{"MaHoSo": f"{CODE}{i}"} for i in range(1000)]
        freeze_survivors("stop", {"generation": 2})
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()


def test_dvcgw_sandbox_registers_the_freeze_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """``run_sandbox`` (``dvcgw sandbox``) hooks the collector, once however often it runs; the
    application alone (tests' sandboxes) does not. ``web.run_app`` is replaced: it would serve."""
    served: list[object] = []
    monkeypatch.setattr("adapters.sandbox.app.web.run_app", lambda app, **kw: served.append(app))
    assert freeze_survivors not in gc.callbacks
    try:
        run_sandbox("127.0.0.1", 0)
        run_sandbox("127.0.0.1", 0)
        assert len(served) == 2
        assert gc.callbacks.count(freeze_survivors) == 1
    finally:
        while freeze_survivors in gc.callbacks:
            gc.callbacks.remove(freeze_survivors)
