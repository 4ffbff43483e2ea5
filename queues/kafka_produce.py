"""Producing to the Kafka backend's topics, and the small helpers every part of the backend shares
(partitioning by ``MaHoSo``, client options, the error edge :func:`guard`).

Each :class:`~queues.kafka.KafkaQueue` has one :class:`Producing`: an idempotent ``acks=all``
producer, replaced when one of its batches failed.
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
from aiokafka.errors import KafkaError

from config.schema import KafkaSettings
from core.errors import QueueUnavailable

log = logging.getLogger("queues.kafka")
T = TypeVar("T")
# a record for Producing.send_batches: key, value, headers, partition
Record = tuple[bytes, bytes | None, list[tuple[str, bytes]], int]


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


async def _kill_producer(producer: AIOKafkaProducer) -> None:
    """Stop ``producer`` for good, bounded: flush what the broker still takes within a few seconds,
    then cancel its sender and close its connections, so none of its pending batches can land later
    (behind records of the producer that replaces it)."""
    await quietly(producer.stop(), 3.0)
    task = _sender_task(producer)
    if task is not None and not task.done():
        task.cancel()
        await quietly(task, 2.0)
    await quietly(producer.client.close(), 2.0)


def _sender_task(producer: AIOKafkaProducer) -> asyncio.Task[Any] | None:
    """aiokafka's sender task (private: looked up defensively)."""
    return getattr(getattr(producer, "_sender", None), "sender_task", None)


def _sender_dead(producer: AIOKafkaProducer) -> bool:
    task = _sender_task(producer)
    return task is not None and task.done()


class Producing:
    """The producer of one queue: idempotent, ``acks=all``, ``linger_ms=2``. ``observe(kind,
    seconds)`` gets the acknowledgement time of every successful send."""

    def __init__(self, opts: dict[str, Any], observe: Callable[[str, float], None]) -> None:
        self._opts = opts
        self._observe = observe
        self._producer: AIOKafkaProducer | None = None
        self._broken = False
        self._lock = asyncio.Lock()

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

        def done(f: asyncio.Future[Any]) -> None:
            if f.cancelled():
                return
            if f.exception() is None:
                seconds = time.perf_counter() - started
                for _ in range(n):
                    observe(kind, seconds)
            elif self._producer is producer:
                self._broken = True

        fut.add_done_callback(done)
        return fut

    async def live(self) -> AIOKafkaProducer:
        """The producer, replaced first when one of its batches failed or its sender died.

        aiokafka's idempotent producer does not recover from a sequence gap (a batch that expired
        while the broker was away): every later send fails with OutOfOrderSequenceNumber. A new
        producer gets a new producer id, so its sequences start afresh. The old one is killed before
        the new one sends, so nothing it still held can land behind the new one's records."""
        async with self._lock:
            old = self._producer
            if old is not None and not self._broken and not _sender_dead(old):
                return old
            self._producer, self._broken = None, False
            if old is not None:
                log.warning("kafka producer failed; replacing it")
                await _kill_producer(old)
            new = AIOKafkaProducer(acks="all", enable_idempotence=True, linger_ms=2, **self._opts)
            try:
                await new.start()
            except BaseException:
                await _kill_producer(new)
                raise
            self._producer = new
            return new

    async def close(self) -> None:
        """Flush and stop (bounded, even with a dead broker)."""
        if self._producer is not None:
            await quietly(self._producer.stop(), 10.0)
            await _kill_producer(self._producer)
