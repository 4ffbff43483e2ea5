"""Issue 14: a real Prometheus scraping a running gateway under load loads the alert rules (health
"ok") and answers every expression of every dashboard panel with data.

Pieces, all real and on 127.0.0.1: ``dvcgw serve`` as a subprocess (tests/daemon.py) with signing
configured (the test PKI and TSAs of tests/signing/env.py, the first TSA URL dead on purpose), the
sandbox portal in this test's loop, and Debian's prometheus scraping every second with
monitoring/prometheus/alerts.yml as its rule file. The load is what the panels show: dossiers and
progress, a rejection (dead letter), a 429, 503s that open the circuit, refused logins that pause
delivery, signatures through a failing and a working TSA, and a validation. Then each panel
expression, with the template variables set to this daemon's instance, a unit of the load and the
month, and ``$__rate_interval`` at 10 s, must return a non-empty result. Waits poll Prometheus'
API, bounded; nothing sleeps blindly.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from config.schema import Settings
from tests.daemon import Daemon, free_port, write_config
from tests.fakes.pdfs import one_page_pdf
from tests.harness import AGENCY_KEY, UNIT, Sandbox, run_sandbox
from tests.monitoring.dashboard import ROOT, label_values, load, queries, substitute, variables
from tests.monitoring.prometheus import JOB, Prometheus, poll, running_prometheus
from tests.samples import sample_dossier, sample_progress
from tests.signing.env import World, build_world

pytestmark = pytest.mark.slow

ALERTS = ROOT / "monitoring" / "prometheus" / "alerts.yml"
RATE_INTERVAL = "10s"  # ≥ 4 scrapes at 1 s, as Grafana's $__rate_interval would be
HEADERS = {"X-API-Key": AGENCY_KEY}
MERGE_PENDING = "metric families of issue 14 not on this branch yet (helpers 'metrics' and 'kpi')"


def _code(n: int) -> str:
    return f"{UNIT}-240316-{n:05d}"


_FMT = "%Y%m%d%H%M%S"
_VN = dt.timezone(dt.timedelta(hours=7))


def _received() -> dt.datetime:
    """A reception time in the current month (Vietnam time), so the 766 figures of this month count
    the load's dossiers (kpi-766 §3: a dossier belongs to the period of its NgayTiepNhan)."""
    now = dt.datetime.now(_VN).replace(tzinfo=None, microsecond=0)
    return max(now - dt.timedelta(minutes=10), now.replace(day=1, hour=0, minute=0, second=0))


def _dossier(code: str) -> dict[str, Any]:
    at = _received()
    return sample_dossier(code, NgayTiepNhan=at.strftime(_FMT), NgayNopHoSo=at.strftime(_FMT),
                          NgayHenTra=(at + dt.timedelta(days=5)).strftime(_FMT))


def _progress(code: str, n: int) -> list[dict[str, Any]]:
    items, at = sample_progress(code, n), _received()
    for i, item in enumerate(items):
        t = at + dt.timedelta(minutes=i)
        item.update(ThoiDiemXuLy=t.strftime(_FMT), NgayBatDau=t.strftime(_FMT),
                    NgayKetThucTheoQuyDinh=(t + dt.timedelta(days=1)).strftime(_FMT))
    return items


def _signing_toml(world: World, dead_tsa: str) -> str:
    keys, secrets = world.tmp / "keys", world.tmp / "secrets"
    return f'''
[signing]
tsa_urls = ["{dead_tsa}", "{world.tsa_urls[0]}"]
tsa_timeout = "2s"
tsa_attempts = 1
trust_roots = ["{world.root_pem}"]
workers = 1

[[signing.keys]]
alias = "file-pem"
source = "file"
agencies = ["{UNIT}"]
key_file = "{keys}/file.key.pem"
cert_file = "{keys}/file.crt.pem"
chain_files = ["{keys}/chain.pem"]
passphrase_file = "{secrets}/pass"
'''


