"""Runs aiohttp applications on 127.0.0.1 in one background event-loop thread.

Session-wide servers (PKI responders, TSA, remote signer, a gateway) then outlive each test's own
event loop; tests talk to them over real sockets.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


class ServerThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-servers", daemon=True)
        self._thread.start()
        self._runners: list[web.AppRunner] = []

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def serve(self, app: web.Application, port: int = 0) -> tuple[str, web.AppRunner]:
        """Starts ``app`` (its cleanup_ctx runs now); returns its base URL and runner."""
        return self.call(self._start(app, port))

    async def _start(self, app: web.Application, port: int) -> tuple[str, web.AppRunner]:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self._runners.append(runner)
        return f"http://127.0.0.1:{sock.getsockname()[1]}", runner

    def stop(self, runner: web.AppRunner) -> None:
        """Stops one app: its cleanup_ctx runs, like a daemon shutting down."""
        self._runners.remove(runner)
        self.call(runner.cleanup())

    def close(self) -> None:
        for runner in reversed(self._runners):
            self.call(runner.cleanup())
        self._runners.clear()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
