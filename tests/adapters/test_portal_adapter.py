"""The province-adapter transport (spec §3.4) against the real sandbox's adapter routes: one URL
per operation, bare JSON arrays, the variant's success tests, and the same error classes as the
service transport (so the sync engine needs one code path)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.national_portal import AdapterClient, PortalClient, portal_client
from adapters.national_portal.adapter_envelope import progress_reply, says_success, sync_verdict
from adapters.national_portal.envelope import Verdict
from config.schema import PortalAdapterSettings
from core.errors import (
    PortalAlreadyExists,
    PortalAuthFailed,
    PortalNotFound,
    PortalRejected,
    PortalThrottled,
    PortalUnavailable,
)
from tests.fakes.local import serving
from tests.fakes.portal import SandboxHandle, dossier, portal_settings, progress

CODE = "000.00.01.H56-240315-00301"
LOOKUP = PortalAdapterSettings(lookup_url="/adapter/TraCuuHoSo")


def adapter(sb: SandboxHandle, http: aiohttp.ClientSession, **kw: Any) -> PortalClient:
    kw.setdefault("auth", "none")
    kw.setdefault("adapter", LOOKUP)
    return portal_client(portal_settings(sb.url, transport="adapter", **kw), http, clock=time.monotonic)


async def test_factory_picks_the_transport(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """[portal] transport chooses the client: "adapter" → AdapterClient, "service" → PortalClient."""
    assert isinstance(adapter(sandbox, http), AdapterClient)
    plain = portal_client(portal_settings(sandbox.url), http)
    assert type(plain) is PortalClient


async def test_wire_format_bare_arrays_one_url_each(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """Create, update and progress go to their own URLs as bare arrays (no session, madonvi or
    service key); the lookup posts {"mahoso"}; no dstcode header unless configured."""
    c = adapter(sandbox, http, dstcode="")
    assert await c.lookup(CODE) is False
    await c.sync_dossiers([dossier(CODE)], updating=False)
    await c.sync_dossiers([dossier(CODE, TrangThaiHoSo="4")], updating=True)
    await c.push_progress([progress(CODE, 1), progress(CODE, 2)])
    assert await c.lookup(CODE) is True

    entries = (await sandbox.record())["dossiers"][CODE]
    assert [(e["service"], e.get("isUpdating")) for e in entries] == [
        ("TraCuuHoSo", None), ("DongBoHoSoMC", "False"), ("DongBoHoSoMC", "True"),
        ("CapNhatTienDoHoSoMC", None), ("TraCuuHoSo", None)]
    assert all(e["transport"] == "adapter" and "madonvi" not in e and "dstcode" not in e for e in entries)
    assert entries[1]["data"] == dossier(CODE)
    assert entries[3]["items"] == [progress(CODE, 1), progress(CODE, 2)]
    assert entries[0]["params"] == {"mahoso": CODE}
    assert sandbox.state.dossiers[CODE]["TrangThaiHoSo"] == "4"


async def test_exists_reply_with_code_zero_is_not_success(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """§5.6: a create answered error_code "0" + "đã tồn tại" raises PortalAlreadyExists (the code
    alone is not success); the same answer to an update is success."""
    await sandbox.admin("dossiers", {"dossiers": [dossier(CODE)]})
    c = adapter(sandbox, http)
    with pytest.raises(PortalAlreadyExists) as info:
        await c.sync_dossiers([dossier(CODE)], updating=False)
    assert info.value.code == "0" and "đã tồn tại" in info.value.portal_message
    await c.sync_dossiers([dossier(CODE)], updating=True)


async def test_update_of_missing_is_not_found(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """An update of a dossier the portal lacks raises PortalNotFound (resend as a create)."""
    with pytest.raises(PortalNotFound):
        await adapter(sandbox, http).sync_dossiers([dossier(CODE)], updating=True)


async def test_field_rejection_keeps_code_and_message(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """A validation refusal is PortalRejected with the adapter's code and message verbatim."""
    with pytest.raises(PortalRejected) as info:
        await adapter(sandbox, http).sync_dossiers([dossier(CODE, NgayTiepNhan="15/03/2024")], updating=False)
    assert info.value.code == "-4" and "NgayTiepNhan" in info.value.portal_message
    assert not isinstance(info.value, PortalAlreadyExists | PortalNotFound)