def _daemon_config(tmp: Path, port: int, portal: str, world: World) -> Path:
    sections: dict[str, dict[str, Any]] = {
        "circuit": {"failure_threshold": 2, "cool_down": "500ms"},
        "retry": {"delays": ["100ms", "300ms", "500ms"], "give_up_after": "1h", "jitter": 0.0},
        # no TraCuuHoSo first: the sandbox's next fault then meets the create (a rejected lookup is retried)
        "portal": {"lookup_before_create": False},
    }
    if any(f.name == "kpi" for f in fields(Settings)):  # the [kpi] section of issue 14, once merged
        sections["kpi"] = {"refresh_interval": "1s"}
    cfg = write_config(tmp / "gw.toml", port, portal, tmp / "gw.sqlite3", **sections)
    with cfg.open("a", encoding="utf-8") as f:
        f.write(_signing_toml(world, f"http://127.0.0.1:{free_port()}"))
    return cfg


# ------------------------------------------------------------------------------------------ load


class Load:
    """Drives the daemon through the cases the dashboard shows, waiting on its own API."""

    def __init__(self, gw: str, sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        self.gw, self.sandbox, self.http = gw, sandbox, http

    async def put(self, code: str, progress: int = 0) -> None:
        async with self.http.put(f"{self.gw}/v1/dossiers/{code}", json=_dossier(code), headers=HEADERS) as r:
            assert r.status == 202, await r.text()
        if progress:
            async with self.http.post(f"{self.gw}/v1/dossiers/{code}/progress", json=_progress(code, progress),
                                      headers=HEADERS) as r:
                assert r.status == 202, await r.text()

    async def delivery(self, code: str) -> str:
        async with self.http.get(f"{self.gw}/v1/dossiers/{code}", headers=HEADERS) as r:
            assert r.status == 200, await r.text()
            return str((await r.json())["delivery"])

    async def until(self, state: str, *codes: str, timeout: float = 15.0) -> None:
        async def reached() -> bool:
            return all([await self.delivery(c) == state for c in codes])

        assert await poll(reached, time.monotonic() + timeout), f"{codes} not {state}: " + str(
            [await self.delivery(c) for c in codes])

    async def paused(self) -> bool:
        async with self.http.get(f"{self.gw}/readyz") as r:
            return bool((await r.json())["checks"]["portal"]["paused"])

    async def sync(self) -> None:
        """Deliveries of every outcome the panels split by, ending with nothing waiting."""
        normal = [_code(n) for n in range(1, 7)]
        for code in normal:
            await self.put(code, progress=3)
        await self.until("delivered", *normal)
        await self.sandbox.fault(mode="reject", count=1)  # a business rejection: a dead letter
        await self.put(_code(10))
        await self.until("dead", _code(10))
        await self.sandbox.fault(mode="http429", count=1, retry_after=1)
        await self.put(_code(11), progress=2)
        await self.until("delivered", _code(11))
        await self.sandbox.fault(mode="http503", count=3)  # two in a row open the circuit
        await self.put(_code(12))
        await self.put(_code(13))
        await self.until("delivered", _code(12), _code(13))

    async def refused_logins(self) -> None:
        """The portal refuses the account: delivery pauses, then resumes once logins work."""
        await self.sandbox.config(refuse_logins=True)
        await self.sandbox.fault(mode="expire_sessions")
        await self.put(_code(20))

        async def paused() -> bool:
            return await self.paused()

        assert await poll(paused, time.monotonic() + 10), "delivery did not pause on refused logins"
        await self.sandbox.config(refuse_logins=False)
        await self.until("delivered", _code(20))

    async def signing(self) -> None:
        """A B-T signature (the dead TSA fails, the next one stamps) and its validation."""
        form = aiohttp.FormData()
        form.add_field("options", json.dumps({"key": "file-pem", "level": "B-T"}), content_type="application/json")
        form.add_field("file", one_page_pdf(), filename="doc.pdf", content_type="application/pdf")
        async with self.http.post(f"{self.gw}/v1/signatures", data=form, headers=HEADERS) as r:
            signed = await r.read()
            assert r.status == 200, signed[:500]
        async with self.http.post(f"{self.gw}/v1/signatures/validate", data=signed,
                                  headers={**HEADERS, "Content-Type": "application/pdf"}) as r:
            assert r.status == 200, await r.text()


# ------------------------------------------------------------------------------------------ checks


async def rules_problems(prom: Prometheus) -> list[str]:
    """Rules of alerts.yml not loaded, not evaluated yet, or whose evaluation failed."""
    wanted = {r["alert"] for g in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"] for r in g["rules"]}
    loaded = [r for g in (await prom.api("rules"))["groups"] for r in g["rules"]]
    problems = [f"{name}: not loaded" for name in sorted(wanted - {r["name"] for r in loaded})]
    problems += [f"{r['name']}: health {r.get('health')} {r.get('lastError', '')}".strip()
                 for r in loaded if r.get("health") != "ok"]
    return problems


async def empty_expressions(prom: Prometheus, values: dict[str, str]) -> list[str]:
    """Panel expressions (and variable queries) that return no data, as 'panel [ref]: expr'."""
    d = load()
    empty = []
    for q in queries(d):
        expr = substitute(q.expr, values, RATE_INTERVAL)
        if not await prom.query(expr):
            empty.append(f"{q.panel} [{q.ref}]: {expr}")
    for name, v in variables(d).items():
        if v["type"] == "query":
            selector, label = label_values(substitute(v["definition"], values, RATE_INTERVAL))
            if not await prom.label_values(label, selector):
                empty.append(f"variable {name}: {v['definition']}")
    return empty


def _merged() -> bool:
    """Whether issue 14's other branches are in this tree: the KPI package of the contract
    (monitoring/kpi/) comes with them. Until then the families of helpers 'metrics' and 'kpi' are
    missing, and the expression check is expected to fail; from then on it is strict."""
    return (ROOT / "monitoring" / "kpi" / "__init__.py").is_file()


async def test_prometheus_scrapes_a_gateway_under_load_and_every_panel_has_data(tmp_path: Path) -> None:
    """Prometheus loads every rule of alerts.yml with health "ok", and every expression of every
    dashboard panel (and each template variable's query) returns data about this daemon."""
    world = build_world(tmp_path / "signing", with_hsm=False)
    try:
        async with run_sandbox() as sandbox:
            port = free_port()
            daemon = Daemon(_daemon_config(tmp_path, port, sandbox.url, world), port, tmp_path / "daemon.log")
            await daemon.start()
            try:
                instance = f"127.0.0.1:{port}"
                async with running_prometheus(tmp_path / "prometheus", [instance], [ALERTS]) as prom, \
                        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                    load_ = Load(daemon.url, sandbox, http)
                    await load_.sync()
                    await load_.refused_logins()
                    await load_.signing()
                    await check(prom, instance)
            finally:
                await daemon.stop()
    finally:
        world.close()


async def check(prom: Prometheus, instance: str) -> None:
    async def scraped() -> bool:
        up = await prom.query(f'up{{job="{JOB}", instance="{instance}"}} == 1')
        return bool(up)

    assert await poll(scraped, time.monotonic() + 15), "prometheus never scraped the daemon"
    problems: list[str] = []

    async def rules_ok() -> bool:
        problems[:] = await rules_problems(prom)
        return not problems

    assert await poll(rules_ok, time.monotonic() + 15), problems
    values = {"instance": instance, "unit": UNIT, "period": "month", "datasource": "prometheus"}
    empty: list[str] = []

    async def all_have_data() -> bool:
        empty[:] = await empty_expressions(prom, values)
        return not empty

    # the last counters were created seconds ago: give rate() its two samples, then judge
    await poll(all_have_data, time.monotonic() + 20, 0.5)
    if empty and not _merged():
        pytest.xfail(f"{MERGE_PENDING}; {len(empty)} without data:\n" + "\n".join(empty))
    assert not empty, f"{len(empty)} dashboard expressions return no data:\n" + "\n".join(empty)
