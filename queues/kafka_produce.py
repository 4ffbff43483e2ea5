"""Producing to the Kafka backend's topics, and the small helpers every part of the backend shares
(partitioning by ``MaHoSo``, client options, the error edge :func:`guard`).

Each :class:`~queues.kafka.KafkaQueue` has one :class:`Producing`: an idempotent ``acks=all``
producer, replaced when one of its batches failed, and paused while the broker is unreachable.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError

from config.schema import KafkaSettings
from core.errors import QueueUnavailable

log = logging.getLogger("queues.kafka")
T = TypeVar("T")
# a record for Producing.send_batches: key, value, headers, partition
Record = tuple[bytes, bytes | None, list[tuple[str, bytes]], int]


# While the broker is unreachable a new producer is tried at most this often.
BACKOFF_S = 1.0
# Every client waits this long before retrying a failed request (aiokafka: 100 ms). Through an
# outage the consumers' fetch, coordinator and metadata retries cost ~4 % of a core at 100 ms and
# ~1 % at 500 ms; a longer wait also delays each retry at start-up and after the broker returns
# (~0.4 s more per start on fresh topics). docs/decisions.md, "2026-12-06: a broker outage".
RETRY_BACKOFF_MS = 500

_M = 0x5BD1E995
_WORDS: dict[int, struct.Struct] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``, the default partitioner's
    hash), as an unsigned 32-bit value: the same results as aiokafka's, in half its time (the
    four-byte words are unpacked at once, and the masks only where a product can overflow)."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = _WORDS.get(length >> 2)
    if words is None:
        words = _WORDS[length >> 2] = struct.Struct(f"<{length >> 2}I")
    for k in words.unpack_from(data):
        k = (k * _M) & 0xFFFFFFFF
        k ^= k >> 24
        h = ((h * _M) & 0xFFFFFFFF) ^ ((k * _M) & 0xFFFFFFFF)
    tail, base = length & 3, length & ~3
    if tail >= 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h = ((h ^ data[base]) * _M) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * _M) & 0xFFFFFFFF
    return h ^ (h >> 15)


@functools.lru_cache(maxsize=1 << 16)
def partition_of(mahoso: str, partitions: int) -> int:
    """The partition of a dossier: Kafka's default partitioner (murmur2 of the UTF-8 key), so any
    Kafka client producing by key agrees; cached, since the hot path asks several times per event."""
    return (murmur2(mahoso.encode()) & 0x7FFFFFFF) % partitions


def client_options(k: KafkaSettings) -> dict[str, Any]:
    """aiokafka connection options (bootstrap, TLS, SASL, retry back-off) from ``[queue.kafka]``;
    every client the queue makes (producer, consumers, admin) gets them."""
    opts: dict[str, Any] = {"bootstrap_servers": k.bootstrap_servers, "security_protocol": k.security_protocol,
                            "request_timeout_ms": int(k.request_timeout * 1000), "retry_backoff_ms": RETRY_BACKOFF_MS}
    if k.sasl_mechanism:
        opts.update(sasl_mechanism=k.sasl_mechanism, sasl_plain_username=k.sasl_plain_username,
                    sasl_plain_password=k.sasl_plain_password)
    if k.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        opts["ssl_context"] = create_ssl_context(
            cafile=k.ssl_cafile or None, certfile=k.ssl_certfile or None, keyfile=k.ssl_keyfile or None)
    return opts


def fetch_options(k: KafkaSettings) -> dict[str, Any]:
    """The fetch settings of the pump's and the view's consumers (``fetch_max_wait``,
    ``fetch_min_bytes``): the broker answers a fetch once that much data is there or the wait ends."""
    return {"fetch_max_wait_ms": round(float(k.fetch_max_wait) * 1000), "fetch_min_bytes": k.fetch_min_bytes}


async def guard(what: str, aw: Awaitable[T], timeout: float) -> T:
    """Await ``aw``; Kafka errors and time-outs become QueueUnavailable (the edge of the backend).
    ``asyncio.timeout``, not ``wait_for``: no extra task per call on the accept path."""
    try:
        async with asyncio.timeout(timeout):
            return await aw
    except (KafkaError, TimeoutError, OSError) as exc:
        raise QueueUnavailable(f"kafka: {what} failed: {type(exc).__name__}") from exc


async def quietly(aw: Awaitable[Any], timeout: float) -> None:
    """Await ``aw`` for at most ``timeout`` and swallow its failure. aiokafka's ``stop()`` can leak
    the CancelledError of its own fetch tasks; that one is swallowed too, unless the caller itself
    is being cancelled."""
    try:
        await asyncio.wait_for(aw, timeout)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception:  # shutdown of a client that may already be broken
        pass


async def _kill_producer(producer: AIOKafkaProducer, flush: float = 3.0) -> None:
    """Stop ``producer`` for good, bounded: flush what the broker still takes within ``flush``
    seconds, then cancel its sender and close its connections, so none of its pending batches can
    land later (behind records of the producer that replaces it). With ``flush = 0`` the sender is
    cancelled first: nothing is waited for."""
    before = asyncio.all_tasks()
    if flush > 0:
        await quietly(producer.stop(), flush)
    task = _sender_task(producer)
    if task is not None and not task.done():
        task.cancel()
        await quietly(task, 2.0)
    await quietly(producer.stop(), 2.0)  # marks it closed (no-op when the flush above did)
    await quietly(producer.client.close(), 2.0)
    _cancel_flushes(asyncio.all_tasks() - before)


def _cancel_flushes(tasks: set[asyncio.Task[Any]]) -> None:
    """aiokafka's ``stop()`` flushes in a task of its own (``MessageAccumulator.close``) that waits
    for every pending batch; with the sender cancelled they never complete, and the task, collected
    while pending, would log "Task was destroyed but it is pending!". Cancel the ones ``stop()``
    started (looked up by name among the tasks created meanwhile: if aiokafka renames it, one such
    line is the cost)."""
    for t in tasks:
        if not t.done() and getattr(t.get_coro(), "__qualname__", "") == "MessageAccumulator.close":
            t.cancel()


def _sender_task(producer: AIOKafkaProducer) -> asyncio.Task[Any] | None:
    """aiokafka's sender task (private: looked up defensively)."""
    return getattr(getattr(producer, "_sender", None), "sender_task", None)


