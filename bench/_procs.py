"""What the benchmarks share: free ports, started-and-always-stopped processes, readiness
polling, the sandbox and ``dvcgw serve`` subprocesses, RSS, Prometheus scraping, the daemon's
settings file, the wrk run of bench/put.lua, and the summary table. Everything listens on and
talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

R = TypeVar("R")

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
UNIT = "000.00.01.H55"  # the bench agency's unit: first dash segment of every MaHoSo it sends
KEY = "bench-agency-key"
OPERATOR_KEY = "bench-operator-key"


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

    def start(self, name: str, argv: list[str], env: Mapping[str, str] | None = None,
              cwd: Path = ROOT) -> subprocess.Popen[bytes]:
        """``argv`` as ``name``, in ``cwd`` (the project's checkout: ``python -m`` imports from it)."""
        log = open(self.log_dir / f"{name}.log", "ab")  # the child owns it from here
        proc = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True)
        log.close()
        self.running[name] = proc
        return proc

    def python(self, name: str, *args: str, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
        return self.start(name, [sys.executable, *args], cwd=cwd)

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


async def start_sandbox(procs: Procs, name: str, *args: str) -> str:
    """A ``dvcgw sandbox`` subprocess at nice 10 (it stands in for the portal's own machines);
    ``args``: its options beside the address. Its URL once it answers."""
    port = free_port()
    proc = procs.python(name, "-m", "gateway", "sandbox", "--host", HOST, "--port", str(port), *args)
    os.setpriority(os.PRIO_PROCESS, proc.pid, 10)
    url = f"http://{HOST}:{port}"
    await wait_http(f"{url}/_sandbox/record", proc)
    return url


async def start_serve(procs: Procs, name: str, conf: Path, port: int, timeout: float = 30.0,
                      code: Path = ROOT,
                      serve: tuple[str, ...] = ("gateway", "serve")) -> tuple[str, subprocess.Popen[bytes]]:
    """``dvcgw serve --config conf`` (listening on ``port``) as ``name``, from the checkout ``code``
    (this one by default; ``serve``: the module and arguments that run it, ``python -m``): its base
    URL and process once /readyz answers 200; if it does not, the end of its log goes to stderr
    before the error."""
    proc = procs.python(name, "-m", *serve, "--config", str(conf), cwd=code)
    base = f"http://{HOST}:{port}"
    try:
        await wait_http(f"{base}/readyz", proc, timeout=timeout)
    except Exception:
        print(procs.tail(name), file=sys.stderr)
        raise
    return base, proc


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


# ---------------------------------------------------------------------------------- the daemon's settings


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def _secrets_to_files(tables: dict[str, dict[str, Any]], config: Path) -> None:
    """A settings file holds no secret inline (docs/security.md): each secret setting
    (config.schema.SECRET_FIELDS) goes to an owner-only file beside it, named by ``<key>_file``."""
    from config.schema import SECRET_FIELDS

    names = {name for fields in SECRET_FIELDS.values() for name in fields}
    for table, values in tables.items():
        for key in [k for k in values if k in names and values[k] != ""]:
            target = config.with_name(f"{config.stem}.{table}.{key}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(str(values.pop(key)), encoding="utf-8")
            target.chmod(0o600)
            values[f"{key}_file"] = str(target)


def write_config(path: Path, *, port: int, portal_url: str, store: Path, units: Sequence[str] = (UNIT,),
                 **tables: Mapping[str, Any]) -> Path:
    """A ``dvcgw serve`` settings file as an operator writes one: the listen address, a durable
    SQLite store (``synchronous = "full"``), the portal with bench credentials, one agency (for
    ``units``) and an operator key. ``tables`` add or override keys per table (``queue__kafka``
    for ``[queue.kafka]``); everything else is the daemon's default."""
    base: dict[str, dict[str, Any]] = {
        "server": {"listen": f"{HOST}:{port}", "shutdown_grace": "2s", "drain_delay": "0s"},
        "storage": {"path": str(store), "synchronous": "full"},
        "portal": {"adapter_url": portal_url, "username": "bench", "password": "bench",
                   "madonvi": "000.00.00.H55", "dstcode": "BENCH", "timeout": "10s"},
        "operator": {"api_key_sha256": hashlib.sha256(OPERATOR_KEY.encode()).hexdigest()},
        # a capacity measurement: no per-agency request rate limit (issue 17)
        "limits": {"rate": 0},
    }
    for name, values in tables.items():
        base[name] = {**base.get(name, {}), **values}
    _secrets_to_files(base, path)
    lines: list[str] = []
    for name, values in base.items():
        lines.append(f"[{name.replace('__', '.')}]")
        lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
        lines.append("")
    lines += ["[[agencies]]", f'code = "{UNIT}"', f'api_key_sha256 = "{hashlib.sha256(KEY.encode()).hexdigest()}"',
              f"units = {json.dumps(list(units))}",
              'procedures = ["*"]']  # deny by default (issue 17): every procedure code granted
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------- wrk


async def wrk(url: str, *, seconds: int, body: Path, tag: str, threads: int = 1, connections: int = 64,
              limit: int = 0, until: Callable[[], Awaitable[None]] | None = None) -> dict[str, Any]:
    """One wrk run of bench/put.lua against ``url`` (a new MaHoSo per request, tagged ``tag``);
    returns its BENCH summary plus ``rate`` (202 answers per second of the run). With ``limit``,
    each thread stops after its share of ``limit`` answers, and wrk is stopped once ``until()``
    returns."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
            "-s", str(ROOT / "bench" / "put.lua"), url]
    env = {"BENCH_BODY": str(body), "BENCH_KEY": KEY, "BENCH_UNIT": UNIT, "BENCH_RUN": tag,
           "BENCH_LIMIT": str(-(-limit // threads) if limit else 0)}
    return await run_wrk(argv, env, until)


async def run_wrk(argv: list[str], env: dict[str, str], until: Callable[[], Awaitable[None]] | None) -> dict[str, Any]:
    """Run wrk (``argv``, with ``env`` added to the environment: a script's settings) and return the
    JSON its script printed after ``BENCH `` plus ``rate`` (``accepted`` per second of the run).
    With ``until``, wrk is stopped once it returns: its script's thread:stop() ends sending, but wrk
    still waits out ``-d``, and SIGINT makes it report at once."""
    proc = await asyncio.create_subprocess_exec(*argv, env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        if until is not None:
            await until()
            proc.send_signal(signal.SIGINT)
        out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCH ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{text}")
    result: dict[str, Any] = json.loads(line[6:])
    result["rate"] = result["accepted"] / (result["duration_us"] / 1e6)
    return result


# ---------------------------------------------------------------------------------- the report


@dataclass
class Row:
    """One line of the summary: a figure beside its same-run baseline, and its verdict."""

    what: str
    figure: str
    baseline: str
    target: str
    passed: bool | None  # None: informative, no target


async def run_scenarios(steps: Mapping[str, Callable[[R], Awaitable[None]]], chosen: Sequence[str], run: R,
                        rows: list[Row]) -> bool:
    """Run each chosen scenario in turn (one broken scenario must not hide the others' figures),
    print the summary; True when every target was met and no scenario broke."""
    broken = False
    for name in chosen:
        try:
            await steps[name](run)
        except Exception as exc:
            broken = True
            print(f"    scenario {name} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            rows.append(Row(name, "error", "-", "-", False))
    return summary(rows) and not broken


def bench_main(main_async: Callable[[Any, set[str]], Coroutine[Any, Any, bool]], plan: Any, quick: Any,
               scenarios: Sequence[str], doc: str | None) -> int:
    """The command line every scenario bench shares: ``--quick`` (a smoke run whose figures mean
    nothing) and ``--only SCENARIO`` (repeatable)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    parser.add_argument("--quick", action="store_true", help="short smoke run (figures not meaningful)")
    parser.add_argument("--only", action="append", default=[], choices=list(scenarios),
                        help="run only this scenario (repeatable)")
    args = parser.parse_args()
    return run_bench(main_async(quick if args.quick else plan, set(args.only)))


def summary(rows: list[Row]) -> bool:
    """Print the summary table; True when no row failed."""
    print("\nSUMMARY")
    header = ("figure", "measured", "baseline (same run)", "target", "result")
    table = [header] + [(r.what, r.figure, r.baseline, r.target,
                         "-" if r.passed is None else ("PASS" if r.passed else "FAIL")) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return all(r.passed is not False for r in rows)


def machine() -> str:
    """CPUs, CPU model, Python and kernel: the first line of every benchmark's output."""
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "unknown CPU")
    return (f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")
