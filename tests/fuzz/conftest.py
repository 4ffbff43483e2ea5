"""The fuzz tests' figures (cases run, time) printed at the end of the pytest run, whether or not
output is captured: ``make test`` runs ``pytest -q`` without ``-s`` and CI logs should show them."""

from __future__ import annotations

import pytest

_LINES = pytest.StashKey[list[str]]()


class FuzzSummary:
    """Lines a fuzz test reports; printed in pytest's terminal summary."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config

    def add(self, line: str) -> None:
        self._config.stash.setdefault(_LINES, []).append(line)


@pytest.fixture
def fuzz_summary(request: pytest.FixtureRequest) -> FuzzSummary:
    return FuzzSummary(request.config)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    lines = config.stash.get(_LINES, [])
    if lines:
        terminalreporter.section("fuzzing")
        for line in lines:
            terminalreporter.write_line(line)
