"""Issue 13: how a client that leaves mid-request is logged. A real ``dvcgw serve`` subprocess,
raw sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.gateway.test_logs import M, body_bytes, daemon, put_head, wait_for
from tests.harness import Sandbox


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "level=ERROR" in line or "Traceback" in line]


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

