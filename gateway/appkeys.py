"""Typed keys through which handlers reach the application's resources."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from config.schema import Settings
from gateway.accept import Acceptor
from gateway.sync import SyncEngine
from monitoring.metrics import Metrics
from queues.api import QueueBackend


@dataclass
class Lifecycle:
    """Readiness: the gateway accepts work only between start-up and draining."""

    state: str = "starting"  # starting | ready | draining


class EngineView(Protocol):
    """What /readyz and /metrics need from the delivery engine, wherever it runs."""

    def gate(self) -> dict[str, Any]: ...

    def metrics_text(self) -> bytes: ...


SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
QUEUE = web.AppKey("queue", QueueBackend)  # type: ignore[type-abstract]
ENGINE = web.AppKey("engine", SyncEngine)  # only when the engine runs in the daemon's loop
ENGINE_VIEW = web.AppKey("engine_view", EngineView)  # type: ignore[type-abstract]
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
# where validated events go: the queue in this process, or the daemon from an acceptor process
ACCEPT = web.AppKey("accept", Acceptor)  # type: ignore[type-abstract]
