"""The daemon's child processes (the delivery worker, the HTTP acceptors): each started, restarted
when it dies, and stopped by SIGTERM, the same way."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Sequence

log = logging.getLogger("dvcgw.children")


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Linux: have ``sig`` sent to this process when its parent (the daemon) dies; exit at once if
    the parent is already gone (it died before the signal was armed)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(sig))  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        raise SystemExit(1)


class ChildProcess:
    """One child process run from ``argv``. If it dies, it is started again after a backoff that
    doubles from ``first`` up to ``cap`` seconds (back to ``first`` after a minute of life)."""

    def __init__(self, name: str, argv: Sequence[str], *, pass_fds: Sequence[int] = (),
                 first: float, cap: float) -> None:
        self.name = name
        self._argv = list(argv)
        self._pass_fds = tuple(pass_fds)
        self._first, self._cap = first, cap
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0

    async def start(self) -> None:
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"dvcgw-supervise-{self.name}")

    async def _spawn(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(*self._argv, pass_fds=self._pass_fds)

    async def _supervise(self) -> None:
        backoff = self._first
        while not self._stopping:
            assert self._proc is not None
            started = time.monotonic()
            code = await self._proc.wait()
            if self._stopping:
                return
            log.error("%s exited with %s; restarting in %.1f s", self.name, code, backoff)
            await asyncio.sleep(backoff)
            backoff = self._first if time.monotonic() - started > 60 else min(backoff * 2, self._cap)
            self.restarts += 1
            await self._spawn()

    async def stop(self, grace: float) -> None:
        """SIGTERM the child and give it ``grace`` (+5 s) to finish its work and exit; then kill it."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace + 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
