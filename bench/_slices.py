"""Two daemons measured in turn, in ABBA slices, for a fair comparison on a small, noisy machine
(bench_kpi, bench_audit): while one runs, the other is paused (SIGSTOP, every thread; the
measurement's switch, never the product's). After a warm-up each, ``slices`` slices of
``seconds`` each per daemon in ABBA order (A B, B A, …): slices seconds apart see the same machine,
so its drift cancels, where two long windows could not resolve a few percent.

A slice resumes its daemon, waits :data:`SETTLE`, then ``seconds`` (optionally while a load runs
against it), reads it and pauses it. A slice counts **all of its daemon's running time**, from
the resume to that read, against the events and CPU seconds since the daemon's previous read (the
end of its previous slice, or of its warm-up): a paused daemon neither delivers nor uses CPU, so
nothing of another slice is counted, and nothing of this one is left out. (Slices used to be
read again after the settle and counted from there: whatever the daemon did first on resuming
went unmeasured, such as a periodic job that fell due while it was paused, which ran then.) What a
read returns is the caller's (``read(http, base, pid)``); :class:`Tally` adds up any reading with
``at``, ``delivered`` and the CPU seconds of the daemon's event-loop thread and of its process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import aiohttp

#: after a daemon is resumed, before a slice's load starts (counted in the slice's running time)
SETTLE = 0.5
#: The portal timeout of a daemon measured in slices. A daemon is stopped for up to two of the
#: other's slices; a call it had in flight is answered meanwhile, but on SIGCONT the call's timer
#: fires before the waiting answer is read, so with the benches' usual 10 s every stop of more
#: than 10 s failed the calls in flight (TimeoutError, retried 5 s later: 75 and 263 retried
#: dossiers in one bench_kpi run; five in a row open the circuit for 30 s, a slice of 0 events/s).
PORTAL_TIMEOUT = "120s"


class Reading(Protocol):
    @property
    def at(self) -> float: ...
    @property
    def delivered(self) -> float: ...
    @property
    def loop_cpu(self) -> float: ...
    @property
    def process_cpu(self) -> float: ...


R = TypeVar("R", bound=Reading)
K = TypeVar("K", bound=Hashable)
ReadFn = Callable[[aiohttp.ClientSession, str, int], Awaitable[R]]


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU seconds of a process (or of one of its threads) from /proc."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid is not None else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pause(pid: int, running: bool) -> None:
    """SIGSTOP / SIGCONT a daemon (every thread): the measurement's switch, never the product's."""
    os.kill(pid, signal.SIGCONT if running else signal.SIGSTOP)


@dataclass
class Tally:
    """One daemon's slices added up: seconds running, events counted, CPU seconds (event-loop
    thread, process)."""

    seconds: float = 0.0
    events: float = 0.0
    loop_cpu: float = 0.0
    process_cpu: float = 0.0
    slices: list[tuple[float, float]] = field(default_factory=list)  # (events, seconds) of each slice
    cpu: list[float] = field(default_factory=list)  # the process's CPU seconds in each slice

    def add(self, first: Reading, last: Reading, resumed: float) -> None:
        """A slice: the daemon ran from ``resumed`` to ``last``; ``first`` is its read before (the
        end of its previous slice): it was paused from then to ``resumed``."""
        n, dt_ = last.delivered - first.delivered, last.at - resumed
        self.seconds += dt_
        self.events += n
        self.loop_cpu += last.loop_cpu - first.loop_cpu
        self.process_cpu += last.process_cpu - first.process_cpu
        self.slices.append((n, dt_))
        self.cpu.append(last.process_cpu - first.process_cpu)

    def rates(self) -> list[float]:
        return [n / s for n, s in self.slices]

    def block_rate(self, i: int) -> float:
        """Events/s over the slices of ABBA block ``i`` (this daemon's slices 2i and 2i+1)."""
        part = self.slices[2 * i:2 * i + 2]
        return sum(n for n, _ in part) / sum(s for _, s in part)

    def block_cpu(self, i: int) -> float:
        """The process's CPU seconds an event over the slices of ABBA block ``i``."""
        return sum(self.cpu[2 * i:2 * i + 2]) / sum(n for n, _ in self.slices[2 * i:2 * i + 2])

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def us(self, cpu: float) -> float:
        return cpu * 1e6 / self.events


def block_costs(base: Tally, other: Tally, *, cpu: bool = False) -> str:
    """The cost (1 - other/base) of each ABBA block, sorted, with their median and the mean's
    standard error: the machine's noise, in the units of the target. With ``cpu``, the cost in
    the process's CPU an event instead (other/base - 1). "" with fewer than 2 blocks."""
    n = len(base.slices) // 2
    if cpu:
        blocks = sorted(other.block_cpu(i) / base.block_cpu(i) - 1 for i in range(n))
    else:
        blocks = sorted(1 - other.block_rate(i) / base.block_rate(i) for i in range(n))
    if len(blocks) < 2:
        return ""
    what = "CPU cost (process CPU an event)" if cpu else "cost"
    return (f"{what} of each ABBA block: {', '.join(f'{b:.1%}' for b in blocks)}; median "
            f"{statistics.median(blocks):.1%}, mean {statistics.mean(blocks):.1%} ± "
            f"{statistics.stdev(blocks) / len(blocks) ** 0.5:.1%} (standard error)")


async def one_slice(http: aiohttp.ClientSession, base: str, pid: int, seconds: float, read: ReadFn[R],
                    load: Callable[[], Awaitable[object]] | None = None) -> tuple[float, R]:
    """Resume the daemon, let it settle, run it ``seconds`` more (with ``load()`` running against
    it, if given), read it and pause it again; when it was resumed, and the read."""
    resumed = time.time()
    pause(pid, True)
    await asyncio.sleep(SETTLE)
    if load is None:
        await asyncio.sleep(seconds)
    else:
        await load()
    last = await read(http, base, pid)
    pause(pid, False)
    return resumed, last


async def abba(http: aiohttp.ClientSession, daemons: dict[K, tuple[str, int]], *, warmup: float, slices: int,
               seconds: float, read: ReadFn[R], on_slice: Callable[[K, float, R, R], None] | None = None,
               load: Callable[[K, str], Callable[[], Awaitable[object]]] | None = None) -> dict[K, Tally]:
    """Both daemons (``{key: (base URL, pid)}``, A first; each paused on entry) warmed up, then run in
    ABBA slices; every daemon is resumed on the way out. ``on_slice(key, resumed, first, last)``
    sees each measured slice (``first``: the daemon's read before it, at the end of its previous
    slice or warm-up); ``load(key, base)`` makes the load a slice runs, if any."""
    keys = list(daemons)
    tallies = {k: Tally() for k in keys}
    before: dict[K, R] = {}
    try:
        for k in keys:  # warm-up: caches, start-up work
            _, before[k] = await one_slice(http, *daemons[k], warmup, read, load(k, daemons[k][0]) if load else None)
        for i in range(slices):
            for k in (keys if i % 2 == 0 else keys[::-1]):
                resumed, last = await one_slice(http, *daemons[k], seconds, read,
                                                load(k, daemons[k][0]) if load else None)
                tallies[k].add(before[k], last, resumed)
                if on_slice is not None:
                    on_slice(k, resumed, before[k], last)
                before[k] = last
    finally:
        for _, pid in daemons.values():
            pause(pid, True)
    return tallies
