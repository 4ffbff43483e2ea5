"""The pure parts of the inbound path: spec §7.9's table, the provincial delivery contract's body
and answer classes, and the sandbox's seeding route."""

from __future__ import annotations

import pytest

from adapters.provincial_system.envelope import Verdict, body, canonical, headers, verdict, version_of
from gateway.inbound.puller import shown_state
from gateway.inbound.states import TEXT_STATES, state_code
from tests.harness import Sandbox
from tests.inbound.conftest import Run, citizen, code


@pytest.mark.parametrize(("raw", "expected"), [
    ("receiving", "1"), ("new", "2"), ("denied", "3"), ("processing", "4"), ("waiting", "5"), ("paying", "6"),
    ("cancelled", "7"), ("unresolved", "8"), ("releasing", "9"), ("done", "10"),
    (" Processing ", "4"), ("DONE", "10"),
    ("interoperating", None), ("posting", None), ("archived", None), ("", None), (None, None), (True, None),
    ("4", "4"), (10, "10"), ("0", None), ("11", None),
])
def test_spec_7_9_maps_textual_states(raw: object, expected: str | None) -> None:
    """Every §7.9 text maps to its code (trimmed, any case); 0-coded and unlisted texts map to
    none; a §7.1 code sent as such is kept."""
    assert state_code(raw) == expected


def test_a_raw_state_is_logged_only_when_it_looks_like_one() -> None:
    """A state word is shown; a text with spaces or accents (a name, if state_field points at one)
    only by its length."""
    assert shown_state("interoperating") == "'interoperating'"
    assert shown_state("Nguyễn Văn A") == "<str of 12 characters, not shown>"
    assert shown_state(None) == "none"


def test_the_table_is_the_spec_s() -> None:
    assert len(TEXT_STATES) == 12 and sorted(set(TEXT_STATES.values()), key=int) == [str(n) for n in range(11)]


def test_the_version_ignores_key_order_and_sees_any_change() -> None:
    """Canonical JSON sorts keys at every level: the same dossier in another order has the same
    version; one changed character gives another."""
    a = {"MaHoSo": "X", "TaiLieuNop": [{"b": 1, "a": 2}], "TrangThaiHoSo": "new"}
    b = {"TrangThaiHoSo": "new", "TaiLieuNop": [{"a": 2, "b": 1}], "MaHoSo": "X"}
    assert canonical(a) == canonical(b) and version_of(a) == version_of(b)
    assert version_of(a) != version_of({**a, "TrangThaiHoSo": "news"})
    sent = body(a, mahoso="X", version=version_of(a), remote_state="new", state_code="2", pulled_at="t")
    assert headers("X-Api-Key", "s", sent) == {
        "Content-Type": "application/json; charset=utf-8", "Accept": "application/json",
        "Idempotency-Key": f"X:{version_of(a)}", "X-Api-Key": "s"}
    assert "X-Api-Key" not in headers("X-Api-Key", "", sent)


@pytest.mark.parametrize(("status", "raw", "expected", "code"), [
    (200, b"", Verdict.OK, ""), (201, b"{}", Verdict.OK, ""), (204, b"", Verdict.OK, ""),
    (409, b"", Verdict.EXISTS, ""),
    (400, '{"message": "Hồ sơ đã tồn tại"}'.encode(), Verdict.EXISTS, ""),
    (422, b'{"error": "duplicate", "message": "Dossier already exists"}', Verdict.EXISTS, ""),
    (429, b"", Verdict.THROTTLED, "429"),
    (408, b"", Verdict.UNAVAILABLE, "408"), (500, b"<html>", Verdict.UNAVAILABLE, "500"),
    (503, b"", Verdict.UNAVAILABLE, "503"),
    (422, b'{"code": "E12", "message": "NgayTiepNhan sai"}', Verdict.REJECTED, "E12"),
    (400, b"not json", Verdict.REJECTED, "HTTP 400"),
    (401, b'{"error": "unauthorized"}', Verdict.REJECTED, "unauthorized"),
    (422, '{"code": "Họ tên Nguyễn Văn A sai"}'.encode(), Verdict.REJECTED, "HTTP 422"),
    (302, b"", Verdict.REJECTED, "HTTP 302"),
])
def test_answers_are_classified(status: int, raw: bytes, expected: Verdict, code: str) -> None:
    """2xx ok; 409 or a 4xx saying "already exists" done; 429 throttled; 408/5xx retried; any other
    4xx (and a redirect) rejected with the receiver's code, else the status."""
    judged = verdict(status, raw)
    assert (judged.verdict, judged.code) == (expected, code)
    assert "Nguyễn" not in judged.message and "NgayTiepNhan sai" not in judged.message


async def test_the_sandbox_refuses_a_seed_without_mahoso(sandbox: Sandbox) -> None:
    """POST /_sandbox/inbound seeds objects with a MaHoSo only; a bad list seeds nothing."""
    async with sandbox.http.post(f"{sandbox.url}/_sandbox/inbound", json={"dossiers": [citizen(1), {"x": 1}]}) as r:
        assert r.status == 400
    async with sandbox.http.post(f"{sandbox.url}/_sandbox/inbound", json={"dossiers": [citizen(1)]}) as r:
        assert r.status == 200 and (await r.json()) == {"added": 1, "cursor": "1"}
    async with sandbox.http.get(f"{sandbox.url}/_sandbox/inbound") as r:
        assert [d["dossier"]["MaHoSo"] for d in (await r.json())["dossiers"]] == [code(1)]


async def test_a_row_without_mahoso_is_skipped_and_counted(run_world: Run) -> None:
    """The portal hands out a row with no MaHoSo (put straight into the sandbox's state, which its
    seeding route would refuse): it is skipped, counted as invalid, and the others are delivered."""
    async with run_world() as w:
        await w.seed(citizen(1))
        w.sandbox.state.inbound["?"] = (100, {"TrangThaiHoSo": "new"})
        done = await w.pull_and_deliver()
        assert (done.invalid, done.queued) == (1, 1)
        assert w.gw.metric("dvcgw_inbound_dossiers_total", result="invalid") == 1
    assert list(w.prov.stored) == [code(1)]
