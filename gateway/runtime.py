"""Interpreter and event-loop settings of the daemon's long-running processes (the daemon, its
HTTP acceptors and its delivery worker)."""

from __future__ import annotations

import asyncio
import gc
import os
import sys


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


def tune() -> None:
    """Interpreter settings for a long-running server process: start-up objects leave the cyclic
    GC's view (``gc.freeze``), young collections are rarer (requests' short-lived objects die
    young instead of being promoted), and a thread returning from the store's fsync gets the GIL
    back within 0.5 ms instead of 5 ms."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
    sys.setswitchinterval(0.0005)
