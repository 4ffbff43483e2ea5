"""Issue 13: what reaches the daemon's log. Hostile requests go over raw sockets to a real
``dvcgw serve`` subprocess, and the tests read the log it writes."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.logs import LogGuard, setup_logging
from tests.daemon import Daemon, free_port, write_config
from tests.fakes.portal import FakeClock
from tests.harness import AGENCY_KEY, OPERATOR_KEY, UNIT, Sandbox
from tests.samples import sample_dossier

M = f"{UNIT}-240316-00001"
# a whole log line as an attacker would like to see it written on its own
FORGED = "2026-12-06 00:00:00,000 level=WARNING logger=dvcgw.auth operator key rotated by admin"


def personal_data() -> list[str]:
    """The fixture's personal data, as it is and as bytes or JSON would render it."""
    d = sample_dossier()
    forms: list[str] = []
    for value in (d["ChuHoSo"], d["SoGiayToChuHoSo"], d["SoDienThoai"], d["Email"]):
        forms += [value, json.dumps(value)[1:-1], repr(value.encode())[2:-1]]
    return forms


def secrets_in(text: str) -> list[str]:
    return [s for s in [AGENCY_KEY, OPERATOR_KEY, *personal_data()] if s in text]


def exchange(port: int, data: bytes, source: str = "127.0.0.1", timeout: float = 10.0) -> bytes:
    """Send ``data`` from ``source`` (any 127/8 address is this machine) and read until the server
    closes; the server may close while we still send (it answered a protocol error)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as s:
        try:
            s.sendall(data)
        except OSError:
            pass
        chunks: list[bytes] = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


async def send(port: int, data: bytes, source: str = "127.0.0.1") -> bytes:
    return await asyncio.to_thread(exchange, port, data, source)


async def wait_for(check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0,
                   what: str = "condition") -> None:
    """Poll ``check`` (a function or a coroutine function) until it is true, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        done = check()
        if done if isinstance(done, bool) else await done:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.02)


@asynccontextmanager
async def daemon(sandbox: Sandbox, tmp_path: Path, **sections: dict[str, Any]) -> AsyncIterator[Daemon]:
    port = free_port()
    cfg = write_config(tmp_path / "gw.toml", port, sandbox.url, tmp_path / "gw.sqlite3", **sections)
    d = Daemon(cfg, port, tmp_path / "daemon.log", env={"DVCGW_LOG_LEVEL": "DEBUG"})
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


def body_bytes() -> bytes:
    return json.dumps(sample_dossier(M), ensure_ascii=False).encode()


def put_head(length: int, *, key: str | None = AGENCY_KEY, version: str = "1.1", extra: str = "") -> bytes:
    head = f"PUT /v1/dossiers/{M} HTTP/{version}\r\nHost: gw\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {length}\r\n" + (f"X-API-Key: {key}\r\n" if key else "") + extra
    return (head + "\r\n").encode()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_hostile_requests_leave_no_key_or_personal_data_in_the_log(sandbox: Sandbox, tmp_path: Path,
                                                                         fmt: str) -> None:
    """Malformed requests are logged as their error class, the peer, route ``-`` and a request id,
    never their bytes: a key in a broken header, a body pipelined after ``Connection: close``, and
    1 MB of junk after a request without a key (the log grows by one line, not by the junk)."""
    body = body_bytes()
    async with daemon(sandbox, tmp_path, **({"log": {"format": fmt}} if fmt == "json" else {})) as d:
        answer = await send(d.port, f"GET /x HTTP/1.1\r\nX-API-Key : {AGENCY_KEY}\r\n\r\n".encode(), "127.0.0.11")
        assert answer.startswith(b"HTTP/1.1 400") or answer.startswith(b"HTTP/1.0 400"), answer[:80]
        close = put_head(len(body), version="1.0", extra="Connection: close\r\n")
        answer = await send(d.port, close + body + b"PUT / HTTP/1.1\r\n\r\n" + body, "127.0.0.12")
        assert b" 400 " in answer[:20], answer[:80]
        await wait_for(lambda: "127.0.0.12" in d.log.read_text(), what="the pipelined body's protocol error line")
        assert secrets_in(d.log.read_text(encoding="utf-8")) == []
        before = d.log.stat().st_size
        junk = b"GET /v1/dossiers/" + M.encode() + b" HTTP/1.1\r\nHost: gw\r\n\r\n" + bytes(range(1, 256)) * 4112
        await send(d.port, junk, "127.0.0.13")  # answered 401, then 400 (or reset while we still sent)
        await wait_for(lambda: "127.0.0.13" in d.log.read_text(), what="the junk's protocol error line")
        growth = d.log.stat().st_size - before
        assert growth < 2048, f"the log grew by {growth} bytes for one request"
    text = d.log.read_text(encoding="utf-8")
    assert secrets_in(text) == []
    lines = [line for line in text.splitlines() if "malformed request" in line]
    assert len(lines) == 3, lines
    for line, peer, cls in zip(lines, ("127.0.0.11", "127.0.0.12", "127.0.0.13"),
                               ("BadHttpMessage", "BadHttpMessage", "BadHttpMethod"), strict=True):
        fields = json.loads(line) if fmt == "json" else dict(re.findall(r"(\w+)=(\S+)", line))
        assert fields["peer"] == peer and fields["route"] == "-" and re.fullmatch(r"[0-9a-f]{16}", fields["request_id"])
        assert cls in line and fields.get("level", "WARNING") == "WARNING"
    assert "Traceback" not in text


