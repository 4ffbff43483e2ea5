from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.signing.env import World, build_world, free_port, gateway_app, load_settings

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "signing"
# signing time comes from the injected clock: a fixed instant, so tests can see it in reports
FIXED_SIGNING_TIME = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).replace(microsecond=0)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(tmp_path_factory.mktemp("signing-world"))
    yield w
    w.close()


class Gateway:
    def __init__(self, url: str, registry: CollectorRegistry, storage: Path) -> None:
        self.url, self.registry, self.storage = url, registry, storage

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="session")
def signing_gw(world: World, tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    storage = tmp_path_factory.mktemp("gw-storage")
    port = free_port()
    settings = load_settings(world, "main", storage=storage, callback_base_url=f"http://127.0.0.1:{port}")
    registry = CollectorRegistry()
    url, _ = world.servers.serve(gateway_app(settings, registry, clock=lambda: FIXED_SIGNING_TIME), port=port)
    return Gateway(url, registry, storage)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
