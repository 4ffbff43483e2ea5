from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import Gateway, Sandbox, run_gateway, run_sandbox, settings_for

#: the suite-wide log scan (issue 17): collects every log line and configured secret of the session
pytest_plugins = ("tests.security.logscan",)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with run_sandbox() as sb:
        yield sb


@pytest.fixture
async def gateway(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with run_gateway(settings_for(tmp_path, sandbox.url)) as gw:
        yield gw
