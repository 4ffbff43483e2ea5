"""Fixtures for the monitoring tests: the signing test world (PKI, two TSAs) for a full gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.signing.env import World, build_world


@pytest.fixture(scope="session")
def signing_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The signing tests' test PKI and TSAs on 127.0.0.1 (no SoftHSM: a file key is enough here)."""
    w = build_world(tmp_path_factory.mktemp("monitoring-world"), with_hsm=False)
    yield w
    w.close()
