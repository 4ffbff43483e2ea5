"""HTTP acceptor processes (``[server] acceptors``): the public port is served by child processes
that validate and relay accepts to the daemon and forward every other request to it; they are
restarted when they die and never outlive the daemon."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.acceptor import acceptor_count, listen_sockets
from tests.daemon import Daemon, free_port, write_config
from tests.gateway.test_worker import _gone, children, until
from tests.harness import AGENCY_KEY, OPERATOR_KEY, UNIT, Sandbox
from tests.samples import sample_dossier, sample_progress

H = {"X-API-Key": AGENCY_KEY}


def code(i: int) -> str:
    return f"{UNIT}-240318-{i:05d}"


async def start(tmp_path: Path, sandbox: Sandbox, **sections: dict[str, Any]) -> Daemon:
    port = free_port()
    cfg = write_config(tmp_path / "gw.toml", port, sandbox.url, tmp_path / "gw.sqlite3", **sections)
    daemon = Daemon(cfg, port, tmp_path / "daemon.log")
    await daemon.start()
    return daemon


async def refused_on_a_fresh_connection(url: str, m: str, state: str) -> None:
    """PUT ``state`` on a new connection (whichever acceptor takes it): 409 naming the field."""
    async with aiohttp.ClientSession(headers=H) as fresh, fresh.put(
            f"{url}/v1/dossiers/{m}", json=sample_dossier(m, TrangThaiHoSo=state)) as r:
        assert r.status == 409
        body = await r.json()
        assert body["error"] == "invalid_transition"
        assert [e["field"] for e in body["errors"]] == ["TrangThaiHoSo"]


def metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


def test_acceptor_count_follows_the_cpus() -> None:
    """-1 means one per CPU up to 4 and none on one CPU; an explicit number is kept."""
    assert [acceptor_count(-1, n) for n in (1, 2, 3, 8)] == [0, 2, 3, 4]
    assert acceptor_count(0, 8) == 0
    assert acceptor_count(3, 1) == 3


@pytest.mark.parametrize("other_reuses_port", [False, True])
def test_a_port_in_use_is_refused_not_shared(other_reuses_port: bool) -> None:
    """The acceptors' SO_REUSEPORT sockets must not join a port another process listens on (a
    stale daemon of the same user would otherwise answer half the requests)."""
    other = socket.socket()
    if other_reuses_port:  # another daemon's acceptor group
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.1", 0))
    other.listen()
    try:
        port = other.getsockname()[1]
        for count, reuse in ((2, True), (1, False)):
            with pytest.raises(OSError):
                listen_sockets("127.0.0.1", port, count, reuse_port=reuse)
    finally:
        other.close()
    socks = listen_sockets("127.0.0.1", port, 2)  # free again: the group shares it
    assert {s.getsockname()[1] for s in socks} == {port}
    for s in socks:
        s.close()


async def test_acceptors_serve_every_route_and_metrics_count_each_accept_once(
        sandbox: Sandbox, tmp_path: Path) -> None:
    """With two acceptors, accepts are relayed and answered 202 with rising sequences; status,
    operator, metrics and unknown routes come from the daemon; refusals keep the house shape; the
    daemon's /metrics counts every accept exactly once, latency included; all reach the portal."""
    daemon = await start(tmp_path, sandbox, server={"acceptors": 2})
    assert daemon.proc is not None
    try:
        assert len(children(daemon.proc.pid, "_accept")) == 2
        async with aiohttp.ClientSession(headers=H) as http:

            async def put(i: int) -> dict[str, Any]:
                async with http.put(f"{daemon.url}/v1/dossiers/{code(i)}", json=sample_dossier(code(i))) as r:
                    assert r.status == 202, await r.text()
                    return dict(await r.json())

            first = await asyncio.gather(*(put(i) for i in range(20)))
            again = await put(0)
            assert all(a["sequence"] == 1 for a in first) and again["sequence"] == 2
            progress = sample_progress(code(0), n=1)
            async with http.post(f"{daemon.url}/v1/dossiers/{code(0)}/progress", json=progress) as r:
                assert r.status == 202, await r.text()
                assert (await r.json())["sequence"] == 3

            async with http.get(f"{daemon.url}/v1/dossiers/{code(5)}") as r:
                assert r.status == 200 and (await r.json())["accepted_state"] is not None
            async with http.put(f"{daemon.url}/v1/dossiers/{code(1)}", json={"MaHoSo": code(1)}) as r:
                assert r.status == 422
                assert "TrangThaiHoSo" in {e["field"] for e in (await r.json())["errors"]}
            async with http.put(f"{daemon.url}/v1/dossiers/{code(1)}", data=b"{", headers={
                    "Content-Type": "application/json"}) as r:
                assert r.status == 400 and (await r.json())["error"] == "malformed_json"
            async with http.put(f"{daemon.url}/v1/dossiers/{code(1)}", json={}, headers={"X-API-Key": "nope"}) as r:
                assert r.status == 401
            async with http.get(f"{daemon.url}/v1/nothing-here") as r:
                assert r.status == 404 and (await r.json())["error"] == "not_found"
            async with http.get(f"{daemon.url}/v1/dead-letters", headers={"X-API-Key": OPERATOR_KEY}) as r:
                assert r.status == 200 and (await r.json())["items"] == []

            async def counted() -> bool:
                async with http.get(f"{daemon.url}/metrics") as r:
                    text = await r.text()
                return (metric(text, 'dvcgw_events_accepted_total{kind="snapshot"}') == 21
                        and metric(text, 'dvcgw_events_accepted_total{kind="progress"}') == 1
                        and metric(text, "dvcgw_accept_duration_seconds_count") == 21)
            await until(counted, timeout=10)

        async def all_delivered() -> bool:
            rec = await sandbox.record()
            return all(code(i) in rec["dossiers"] for i in range(20))
        await until(all_delivered)
    finally:
        await daemon.kill()