async def test_progress_text_refusal(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """Progress before the dossier exists: the plain text says "không thành công", which contains
    "thành công" but is a refusal (PortalRejected, code "text", the text kept)."""
    with pytest.raises(PortalRejected) as info:
        await adapter(sandbox, http).push_progress([progress(CODE, 1)])
    assert info.value.code == "text"
    assert info.value.portal_message.startswith("Cập nhật tiến độ không thành công")


async def test_no_lookup_url_means_not_known_without_a_call(sandbox: SandboxHandle,
                                                            http: aiohttp.ClientSession) -> None:
    """Without lookup_url (TH has none) lookup answers False and sends nothing (§5.6 fallback)."""
    c = adapter(sandbox, http, adapter=PortalAdapterSettings())
    assert isinstance(c, AdapterClient) and not c.can_lookup
    assert await c.lookup(CODE) is False
    assert (await sandbox.record())["calls"] == 0


@pytest.mark.parametrize(("mode", "exc"), [("http503", PortalUnavailable), ("http429", PortalThrottled),
                                           ("html", PortalUnavailable), ("empty", PortalUnavailable),
                                           ("http403", PortalAuthFailed)])
async def test_http_trouble_has_the_service_classes(sandbox: SandboxHandle, http: aiohttp.ClientSession,
                                                    mode: str, exc: type[Exception]) -> None:
    """§3.3 and §9 classes are the service transport's, on dossier pushes and on progress."""
    c = adapter(sandbox, http)
    await sandbox.fault(mode, count=2, retry_after=7)
    with pytest.raises(exc):
        await c.sync_dossiers([dossier(CODE)], updating=False)
    with pytest.raises(exc):
        await c.push_progress([progress(CODE, 1)])


async def test_injected_rejection_on_progress_is_text(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """A reject fault on the progress URL answers plain text; the client keeps it verbatim."""
    await sandbox.fault("reject", message="Lỗi giả lập")
    with pytest.raises(PortalRejected) as info:
        await adapter(sandbox, http).push_progress([progress(CODE, 1)])
    assert info.value.portal_message == "Cập nhật tiến độ không thành công: Lỗi giả lập"


async def test_static_header(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """[portal.adapter] auth_header is sent on every call; without it the adapter answers 401,
    which (no session, no token to renew) is PortalAuthFailed."""
    await sandbox.admin("config", {"adapter_header": {"name": "X-Api-Key", "value": "k-123"}})
    with pytest.raises(PortalAuthFailed) as info:
        await adapter(sandbox, http).sync_dossiers([dossier(CODE)], updating=False)
    assert info.value.code == "401"
    keyed = PortalAdapterSettings(lookup_url="/adapter/TraCuuHoSo", auth_header="X-Api-Key", auth_header_value="k-123")
    c = adapter(sandbox, http, adapter=keyed)
    await c.sync_dossiers([dossier(CODE)], updating=False)
    await c.push_progress([progress(CODE, 1)])
    assert await c.lookup(CODE) is True


async def test_oauth2_bearer_through_the_adapter(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    """auth = "oauth2": the NGSP token rides on adapter calls; a revoked token is fetched again
    once on HTTP 401 and the call repeated."""
    c = adapter(sandbox, http, auth="oauth2")
    await c.sync_dossiers([dossier(CODE)], updating=False)
    await sandbox.fault("expire_tokens")
    await c.push_progress([progress(CODE, 1)])
    record = await sandbox.record()
    assert record["tokens"] == 2 and record["logins"] == 0


async def test_absolute_urls(http: aiohttp.ClientSession, sandbox: SandboxHandle) -> None:
    """A URL map entry may be a whole URL instead of a path after adapter_url."""
    urls = PortalAdapterSettings(create_url=f"{sandbox.url}/adapter/ThemMoi")
    c = adapter(sandbox, http, adapter_url="http://127.0.0.1:9", adapter=urls)
    await c.sync_dossiers([dossier(CODE)], updating=False)
    assert CODE in sandbox.state.dossiers


# ── the pure success tests ───────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("reply", "verdict"), [
    ({"error_code": "0", "message": "Thêm mới hồ sơ thành công"}, Verdict.OK),
    ({"error_code": 0, "message": "THÀNH CÔNG"}, Verdict.OK),
    ({"error_code": "0", "message": ""}, Verdict.REJECTED),  # "0" alone is not success (§3.4)
    ({"error_code": "0", "message": "Thêm mới không thành công"}, Verdict.REJECTED),
    ({"error_code": "-3", "message": "Hồ sơ A đã tồn tại"}, Verdict.EXISTS),
    ({"error_code": "1", "message": "Thành công"}, Verdict.REJECTED),
    ({"error_code": "-5", "message": "Hồ sơ A không tồn tại"}, Verdict.NOT_FOUND),
    ({"error_code": "9", "message": "Chưa đăng nhập"}, Verdict.SESSION_EXPIRED),
])
def test_sync_verdict(reply: dict[str, Any], verdict: Verdict) -> None:
    """Create/update: error_code 0 and "thành công" (not "không thành công"); exists first."""
    assert sync_verdict(reply) is verdict


@pytest.mark.parametrize(("body", "ok", "broken"), [
    ("Cập nhật tiến độ thành công".encode(), True, False),
    ('"Cập nhật thành công"'.encode(), True, False),
    (b'{"error_code":"0","message":"Th\xc3\xa0nh c\xc3\xb4ng"}', True, False),
    (b'{"error_code":"-1","message":"Th\xc3\xa0nh c\xc3\xb4ng"}', False, False),
    ("Không thành công".encode(), False, False),
    (b"", False, True),
    (b"<html>503</html>", False, True),
    ("\ufeffThành công".encode(), True, False),
])
def test_progress_reply(body: bytes, ok: bool, broken: bool) -> None:
    """Progress: text saying "thành công" (plain, a JSON string, or a JSON object's message with
    an OK error_code); empty or HTML is upstream trouble."""
    read = progress_reply(body)
    assert (read.ok, read.broken) == (ok, broken)


def test_says_success_folds_case_and_normalisation() -> None:
    """The text test is made after NFC and lower-casing (decomposed input matches)."""
    import unicodedata

    assert says_success(unicodedata.normalize("NFD", "Đồng bộ THÀNH CÔNG"))
    assert not says_success("KHÔNG THÀNH CÔNG")


async def test_plain_text_with_http_error_status(http: aiohttp.ClientSession) -> None:
    """An adapter answering HTTP 400 with text is PortalRejected with code "HTTP 400"."""
    async def refuse(_: web.Request) -> web.Response:
        return web.Response(status=400, text="Bad request")

    app = web.Application()
    app.router.add_post("/adapter/DongBoTienTrinh", refuse)
    async with serving(app) as url:
        c = portal_client(portal_settings(url, transport="adapter", auth="none"), http)
        with pytest.raises(PortalRejected) as info:
            await c.push_progress([progress(CODE, 1)])
        assert info.value.code == "HTTP 400"


# ── the sandbox's adapter routes, raw ─────────────────────────────────────────────────────


async def test_sandbox_adapter_refuses_a_body_that_is_not_an_array(sandbox: SandboxHandle) -> None:
    """The adapter routes take a bare array: an enveloped object is a "-2" refusal."""
    body = {"isUpdating": "False", "data": [dossier(CODE)]}
    async with sandbox.http.post(f"{sandbox.url}/adapter/ThemMoi", json=body) as resp:
        assert resp.status == 200
        reply = await resp.json()
    assert reply["error_code"] == "-2" and CODE not in sandbox.state.dossiers


@pytest.mark.parametrize("value", [{"name": "X"}, {"name": "", "value": "v"}, "X-Key: v", {"name": "X", "value": 1}])
async def test_sandbox_adapter_header_setting_is_checked(sandbox: SandboxHandle, value: object) -> None:
    """/_sandbox/config refuses a malformed adapter_header with 400 and changes nothing."""
    async with sandbox.http.post(f"{sandbox.url}/_sandbox/config", json={"adapter_header": value}) as resp:
        assert resp.status == 400
    assert sandbox.state.config.adapter_header is None
