"""Subprocess plumbing for the benchmarks: free ports, started-and-always-stopped processes,
readiness polling, RSS, Prometheus scraping. Everything listens on and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Procs:
    """Processes started by one benchmark run; :meth:`stop_all` ends every one that is left, each
    in its own process group, SIGTERM first and SIGKILL after ``grace`` seconds."""

    log_dir: Path
    grace: float = 5.0
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")  # the child owns it from here
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True)
        log.close()
        self.running[name] = proc
        return proc

    def python(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        return self.start(name, [sys.executable, *args])

    def stop(self, name: str) -> None:
        proc = self.running.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(self.grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(5)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def tail(self, name: str, lines: int = 20) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


@contextlib.contextmanager
def processes(log_dir: Path) -> Iterator[Procs]:
    """Stops every process started inside, also on an exception or Ctrl-C."""
    procs = Procs(log_dir)
    try:
        yield procs
    finally:
        procs.stop_all()


async def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers 200; raises if the process exits or the deadline passes."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"process for {url} exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s")


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    """``VmRSS`` (or ``VmHWM``, the peak) of ``pid`` from /proc, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


async def scrape(session: aiohttp.ClientSession, base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``base/metrics`` keyed by (name, sorted labels)."""
    async with session.get(f"{base}/metrics") as r:
        text = await r.text()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(samples: Mapping[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_bench(main: Coroutine[Any, Any, bool]) -> int:
    """Run a benchmark's main coroutine: exit status 0 if every target was met, 1 if not, 130 if
    interrupted. A SIGTERM (timeout, CI) unwinds like Ctrl-C, so the finally blocks stop every
    subprocess."""
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        ok = asyncio.run(main)
    except KeyboardInterrupt:
        return 130
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1
