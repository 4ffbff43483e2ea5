"""The client's three operations against the sandbox's payment platform (a real aiohttp server on
127.0.0.1 port 0), the transport's error translation, and the [payment] settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.payment_platform import envelope as env
from adapters.payment_platform.client import PaymentClient
from adapters.payment_platform.envelope import FeeLine, InitRequest, Payer, ReceiptContext
from adapters.payment_platform.errors import BillNotReady, PaymentInvalid, PaymentRefused, PaymentUnavailable
from adapters.payment_platform.transport import Transport
from adapters.sandbox.payment import PAYMENTS
from config.loader import build
from config.schema import PaymentSettings, Settings
from core.errors import ConfigError, PermanentError, TransientError
from tests.fakes.local import serving
from tests.fakes.portal import SandboxHandle, running_sandbox

SECRET = "client-test-secret"
MAHOSO = "000.00.01.H56-240315-00012"


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    async with running_sandbox(payment_secret=SECRET) as sb:
        yield sb


def settings(url: str, **over: Any) -> PaymentSettings:
    base = {"enabled": True, "init_url": f"{url}/payment/init", "query_url": f"{url}/payment/query",
            "bill_url": f"{url}/payment/bill", "partner_code": "DOITAC-TEST", "secret": SECRET, "timeout": 5.0}
    return PaymentSettings(**{**base, **over})


def request(ref_time: str = "20240315093000") -> InitRequest:
    return InitRequest(env.reference(MAHOSO, ref_time), MAHOSO, (FeeLine("2", "LP", "Lệ phí", 25000),),
                       Payer("Người nộp"), ReceiptContext("1.000001", "Thủ tục"), ref_time, "203.0.113.10")


async def test_init_query_and_bill_against_the_platform(sandbox: SandboxHandle) -> None:
    """INIT answers the payment URL; QUERY says not paid, then paid once the citizen paid (callback
    lost); GET_BILL is empty (not ready) before the payment and a PDF after."""
    async with aiohttp.ClientSession() as http:
        client = PaymentClient(settings(sandbox.url), Transport(http, timeout=5))
        req = request()
        url, _ = await client.init(req)
        assert url == f"{sandbox.url}/payment/pay/{req.reference}"
        pending = await client.query(req.reference, req.thoi_gian)
        assert (pending.ma_loi, pending.trang_thai) == ("99", "0")
        with pytest.raises(BillNotReady):
            await client.get_bill(req.reference, req.thoi_gian)
        async with http.post(f"{sandbox.url}/_sandbox/payments/{req.reference}/pay", json={"deliver": False}) as r:
            sent = (await r.json())["confirm"]
        paid = await client.query(req.reference, req.thoi_gian)
        assert (paid.ma_loi, paid.amount, paid.ma_giao_dich) == ("00", 25000, sent["MaGiaoDich"])
        assert (await client.get_bill(req.reference, req.thoi_gian)).startswith(b"%PDF-")
    assert all(r["checksum_ok"] for r in sandbox.app[PAYMENTS].record)


async def test_a_wrong_secret_is_refused_by_the_platform(sandbox: SandboxHandle) -> None:
    """The platform checks MaXacThuc: INIT signed with another secret gets error_code 2 (PaymentRefused,
    a PermanentError carrying the code and the platform's text)."""
    async with aiohttp.ClientSession() as http:
        client = PaymentClient(settings(sandbox.url, secret="wrong"), Transport(http, timeout=5))
        with pytest.raises(PaymentRefused) as caught:
            await client.init(request())
    assert caught.value.code == "2" and isinstance(caught.value, PermanentError)
    assert caught.value.platform_message == "Sai mã xác thực"


def _app(handler: Any) -> web.Application:
    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    return app


@pytest.mark.parametrize(("status", "body", "expected"), [
    (503, b"<html>down</html>", PaymentUnavailable),
    (200, b"not json", PaymentUnavailable),
    (200, b'{"error_code": "0", "message": "{}"}', PaymentUnavailable),
    (200, b'{"error_code": "0", "message": "not json"}', PaymentUnavailable),
    (302, b"", PaymentUnavailable),
])
async def test_unreadable_init_replies_are_transient(status: int, body: bytes, expected: type[Exception]) -> None:
    """An INIT reply that is not a 200 with a readable UrlThanhToan means the outcome is unknown:
    PaymentUnavailable (a TransientError), never a success; redirects are not followed."""
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, headers={"Location": "http://127.0.0.1:1/"} if status == 302
                            else None)

    async with serving(_app(handler)) as url, aiohttp.ClientSession() as http:
        client = PaymentClient(settings(url), Transport(http, timeout=5))
        with pytest.raises(expected) as caught:
            await client.init(request())
    assert isinstance(caught.value, TransientError)


async def test_a_bill_that_is_not_a_pdf_is_refused() -> None:
    """GET_BILL bytes that do not start with %PDF- are refused (PaymentInvalid), not stored."""
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"<html>error</html>")

    async with serving(_app(handler)) as url, aiohttp.ClientSession() as http:
        client = PaymentClient(settings(url), Transport(http, timeout=5))
        with pytest.raises(PaymentInvalid):
            await client.get_bill("dvcX", "20240315093000")


def test_settings_require_the_essentials_when_enabled(tmp_path: Path) -> None:
    """Enabled without a secret: a ConfigError naming payment.secret; defaults: version 1.0.6, the
    file beside the store."""
    with pytest.raises(ConfigError) as caught:
        build(Settings, {"payment": {"enabled": True, "init_url": "http://x/i", "query_url": "http://x/q",
                                     "bill_url": "http://x/b", "partner_code": "P"}}, "")
    assert caught.value.key == "payment.secret"
    with pytest.raises(ConfigError, match=r"payment\.init_url"):
        build(Settings, {"payment": {"init_url": "ftp://x"}}, "")
    secret = tmp_path / "s"
    secret.write_text("from-file\n")
    s = build(Settings, {"storage": {"path": str(tmp_path / "gw.sqlite3")},
                         "payment": {"secret_file": str(secret)}}, "")
    assert s.payment.secret == "from-file" and s.payment.version == "1.0.6"
    assert s.payment.file(s.storage.path) == tmp_path / "payments.sqlite3"