async def test_protocol_errors_from_one_peer_are_counted_not_repeated(sandbox: Sandbox, tmp_path: Path) -> None:
    """Thirty broken requests from one peer within ``[log] repeat_interval`` write one line; the
    rest are counted and written, once, with ``repeated=``, when the daemon stops."""
    async with daemon(sandbox, tmp_path) as d:  # the default interval, 10 s, is ample for 31 requests
        for _ in range(30):
            await send(d.port, b"GET /x HTTP/1.1\r\nBad Header: x\r\n\r\n", "127.0.0.20")
        await send(d.port, b"GET /x HTTP/1.1\r\nBad Header: x\r\n\r\n", "127.0.0.21")
        await wait_for(lambda: "from 127.0.0.21" in d.log.read_text(), what="the second peer's line")
        assert d.log.read_text().count("from 127.0.0.20") == 1
        assert await d.kill(signal.SIGTERM) == 0
    lines = [line for line in d.log.read_text().splitlines() if "from 127.0.0.20" in line]
    assert len(lines) == 2 and "repeated" not in lines[0] and lines[1].endswith("repeated=28"), lines


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The test may install the daemon's logging set-up on the root logger; it is restored afterwards."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    yield
    root.handlers[:] = saved
    root.setLevel(level)


def _route_root_to(out: io.StringIO) -> None:
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)


@pytest.mark.usefixtures("root_logging")
def test_a_library_retry_loop_is_one_line_per_interval_with_a_count() -> None:
    """aiokafka's loggers reach the root handler like every logger; an error its reconnect loop
    repeats is written once per ``repeat_interval`` and the next line written carries the count,
    also when the repeats differ in a number or an address (a node id, a port, a task number).
    A different message is not held back."""
    clock = FakeClock(0.0)
    out = io.StringIO()
    setup_logging()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    handler.filters[:] = [LogGuard(10.0, clock=clock)]
    import aiokafka.consumer.fetcher  # noqa: F401  (importing it must not give it a handler of its own)

    kafka, fetcher = logging.getLogger("aiokafka"), logging.getLogger("aiokafka.consumer.fetcher")
    assert kafka.propagate and not kafka.handlers and fetcher.propagate and not fetcher.handlers
    for i in range(5000):  # the calls aiokafka's client makes while its broker refuses connections
        kafka.error("Unable connect to node with id %s: %s", 1 + i % 3, ConnectionRefusedError(111, "refused"))
        kafka.error('Unable connect to "%s:%s": %s', "127.0.0.1", 30000 + i, OSError("Connect call failed"))
        kafka.error("Task exception was never retrieved\nfuture: <Task finished name='Task-%d' at 0x%x>", i, 4096 + i)
        clock.advance(0.001)  # 5 s in all
    fetcher.error("Failed fetch messages from %s: %s", 1, "NodeNotReadyError")
    clock.advance(10.0)
    kafka.error("Unable connect to node with id %s: %s", 2, ConnectionRefusedError(111, "refused"))
    lines = out.getvalue().splitlines()
    assert len(lines) == 5, lines
    assert lines[-1].endswith("repeated=4999") and "node with id 2" in lines[-1], lines
    assert "Failed fetch messages" in lines[3] and not any("repeated" in line for line in lines[:4]), lines


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.usefixtures("root_logging")
def test_the_formatter_escapes_every_value(fmt: str) -> None:
    """Whatever a logged value holds (newline, carriage return, escape sequences, Unicode line
    separators), in the message, an extra field or an exception's message, each record is one
    physical line (its traceback aside, indented), and the value shows escaped."""
    if fmt == "json":
        from config.schema import LogSettings

        setup_logging(LogSettings(format="json"))
    else:
        setup_logging()
    out = io.StringIO()
    _route_root_to(out)
    log = logging.getLogger("dvcgw.test.forge")
    log.warning("unknown unit %s", f"x\n{FORGED}\r\x1b[2J\u2028\x85tail", extra={"detail": f"y\n{FORGED}"})
    text = out.getvalue()
    assert len(text.splitlines()) == 1 and text.endswith("\n"), text
    assert "\\n" + FORGED in text and "\\x1b[2J" in text and "\\u2028" in text and "\\x85" in text
    if fmt == "json":
        record = json.loads(text)
        assert record["message"].startswith("unknown unit x\\n2026") and record["detail"].startswith("y\\n")
    for exc in (OSError(f"disk\n{FORGED}"), ValueError(f"bad value\n{FORGED}")):
        out.seek(0)
        out.truncate()
        try:
            raise exc
        except Exception:
            log.exception("failed")
        lines = out.getvalue().splitlines()
        assert not [line for line in lines if line.startswith(FORGED[:20])], lines
        if fmt == "text":
            assert all(line.startswith(" ") for line in lines[1:]), lines


