"""VNPT e-receipts, XML hardening: an XXE reply and a billion-laughs reply from the fake tenant are
refused without expansion, by the adapter's DTD guard and, behind it, by zeep's own settings;
envelopes, credentials and payer data never reach the logs."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import zeep
import zeep.exceptions
import zeep.loader
from lxml import etree

from adapters.vnpt_receipts import FeeKind, FeeLine, Payer, ReceiptsClient, receipt_requests
from adapters.vnpt_receipts import codes as vc
from adapters.vnpt_receipts.errors import ReceiptUnsafeReply
from adapters.vnpt_receipts.transport import Service, SoapServices, bundled_wsdl, new_session, zeep_settings
from tests.fakes.vnpt import ADMIN, SERVICE, FakeVnpt, billion_laughs_reply, receipts_settings, running_vnpt, xxe_reply

pytestmark = pytest.mark.usefixtures("loopback_only")

PAYER = Payer("Trần Thị Riêng Tư", "Số 9 phố Kín")
REQUEST = receipt_requests("000.00.01.H56-250101-0007", "1.1", PAYER, [FeeLine(FeeKind.PHI, "Phí", 1000)])[0]


@pytest.fixture
def canary(tmp_path: Path) -> tuple[Path, str]:
    """A local file whose content must never come back: what an XXE would exfiltrate."""
    token = f"CANARY-{secrets.token_hex(8)}"
    path = tmp_path / "secret.txt"
    path.write_text(token)
    return path, token


@pytest.fixture
async def vnpt(canary: tuple[Path, str]) -> AsyncIterator[FakeVnpt]:
    async with running_vnpt(xxe_target=canary[0]) as fake:
        yield fake


@pytest.fixture
async def client(vnpt: FakeVnpt) -> AsyncIterator[ReceiptsClient]:
    c = await ReceiptsClient.open(receipts_settings(vnpt))
    yield c
    await c.aclose()


def _calls(client: ReceiptsClient) -> dict[str, Callable[[], Awaitable[object]]]:
    return {vc.ISSUE: lambda: client.issue(REQUEST), vc.UNCONFIRM: lambda: client.cancel(REQUEST.fkey),
            vc.VIEW: lambda: client.view(REQUEST.fkey), vc.DOWNLOAD: lambda: client.download(REQUEST.fkey)}


def _texts(exc: BaseException) -> str:
    """Every message and repr along the exception's chain."""
    out = []
    seen: BaseException | None = exc
    while seen is not None:
        out += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(out)


@pytest.mark.parametrize("operation", [vc.ISSUE, vc.UNCONFIRM, vc.VIEW, vc.DOWNLOAD])
async def test_an_xxe_reply_is_refused_and_the_file_never_read_back(
        client: ReceiptsClient, vnpt: FakeVnpt, canary: tuple[Path, str], operation: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """The reply declares <!ENTITY xxe SYSTEM "file://…secret.txt"> and uses it as the result:
    ReceiptUnsafeReply, and the file's content appears nowhere (error chain, logs)."""
    caplog.set_level(logging.DEBUG)
    vnpt.inject(operation, "xxe")
    with pytest.raises(ReceiptUnsafeReply) as info:
        await _calls(client)[operation]()
    assert info.value.operation == operation
    assert canary[1] not in _texts(info.value) and canary[1] not in caplog.text
    assert vnpt.calls_of(operation), "the request did reach the fake"


@pytest.mark.parametrize("operation", [vc.ISSUE, vc.VIEW])
async def test_a_billion_laughs_reply_is_refused_unexpanded(client: ReceiptsClient, vnpt: FakeVnpt,
                                                            operation: str) -> None:
    """&lol9; would be 3 GB of "lol": refused at once, with no expansion in sight."""
    vnpt.inject(operation, "billion_laughs")
    started = time.monotonic()
    with pytest.raises(ReceiptUnsafeReply) as info:
        await _calls(client)[operation]()
    assert time.monotonic() - started < 10
    assert "lollol" not in _texts(info.value)


def test_the_xxe_payload_is_live_with_a_permissive_parser(canary: tuple[Path, str]) -> None:
    """Control: lxml with entity resolution on reads the file through the very reply the fake
    sends, so the refusals above are the adapter's doing, not a dud payload."""
    body = xxe_reply("1.1", vc.VIEW, canary[0])
    permissive = etree.XMLParser(resolve_entities=True, no_network=True)
    assert canary[1] in etree.tostring(etree.fromstring(body, permissive)).decode()


def test_zeeps_own_settings_refuse_the_xxe_payload(canary: tuple[Path, str]) -> None:
    """The second layer alone: zeep's parser with the adapter's settings refuses the DTD; with DTDs
    allowed it still refuses the entity declaration (both settings are on and both work)."""
    body = xxe_reply("1.1", vc.VIEW, canary[0])
    with pytest.raises(zeep.exceptions.DTDForbidden):
        zeep.loader.parse_xml(body, None, settings=zeep_settings())
    lenient = zeep_settings()
    lenient.forbid_dtd = False
    with pytest.raises(zeep.exceptions.EntitiesForbidden):
        zeep.loader.parse_xml(body, None, settings=lenient)


def test_without_the_guard_libxml2_refuses_the_bomb_while_parsing() -> None:
    """The bomb never reaches zeep's DTD check: libxml2's entity-amplification limit (lxml's
    default, kept on because xml_huge_tree is off) stops the parse first. The guard is what makes
    it a ReceiptUnsafeReply rather than an unreadable reply."""
    with pytest.raises(zeep.exceptions.XMLSyntaxError, match="amplification"):
        zeep.loader.parse_xml(billion_laughs_reply("1.1", vc.VIEW), None, settings=zeep_settings())


async def test_zeep_refuses_in_the_reply_path_if_the_guard_were_bypassed(
        vnpt: FakeVnpt, canary: tuple[Path, str]) -> None:
    """A client on zeep's plain transport (no DTD guard) but the adapter's settings and error
    translation: the XXE reply still ends as ReceiptUnsafeReply, from zeep's DTDForbidden."""
    session = new_session()
    settings = receipts_settings(vnpt)
    proxies = {}
    for service in Service:
        plain = zeep.Client(str(bundled_wsdl(service)), transport=zeep.Transport(session=session),
                            settings=zeep_settings())
        proxies[service] = plain.create_service(service.binding, settings.address_of(service.value))
    services = SoapServices(proxies, ThreadPoolExecutor(max_workers=1), session, owns_session=True)
    vnpt.inject(vc.VIEW, "xxe")
    try:
        with pytest.raises(ReceiptUnsafeReply) as info:
            await services.call(vc.VIEW, {"fkey": "K-1", "userName": SERVICE[0], "userPass": SERVICE[1]})
    finally:
        await services.aclose()
    assert isinstance(info.value.__cause__, zeep.exceptions.DTDForbidden)
    assert canary[1] not in _texts(info.value)


async def test_envelopes_and_credentials_are_not_logged(client: ReceiptsClient, vnpt: FakeVnpt,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Every logger at DEBUG (zeep's included): no xmlInvData, no payer name, no credential."""
    caplog.set_level(logging.DEBUG)
    await client.issue(REQUEST)
    await client.view(REQUEST.fkey)
    for secret in ("xmlInvData", "Invoices", PAYER.name, PAYER.address, *ADMIN, *SERVICE):
        assert secret not in caplog.text, secret
