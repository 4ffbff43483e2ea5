"""Issue 18: deploy/dvcgw.service is ``Type=notify``; the daemon tells systemd ``READY=1`` once it
serves and ``STOPPING=1`` when it drains (gateway.sdnotify). A real AF_UNIX datagram socket stands
in for systemd's, and a real ``dvcgw serve`` subprocess sends to it."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from gateway.sdnotify import notify
from tests.daemon import Daemon, free_port, write_config
from tests.harness import Sandbox


@contextmanager
def notify_socket(abstract: bool = False) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket and the ``$NOTIFY_SOCKET`` value naming it. A path socket lives in a
    short /tmp folder: AF_UNIX paths are limited to 108 bytes, and pytest's tmp_path can be longer."""
    folder = tempfile.mkdtemp(prefix="dvcgw-sd-")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        if abstract:
            name = f"dvcgw-test-{uuid.uuid4().hex}"
            sock.bind("\0" + name)
            yield sock, "@" + name
        else:
            path = os.path.join(folder, "notify")
            sock.bind(path)
            yield sock, path
    finally:
        sock.close()
        shutil.rmtree(folder, ignore_errors=True)


def receive(sock: socket.socket, timeout: float) -> str:
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notify_sends_one_datagram_to_the_named_socket(abstract: bool) -> None:
    """notify() sends its state as one datagram to a path socket or an abstract one (``@name``)."""
    with notify_socket(abstract) as (sock, address):
        assert notify("READY=1\nSTATUS=x", address) is True
        assert receive(sock, 5) == "READY=1\nSTATUS=x"


def test_notify_without_a_socket_sends_nothing_and_a_dead_socket_is_only_a_warning(
        caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """No ``$NOTIFY_SOCKET`` (not under systemd): nothing is sent. A socket that is gone, or a value
    that is not an address, is a logged warning and False, never an exception in the daemon."""
    assert notify("READY=1", "") is False
    with caplog.at_level(logging.WARNING, logger="dvcgw.serve"):
        assert notify("READY=1", str(tmp_path / "no-such-socket")) is False
        assert notify("READY=1", "relative/path") is False
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


@pytest.mark.slow
async def test_the_daemon_notifies_ready_when_it_serves_and_stopping_when_it_drains(
        sandbox: Sandbox, tmp_path: Path) -> None:
    """Under a real ``dvcgw serve``: READY=1 (with MAINPID = its pid) arrives only when /readyz already
    answers 200, nothing else arrives before it, and SIGTERM brings STOPPING=1, then exit status 0."""
    with notify_socket() as (sock, address):
        port = free_port()
        cfg = write_config(tmp_path / "gw.toml", port, sandbox.url, tmp_path / "gw.sqlite3")
        d = Daemon(cfg, port, tmp_path / "daemon.log", env={"NOTIFY_SOCKET": address})
        started = time.monotonic()
        await d.start()  # returns once /readyz answered 200
        assert d.proc is not None
        try:
            ready = await asyncio.to_thread(receive, sock, 30)
            assert ready.startswith("READY=1\n"), ready
            assert f"MAINPID={d.proc.pid}" in ready.splitlines()
            async with aiohttp.ClientSession() as http, http.get(f"{d.url}/readyz") as r:
                assert r.status == 200
            d.proc.send_signal(signal.SIGTERM)
            stopping = await asyncio.to_thread(receive, sock, 30)
            assert stopping.startswith("STOPPING=1\n"), stopping
            assert await asyncio.wait_for(d.proc.wait(), 20) == 0
        finally:
            await d.stop()
    assert time.monotonic() - started < 60


@pytest.mark.slow
async def test_ready_is_not_sent_before_the_daemon_serves(sandbox: Sandbox, tmp_path: Path) -> None:
    """The READY=1 datagram is read the moment it arrives, and /readyz is asked straight after: it
    already answers 200 (the notification follows the listener and the application's start-up)."""
    with notify_socket(abstract=True) as (sock, address):
        port = free_port()
        cfg = write_config(tmp_path / "gw.toml", port, sandbox.url, tmp_path / "gw.sqlite3")
        d = Daemon(cfg, port, tmp_path / "daemon.log", env={"NOTIFY_SOCKET": address})
        env = {k: v for k, v in os.environ.items() if not k.startswith("DVCGW_")} | d.extra_env
        with d.log.open("ab") as log:
            d.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway", "serve", "--config", str(cfg), stdout=log, stderr=log, env=env)
        try:
            ready = await asyncio.to_thread(receive, sock, 60)
            assert ready.startswith("READY=1"), ready
            async with aiohttp.ClientSession() as http, http.get(f"{d.url}/readyz") as r:
                assert r.status == 200, await r.text()
        finally:
            await d.stop()
