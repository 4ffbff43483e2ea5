"""schemathesis against the served ``/openapi.json`` of a real ``dvcgw serve`` (issue 13).

``schemathesis run`` (the CLI, as CI would call it) fuzzes every operation the document lists with
the key its security scheme names, derandomized and bounded to a few hundred cases, checking
``not_a_server_error`` and, as the document is complete enough for them, that each status, media
type and body is the one documented. Phases: examples, coverage (boundary and malformed values,
other methods) except on the dossier routes, where it alone made ~1,400 cases, and fuzzing.

The daemon is a subprocess on a free 127.0.0.1 port delivering to the real sandbox, and
schemathesis another, so the test's loop keeps serving the sandbox while they run.
tests/gateway/openapi_fuzz_hooks.py adds the ids and cursors at and past the 64-bit bounds as
explicit examples and moves dossier codes into the test agency's unit. The run's HAR file is
read back so that the test sees every answer itself, not only schemathesis' verdict.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from gateway.params import BOUNDARY_IDS, is_dead_letter_id
from tests.daemon import Daemon, free_port, write_config
from tests.harness import AGENCY_KEY, OPERATOR_KEY, Sandbox

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 30  # per operation in the fuzzing phase: a few hundred cases in all
RUN_TIMEOUT_S = 150.0


def schemathesis_toml() -> str:
    """One key per security scheme: schemathesis sends, per operation, the first its ``security`` names."""
    return f"""
hooks = "tests.gateway.openapi_fuzz_hooks"
workers = 1
request-timeout = 10.0
[generation]
max-examples = {MAX_EXAMPLES}
deterministic = true  # derandomized: the same cases in every run
[checks]
enabled = false
not_a_server_error.enabled = true
response_schema_conformance.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
[phases]
stateful.enabled = false
[auth.openapi.agencyKey]
api_key = "{AGENCY_KEY}"
[auth.openapi.operatorKey]
api_key = "{OPERATOR_KEY}"
[auth.openapi.agencyBearer]
bearer = "{AGENCY_KEY}"
[auth.openapi.operatorBearer]
bearer = "{OPERATOR_KEY}"
[[operations]]  # coverage of the Dossier body alone is ~1,400 cases
include-path-regex = "^/v1/dossiers/"
phases.coverage.enabled = false
"""


@asynccontextmanager
async def serving(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Daemon]:
    port = free_port()
    cfg = write_config(tmp_path / "gw.toml", port, sandbox.url, tmp_path / "gw.sqlite3")
    d = Daemon(cfg, port, tmp_path / "daemon.log")
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


async def run_schemathesis(url: str, tmp_path: Path) -> tuple[int, str]:
    """``schemathesis run`` against ``url``; its exit code and output. Its files stay in ``tmp_path``."""
    (tmp_path / "schemathesis.toml").write_text(schemathesis_toml(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEMATHESIS_", "HYPOTHESIS_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    out = tmp_path / "schemathesis.out"
    with out.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(tmp_path / "schemathesis.toml"),
            "run", f"{url}/openapi.json", "--report", "json,har",
            "--report-json-path", str(tmp_path / "report.json"), "--report-har-path", str(tmp_path / "run.har"),
            cwd=tmp_path, env=env, stdout=sink, stderr=sink)
        try:
            rc = await asyncio.wait_for(proc.wait(), RUN_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    return rc, out.read_text(encoding="utf-8", errors="replace")


Answer = tuple[str, str, dict[str, list[str]], int]  # method, path, query, status


def answers(har: dict[str, Any]) -> list[Answer]:
    """Every request the run made, with the status it got."""
    out = []
    for entry in har["log"]["entries"]:
        url = urlsplit(entry["request"]["url"])
        out.append((entry["request"]["method"], url.path, parse_qs(url.query), entry["response"]["status"]))
    return out


def untried(doc: dict[str, Any], seen: list[Answer]) -> set[tuple[str, str]]:
    """The documented operations no request went to. schemathesis leaves out the route it loaded
    the document from, so ``GET /openapi.json`` counts as tried."""
    tried = {("GET", "/openapi.json")}
    for path, ops in doc["paths"].items():
        pattern = re.compile(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)) + "$")
        tried |= {(m.upper(), path) for m, p, _, _ in seen if m.lower() in ops and pattern.match(p)}
    return {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops if m != "parameters"} - tried


def boundary_answers(seen: list[Answer]) -> dict[tuple[str, str, str], set[int]]:
    """For each id route and the cursor, and each id at and past the 64-bit bounds: the statuses it got."""
    got: dict[tuple[str, str, str], set[int]] = {}
    for value, _ in BOUNDARY_IDS.values():
        for method, template in (("GET", "/v1/dead-letters/{}"), ("DELETE", "/v1/dead-letters/{}"),
                                 ("POST", "/v1/dead-letters/{}/replay")):
            got[(method, template, value)] = {s for m, p, _, s in seen if m == method and p == template.format(value)}
        got[("GET", "/v1/dead-letters?cursor=", value)] = {
            s for m, p, q, s in seen if m == "GET" and p == "/v1/dead-letters" and q.get("cursor") == [value]}
    return got


def expected_for(route: str, value: str) -> set[int]:
    well_formed = is_dead_letter_id(value, "sqlite")
    return {200} if route.endswith("cursor=") and well_formed else {404} if well_formed else {422}


async def test_schemathesis_finds_no_server_error(sandbox: Sandbox, tmp_path: Path) -> None:
    """Every operation of the served document, fuzzed with the right key per operation, a few
    hundred cases: no answer is a 5xx or undocumented, and fuzzed dossiers and progress reach the store (202).
    Each id route and the cursor got every id at and past the 64-bit bounds: a well-formed id
    404 (the cursor 200), a malformed one 422."""
    started = time.monotonic()
    async with serving(sandbox, tmp_path) as d:
        async with aiohttp.ClientSession() as http, http.get(f"{d.url}/openapi.json") as r:
            doc = await r.json()
        rc, output = await run_schemathesis(d.url, tmp_path)
    elapsed = time.monotonic() - started
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    seen = answers(json.loads((tmp_path / "run.har").read_text(encoding="utf-8")))

    assert rc == 0 and report["failures"] == [] and report["errors"] == [], output[-6000:]
    assert [(m, p, s) for m, p, _, s in seen if s >= 500] == []
    operations = sum(1 for ops in doc["paths"].values() for m in ops if m != "parameters")
    # a few hundred cases: at most MAX_EXAMPLES per operation and phase (examples, coverage, fuzzing)
    assert 150 <= report["test_cases"]["generated"] <= 3 * MAX_EXAMPLES * operations, report["test_cases"]
    assert untried(doc, seen) == set()
    assert 202 in {s for m, p, _, s in seen if m == "PUT"}, "no fuzzed dossier got past the checks"
    assert 202 in {s for m, p, _, s in seen if p.endswith("/progress")}, "no fuzzed progress got past the checks"
    for (method, route, value), statuses in boundary_answers(seen).items():
        expected = expected_for(route, value)
        # the fuzzer's own cases may also send these values without a key, or with two (negative mode)
        assert expected <= statuses <= expected | {400, 401}, (method, route, value, statuses)
    print(f"schemathesis: {report['test_cases']['generated']} cases, {len(seen)} requests, "
          f"{report['running_time']:.1f} s in schemathesis, {elapsed:.1f} s in all")
