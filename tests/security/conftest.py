"""Fixtures of the access tests: a test PKI, and the real gateway app served over TLS on 127.0.0.1 port 0."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from config.schema import Settings
from gateway.app import create_app
from gateway.serving import make_runner
from gateway.tls import server_context
from tests.fakes.portal import FakeClock
from tests.security.pki import Pki, build_pki
from tests.signing.env import World, build_world


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return build_pki(tmp_path_factory.mktemp("access-pki"))


@asynccontextmanager
async def served(settings: Settings, clock: FakeClock | None = None) -> AsyncIterator[tuple[str, web.Application]]:
    """``create_app(settings)`` behind the daemon's runner (its deadlines) and, where
    ``[server] tls_cert`` is set, the daemon's TLS context: a real listener, a real handshake."""
    app = create_app(settings, clock=clock or FakeClock(start=time.time()), run_engine=False)
    runner = make_runner(app, settings)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    tls = server_context(settings.server)
    await web.SockSite(runner, sock, ssl_context=tls).start()
    port = sock.getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}", app
    finally:
        await runner.cleanup()


def pki_server(pki: Pki, mode: str = "optional") -> dict[str, str]:
    """[server] for TLS with client certificates from the test PKI's CA."""
    return {"tls_cert": str(pki.server.cert_path), "tls_key": str(pki.server.key_path),
            "client_ca": str(pki.ca.cert_path), "client_cert": mode}




@pytest.fixture(scope="session")
def signing_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The signing tests' PKI and TSAs (no SoftHSM): a file key to grant or not."""
    w = build_world(tmp_path_factory.mktemp("access-signing-world"), with_hsm=False)
    yield w
    w.close()
