"""Issue 14: the built-in /status page, rendered by headless Chromium (Debian's package) against a
running gateway. The screenshots land in test-artifacts/status/ for a person to look at."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

from gateway.appkeys import KPI
from gateway.ops_routes import quantile
from monitoring.status import mask
from tests.harness import Gateway, Sandbox
from tests.samples import sample_dossier

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "status"
CHROMIUM = shutil.which("chromium")
# as the machine notes say: without the background-networking flags Chromium keeps trying hosts
# this closed network refuses
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1200,1700"]

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make test installs it)")


async def chromium(tmp_path: Path, *args: str) -> str:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.iterdir()))}"
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


def received_now(mahoso: str, **overrides: str) -> dict[str, object]:
    """The sample dossier, received now (local time): it counts in this month's 766 figures."""
    local = dt.datetime.now(dt.timezone(dt.timedelta(hours=7)))
    fields = {"NgayTiepNhan": local.strftime("%Y%m%d%H%M%S"), "NgayNopHoSo": local.strftime("%Y%m%d%H%M%S"),
              "NgayHenTra": (local + dt.timedelta(days=10)).strftime("%Y%m%d%H%M%S"), **overrides}
    return sample_dossier(mahoso, **fields)


async def portal_outage_with_a_dead_letter(gateway: Gateway, sandbox: Sandbox) -> str:
    """One dossier dead-lettered by a business rejection (its message carries an ID-card-like
    number), then three 503s that open the circuit."""
    dead = "000.00.01.H55-240315-00042"
    await gateway.put(dead, received_now(dead))
    await gateway.drain()
    await sandbox.fault(mode="reject", count=1, message="Sai số CCCD 001099012345 của chủ hồ sơ")
    await gateway.put(dead, received_now(dead, TrangThaiHoSo="9"))
    await gateway.drain()
    await sandbox.fault(mode="http503", count=3)
    for i in range(3):
        m = f"000.00.01.H55-240315-0000{i}"
        assert (await gateway.put(m, received_now(m))).status == 202
    await gateway.drain()
    assert gateway.engine.gate.state == "open"
    return dead


@needs_chromium
async def test_status_page_renders_in_chromium_and_shows_the_portal_outage(
        gateway: Gateway, sandbox: Sandbox, tmp_path: Path) -> None:
    dead = await portal_outage_with_a_dead_letter(gateway, sandbox)
    await gateway.app[KPI].refresh()
    url = str(gateway.client.make_url("/status"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for lang, outage in (("en", "The national portal is not answering"),
                         ("vi", "Cổng DVCQG không phản hồi")):
        dom = await chromium(tmp_path, "--dump-dom", f"{url}?lang={lang}")
        assert 'id="portal-outage"' in dom and outage in dom, dom[:3000]
        assert f'lang="{lang}"' in dom
        section = dom[dom.index('id="dead-letters"'):dom.index('id="kpi"')]
        assert "rejected" in section and ">1<" in section, section
        assert dead not in dom, "a dossier code must not appear on the page"
        assert "001099012345" not in dom, "an ID-card-like number must be masked"
        shot = ARTIFACTS / f"status-portal-outage-{lang}.png"
        shot.unlink(missing_ok=True)
        await chromium(tmp_path, f"--screenshot={shot}", f"{url}?lang={lang}")
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, len(data)


@needs_chromium
async def test_status_page_is_green_when_all_is_well(gateway: Gateway, sandbox: Sandbox, tmp_path: Path) -> None:
    m = "000.00.01.H55-240315-00001"
    assert (await gateway.put(m, received_now(m))).status == 202
    await gateway.drain()
    dom = await chromium(tmp_path, "--dump-dom", str(gateway.client.make_url("/status?lang=en")))
    assert "portal-outage" not in dom
    assert re.search(r'id="readiness" class="banner ok"', dom), dom[:2000]
    assert "closed (normal)" in dom
    report = await gateway.app[KPI].refresh()
    sync = next(r for r in report.rows if r.indicator == "DOSSIER_SYNC" and r.unit == "all" and r.period == "month")
    assert (sync.numerator, sync.denominator) == (1, 1)
    dom = await chromium(tmp_path, "--dump-dom", str(gateway.client.make_url("/status?lang=en")))
    chart = dom[dom.index('id="kpi-DOSSIER_SYNC"'):]
    chart = chart[:chart.index("</figure>")]
    assert chart.count("<svg") == 1 and "100.0 % (1/1)" in chart, chart
    assert f"Month {sync.period_id}" in chart and "Year" in chart
    lag = re.search(r"Sync lag \(median / p95\)</th><td>([^<]*)</td>", dom)
    assert lag is not None and lag.group(1) != "— / —", "one delivered event gives a lag"


async def test_status_page_headers_language_and_refresh(gateway: Gateway) -> None:
    r = await gateway.client.get("/status", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert r.status == 200 and r.content_type == "text/html"
    body = await r.text()
    assert r.headers["Content-Language"] == "en" and "DVCQG gateway status" in body
    assert '<meta http-equiv="refresh" content="10">' in body
    assert "script-src" not in r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert "<script" not in body
    r = await gateway.client.get("/status")
    assert r.headers["Content-Language"] == "vi" and "Trạng thái cổng kết nối DVCQG" in await r.text()
    r = await gateway.client.get("/status?lang=<script>", headers={"Accept-Language": "en"})
    assert r.status == 200 and r.headers["Content-Language"] == "en" and "<script>" not in await r.text()


async def test_status_page_shows_maintenance(gateway: Gateway) -> None:
    r = await gateway.operator("PUT", "/v1/maintenance")  # no body: refused, nothing changes
    assert r.status == 415
    r = await gateway.client.put("/v1/maintenance", json={"enabled": True, "reason": "<b>patching</b>"},
                                 headers={"X-API-Key": "operator-key"})
    assert r.status == 200
    body = await (await gateway.client.get("/status?lang=en")).text()
    assert "In maintenance" in body and "&lt;b&gt;patching&lt;/b&gt;" in body and "<b>patching" not in body


def test_mask_hides_long_digit_runs_and_cuts() -> None:
    assert mask("CCCD 001099012345 sai") == "CCCD •••••••••••• sai"
    assert mask("mã 12345678 đúng") == "mã 12345678 đúng"
    assert mask("x" * 500).endswith("…") and len(mask("x" * 500)) == 160


def test_quantile_interpolates_like_histogram_quantile() -> None:
    buckets = [(1.0, 10.0), (5.0, 30.0), (float("inf"), 40.0)]
    assert quantile(buckets, 0.25) == 1.0  # rank 10: the top of the first bucket
    assert quantile(buckets, 0.5) == pytest.approx(1.0 + 4.0 * (20 - 10) / 20)
    assert quantile(buckets, 0.95) == 5.0  # in +Inf: the highest finite bound, as Prometheus does
    assert quantile([], 0.5) is None and quantile([(1.0, 0.0), (float("inf"), 0.0)], 0.5) is None
