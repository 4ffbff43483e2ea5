"""Hostile and malformed input at the HTTP edge (issue 13, "Hostile input" and "Bad input").

Each test sends what an attacker or a careless client sent to the real app on 127.0.0.1, and
checks the answer: the documented status in the house error shape, bounded CPU time and size,
and nothing stored or delivered that should not be.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import time
import unicodedata
import urllib.parse
import zlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from gateway.app import create_app
from tests.harness import AGENCY_KEY, OPERATOR_KEY, OTHER_KEY, Gateway, Sandbox, run_gateway, settings_for
from tests.samples import sample_dossier

M = "000.00.01.H55-240315-00012"


def assert_shape(body: dict[str, Any], code: str) -> None:
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], list)


# ---------------------------------------------------------------- Server header


async def test_server_header_names_no_software_versions(gateway: Gateway) -> None:
    """Every answer, matched route or not, says ``Server: dvcgw``: no Python or aiohttp version."""
    for path in ("/healthz", "/no-such-route", "/v1/dossiers/x"):
        r = await gateway.client.get(path)
        assert r.headers.get("Server") == "dvcgw", (path, r.headers.get("Server"))


# ---------------------------------------------------------------- more than one key


@pytest.mark.parametrize("headers", [
    [("X-API-Key", AGENCY_KEY), ("X-API-Key", OTHER_KEY)],
    [("X-API-Key", OTHER_KEY), ("X-API-Key", AGENCY_KEY)],
    [("X-API-Key", AGENCY_KEY), ("X-API-Key", AGENCY_KEY)],
    [("X-API-Key", AGENCY_KEY), ("Authorization", f"Bearer {OTHER_KEY}")],
    [("Authorization", f"Bearer {AGENCY_KEY}"), ("Authorization", f"Bearer {AGENCY_KEY}")],
], ids=["two-keys", "two-keys-reversed", "same-key-twice", "header-and-bearer-differ", "two-bearers"])
async def test_more_than_one_key_is_400(gateway: Gateway, headers: list[tuple[str, str]]) -> None:
    """A request presenting more than one key is refused with 400 before any key is looked up, on
    agency and operator routes alike: no route may pick the first or the last."""
    for path in (f"/v1/dossiers/{M}", "/v1/dead-letters"):
        r = await gateway.client.get(path, headers=headers)
        assert r.status == 400, (path, r.status, await r.text())
        body = await r.json()
        assert_shape(body, "bad_request")
        assert "more than one" in body["message"]


async def test_the_same_key_in_both_places_is_one_key(gateway: Gateway) -> None:
    """``X-API-Key`` and ``Authorization: Bearer`` carrying the same key count as one key."""
    r = await gateway.client.get(f"/v1/dossiers/{M}", headers={
        "X-API-Key": AGENCY_KEY, "Authorization": f"Bearer {AGENCY_KEY}"})
    assert r.status == 404  # authenticated; the gateway has no event for the dossier yet
    r = await gateway.client.get(f"/v1/dossiers/{M}", headers={
        "X-API-Key": AGENCY_KEY, "Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status == 404  # a Basic credential is not a key


# ---------------------------------------------------------------- Content-Encoding


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "GZIP", "identity, gzip"])
async def test_an_encoded_body_is_415_naming_the_encoding(gateway: Gateway, encoding: str) -> None:
    """A body with any ``Content-Encoding`` but ``identity`` is refused with 415 naming the
    encoding, before it is read, and nothing is stored: the API takes plain JSON only."""
    raw = json.dumps(sample_dossier(M)).encode()
    body = zlib.compress(raw) if encoding == "deflate" else gzip.compress(raw)
    r = await gateway.client.put(f"/v1/dossiers/{M}", data=body, headers={
        "X-API-Key": AGENCY_KEY, "Content-Type": "application/json", "Content-Encoding": encoding})
    assert r.status == 415, await r.text()
    reply = await r.json()
    assert_shape(reply, "unsupported_media_type")
    assert encoding.split(",")[-1].strip() in reply["message"]
    r = await gateway.client.get(f"/v1/dossiers/{M}", headers={"X-API-Key": AGENCY_KEY})
    assert r.status == 404


async def test_identity_encoding_is_plain_json(gateway: Gateway) -> None:
    """``Content-Encoding: identity`` means no encoding: the body is taken."""
    r = await gateway.client.put(f"/v1/dossiers/{M}", data=json.dumps(sample_dossier(M)).encode(), headers={
        "X-API-Key": AGENCY_KEY, "Content-Type": "application/json", "Content-Encoding": "identity"})
    assert r.status == 202, await r.text()


# ---------------------------------------------------------------- dead-letter ids and cursors

TOO_BIG = "99999999999999999999999999"
INT64_MAX = str(2**63 - 1)


@pytest.mark.parametrize("dl_id", [TOO_BIG, str(2**63), "abc", "-1", "1.0", "%D9%A1", "1%20", "0x1F"],
                         ids=["26-digits", "2^63", "letters", "negative", "decimal-point", "arabic-digit",
                              "trailing-space", "hex"])
async def test_a_malformed_dead_letter_id_is_422(gateway: Gateway, dl_id: str) -> None:
    """GET, DELETE and POST …/replay with an id that is not a decimal 0..2^63-1 (SQLite store)
    answer 422 naming ``id``, never a 500 from the store; the jobs' dead letters too (schemathesis
    found 2^64 and more a 500 there: their check was ``str.isdigit()``)."""
    for method, path in _id_routes(dl_id):
        r = await gateway.client.request(method, URL(path, encoded=True), headers={"X-API-Key": OPERATOR_KEY})
        assert r.status == 422, (method, path, r.status, await r.text())
        body = await r.json()
        assert_shape(body, "validation_failed")
        assert [e["field"] for e in body["errors"]] == ["id"]


@pytest.mark.parametrize("dl_id", [INT64_MAX, "0", "12345"])
async def test_a_well_formed_unknown_dead_letter_id_is_404(gateway: Gateway, dl_id: str) -> None:
    """Ids up to 2^63-1 are well formed: an unknown one is 404 on every dead-letter route."""
    for method, path in _id_routes(dl_id):
        r = await gateway.operator(method, path)
        assert r.status == 404, (method, path, r.status, await r.text())
        assert_shape(await r.json(), "not_found")


def _id_routes(dl_id: str) -> list[tuple[str, str]]:
    return [(method, path.format(dl_id)) for method, path in (
        ("GET", "/v1/dead-letters/{}"), ("DELETE", "/v1/dead-letters/{}"), ("POST", "/v1/dead-letters/{}/replay"),
        ("GET", "/v1/jobs/dead-letters/{}"), ("DELETE", "/v1/jobs/dead-letters/{}"),
        ("POST", "/v1/jobs/dead-letters/{}/replay"))]


@pytest.mark.parametrize("listing", ["/v1/dead-letters", "/v1/jobs/dead-letters"])
async def test_dead_letter_cursor_is_bounded(gateway: Gateway, listing: str) -> None:
    """``?cursor=`` takes the same ids: past 2^63-1, not digits or empty is 422 naming ``cursor``
    (an empty one was read as "from the start", so a pager that sent a null ``next`` back looped
    for ever); the largest id is a valid cursor (an empty page)."""
    for cursor in (TOO_BIG, str(2**63), "abc", "-5", "", "%C2%B2"):
        r = await gateway.client.get(URL(f"{listing}?cursor={cursor}", encoded=True),
                                     headers={"X-API-Key": OPERATOR_KEY})
        assert r.status == 422, (cursor, r.status, await r.text())
        body = await r.json()
        assert_shape(body, "validation_failed")
        assert [e["field"] for e in body["errors"]] == ["cursor"]
    r = await gateway.operator("GET", f"{listing}?cursor={INT64_MAX}")
    assert r.status == 200
    assert await r.json() == {"items": [], "next": None}


async def test_dead_letter_ids_are_bounded_in_the_openapi_document(gateway: Gateway) -> None:
    """The served document carries the id and cursor bounds the edge checks."""
    doc = await (await gateway.client.get("/openapi.json")).json()
    for path in ("/v1/dead-letters/{id}", "/v1/dead-letters/{id}/replay"):
        (param,) = doc["paths"][path]["parameters"]
        assert param["schema"]["pattern"] == "^[0-9]{1,19}$" and param["schema"]["maxLength"] == 19
        for op in ("get", "delete", "post"):
            if op in doc["paths"][path]:
                assert "422" in doc["paths"][path][op]["responses"]
    (cursor,) = [p for p in doc["paths"]["/v1/dead-letters"]["get"]["parameters"] if p["name"] == "cursor"]
    assert cursor["schema"]["pattern"] == "^[0-9]{1,19}$"


@pytest.mark.parametrize("limit", ["%C2%B2", "%D9%A1", "1" * 4301, "0x10", "1.0", "%201"],
                         ids=["superscript-two", "arabic-digit", "4301-digits", "hex", "decimal-point", "space"])
async def test_a_malformed_page_limit_is_400(gateway: Gateway, limit: str) -> None:
    """``?limit=`` takes ASCII digits only: "²" passed ``str.isdigit()`` and made ``int()`` raise,
    and so did 4,301 digits (Python's conversion bound), both a 500; "١" was taken as 1. Each is
    now the documented 400 naming ``limit``."""
    r = await gateway.client.get(URL(f"/v1/dead-letters?limit={limit}", encoded=True),
                                 headers={"X-API-Key": OPERATOR_KEY})
    assert r.status == 400, (limit[:12], r.status, await r.text())
    body = await r.json()
    assert_shape(body, "bad_request")
    assert [e["field"] for e in body["errors"]] == ["limit"]


async def test_a_page_limit_may_have_leading_zeros(gateway: Gateway) -> None:
    """Leading zeros are still digits: ``0001000`` is 1000."""
    r = await gateway.operator("GET", "/v1/dead-letters?limit=0001000")
    assert r.status == 200, await r.text()


BOUNDARY_IDS = ["0", INT64_MAX, str(2**63), str(2**64), TOO_BIG, "-1"]


async def test_the_openapi_examples_of_ids_and_cursors_say_what_each_gets(gateway: Gateway) -> None:
    """The id and the cursor carry the ids at and past the 64-bit bounds as examples (schemathesis'
    examples phase starts from them), and the answer each summary names is the one the routes give."""
    doc = await (await gateway.client.get("/openapi.json")).json()
    (cursor,) = [p for p in doc["paths"]["/v1/dead-letters"]["get"]["parameters"] if p["name"] == "cursor"]
    routes = {("GET", "/v1/dead-letters?cursor={}"): cursor["examples"]}
    for path, methods in (("/v1/dead-letters/{id}", ("GET", "DELETE")), ("/v1/dead-letters/{id}/replay", ("POST",))):
        (param,) = doc["paths"][path]["parameters"]
        routes |= {(m, path.replace("{id}", "{}")): param["examples"] for m in methods}
    for (method, template), examples in routes.items():
        assert [e["value"] for e in examples.values()] == BOUNDARY_IDS
        for example in examples.values():
            r = await gateway.operator(method, template.format(example["value"]))
            assert str(r.status) in example["summary"], (method, template, example, r.status)


# ---------------------------------------------------------------- internal errors


async def test_internal_error_message_is_true_for_every_route(sandbox: Sandbox, tmp_path: Path) -> None:
    """A 500 never claims an "event" on a route that accepts none: a read says nothing changed,
    a write says it may or may not have taken effect. Both keep the house shape."""
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = create_app(settings_for(tmp_path, sandbox.url), run_engine=False)
    app.router.add_get("/_test/boom", boom)
    app.router.add_post("/_test/boom", boom)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        r = await client.get("/_test/boom")
        assert r.status == 500
        body = await r.json()
        assert_shape(body, "internal_error")
        assert "event" not in body["message"] and "nothing was changed" in body["message"]
        r = await client.post("/_test/boom")
        assert r.status == 500
        body = await r.json()
        assert "event" not in body["message"] and "may or may not have taken effect" in body["message"]


# ---------------------------------------------------------------- numbers


def _with_fee(gia: object = "100000", so_luong: object = 1) -> dict[str, Any]:
    body = sample_dossier(M)
    body["DanhSachLePhi"][0]["Gia"] = gia
    body["DanhSachTepDinhKemKhac"][0]["SoLuong"] = so_luong
    return body


@pytest.mark.parametrize(("body", "field"), [
    (_with_fee(gia="9" * 4301), "DanhSachLePhi[0].Gia"),
    (_with_fee(so_luong="9" * 4301), "DanhSachTepDinhKemKhac[0].SoLuong"),
    (_with_fee(gia="9" * 19), "DanhSachLePhi[0].Gia"),
    (_with_fee(gia=10**18), "DanhSachLePhi[0].Gia"),
    (_with_fee(so_luong=2**63 - 1), "DanhSachTepDinhKemKhac[0].SoLuong"),
], ids=["gia-4301-digits", "soluong-4301-digits", "gia-19-digits", "gia-int-10^18", "soluong-int64-max"])
async def test_a_number_past_18_digits_is_422_naming_the_field(gateway: Gateway, body: dict[str, Any],
                                                               field: str) -> None:
    """Amounts and counts have at most 18 digits (string or JSON integer): past Python's 4,300-digit
    conversion limit this was a 500; now any longer number is a 422 naming the field."""
    r = await gateway.put(M, body)
    assert r.status == 422, await r.text()
    reply = await r.json()
    assert_shape(reply, "validation_failed")
    assert [e["field"] for e in reply["errors"]] == [field]
    assert "18 digits" in reply["errors"][0]["message"]


async def test_an_18_digit_amount_is_taken(gateway: Gateway) -> None:
    """The bound is 18 digits: 999…9 (18 nines) is still an amount, as a string or an integer."""
    assert (await gateway.put(M, _with_fee(gia="9" * 18, so_luong=10**18 - 1))).status == 202
    assert (await gateway.put(M, _with_fee(gia=10**18 - 1))).status == 202


# ---------------------------------------------------------------- error amplification

CPU_BUDGET_S = 0.100


async def _timed_put(gateway: Gateway, raw: bytes, mahoso: str = M) -> tuple[int, bytes, float]:
    """PUT ``raw`` as it is; the status, the answer's bytes and the CPU time this process spent on
    the request (client and server share the process and its loop)."""
    await gateway.client.get("/healthz")  # warm: nothing lazy is counted
    started = time.process_time()
    r = await gateway.client.put(URL(f"/v1/dossiers/{mahoso}", encoded=True), data=raw, headers={
        "X-API-Key": AGENCY_KEY, "Content-Type": "application/json"})
    body = await r.read()
    return r.status, body, time.process_time() - started


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


async def test_100000_unknown_keys_cost_little_and_answer_50_errors(gateway: Gateway) -> None:
    """100,000 unknown keys in one 1 MB body: at most 50 errors are listed and the rest counted in
    ``more_errors``; the answer stays small. (Its CPU bound is measured on the daemon alone, in
    tests/gateway/test_hostile_suite.py: here the client's work and this process's GC would count.)"""
    body = sample_dossier(M)
    body.update({f"{i:05x}": 0 for i in range(100_000)})
    raw = _encode(body)
    assert 1_000_000 < len(raw) <= 1_048_576
    status, answer, _ = await _timed_put(gateway, raw)
    assert status == 422
    reply = json.loads(answer)
    assert_shape(reply, "validation_failed")
    assert len(reply["errors"]) == 50
    assert reply["more_errors"] == 100_000 - 50  # unknown keys of one object are all counted
    assert "the first 50 are listed" in reply["message"]
    assert len(answer) < 16_384


async def test_suggestions_stop_after_a_few(gateway: Gateway) -> None:
    """Each unknown key near a field name gets a "did you mean", but only the first five: the
    search costs time per key, and five typos are enough to show the pattern."""
    body = sample_dossier(M)
    typos = [name[:-1] + name[-1].swapcase() for name in
             ("TrangThaiHoSo", "ChuHoSo", "NgayTiepNhan", "KenhThucHien", "TenTTHC", "MaTTHC", "NgayHenTra",
              "DonViXuLy")]
    body.update({t: "x" for t in typos})
    r = await gateway.put(M, body)
    assert r.status == 422
    messages = [e["message"] for e in (await r.json())["errors"]]
    assert len(messages) == len(typos)
    assert ["did you mean" in m for m in messages] == [True] * 5 + [False] * 3


async def test_a_huge_unknown_key_is_not_echoed(gateway: Gateway) -> None:
    """An unknown key of 500,000 characters is named by its first characters only: the answer
    stays small, and no suggestion is searched for it."""
    body = sample_dossier(M)
    body["K" * 500_000] = 1
    status, answer, cpu = await _timed_put(gateway, _encode(body))
    assert status == 422
    reply = json.loads(answer)
    assert len(reply["errors"]) == 1 and reply["errors"][0]["field"].startswith("KKKK")
    assert len(answer) < 2_048
    assert cpu < CPU_BUDGET_S, cpu


async def test_many_bad_rows_cost_little_and_answer_50_errors(gateway: Gateway) -> None:
    """100,000 empty rows (each missing its two required fields): 50 errors listed, the walk stops
    once 1,000 problems are found and the answer says so; a small answer. (Before, all 200,000
    problems were listed: seconds of CPU and a 20 MB answer. The CPU bound is measured on the
    daemon alone, in tests/gateway/test_hostile_suite.py.)"""
    body = sample_dossier(M, TaiLieuNop=[{}] * 100_000)
    status, answer, _ = await _timed_put(gateway, _encode(body))
    assert status == 422
    reply = json.loads(answer)
    assert len(reply["errors"]) == 50
    assert reply["more_errors"] == 1000 - 50
    assert "stopped after 1000 problems" in reply["message"]
    assert len(answer) < 16_384



async def test_a_cut_list_says_how_many_more(gateway: Gateway) -> None:
    """60 problems: the first 50 are listed, ``more_errors`` is 10 and the message says 60; with
    50 or fewer there is no ``more_errors`` (the list is complete)."""
    body = sample_dossier(M)
    body.update({f"extra{i}": 1 for i in range(60)})
    reply = await (await gateway.put(M, body)).json()
    assert len(reply["errors"]) == 50 and reply["more_errors"] == 10
    assert "60 problems, the first 50 are listed" in reply["message"]
    body = sample_dossier(M)
    body.update({f"extra{i}": 1 for i in range(50)})
    reply = await (await gateway.put(M, body)).json()
    assert len(reply["errors"]) == 50 and "more_errors" not in reply


# ---------------------------------------------------------------- text: length and combining marks

BOMB = "a" + "\u0301" * 32000 + "\u0316" * 32000  # 130 KB of UTF-8; NFC took 6.6 s before


async def test_the_normalisation_bomb_is_422_within_100ms_of_cpu(gateway: Gateway) -> None:
    """The issue's body (``ChuHoSo`` = a letter and 64,000 combining marks) is answered 422 naming
    ``ChuHoSo`` in under 100 ms of CPU: its length is checked before it is normalised."""
    status, answer, cpu = await _timed_put(gateway, _encode(sample_dossier(M, ChuHoSo=BOMB)))
    assert status == 422
    reply = json.loads(answer)
    assert [e["field"] for e in reply["errors"]] == ["ChuHoSo"]
    assert "at most 10000" in reply["errors"][0]["message"]
    assert cpu < CPU_BUDGET_S, cpu


@pytest.mark.parametrize(("field", "text"), [
    ("ChuHoSo", "a" + "\u0301" * 4000 + "\u0316" * 4000),
    ("GhiChu", "Ghi chú " + "a\u0301\u0316\u0301\u0316\u0301" * 1000),
    ("GhiChu", "a" + "\u0f73" * 9000),  # decomposes to two marks each: a run cannot hide behind it
    ("TenTTHC", "e" + "\u0344" * 5),  # U+0344 is itself a mark that decomposes to two
], ids=["one-long-run", "many-runs-of-five", "tibetan-vowel-sign", "greek-dialytika-tonos"])
async def test_a_run_of_combining_marks_is_422_within_100ms_of_cpu(gateway: Gateway, field: str,
                                                                     text: str) -> None:
    """A text under the length bound with more than 4 combining marks in a row is refused with 422
    naming the field, before normalising, in under 100 ms of CPU; the value is not repeated."""
    status, answer, cpu = await _timed_put(gateway, _encode(sample_dossier(M, **{field: text})))
    assert status == 422
    reply = json.loads(answer)
    assert [e["field"] for e in reply["errors"]] == [field]
    assert "combining marks" in reply["errors"][0]["message"]
    assert len(answer) < 1024
    assert cpu < CPU_BUDGET_S, cpu


@pytest.mark.parametrize("field", ["GhiChu", "MaTTHC", "TaiLieuNop[0].DuongDanTaiTepTin", "TrichYeuHoSo"])
async def test_a_text_past_the_length_bound_is_422(gateway: Gateway, field: str) -> None:
    """Any text, identifier or URL longer than ``[dossiers] max_text_chars`` (10,000) is refused
    with 422 naming the field, before normalising; a field with a §6.0 limit included (it is cut
    to that limit only below the bound)."""
    body = sample_dossier(M)
    long = "https://example.com/" + "x" * 10_000 if field.endswith("DuongDanTaiTepTin") else "ệ" * 10_001
    if field.startswith("TaiLieuNop"):
        body["TaiLieuNop"][0]["DuongDanTaiTepTin"] = long
    else:
        body[field] = long
    r = await gateway.put(M, body)
    assert r.status == 422, await r.text()
    reply = await r.json()
    assert [e["field"] for e in reply["errors"]] == [field]
    assert "at most 10000" in reply["errors"][0]["message"]


async def test_decomposed_vietnamese_is_still_taken_and_cut(gateway: Gateway, sandbox: Sandbox) -> None:
    """Vietnamese sent decomposed (two marks on a letter) is within the bound, and a summary of
    9,000 characters is still cut to the §6.0 limit of 1,000: the bounds only refuse the absurd."""
    name = unicodedata.normalize("NFD", "Nguyễn Thị Ánh Hồng")
    r = await gateway.put(M, sample_dossier(M, ChuHoSo=name, TrichYeuHoSo="Đăng ký " * 1125))
    assert r.status == 202, await r.text()
    await gateway.drain()
    (sent,) = [c["data"] for c in await sandbox.calls_for(M) if c["service"] == "DongBoHoSoMC"]
    assert sent["ChuHoSo"] == "Nguyễn Thị Ánh Hồng" and len(sent["TrichYeuHoSo"]) == 1000


async def test_the_bounds_are_settings(sandbox: Sandbox, tmp_path: Path) -> None:
    """``[dossiers] max_combining_marks`` and ``max_text_chars`` move the bounds."""
    settings = settings_for(tmp_path, sandbox.url, dossiers={"max_combining_marks": 2, "max_text_chars": 5000})
    async with run_gateway(settings) as gw:
        r = await gw.put(M, sample_dossier(M, GhiChu="a\u0301\u0316\u0301"))
        assert r.status == 422 and "more than 2 combining marks" in (await r.json())["errors"][0]["message"]
        assert (await gw.put(M, sample_dossier(M, GhiChu="a\u0301\u0316"))).status == 202
        r = await gw.put(M, sample_dossier(M, GhiChu="x" * 5001))
        assert r.status == 422 and "at most 5000" in (await r.json())["errors"][0]["message"]


def test_every_mark_is_below_the_scanned_range() -> None:
    """The mark class is built from code points below U+20000: no code point above it has a
    combining class or decomposes canonically into marks (true of Unicode 14 and every version
    so far; this test says so when a new one breaks it)."""
    from gateway.dossier import validate

    above = [cp for cp in range(validate._MARK_SCAN_END, 0x110000) if validate._is_mark(chr(cp))]
    assert above == []


# ---------------------------------------------------------------- the dossier code (MaHoSo)

#: Malformed codes as they appear in a request path (percent-encoded where a client must).
BAD_CODES = {
    "unit-only": "000.00.01.H55",
    "trailing-dash": "000.00.01.H55-",
    "empty-segment": "000.00.01.H55--00012",
    "300-chars": "000.00.01.H55-" + "1" * 286,
    "space": "000.00.01.H55-240315%2000012",
    "slash": "000.00.01.H55-240315%2F00012",
    "backslash": "000.00.01.H55-240315%5C00012",
    "percent": "000.00.01.H55-240315%2500012",
    "vietnamese": "000.00.01.H55-h%E1%BB%93s%C6%A1",
    "nfd-e-acute": "000.00.01.H55-240315-0001e%CC%81",
    "nul": "000.00.01.H55-240315-00012%00",
    "newline": "000.00.01.H55-240315-00012%0A",
    "hello": "hello",
    "short-unit": "00.00.01.H55-240315-00012",
    "lower-case-unit": "000.00.01.h55-240315-00012",
    "letters-in-unit": "A00.00.01.H55-240315-00012",
    "five-groups": "000.00.01.H55.1-240315-00012",
}


@pytest.mark.parametrize("code", BAD_CODES.values(), ids=BAD_CODES.keys())
async def test_a_malformed_code_is_422_before_the_unit_check(gateway: Gateway, sandbox: Sandbox, code: str) -> None:
    """PUT, POST progress and GET with a malformed ``MaHoSo`` in the path answer 422 naming
    ``MaHoSo`` (not 403, and not 202): nothing is stored, nothing reaches the portal."""
    headers = {"X-API-Key": AGENCY_KEY}
    calls = [
        ("PUT", f"/v1/dossiers/{code}", _encode(sample_dossier(M))),
        ("POST", f"/v1/dossiers/{code}/progress", _encode({"NguoiXuLy": "A", "ThoiDiemXuLy": "20240316100000",
                                                            "TrangThai": "4"})),
        ("GET", f"/v1/dossiers/{code}", None),
    ]
    for method, path, data in calls:
        r = await gateway.client.request(method, URL(path, encoded=True), data=data,
                                         headers={**headers, "Content-Type": "application/json"})
        assert r.status == 422, (method, path, r.status, await r.text())
        reply = await r.json()
        assert_shape(reply, "validation_failed")
        assert [e["field"] for e in reply["errors"]] == ["MaHoSo"]
    await gateway.drain()
    assert (await sandbox.record())["dossiers"] == {}


@pytest.mark.parametrize("code", ["000.00.01.H55-240315-00012", "000.00.01.H55-c10-0000001",
                                  "000.00.01.H55-HS_2024.77"])
async def test_local_codes_are_well_formed(gateway: Gateway, code: str) -> None:
    """Without ``strict_code`` any ASCII segments after the unit make a code (local codes, §8)."""
    r = await gateway.put(code, sample_dossier(code))
    assert r.status == 202, await r.text()


async def test_a_well_formed_code_of_another_unit_is_still_403(gateway: Gateway) -> None:
    """The unit check follows the format check: a well-formed code of a unit the agency does not
    hold is 403 naming ``MaHoSo``."""
    code = "000.00.02.H55-240315-00012"
    r = await gateway.put(code, sample_dossier(code))
    assert r.status == 403
    assert [e["field"] for e in (await r.json())["errors"]] == ["MaHoSo"]


async def test_strict_code_takes_only_the_portal_form(sandbox: Sandbox, tmp_path: Path) -> None:
    """``[dossiers] strict_code = true``: only ``<unit>-<yyMMdd>-<digits>`` with a real date."""
    async with run_gateway(settings_for(tmp_path, sandbox.url, dossiers={"strict_code": True})) as gw:
        assert (await gw.put(M, sample_dossier(M))).status == 202
        for code, why in (("000.00.01.H55-c10-0000001", "portal's form"),
                          ("000.00.01.H55-241332-00001", "not a real date"),
                          ("000.00.01.H55-240315-00012-1", "portal's form")):
            r = await gw.put(code, sample_dossier(code))
            assert r.status == 422, (code, await r.text())
            (error,) = (await r.json())["errors"]
            assert error["field"] == "MaHoSo" and why in error["message"]
        doc = await (await gw.client.get("/openapi.json")).json()
        (param,) = doc["paths"]["/v1/dossiers/{MaHoSo}"]["parameters"]
        assert r"-[0-9]{6}-[0-9]+$" in param["schema"]["pattern"]


async def test_an_nfd_spelling_cannot_open_a_second_queue(gateway: Gateway) -> None:
    """"One dossier, two queues": the NFD spelling of a code in the path (``…e%CC%81``) was stored
    under the NFD code while the body carried the NFC one. Both spellings are now refused."""
    nfc = "000.00.01.H55-240315-0001\u00e9"
    nfd = unicodedata.normalize("NFD", nfc)
    status, _, _ = await _timed_put(gateway, _encode(sample_dossier(nfc)),
                                    mahoso="000.00.01.H55-240315-0001e%CC%81")
    assert status == 422
    status, _, _ = await _timed_put(gateway, _encode(sample_dossier(nfc)), mahoso="000.00.01.H55-240315-0001%C3%A9")
    assert status == 422
    assert await gateway.queue.status(nfd) is None and await gateway.queue.status(nfc) is None


async def test_a_newline_in_the_path_forges_no_log_line(gateway: Gateway, sandbox: Sandbox,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """The ``%0A`` path that wrote a forged line ("level=WARNING logger=dvcgw.auth operator key
    rotated by admin") is refused with 422 on every dossier route; no log record carries it and
    nothing reaches the portal."""
    forged = "000.00.01.H55-240315-00012%0Alevel=WARNING%20logger=dvcgw.auth%20operator%20key%20rotated%20by%20admin"
    caplog.set_level(logging.DEBUG)
    for method, path in (("PUT", f"/v1/dossiers/{forged}"), ("POST", f"/v1/dossiers/{forged}/progress"),
                         ("GET", f"/v1/dossiers/{forged}")):
        r = await gateway.client.request(method, URL(path, encoded=True), data=b"{}", headers={
            "X-API-Key": AGENCY_KEY, "Content-Type": "application/json"})
        assert r.status == 422, (method, await r.text())
    await gateway.drain()
    assert (await sandbox.record())["dossiers"] == {}
    assert not [rec for rec in caplog.records if "rotated by admin" in rec.getMessage()]


async def test_the_openapi_document_carries_the_code_format(gateway: Gateway) -> None:
    """The path parameter and the bodies' ``MaHoSo`` carry the checker's pattern and maxLength,
    and the pattern agrees with the checker on every code above."""
    doc = await (await gateway.client.get("/openapi.json")).json()
    for path in ("/v1/dossiers/{MaHoSo}", "/v1/dossiers/{MaHoSo}/progress"):
        (param,) = doc["paths"][path]["parameters"]
        assert param["schema"]["maxLength"] == 64
        pattern = re.compile(param["schema"]["pattern"])
    assert doc["components"]["schemas"]["Dossier"]["properties"]["MaHoSo"] == param["schema"]
    assert "422" in doc["paths"]["/v1/dossiers/{MaHoSo}"]["get"]["responses"]
    # JSON Schema patterns are ECMA-262, where "$" is the end of the input: fullmatch, not search
    # (Python's "$" also matches before a final newline)
    for code in BAD_CODES.values():
        decoded = urllib.parse.unquote(code)
        assert not (pattern.fullmatch(decoded) and len(decoded) <= 64), code
    for code in ("000.00.01.H55-240315-00012", "000.00.01.H55-c10-0000001", "000.00.01.H55-HS_2024.77"):
        assert pattern.fullmatch(code), code


async def test_the_signing_upload_refuses_an_encoded_body_too() -> None:
    """The signing routes read their PDF through ``read_pdf_request``, which takes the same rule:
    a gzip-encoded upload is 415 naming the encoding (checked here on a real app with just that
    reader behind the gateway's middleware, without a signing key set-up)."""
    from gateway.middleware import error_middleware
    from gateway.signing_routes import read_pdf_request

    async def upload(request: web.Request) -> web.Response:
        pdf, _ = await read_pdf_request(request, 1_000_000)
        return web.Response(text=str(len(pdf)))

    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/upload", upload)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        pdf = b"%PDF-1.7\n" + b"0" * 100
        r = await client.post("/upload", data=gzip.compress(pdf), headers={
            "Content-Type": "application/pdf", "Content-Encoding": "gzip"})
        assert r.status == 415 and "gzip" in (await r.json())["message"]
        r = await client.post("/upload", data=pdf, headers={"Content-Type": "application/pdf"})
        assert r.status == 200
