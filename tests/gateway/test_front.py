"""The HTTP front (gateway/front.py): which requests it serves itself, how it hands the rest to
aiohttp on the same connection, and HTTP/1.1 framing at its edges, over raw sockets."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.front import FastFront, FrontSite
from tests.harness import AGENCY_KEY, OTHER_KEY, Gateway, Sandbox, run_gateway, settings_for
from tests.samples import sample_dossier, sample_progress

M = "000.00.01.H55-240315-00012"


@pytest.fixture
async def front_gateway(tmp_path: Path, sandbox: Sandbox) -> AsyncIterator[Gateway]:
    async with run_gateway(settings_for(tmp_path, sandbox.url, queue={"backend": "memory"})) as gw:
        yield gw


def front_of(gw: Gateway) -> FastFront:
    site = gw.client.server.site  # type: ignore[attr-defined]
    assert isinstance(site, FrontSite) and site.front is not None
    return site.front


def put_bytes(mahoso: str, body: Any, key: str = AGENCY_KEY, extra: str = "") -> bytes:
    raw = json.dumps(body).encode()
    head = (f"PUT /v1/dossiers/{mahoso} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            f"X-API-Key: {key}\r\nContent-Length: {len(raw)}\r\n{extra}\r\n")
    return head.encode() + raw


class Conn:
    """One raw client connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> tuple[int, dict[str, str], bytes]:
        """One HTTP response: status, headers (lower-case names), body (Content-Length framed)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), 10) if length else b""
        return status, headers, body

    async def closed(self) -> bool:
        """True once the server has closed the connection (EOF), waiting up to 10 s."""
        return await asyncio.wait_for(self.reader.read(1), 10) == b""

    def close(self) -> None:
        self.writer.close()


async def connect(gw: Gateway) -> Conn:
    port = gw.client.server.port
    assert port is not None
    return Conn(*await asyncio.open_connection("127.0.0.1", port))


async def test_the_front_serves_accepts_and_keeps_the_connection(front_gateway: Gateway) -> None:
    """Plain PUTs and progress POSTs on one keep-alive connection are answered by the front itself
    (nothing handed to aiohttp), in the house shape, and reach the queue."""
    c = await connect(front_gateway)
    for i in range(3):
        await c.send(put_bytes(f"{M}{i}", sample_dossier(f"{M}{i}")))
        status, headers, body = await c.answer()
        assert status == 202, body
        assert headers["content-type"].startswith("application/json") and "date" in headers
        assert set(json.loads(body)) == {"event_id", "sequence"}
    raw = json.dumps(sample_progress(f"{M}0", 2)).encode()
    await c.send(b"POST /v1/dossiers/%s/progress HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                 b"X-API-Key: %s\r\nContent-Length: %d\r\n\r\n%s"
                 % (f"{M}0".encode(), AGENCY_KEY.encode(), len(raw), raw))
    status, _, body = await c.answer()
    assert status == 202 and len(json.loads(body)["event_ids"]) == 2
    c.close()
    assert front_of(front_gateway).handed_over == 0
    assert (await front_gateway.status(f"{M}2"))["accepted_state"] is not None


async def test_pipelined_requests_are_answered_in_order_and_the_rest_handed_to_aiohttp(
        front_gateway: Gateway) -> None:
    """Two PUTs and a status read sent in one write: three answers in order. The read is not the
    front's, so the connection goes to aiohttp with the bytes not yet consumed, and stays usable."""
    c = await connect(front_gateway)
    get = f"GET /v1/dossiers/{M}a HTTP/1.1\r\nHost: gw\r\nX-API-Key: {AGENCY_KEY}\r\n\r\n".encode()
    await c.send(put_bytes(f"{M}a", sample_dossier(f"{M}a")) + put_bytes(f"{M}b", sample_dossier(f"{M}b")) + get)
    first, second, third = await c.answer(), await c.answer(), await c.answer()
    assert (first[0], second[0], third[0]) == (202, 202, 200)
    assert json.loads(third[2])["MaHoSo"] == f"{M}a"
    assert json.loads(first[2])["sequence"] >= 1
    await c.send(put_bytes(f"{M}c", sample_dossier(f"{M}c")))  # aiohttp serves the rest of the connection
    assert (await c.answer())[0] == 202
    c.close()
    assert front_of(front_gateway).handed_over == 1


async def test_a_request_arriving_byte_by_byte_is_served(front_gateway: Gateway) -> None:
    c = await connect(front_gateway)
    for b in put_bytes(M, sample_dossier(M)):
        await c.send(bytes([b]))
    status, _, body = await c.answer()
    assert status == 202, body
    c.close()
    assert front_of(front_gateway).handed_over == 0


async def test_connection_close_is_honoured(front_gateway: Gateway) -> None:
    c = await connect(front_gateway)
    await c.send(put_bytes(M, sample_dossier(M), extra="Connection: close\r\n"))
    status, headers, _ = await c.answer()
    assert status == 202 and headers["connection"] == "close"
    assert await c.closed()