def _sender_dead(producer: AIOKafkaProducer) -> bool:
    task = _sender_task(producer)
    return task is not None and task.done()


class Producing:
    """The producer of one queue: idempotent, ``acks=all``, ``linger_ms=2``. ``observe(kind,
    seconds)`` gets the acknowledgement time of every successful send.

    *Paused* while the broker is unreachable (:meth:`pause`, or a producer that cannot start):
    every send then fails at once with KafkaConnectionError (callers answer 503 or retry later),
    and a new producer is tried at most every :data:`BACKOFF_S` by the next send (at once after
    :meth:`retry_now`)."""

    def __init__(self, opts: dict[str, Any], observe: Callable[[str, float], None]) -> None:
        self._opts = opts
        self._observe = observe
        self._producer: AIOKafkaProducer | None = None
        self._broken = False
        self._lock = asyncio.Lock()
        self._outstanding: set[asyncio.Future[Any]] = set()  # sends of the current producer not resolved yet
        self._moved_at = 0.0  # perf_counter of the last resolution, or of the first send after none were pending
        self._paused_until: float | None = None  # time.monotonic() before which no new producer is tried

    async def send(self, topic: str, key: bytes, value: bytes | None, headers: list[tuple[str, bytes]],
                   partition: int | None, kind: str) -> asyncio.Future[Any]:
        """Hand one record to the producer; the future resolves with its metadata once acknowledged."""
        producer = await self._ready()
        started = time.perf_counter()
        fut = await producer.send(topic, value=value, key=key, headers=headers, partition=partition)
        return self._watch(fut, producer, kind, started, 1)

    async def send_batches(self, topic: str, records: Sequence[Record], kind: str) -> list[asyncio.Future[Any]]:
        """Hand ``records`` (key, value, headers, partition) to the producer as one batch per
        partition (a full batch is followed by another): a third less CPU per record than
        :meth:`send` one by one. One future per batch, resolved once it is acknowledged; the order
        of ``records`` within a partition is kept."""
        producer = await self._ready()
        started = time.perf_counter()
        by_part: dict[int, list[Record]] = {}
        for r in records:
            by_part.setdefault(r[3], []).append(r)
        futs: list[asyncio.Future[Any]] = []
        for part, rs in by_part.items():
            batch, n = producer.create_batch(), 0
            for key, value, headers, _ in rs:
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    futs.append(self._watch(await producer.send_batch(batch, topic, partition=part),
                                            producer, kind, started, n))
                    batch, n = producer.create_batch(), 0
                    batch.append(key=key, value=value, timestamp=None, headers=headers)  # an empty batch takes any
                n += 1
            futs.append(self._watch(await producer.send_batch(batch, topic, partition=part),
                                    producer, kind, started, n))
        return futs

    async def _ready(self) -> AIOKafkaProducer:
        """The current producer when it is usable (no lock on the hot path), else :meth:`live`."""
        producer = self._producer
        if producer is None or self._broken or _sender_dead(producer):
            producer = await self.live()
        return producer

    def _watch(self, fut: asyncio.Future[Any], producer: AIOKafkaProducer, kind: str, started: float,
               n: int) -> asyncio.Future[Any]:
        observe = self._observe
        outstanding = self._outstanding
        if not outstanding:
            self._moved_at = started
        outstanding.add(fut)

        def done(f: asyncio.Future[Any]) -> None:
            now = time.perf_counter()
            outstanding.discard(f)
            self._moved_at = now
            if f.cancelled():
                return
            if f.exception() is None:  # also marks a failure retrieved: nobody may be waiting any more
                for _ in range(n):
                    observe(kind, now - started)
            elif self._producer is producer:
                self._broken = True

        fut.add_done_callback(done)
        return fut

    def stalled(self, seconds: float) -> bool:
        """Whether sends are waiting and none was acknowledged (or failed) for ``seconds``."""
        return bool(self._outstanding) and time.perf_counter() - self._moved_at >= seconds

    def paused(self) -> bool:
        """Whether a send would fail at once now (paused, and the next producer is not due yet)."""
        return self._paused_until is not None and time.monotonic() < self._paused_until

    async def pause(self) -> None:
        """The broker is unreachable: kill the producer at once and pause (the caller logs it).
        aiokafka's sender forces a metadata update after every failed one, with no back-off, while a
        partition it holds a batch for has no known leader (a broker that shut down reported none):
        a busy loop until the batch expires (``request_timeout``), and again for each new send. The
        sends in flight fail at once with KafkaConnectionError: never acknowledged, as if timed out."""
        async with self._lock:
            old, self._producer = self._producer, None
            self._paused_until = time.monotonic() + BACKOFF_S
            if old is not None:
                await self._retire(old, flush=0)

    def retry_now(self) -> None:
        """The broker answers again: let the next send try a new producer without waiting."""
        if self._paused_until is not None:
            self._paused_until = time.monotonic()

    async def _retire(self, producer: AIOKafkaProducer, flush: float = 3.0) -> None:
        """Kill ``producer``; what it still held will never be acknowledged, so its sends fail now
        rather than at their callers' time-outs."""
        await _kill_producer(producer, flush)
        for fut in list(self._outstanding):
            if not fut.done():
                fut.set_exception(KafkaConnectionError("the producer was stopped before the broker acknowledged"))
        self._outstanding.clear()

    async def live(self) -> AIOKafkaProducer:
        """The producer, replaced first when one of its batches failed or its sender died.

        aiokafka's idempotent producer does not recover from a sequence gap (a batch that expired
        while the broker was away): every later send fails with OutOfOrderSequenceNumber. A new
        producer gets a new producer id, so its sequences start afresh. The old one is killed before
        the new one sends, so nothing it still held can land behind the new one's records.

        Paused: raises KafkaConnectionError at once until :data:`BACKOFF_S` after the last attempt;
        a producer that cannot start pauses (or keeps paused), one that starts resumes."""
        async with self._lock:
            old = self._producer
            if old is not None and not self._broken and not _sender_dead(old):
                return old
            if self.paused():
                raise KafkaConnectionError("broker unreachable: producing paused")
            self._producer, self._broken = None, False
            if old is not None:
                log.warning("kafka producer failed; replacing it")
                await self._retire(old)
            new = AIOKafkaProducer(acks="all", enable_idempotence=True, linger_ms=2, **self._opts)
            try:
                await new.start()
            except BaseException:
                if self._paused_until is None:
                    log.warning("kafka producer cannot start: producing paused (sends fail at once; a new "
                                "producer is tried every %.0f s)", BACKOFF_S)
                self._paused_until = time.monotonic() + BACKOFF_S
                await _kill_producer(new)
                raise
            if self._paused_until is not None:
                log.info("kafka broker reachable again: producing resumed")
                self._paused_until = None
            self._producer = new
            return new

    async def close(self) -> None:
        """Flush and stop (bounded, even with a dead broker)."""
        if self._producer is not None:
            await quietly(self._producer.stop(), 10.0)
            await self._retire(self._producer)
