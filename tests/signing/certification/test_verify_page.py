"""The /verify page in a real headless Chromium, at a phone's size: a genuine copy shows HỢP LỆ, a
tampered one KHÔNG HỢP LỆ; screenshots of both land in test-artifacts/certification/."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cdp import CHROMIUM, Browser
from tests.signing.certification.client import call, certify, metadata
from tests.signing.certification.scans import scan_pdf
from tests.signing.conftest import Gateway
from tests.signing.env import AGENCY_KEYS

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "certification"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/install-system-deps.sh installs it)")
async def test_verify_page_in_chromium_genuine_and_tampered(cert_gw: Gateway, tmp_path: Path) -> None:
    """Upload through the form (no JavaScript on the page): the genuine copy is valid, the copy with one
    byte changed is not; the texts are Vietnamese and the page fits a 390-px-wide phone screen."""
    r = await certify(cert_gw.url, [(scan_pdf(1), "application/pdf")], metadata())
    assert r.status == 201, r.body
    genuine = (await call("GET", cert_gw.url + r.json()["pdf_url"], AGENCY_KEYS["STP"])).body
    at = genuine.index(b"stream", 200) + 400
    tampered = genuine[:at] + bytes([genuine[at] ^ 0x01]) + genuine[at + 1:]
    (tmp_path / "ban-sao.pdf").write_bytes(genuine)
    (tmp_path / "ban-sao-sua.pdf").write_bytes(tampered)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser = await Browser.start(tmp_path / "profile")
    try:
        await browser.send("Emulation.setDeviceMetricsOverride",
                           {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
        for name, expected, words in (("ban-sao.pdf", "valid", "HỢP LỆ"),
                                      ("ban-sao-sua.pdf", "invalid", "KHÔNG HỢP LỆ")):
            await browser.goto(f"{cert_gw.url}/verify")
            assert "Kiểm tra bản sao chứng thực điện tử" in await browser.evaluate("document.body.innerText")
            await browser.set_file("#file", tmp_path / name)
            await browser.submit()
            assert await browser.evaluate("document.getElementById('verdict').dataset.verdict") == expected
            text = await browser.evaluate("document.body.innerText")
            assert words in text and r.json()["record"]["book_name"] in text
            assert "Trần" not in text  # no requester data on the open page
            assert await browser.evaluate("document.documentElement.scrollWidth") <= 390
            await browser.screenshot(ARTIFACTS / f"verify-{expected}.png")
    finally:
        await browser.close()