@pytest.mark.parametrize("extra, expect", [
    ("Expect: 100-continue\r\n", 202),  # aiohttp sends 100 Continue first
    ("Transfer-Encoding: chunked\r\n", 202),
])
async def test_framing_the_front_leaves_to_aiohttp(front_gateway: Gateway, extra: str, expect: int) -> None:
    """Expect and chunked bodies are aiohttp's to frame: the front hands the connection over."""
    raw = json.dumps(sample_dossier(M)).encode()
    head = (f"PUT /v1/dossiers/{M} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            f"X-API-Key: {AGENCY_KEY}\r\n{extra}").encode()
    c = await connect(front_gateway)
    if "chunked" in extra:
        await c.send(head + b"\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(raw), raw))
    else:
        await c.send(head + b"Content-Length: %d\r\n\r\n" % len(raw))
        status, _, _ = await c.answer()
        assert status == 100
        await c.send(raw)
    status, _, body = await c.answer()
    assert status == expect, body
    c.close()
    assert front_of(front_gateway).handed_over == 1


async def test_an_oversized_body_gets_413_in_the_house_shape(front_gateway: Gateway) -> None:
    """A Content-Length over the limit is aiohttp's to refuse, as before the front."""
    limit = front_of(front_gateway).max_body
    c = await connect(front_gateway)
    await c.send(f"PUT /v1/dossiers/{M} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                 f"X-API-Key: {AGENCY_KEY}\r\nContent-Length: {limit + 1}\r\n\r\n".encode() + b" " * (limit + 1))
    status, _, body = await c.answer()
    assert status == 413 and json.loads(body)["error"] == "payload_too_large"
    c.close()


async def test_a_malformed_head_is_answered_by_aiohttp_and_the_front_survives(front_gateway: Gateway) -> None:
    c = await connect(front_gateway)
    await c.send(f"PUT /v1/dossiers/{M} HTTP/1.1\r\nHost: gw\r\nBad Header Line\r\n"
                 "Content-Length: 2\r\n\r\n{}".encode())
    status, _, _ = await c.answer()
    assert status == 400
    c.close()
    c = await connect(front_gateway)  # the next connection is served normally
    await c.send(put_bytes(M, sample_dossier(M)))
    assert (await c.answer())[0] == 202
    c.close()


async def test_a_repeated_content_length_is_not_the_fronts_to_frame(front_gateway: Gateway) -> None:
    """Two Content-Length headers make the framing ambiguous (request smuggling): the front does not
    guess; aiohttp refuses the request."""
    raw = json.dumps(sample_dossier(M)).encode()
    c = await connect(front_gateway)
    await c.send(f"PUT /v1/dossiers/{M} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                 f"X-API-Key: {AGENCY_KEY}\r\nContent-Length: {len(raw)}\r\nContent-Length: 5\r\n\r\n".encode() + raw)
    status, _, _ = await c.answer()
    assert status == 400
    c.close()
    assert front_of(front_gateway).handed_over == 1
    r = await front_gateway.client.get(f"/v1/dossiers/{M}", headers={"X-API-Key": AGENCY_KEY})
    assert r.status == 404  # nothing was accepted


ERROR_CASES: list[tuple[str, dict[str, str], bytes]] = [
    ("no key", {"Content-Type": "application/json"}, json.dumps(sample_dossier(M)).encode()),
    ("other unit", {"Content-Type": "application/json", "X-API-Key": OTHER_KEY},
     json.dumps(sample_dossier(M)).encode()),
    ("bearer", {"Content-Type": "application/json", "Authorization": f"Bearer {AGENCY_KEY}"},
     json.dumps(sample_dossier(M)).encode()),
    ("media type", {"Content-Type": "text/plain", "X-API-Key": AGENCY_KEY}, b"{}"),
    ("charset", {"Content-Type": "application/json; charset=utf-8", "X-API-Key": AGENCY_KEY},
     json.dumps(sample_dossier(M)).encode()),
    ("malformed", {"Content-Type": "application/json", "X-API-Key": AGENCY_KEY}, b"{not json"),
    ("invalid", {"Content-Type": "application/json", "X-API-Key": AGENCY_KEY}, b'{"MaHoSo": 5}'),
]


async def _answers(gw: Gateway) -> list[tuple[int, Any]]:
    out = []
    for _, headers, body in ERROR_CASES:
        r = await gw.client.put(f"/v1/dossiers/{M}", data=body, headers=headers)
        payload = await r.json()
        out.append((r.status, {k: v for k, v in payload.items() if k not in ("event_id", "sequence")}))
    return out


async def test_the_front_answers_exactly_as_aiohttp_does(tmp_path: Path, sandbox: Sandbox) -> None:
    """The same requests, through the front and through aiohttp alone (fast_accept off): the same
    statuses and bodies, errors included."""
    async with run_gateway(settings_for(tmp_path / "a", sandbox.url, queue={"backend": "memory"})) as gw:
        fast = await _answers(gw)
        assert front_of(gw).handed_over == 0
    async with run_gateway(settings_for(tmp_path / "b", sandbox.url, queue={"backend": "memory"},
                                        server={"fast_accept": False})) as gw:
        assert not hasattr(gw.client.server, "site")
        plain = await _answers(gw)
    assert fast == plain
    assert [status for status, _ in fast] == [401, 403, 202, 415, 202, 400, 422]


# ------------------------------------------------------------------ the front on its own


class Held:
    """A stand-in for the accept code that holds each request until released."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.done = asyncio.Event()
        self.served = 0

    async def __call__(self, kind: str, mahoso: str, headers: dict[bytes, bytes],
                      body: bytes) -> tuple[int, bytes, dict[str, str]]:
        self.entered.set()
        await self.release.wait()
        self.served += 1
        self.done.set()
        return 202, b'{"ok": true}', {}


@pytest.fixture
async def bare_front() -> AsyncIterator[tuple[FastFront, Held, int]]:
    held = Held()
    server = web.Server(lambda request: web.Response(text="aiohttp"))  # type: ignore[arg-type, return-value]
    front = FastFront(server, held, 1024 * 1024, keepalive_s=0.2)
    srv = await asyncio.get_running_loop().create_server(front, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    yield front, held, port
    srv.close()
    await front.shutdown(1.0)
    await srv.wait_closed()


async def test_idle_connections_are_closed_after_the_keepalive_timeout(
        bare_front: tuple[FastFront, Held, int]) -> None:
    front, held, port = bare_front
    held.release.set()
    c = Conn(*await asyncio.open_connection("127.0.0.1", port))
    await c.send(put_bytes(M, {}))
    assert (await c.answer())[0] == 202
    assert await c.closed()  # idle past 0.2 s: closed by the sweep
    assert not front.connections


async def test_shutdown_finishes_the_request_in_flight_and_closes_idle_connections(
        bare_front: tuple[FastFront, Held, int]) -> None:
    front, held, port = bare_front
    busy = Conn(*await asyncio.open_connection("127.0.0.1", port))
    idle = Conn(*await asyncio.open_connection("127.0.0.1", port))
    await busy.send(put_bytes(M, {}))
    await held.entered.wait()
    front.keepalive_s = 3600.0
    stopping = asyncio.create_task(front.shutdown(10.0))
    assert await idle.closed()
    assert not stopping.done()
    held.release.set()
    status, headers, _ = await busy.answer()
    assert status == 202 and headers["connection"] == "close"
    await stopping
    assert await busy.closed()
    assert held.served == 1


async def test_a_client_gone_mid_request_still_has_its_request_finished(
        bare_front: tuple[FastFront, Held, int]) -> None:
    """A request whose client disconnected still runs to the end (its event may already be
    durable); only the answer is dropped."""
    front, held, port = bare_front
    c = Conn(*await asyncio.open_connection("127.0.0.1", port))
    await c.send(put_bytes(M, {}))
    await held.entered.wait()
    c.close()
    for _ in range(10_000):  # drive the loop until it has delivered the disconnect
        if not front.connections:
            break
        await asyncio.sleep(0)
    assert not front.connections
    stopping = asyncio.create_task(front.shutdown(10.0))  # waits for the request, client gone or not
    for _ in range(20):
        await asyncio.sleep(0)
    assert not stopping.done()
    held.release.set()
    await asyncio.wait_for(stopping, 10)
    assert held.done.is_set() and held.served == 1


@pytest.mark.parametrize("seed", range(4))
async def test_pipelined_mixed_requests_in_random_pieces(front_gateway: Gateway, seed: int) -> None:
    """A stream of accepts, errors and other routes, pipelined and cut into random pieces: every
    request gets its answer, in order, whether the front or aiohttp (after a hand-over) serves it."""
    rng = random.Random(seed)
    progress = json.dumps(sample_progress(f"{M}p", 2)).encode()
    kinds = {
        "put": (put_bytes(f"{M}{seed}", sample_dossier(f"{M}{seed}")), 202),
        "no key": (put_bytes(f"{M}{seed}", sample_dossier(f"{M}{seed}"), key=""), 401),
        "invalid": (put_bytes(f"{M}{seed}", {"MaHoSo": 5}), 422),
        "progress": (b"POST /v1/dossiers/%sp/progress HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                     b"X-API-Key: %s\r\nContent-Length: %d\r\n\r\n%s"
                     % (M.encode(), AGENCY_KEY.encode(), len(progress), progress), 202),
        "health": (b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n", 200),
    }
    names = [rng.choice(["put", "put", "put", "no key", "invalid", "progress", "health"]) for _ in range(12)]
    stream = b"".join(kinds[n][0] for n in names)
    c = await connect(front_gateway)
    at = 0
    while at < len(stream):
        size = rng.randint(1, 700)
        await c.send(stream[at:at + size])
        at += size
    statuses = [(await c.answer())[0] for _ in names]
    c.close()
    assert statuses == [kinds[n][1] for n in names]
