"""``FileWorker``: the shape every background service with a SQLite file of its own shares (the
durable jobs, the procedure catalogue, the inbound puller): one connection, used by one worker
thread so that file work runs in order and off the event loop, and at most one background task.

A subclass opens its connection in its own ``start`` (through :meth:`_in_thread`), starts its loop
with :meth:`_start_task`, and reaches the connection through :meth:`_connection`, which raises
what :meth:`_not_started` returns when the service is not open. :meth:`close` stops the task,
closes the connection on the worker thread and ends the thread, in that order.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class FileWorker:
    def __init__(self, thread_name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the worker thread (file work, in the order it was asked)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _start_task(self, loop: Coroutine[Any, Any, None], name: str) -> None:
        self._task = asyncio.create_task(loop, name=name)

    def _not_started(self) -> Exception:
        return RuntimeError(f"{type(self).__name__} is not started")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise self._not_started()
        return self._conn

    async def close(self) -> None:
        """Stop the background task, close the file, end the worker thread."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._in_thread(conn.close)
        self._executor.shutdown(wait=True)
