"""The event loop the daemon and the sandbox run on."""

from __future__ import annotations

import asyncio
import os


def use_fast_loop() -> None:
    """Run on uvloop (libuv) where it is installed: the same asyncio API, with the loop,
    transports and timers in C. ``DVCGW_EVENT_LOOP=asyncio`` keeps the standard loop."""
    if os.environ.get("DVCGW_EVENT_LOOP", "uvloop") != "uvloop":
        return
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
