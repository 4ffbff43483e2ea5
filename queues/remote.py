"""The queue across a process boundary: a child process reaches the daemon's queue through a Unix
socket. On Kafka the delivery worker and the HTTP acceptors work only through it; on SQLite, where
they write the store themselves, they use it for their hello, reports, tallies and wake-ups.

Frames are a 4-byte big-endian length and a pickle of ``(request_id, method, args)`` one way and
``(request_id, ok, value)`` back; requests are multiplexed and answered concurrently. The socket
lives in a private directory (mode 0700) and joins a parent to its own child, so pickle carries
only our own dataclasses between two processes of one program. If the daemon goes away, every
call fails with :class:`QueueUnavailable` and :attr:`RemoteQueue.lost` is set: an orphaned worker
can do no harm to the store.
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
import struct
from collections.abc import Awaitable, Callable
from typing import Any, cast

from core.errors import QueueUnavailable
from queues.api import DossierStatus, Outcome, QueueBackend, Work

_LEN = struct.Struct(">I")
# the engine's side of the contract; anything else is refused
ENGINE_METHODS = frozenset({"claim", "record", "wait_for_work", "next_due_at", "status", "unpark"})


class _Frames(asyncio.Protocol):
    """Length-prefixed pickle frames over a Unix stream. Frames sent in one loop turn leave in one
    write (no per-frame syscall, lock or drain): the acceptors send thousands of calls a second."""

    def __init__(self, on_frame: Callable[[Any], None], on_lost: Callable[[], None]) -> None:
        self._on_frame, self._on_lost = on_frame, on_lost
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos, end = 0, len(buf)
        view = memoryview(buf)
        try:
            while end - pos >= _LEN.size:
                (size,) = _LEN.unpack_from(buf, pos)
                if end - pos - _LEN.size < size:
                    break
                frame = pickle.loads(view[pos + _LEN.size:pos + _LEN.size + size])
                pos += _LEN.size + size
                self._on_frame(frame)
        finally:
            view.release()
            del buf[:pos]

    def send(self, obj: Any) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(_LEN.pack(len(data)))
        self._out.append(data)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(out))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost()


class QueueServer:
    """Serves ``queue``'s engine methods, plus ``hello`` (returns ``hello_value``), ``report``
    (the worker's metrics text and portal-gate state, kept in :attr:`report`) and the ``extra``
    methods given (the HTTP acceptors' calls, see ``gateway.acceptor``)."""

    def __init__(self, queue: QueueBackend, path: str, hello_value: Any,
                 extra: dict[str, Callable[..., Awaitable[Any]]] | None = None) -> None:
        self._queue = queue
        self._extra = dict(extra or {})
        self._path = path
        self._hello = hello_value
        self._server: asyncio.AbstractServer | None = None
        self.report: tuple[bytes, dict[str, Any]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(self._connection, path=self._path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _connection(self) -> _Frames:
        frames: _Frames

        def on_frame(frame: Any) -> None:
            req_id, method, args = frame
            task = asyncio.create_task(self._answer(frames, req_id, method, args))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        frames = _Frames(on_frame, lambda: None)
        return frames

    async def _answer(self, frames: _Frames, req_id: int, method: str, args: tuple[Any, ...]) -> None:
        try:
            value = await self._call(method, args)
            reply = (req_id, True, value)
        except Exception as exc:  # sent back to the caller, which raises it there
            reply = (req_id, False, exc if isinstance(exc, QueueUnavailable) else QueueUnavailable(str(exc)))
        frames.send(reply)

    async def _call(self, method: str, args: tuple[Any, ...]) -> Any:
        if method == "hello":
            return self._hello
        if method == "report":
            self.report = (args[0], args[1])
            return None
        if method in self._extra:
            return await self._extra[method](*args)
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
        self._frames: _Frames | None = None
        self.lost = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, self._frames = await loop.create_unix_connection(
                lambda: _Frames(self._on_frame, self._on_lost), self._path)
        except OSError as exc:
            raise QueueUnavailable(f"cannot reach the daemon's queue at {self._path}: {exc}") from exc

    async def close(self) -> None:
        if self._frames is not None:
            self._frames.close()

    def _on_frame(self, frame: Any) -> None:
        req_id, ok, value = frame
        fut = self._waiting.pop(req_id, None)
        if fut is not None and not fut.done():
            fut.set_result(value) if ok else fut.set_exception(value)

    def _on_lost(self) -> None:
        self.lost.set()
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(QueueUnavailable("the daemon closed the queue connection"))
        self._waiting.clear()

    async def call(self, method: str, *args: Any) -> Any:
        if self._frames is None or self.lost.is_set():
            raise QueueUnavailable("the daemon's queue is not reachable")
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[req_id] = fut
        self._frames.send((req_id, method, args))
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