@pytest.mark.usefixtures("root_logging")
def test_an_exception_message_that_may_quote_input_is_not_logged() -> None:
    """A traceback keeps its frames and class; the message is written only for classes whose
    messages the gateway or the OS writes (OSError, the transient errors …), since e.g. a
    ValueError may quote the input that caused it."""
    setup_logging()
    out = io.StringIO()
    _route_root_to(out)
    number = sample_dossier()["SoGiayToChuHoSo"]
    try:
        int(f"{number}x")
    except ValueError:
        logging.getLogger("dvcgw.test").exception("conversion failed")
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except OSError:
        logging.getLogger("dvcgw.test").exception("portal unreachable")
    text = out.getvalue()
    assert number not in text and "ValueError" in text and "int(f\"{number}x\")" in text
    assert "Connection refused" in text


async def test_a_newline_in_a_path_or_header_cannot_forge_a_log_line(sandbox: Sandbox, tmp_path: Path) -> None:
    """``%0A`` in a path segment (a dossier code, a dead-letter id) and a request id header with
    ``%0A`` and control characters never put a line of the requester's making in the log."""
    encoded = FORGED.replace(" ", "%20")
    async with daemon(sandbox, tmp_path, server={"access_log": True}) as d, aiohttp.ClientSession() as http:
        for path, key in ((f"/v1/dead-letters/1%0A{encoded}", OPERATOR_KEY),
                          (f"/v1/dossiers/{UNIT}-1%0A{encoded}", AGENCY_KEY),
                          (f"/v1/dossiers/{UNIT}-1%0D%0A{encoded}/progress", AGENCY_KEY)):
            async with http.get(d.url + path, headers={"X-API-Key": key, "X-Request-ID": f"id%0A{encoded}"},
                                allow_redirects=False) as r:
                assert r.status < 600
                assert re.fullmatch(r"[0-9a-f]{16}", r.headers["X-Request-ID"])
        answer = await send(d.port, b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Request-ID: a\x1bb\r\n\r\n")
        assert b"\x1b" not in answer
        await wait_for(lambda: d.log.read_text().count("logger=dvcgw.access") >= 3, what="access lines")
    lines = d.log.read_text().splitlines()
    assert not [line for line in lines if line.startswith(FORGED[:30]) or line.startswith("operator key")]
    assert all(not line.startswith("20") or re.match(r"\d{4}-\d\d-\d\d [\d:,]+ level=\w+ logger=", line)
               for line in lines)
    assert "\x1b" not in "".join(lines)


async def _leave_mid_body(port: int, request_id: str) -> None:
    body = body_bytes()
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(put_head(len(body), extra=f"X-Request-ID: {request_id}\r\n") + body[:300])
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_the_access_log_has_route_templates_and_request_ids(sandbox: Sandbox, tmp_path: Path) -> None:
    """With ``[server] access_log = true`` each request writes one line: method, route template
    (never the raw path with the dossier code), status, duration, the agency when its key was valid,
    and the request id: the client's ``X-Request-ID`` when short and safe, else a generated one,
    echoed in the response. Other lines about the request (a client leaving) carry the same id."""
    async with daemon(sandbox, tmp_path, server={"access_log": True}) as d, aiohttp.ClientSession() as http:
        headers = {"X-API-Key": AGENCY_KEY, "X-Request-ID": "agency-req-1"}
        async with http.put(f"{d.url}/v1/dossiers/{M}", json=sample_dossier(M), headers=headers) as r:
            assert r.status == 202 and r.headers["X-Request-ID"] == "agency-req-1"
        async with http.get(f"{d.url}/v1/dossiers/{M}", headers={"X-API-Key": AGENCY_KEY}) as r:
            assert r.status == 200
            generated = r.headers["X-Request-ID"]
            assert re.fullmatch(r"[0-9a-f]{16}", generated)
        async with http.put(f"{d.url}/v1/dossiers/{M}", json={}, headers={"X-Request-ID": "x" * 65}) as r:
            assert r.status == 401 and r.headers["X-Request-ID"] != "x" * 65
            unauthenticated = r.headers["X-Request-ID"]
        async with http.get(f"{d.url}/nowhere", headers={"X-Request-ID": "nowhere-1"}) as r:
            assert r.status == 404 and r.headers["X-Request-ID"] == "nowhere-1"
        await _leave_mid_body(d.port, "left-1")
        await wait_for(lambda: d.log.read_text().count("logger=dvcgw.access") >= 6, what="six access lines")
    text = d.log.read_text()
    access = {m["request_id"]: m for m in (dict(re.findall(r"(\w+)=(\S+)", line))
                                           for line in text.splitlines() if "logger=dvcgw.access" in line)}
    put = access["agency-req-1"]
    assert (put["method"], put["route"], put["status"], put["agency"]) == ("PUT", "/v1/dossiers/{MaHoSo}", "202", UNIT)
    assert float(put["duration_ms"]) >= 0
    assert access[generated]["route"] == "/v1/dossiers/{MaHoSo}" and access[generated]["status"] == "200"
    assert access[unauthenticated]["status"] == "401" and "agency" not in access[unauthenticated]
    assert access["nowhere-1"]["route"] == "-" and access["nowhere-1"]["status"] == "404"
    assert access["left-1"]["status"] == "499"
    about_left = [line for line in text.splitlines() if "left-1" in line]
    assert len(about_left) == 2 and all("request_id=left-1" in line for line in about_left), about_left
    assert M not in text and "/nowhere" not in text


async def test_json_log_lines(sandbox: Sandbox, tmp_path: Path) -> None:
    """With ``[log] format = "json"`` every line the daemon writes is one JSON object with ts (ISO
    8601), level, logger, message and request_id, plus the record's fields; no personal data."""
    async with daemon(sandbox, tmp_path, log={"format": "json"}, server={"access_log": True}) as d, \
            aiohttp.ClientSession() as http:
        headers = {"X-API-Key": AGENCY_KEY, "X-Request-ID": "json-1"}
        async with http.put(f"{d.url}/v1/dossiers/{M}", json=sample_dossier(M), headers=headers) as r:
            assert r.status == 202
        await _leave_mid_body(d.port, "json-2")
        await wait_for(lambda: "json-2" in d.log.read_text(), what="the disconnect line")
    text = d.log.read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines()]
    for rec in records:
        assert {"ts", "level", "logger", "message", "request_id"} <= rec.keys(), rec
        assert datetime.fromisoformat(rec["ts"]).utcoffset() is not None
    put = next(r for r in records if r["request_id"] == "json-1" and r["logger"] == "dvcgw.access")
    assert put["method"] == "PUT" and put["route"] == "/v1/dossiers/{MaHoSo}" and put["status"] == 202
    assert put["agency"] == UNIT and isinstance(put["duration_ms"], float)
    assert any(r["request_id"] == "json-2" and r["level"] == "INFO" and r["logger"] == "dvcgw.http" for r in records)
    assert [r["message"] for r in records if r["logger"] == "dvcgw.serve"][-1].startswith("stopped")
    assert secrets_in(text) == [] and M not in text