async def test_a_refused_transition_comes_back_through_an_acceptor(sandbox: Sandbox, tmp_path: Path) -> None:
    """Under ``enforce``, the daemon decides the transition for a relayed PUT and the acceptor
    answers its 409 with the field; nothing is appended."""
    daemon = await start(tmp_path, sandbox, server={"acceptors": 2}, transitions={"enforce": True})
    m = code(77)
    try:
        async with aiohttp.ClientSession(headers=H) as http:
            async with http.put(f"{daemon.url}/v1/dossiers/{m}", json=sample_dossier(m, TrangThaiHoSo="3")) as r:
                assert r.status == 202
            for _ in range(3):
                await refused_on_a_fresh_connection(daemon.url, m, "4")
            async with http.get(f"{daemon.url}/v1/dossiers/{m}") as r:
                assert (await r.json())["accepted_state"] == "3"
    finally:
        await daemon.kill()


async def test_acceptors_are_restarted_and_never_outlive_the_daemon(sandbox: Sandbox, tmp_path: Path) -> None:
    """A killed acceptor is replaced and accepting goes on; a killed daemon takes its acceptors."""
    daemon = await start(tmp_path, sandbox, server={"acceptors": 2})
    assert daemon.proc is not None
    pid = daemon.proc.pid
    try:
        before = children(pid, "_accept")
        assert len(before) == 2
        os.kill(before[0], signal.SIGKILL)

        async def replaced() -> bool:
            now = children(pid, "_accept")
            return len(now) == 2 and before[0] not in now
        await until(replaced)
        async with aiohttp.ClientSession(headers=H) as http:
            for i in range(10):  # new connections land on either acceptor
                async with aiohttp.ClientSession(headers=H) as fresh, fresh.put(
                        f"{daemon.url}/v1/dossiers/{code(100 + i)}", json=sample_dossier(code(100 + i))) as r:
                    assert r.status == 202
            async with http.get(f"{daemon.url}/v1/dossiers/{code(109)}") as r:
                assert r.status == 200
        survivors = children(pid, "_accept")
    finally:
        await daemon.kill()
    for child in survivors:
        await until(lambda c=child: _gone(c), timeout=10)  # type: ignore[misc]


@pytest.mark.parametrize("sections", [{"server": {"acceptors": 0}},
                                      {"server": {"acceptors": 2}, "queue": {"backend": "memory"}},
                                      {"server": {"acceptors": 0, "fast_accept": False}}],
                         ids=["acceptors-0", "memory-queue", "aiohttp-only"])
async def test_zero_acceptors_serves_from_the_daemon(sandbox: Sandbox, tmp_path: Path,
                                                    sections: dict[str, dict[str, Any]]) -> None:
    """``acceptors = 0``, or the memory queue (which only the daemon's process can append to):
    no acceptor processes; the daemon answers on the public port itself, through the HTTP front
    unless ``fast_accept`` is off (aiohttp's answers carry a ``Server`` header; the front's do not)."""
    fast = sections["server"].get("fast_accept", True)
    daemon = await start(tmp_path, sandbox, **sections)
    assert daemon.proc is not None
    try:
        assert children(daemon.proc.pid, "_accept") == []
        async with aiohttp.ClientSession(headers=H) as http:
            async with http.put(f"{daemon.url}/v1/dossiers/{code(1)}", json=sample_dossier(code(1))) as r:
                assert r.status == 202
                assert ("Server" in r.headers) is not fast
            async with http.get(f"{daemon.url}/v1/dossiers/{code(1)}") as r:  # not the front's: aiohttp
                assert r.status == 200 and "Server" in r.headers
    finally:
        await daemon.kill()
