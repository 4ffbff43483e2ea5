"""Issue 13's hostile suite against a real ``dvcgw serve`` subprocess: each request is answered
4xx, costs the daemon under 100 ms of CPU (its own CPU time, read from /proc before and after,
so the client's work and the test process's garbage collection do not count), and the log it
writes holds no key, no personal data of the fixture and no forged line."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from pathlib import Path

import psutil
import pytest

from tests.gateway.test_logs import FORGED, M, daemon, put_head, secrets_in, send
from tests.harness import AGENCY_KEY, Sandbox
from tests.samples import sample_dossier

pytestmark = pytest.mark.slow

CPU_BUDGET_S = 0.100
BOMB = "a" + "\u0301" * 32000 + "\u0316" * 32000


def _put(body: dict[str, object] | bytes, path_code: str = M) -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    head = put_head(len(raw), extra="Connection: close\r\n")
    return head.replace(f"/v1/dossiers/{M} ".encode(), f"/v1/dossiers/{path_code} ".encode()) + raw


def _unknown_keys() -> bytes:
    body = sample_dossier(M)
    body.update({f"{i:05x}": 0 for i in range(100_000)})
    return json.dumps(body, separators=(",", ":")).encode()


def _cases() -> list[tuple[str, bytes, bytes]]:
    """(name, the request's bytes, the status it must get, as it stands in the status line)."""
    newline_path = f"000.00.01.H55-240316-00001%0A{FORGED.replace(' ', '%20')}"
    return [
        ("normalisation bomb", _put(sample_dossier(M, ChuHoSo=BOMB)), b" 422 "),
        ("4,301-digit number", _put(sample_dossier(M, DanhSachLePhi=[
            {"TenPhiLePhi": "Lệ phí", "MaPhiLePhi": "LP1", "HinhThucThu": "1", "Gia": "9" * 4301,
             "LoaiPhiLePhi": "1"}])), b" 422 "),
        ("%0A in the path", _put(sample_dossier(M), newline_path), b" 422 "),
        ("100,000 unknown keys", _put(_unknown_keys()), b" 422 "),
        ("100,000 empty rows", _put(sample_dossier(M, TaiLieuNop=[{}] * 100_000)), b" 422 "),
        ("key in a broken header", f"GET /x HTTP/1.1\r\nX-API-Key : {AGENCY_KEY}\r\n\r\n".encode(), b" 400 "),
        ("body pipelined after Connection: close",
         put_head(len(body := json.dumps(sample_dossier(M), ensure_ascii=False).encode()), version="1.0",
                  extra="Connection: close\r\n") + body + b"PUT / HTTP/1.1\r\n\r\n" + body, b" 400 "),
    ]


def _cpu(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


async def _costs(pid: int, request: Awaitable[bytes]) -> tuple[bytes, float]:
    before = _cpu(pid)
    answer = await request
    return answer, _cpu(pid) - before


async def test_hostile_requests_are_refused_cheaply_and_leave_nothing_in_the_log(sandbox: Sandbox,
                                                                                tmp_path: Path) -> None:
    """The normalisation bomb, a 4,301-digit number, a ``%0A`` in the path, 100,000 unknown keys,
    100,000 empty rows, a key in a broken header and a body pipelined after ``Connection: close``: each answered as
    expected within 100 ms of the daemon's CPU; the log holds no key, no personal data and no
    forged line."""
    async with daemon(sandbox, tmp_path) as d:
        assert d.proc is not None
        await send(d.port, _put(sample_dossier(M)))  # warm: nothing lazy is counted below
        costs: dict[str, float] = {}
        for name, request, expected in _cases():
            answer, costs[name] = await _costs(d.proc.pid, send(d.port, request))
            assert expected in answer[:16], (name, answer[:120])
        text = d.log.read_text(encoding="utf-8")
    over = {name: round(cpu, 3) for name, cpu in costs.items() if cpu >= CPU_BUDGET_S}
    assert over == {}, costs
    assert secrets_in(text) == []
    assert not any(line.startswith(FORGED[:30]) for line in text.splitlines())


async def test_a_body_that_never_arrives_is_408_and_the_connection_closes(sandbox: Sandbox, tmp_path: Path) -> None:
    """A PUT whose head promises a body that stops coming: after ``[server] body_timeout`` the
    daemon answers 408 in the house shape, then closes the connection within the 2 s it reads
    and drops what may still come (it held the connection ~78 s before)."""
    async with daemon(sandbox, tmp_path, server={"body_timeout": "500ms"}) as d:
        reader, writer = await asyncio.open_connection("127.0.0.1", d.port)
        started = time.monotonic()
        writer.write(put_head(2000) + b'{"MaHoSo": "')
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        answered = time.monotonic() - started
        rest = await asyncio.wait_for(reader.read(), 10)  # read() returns at EOF: the daemon closed
        closed = time.monotonic() - started
        writer.close()
    assert b" 408 " in head[:16] and b"Connection: close" in head, head
    assert json.loads(rest)["error"] == "request_timeout"
    assert 0.4 < answered < 3 and closed < answered + 4, (answered, closed)


async def test_a_head_that_never_completes_is_closed_at_the_header_deadline(sandbox: Sandbox,
                                                                            tmp_path: Path) -> None:
    """A connection that sends part of a request head and then trickles or stalls is closed once
    ``[server] header_timeout`` has passed since it opened (aiohttp's default kept it an hour)."""
    async with daemon(sandbox, tmp_path, server={"header_timeout": "1s"}) as d:
        reader, writer = await asyncio.open_connection("127.0.0.1", d.port)
        started = time.monotonic()
        writer.write(f"PUT /v1/dossiers/{M} HTTP/1.1\r\nHost: gw\r\n".encode())
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.write(b"X-Trickle: 1\r\n")  # a little more of the head: the deadline still counts from the start
        await writer.drain()
        rest = await asyncio.wait_for(reader.read(), 10)  # read() returns at EOF: the daemon closed
        closed = time.monotonic() - started
        writer.close()
    assert rest == b"" and 0.9 < closed < 4, (rest[:80], closed)
