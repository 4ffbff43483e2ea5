"""Fixtures for adapter tests: a real sandbox on 127.0.0.1:0, an aiohttp client session, and a guard
that keeps a test's traffic on the loopback interface."""

from __future__ import annotations

import errno
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.portal import SandboxHandle, running_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    async with running_sandbox() as sb:
        yield sb


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Refuse, and record, every connection or name lookup to a host other than the loopback one
    (also from worker threads); the test fails if any was attempted. Yields the record."""
    attempts: list[object] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def outward(sock: socket.socket, address: Any) -> bool:
        return sock.family in (socket.AF_INET, socket.AF_INET6) and str(address[0]) not in _LOOPBACK

    def connect(sock: socket.socket, address: Any) -> None:
        if outward(sock, address):
            attempts.append(address)
            raise OSError(f"test: connection to {address[0]} refused (loopback only)")
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if outward(sock, address):
            attempts.append(address)
            return errno.ECONNREFUSED
        return real_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and str(name) not in _LOOPBACK:
            attempts.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"test: lookup of {name} refused (loopback only)")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    assert not attempts, f"the test tried to reach beyond 127.0.0.1: {attempts}"
