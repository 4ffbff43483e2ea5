"""Issue 13: how the daemon stops (SIGTERM drains behind a 503 /readyz, Ctrl-C is quiet) and how a
client that leaves mid-request is logged. A real ``dvcgw serve`` subprocess, raw sockets."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import aiohttp
import pytest

from tests.gateway.test_logs import M, body_bytes, daemon, put_head, wait_for
from tests.harness import AGENCY_KEY, UNIT, Sandbox
from tests.samples import sample_dossier


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "level=ERROR" in line or "Traceback" in line]


@pytest.mark.slow
async def test_sigterm_answers_readyz_503_draining_before_the_port_closes(sandbox: Sandbox, tmp_path: Path) -> None:
    """On SIGTERM the listener stays open for ``drain_delay``: /readyz answers 503 ``draining`` on a
    new connection while a request whose body is still arriving is in flight; that request then
    completes with 202; a second SIGTERM ends the wait, and the daemon logs "draining" and
    "stopped", exits 0, no ERROR, and no access lines (the access log is off by default)."""
    body = body_bytes()
    async with daemon(sandbox, tmp_path, server={"drain_delay": "30s", "shutdown_grace": "10s"}) as d:
        assert d.proc is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", d.port)
        writer.write(put_head(len(body)) + body[:200])
        await writer.drain()
        d.proc.send_signal(signal.SIGTERM)
        seen: dict[str, object] = {}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            async def draining() -> bool:
                async with http.get(f"{d.url}/readyz") as r:
                    seen.update(status=r.status, body=await r.json())
                return r.status == 503

            await wait_for(draining, what="/readyz answering 503")
        assert seen["body"]["status"] == "draining" and seen["body"]["lifecycle"] == "draining"  # type: ignore[index]
        writer.write(body[200:])
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 202"), head
        writer.close()
        d.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(d.proc.wait(), 15) == 0
        assert refused(d.port)
    text = d.log.read_text()
    assert "draining on SIGTERM" in text and "SIGTERM again" in text and "stopped" in text
    assert error_lines(text) == [] and "logger=dvcgw.access" not in text


async def test_a_client_leaving_mid_body_is_one_info_line(sandbox: Sandbox, tmp_path: Path) -> None:
    """A client that closes its connection halfway through a body gets one INFO line carrying its
    request id and the route template: no ERROR, no traceback, no 500."""
    body = body_bytes()
    async with daemon(sandbox, tmp_path) as d:
        _, writer = await asyncio.open_connection("127.0.0.1", d.port)
        writer.write(put_head(len(body), extra="X-Request-ID: left-mid-body\r\n") + body[:300])
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await wait_for(lambda: "left-mid-body" in d.log.read_text() or bool(error_lines(d.log.read_text())),
                       what="a line about the client that left")
        text = d.log.read_text()
    lines = [line for line in text.splitlines() if "left-mid-body" in line or "closed the connection" in line]
    assert len(lines) == 1 and "level=INFO" in lines[0] and "route=/v1/dossiers/{MaHoSo}" in lines[0], lines
    assert "request_id=left-mid-body" in lines[0] and M not in lines[0]
    assert error_lines(text) == []


@pytest.mark.slow
async def test_ctrl_c_drains_at_once_and_logs_no_error(sandbox: Sandbox, tmp_path: Path) -> None:
    """SIGINT (Ctrl-C) with a portal call and a request body both in flight: the daemon drains
    without waiting for ``drain_delay``, logs "draining" and "stopped", exits 0, and writes no
    ERROR and no traceback."""
    body = body_bytes()
    await sandbox.fault(mode="slow", delay=30, count=20)
    async with daemon(sandbox, tmp_path, server={"drain_delay": "60s", "shutdown_grace": "1s"}) as d:
        assert d.proc is not None
        async with aiohttp.ClientSession() as http:
            m = f"{UNIT}-240316-00002"
            async with http.put(f"{d.url}/v1/dossiers/{m}", json=sample_dossier(m),
                                headers={"X-API-Key": AGENCY_KEY}) as r:
                assert r.status == 202
        await wait_for(lambda: sandbox.state.in_flight > 0, what="a portal call in flight")
        _, writer = await asyncio.open_connection("127.0.0.1", d.port)
        writer.write(put_head(len(body)) + body[:100])
        await writer.drain()
        d.proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(d.proc.wait(), 20) == 0
        writer.close()
    text = d.log.read_text()
    assert "draining on SIGINT" in text and "stopped" in text, text[-2000:]
    assert error_lines(text) == [], error_lines(text)

