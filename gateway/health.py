"""Readiness (``/readyz``): sub-checks run with a timeout, their results cached, and a maintenance mode.

As in X-Road's health check, a result is kept for ``[health] ok_cache`` (2 s) when it passed and
for ``[health] fail_cache`` (30 s) when it failed, so a load balancer polling every instance many
times a second costs one storage ping per window, and a failing storage is not hammered. Concurrent
``/readyz`` requests share one run of a check. Each check runs under ``[health] check_timeout``; a
timeout is a failure like any other.

Only checks that mean "this instance cannot accept work" decide the status (``storage``); the
others report (``portal``: accepting through a portal outage is the gateway's job). The lifecycle
(starting, ready, draining) and the maintenance mode are read live, never cached.

Maintenance mode makes ``/readyz`` answer 503 ``maintenance`` on purpose, so a load balancer takes
the instance out while it keeps serving and delivering what reaches it. The operator turns it on
with ``PUT /v1/maintenance`` (or ``dvcgw maintenance on``), or starts in it with
``[health] maintenance = true``. It is not persisted: a restart goes back to the setting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from config.schema import HealthSettings

CheckFn = Callable[[], Awaitable[dict[str, Any]]]


@dataclass
class _Cached:
    result: dict[str, Any]
    until: float


@dataclass
class Check:
    """One sub-check. ``decides``: its failure makes the instance not ready. ``cache``: false for
    a check that only reads the process's own memory (nothing to save, and it must not go stale)."""

    name: str
    run: CheckFn
    decides: bool = True
    cache: bool = True


@dataclass
class Maintenance:
    enabled: bool = False
    reason: str = ""
    since: float | None = None

    def set(self, enabled: bool, reason: str, now: float) -> None:
        if enabled and not self.enabled:
            self.since = now
        if not enabled:
            self.since = None
        self.enabled = enabled
        self.reason = reason if enabled else ""


@dataclass
class Readiness:
    """The sub-checks of one instance and their cached results."""

    settings: HealthSettings
    checks: list[Check] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic
    maintenance: Maintenance = field(default_factory=Maintenance)
    _cache: dict[str, _Cached] = field(default_factory=dict)
    _running: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.settings.maintenance:
            self.maintenance.set(True, "[health] maintenance = true", time.time())

    def add(self, name: str, run: CheckFn, *, decides: bool = True, cache: bool = True) -> None:
        self.checks.append(Check(name, run, decides, cache))

    async def results(self) -> dict[str, dict[str, Any]]:
        """Every check's result, from the cache where it is still fresh."""
        got = await asyncio.gather(*(self._result(c) for c in self.checks))
        return {c.name: r for c, r in zip(self.checks, got, strict=True)}

    def ok(self, results: dict[str, dict[str, Any]]) -> bool:
        return all(results[c.name]["status"] == "ok" for c in self.checks if c.decides)

    async def _result(self, check: Check) -> dict[str, Any]:
        now = self.clock()
        cached = self._cache.get(check.name)
        if cached is not None and now < cached.until:
            return {**cached.result, "cached": True}
        running = self._running.get(check.name)
        if running is None:
            running = asyncio.ensure_future(self._run(check))
            self._running[check.name] = running
            running.add_done_callback(lambda _: self._running.pop(check.name, None))
        return dict(await asyncio.shield(running))

    async def _run(self, check: Check) -> dict[str, Any]:
        started = self.clock()
        try:
            async with asyncio.timeout(float(self.settings.check_timeout)):
                result = await check.run()
        except TimeoutError:
            result = {"status": "fail", "error": f"no answer within {float(self.settings.check_timeout):g}s"}
        except Exception as exc:  # any failure of a check is its result, never a 500
            result = {"status": "fail", "error": type(exc).__name__}
        finished = self.clock()
        result = {**result, "duration_ms": round((finished - started) * 1000, 1), "cached": False}
        if check.cache:
            keep = self.settings.ok_cache if result.get("status") == "ok" else self.settings.fail_cache
            self._cache[check.name] = _Cached(result, finished + float(keep))
        return result
