"""The queue across a process boundary: the delivery worker process reaches the daemon's queue
through a Unix socket, so only the daemon ever touches the store.

Frames are a 4-byte big-endian length and a pickle of ``(request_id, method, args)`` one way and
``(request_id, ok, value)`` back; requests are multiplexed and answered concurrently. The socket
lives in a private directory (mode 0700) and joins a parent to its own child, so pickle carries
only our own dataclasses between two processes of one program. If the daemon goes away, every
call fails with :class:`QueueUnavailable` and :attr:`RemoteQueue.lost` is set: an orphaned worker
can do no harm to the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import pickle
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.errors import QueueUnavailable
from queues.api import DossierStatus, Outcome, QueueBackend, Work

_LEN = struct.Struct(">I")
# the engine's side of the contract; anything else is refused
ENGINE_METHODS = frozenset({"claim", "record", "wait_for_work", "next_due_at", "status", "unpark"})


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    (n,) = _LEN.unpack(await reader.readexactly(_LEN.size))
    return pickle.loads(await reader.readexactly(n))


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


class QueueServer:
    """Serves ``queue``'s engine methods, plus ``hello`` (returns ``hello_value``) and ``report``
    (the worker's metrics text and portal-gate state, kept in :attr:`report`)."""

    def __init__(self, queue: QueueBackend, path: str, hello_value: Any) -> None:
        self._queue = queue
        self._path = path
        self._hello = hello_value
        self._server: asyncio.AbstractServer | None = None
        self.report: tuple[bytes, dict[str, Any]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=self._path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lock = asyncio.Lock()
        try:
            while True:
                req_id, method, args = await _read_frame(reader)
                task = asyncio.create_task(self._answer(writer, lock, req_id, method, args))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, lock: asyncio.Lock, req_id: int, method: str,
                      args: tuple[Any, ...]) -> None:
        try:
            value = await self._call(method, args)
            reply = (req_id, True, value)
        except Exception as exc:  # sent back to the worker, which raises it there
            reply = (req_id, False, exc if isinstance(exc, QueueUnavailable) else QueueUnavailable(str(exc)))
        async with lock:
            with contextlib.suppress(ConnectionError):
                writer.write(_frame(reply))
                await writer.drain()

    async def _call(self, method: str, args: tuple[Any, ...]) -> Any:
        if method == "hello":
            return self._hello
        if method == "report":
            self.report = (args[0], args[1])
            return None
        if method not in ENGINE_METHODS:
            raise QueueUnavailable(f"method {method!r} is not served to the delivery worker")
        if method == "record":
            work, outcome, now, release = args
            return await self._queue.record(work, outcome, now, release=release)
        fn: Callable[..., Awaitable[Any]] = getattr(self._queue, method)
        return await fn(*args)


class RemoteQueue:
    """The engine-facing part of :class:`QueueBackend`, served by the daemon's :class:`QueueServer`."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self.lost = asyncio.Event()

    async def start(self) -> None:
        try:
            reader, self._writer = await asyncio.open_unix_connection(self._path)
        except OSError as exc:
            raise QueueUnavailable(f"cannot reach the daemon's queue at {self._path}: {exc}") from exc
        self._reader_task = asyncio.create_task(self._read(reader))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                req_id, ok, value = await _read_frame(reader)
                fut = self._waiting.pop(req_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(value) if ok else fut.set_exception(value)
        except (asyncio.IncompleteReadError, ConnectionError, EOFError):
            pass
        finally:
            self.lost.set()
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(QueueUnavailable("the daemon closed the queue connection"))
            self._waiting.clear()

    async def call(self, method: str, *args: Any) -> Any:
        if self._writer is None or self.lost.is_set():
            raise QueueUnavailable("the daemon's queue is not reachable")
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[req_id] = fut
        self._writer.write(_frame((req_id, method, args)))
        return await fut

    async def claim(self, limit: int, now: float) -> list[Work]:
        return await self.call("claim", limit, now)  # type: ignore[no-any-return]

    async def record(self, work: Work, outcome: Outcome, now: float, *, release: bool = True) -> None:
        await self.call("record", work, outcome, now, release)

    async def wait_for_work(self, timeout: float) -> None:
        await self.call("wait_for_work", timeout)

    async def next_due_at(self) -> float | None:
        return await self.call("next_due_at")  # type: ignore[no-any-return]

    async def status(self, mahoso: str) -> DossierStatus | None:
        return await self.call("status", mahoso)  # type: ignore[no-any-return]

    async def unpark(self, mahoso: str) -> None:
        await self.call("unpark", mahoso)
