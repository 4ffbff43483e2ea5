"""Slow clients against a real ``dvcgw serve`` on HTTPS (issue 17): the daemon's TLS listener
serves a mapped client certificate end to end, and slow-loris clients (raw TLS sockets that
trickle a request head, or a body, and never finish) are cut at ``[server] header_timeout`` and
``body_timeout`` while other clients are served."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.daemon import Daemon, free_port, write_config
from tests.harness import AGENCY_KEY, UNIT, Sandbox
from tests.samples import sample_dossier
from tests.security.conftest import pki_server
from tests.security.pki import Pki, client_context

pytestmark = pytest.mark.slow

M = f"{UNIT}-240315-00001"
LORISES = 20


@asynccontextmanager
async def tls_daemon(sandbox: Sandbox, pki: Pki, tmp_path: Path, **server: str) -> AsyncIterator[Daemon]:
    port = free_port()
    cfg = write_config(tmp_path / "gw.toml", port, sandbox.url, tmp_path / "gw.sqlite3",
                       server={"listen": f"127.0.0.1:{port}", "shutdown_grace": "2s", "drain_delay": "0s",
                               **pki_server(pki), **server},
                       agency={"tls_subjects": [pki.client.subject]})
    d = Daemon(cfg, port, tmp_path / "daemon.log", tls=client_context(pki, None))
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


async def test_the_daemon_serves_https_and_maps_a_client_certificate(sandbox: Sandbox, pki: Pki,
                                                                    tmp_path: Path) -> None:
    """``dvcgw serve`` with [server] tls_cert/tls_key/client_ca: /readyz over HTTPS, a PUT with the
    agency's certificate and no key is 202; the start line says https."""
    async with tls_daemon(sandbox, pki, tmp_path) as d:
        connector = aiohttp.TCPConnector(ssl=client_context(pki, pki.client))
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.put(f"{d.url}/v1/dossiers/{M}", json=sample_dossier(M)) as r:
                assert r.status == 202, await r.text()
    assert f"dvcgw ready on https://127.0.0.1:{d.port}" in d.log.read_text(encoding="utf-8")


async def _until_closed(reader: asyncio.StreamReader) -> None:
    try:
        while await reader.read(65536):
            pass
    except (ConnectionError, ssl.SSLError):
        pass  # a reset is a close too


async def _loris(port: int, context: ssl.SSLContext, connected: asyncio.Event, head: bytes,
                 drip: bytes, every: float) -> float:
    """Open a TLS connection, send ``head``, then ``drip`` every ``every`` s until the daemon closes
    it; the seconds from the first byte to the close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    started = time.monotonic()
    writer.write(head)
    await writer.drain()
    connected.set()
    closed = asyncio.create_task(_until_closed(reader))
    while not closed.done() and time.monotonic() - started < 15:
        try:
            writer.write(drip)
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            break
        await asyncio.wait({closed}, timeout=every)
    await asyncio.wait_for(closed, 15)
    writer.close()
    return time.monotonic() - started


async def test_slow_loris_heads_are_cut_at_the_header_deadline(sandbox: Sandbox, pki: Pki, tmp_path: Path) -> None:
    """20 TLS connections trickle a request head one header line every 200 ms, never ending it:
    each is closed once header_timeout (2 s) has passed since it opened, although bytes keep
    coming; meanwhile an ordinary agency request is answered."""
    async with tls_daemon(sandbox, pki, tmp_path, header_timeout="2s") as d:
        context = client_context(pki, pki.client)
        events = [asyncio.Event() for _ in range(LORISES)]
        head = f"PUT /v1/dossiers/{M} HTTP/1.1\r\nHost: gw\r\n".encode()
        lorises = [asyncio.create_task(_loris(d.port, context, e, head, b"X-Drip: 1\r\n", 0.2)) for e in events]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 15)
        connector = aiohttp.TCPConnector(ssl=client_context(pki, None))
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.put(f"{d.url}/v1/dossiers/{M}", json=sample_dossier(M),
                                headers={"X-API-Key": AGENCY_KEY}) as r:
                assert r.status == 202
        served_while_held = sum(not t.done() for t in lorises)
        held = await asyncio.gather(*lorises)
    assert served_while_held > 0, "the lorises were gone before the ordinary request: nothing shown"
    assert all(1.9 < s < 8 for s in held), held


async def test_a_trickled_body_is_408_at_the_body_deadline(sandbox: Sandbox, pki: Pki, tmp_path: Path) -> None:
    """A PUT whose body arrives one byte every 100 ms (never idle, never complete): 408
    ``request_timeout`` once body_timeout (1 s) has passed, and the connection closes."""
    raw = json.dumps(sample_dossier(M)).encode()
    head = (f"PUT /v1/dossiers/{M} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(raw)}\r\nX-API-Key: {AGENCY_KEY}\r\n\r\n").encode()
    async with tls_daemon(sandbox, pki, tmp_path, body_timeout="1s") as d:
        context = client_context(pki, None)
        reader, writer = await asyncio.open_connection("127.0.0.1", d.port, ssl=context)
        started = time.monotonic()
        writer.write(head)
        answer = asyncio.create_task(reader.readuntil(b"\r\n\r\n"))
        for byte in raw:
            if answer.done():
                break
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.wait({answer}, timeout=0.1)
        status_head = await asyncio.wait_for(answer, 10)
        answered = time.monotonic() - started
        writer.close()
    assert b" 408 " in status_head[:16] and b"Connection: close" in status_head, status_head
    assert 0.9 < answered < 5, answered
