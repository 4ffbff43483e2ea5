"""Serving a test double: an aiohttp application on 127.0.0.1, a port the OS chooses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def serving(app: web.Application, *, shutdown_timeout: float = 1.0) -> AsyncIterator[str]:
    """Serve ``app`` for the block's duration; yields its base URL (``http://127.0.0.1:<port>``)."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
