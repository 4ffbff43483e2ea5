"""A faithful stand-in for one VNPT e-receipt tenant: its three ASMX services on 127.0.0.1 (spec
``e-receipts.md`` §11). A real aiohttp server; no outbound connection.

* ``/PublishService.asmx``, ``/BusinessService.asmx``, ``/PortalService.asmx``, any letter case;
  ``GET <path>?wsdl`` serves that service's WSDL (the project's own, or the vendor's copies with
  ``wsdl_dir=``) with every ``soap:address``/``soap12:address`` rewritten to this server.
* SOAP 1.1 (``text/xml`` + ``SOAPAction``) and 1.2 (``application/soap+xml; action=…``), answered
  in the request's version; a wrong or missing action is an HTTP 500 fault, as is an operation the
  WSDL declares but the double does not implement (it names the operation).
* The operations of spec §4 with the checks of §11.3, in order, answering the exact ``OK:``/``ERR:n``
  strings; credentials per §11.2 (a mismatch is ``ERR:1``, never a fault).
* A record: every call's operation, SOAP version, fields (credentials masked), parsed
  ``xmlInvData``, raw body and headers; the receipts held, by fkey.
* Switches (:meth:`FakeVnpt.inject`): the next answers of an operation can be forced to ``ERR:n``,
  an XXE or billion-laughs reply, HTTP 500, a SOAP fault, a dropped connection (before or after
  committing an issue) or a delay.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from lxml import etree

from adapters.vnpt_receipts.transport import Service, bundled_wsdl
from config.schema import ReceiptsSettings
from tests.fakes.local import serving
from tests.fakes.pdfs import one_page_pdf

TNS = "http://tempuri.org/"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
_WSDL = "http://schemas.xmlsoap.org/wsdl/"
_ADDRESS = ("{http://schemas.xmlsoap.org/wsdl/soap/}address", "{http://schemas.xmlsoap.org/wsdl/soap12/}address")

ADMIN = ("fake-admin", "fake-admin-pass")  # Account / ACpass (invented; no real credentials)
SERVICE = ("fake-service", "fake-service-pass")  # username|userName / password|userPass
PATTERN, SERIAL = "01BLP0/001", "BL/25E"  # the tenant's default (and only) registered range
MASK = "***"
_SECRET_FIELDS = frozenset({"Account", "ACpass", "username", "password", "userName", "userPass", "pass"})
# which fields carry the admin pair and the service pair, per operation (spec §3)
_CREDENTIALS: dict[str, tuple[tuple[str, str] | None, tuple[str, str]]] = {
    "ImportAndPublishInv": (("Account", "ACpass"), ("username", "password")),
    "cancelInv": (("Account", "ACpass"), ("userName", "userPass")),
    "UnConfirmPaymentFkey": (None, ("userName", "userPass")),
    "getInvViewFkey": (None, ("userName", "userPass")),
    "downloadInvPDFFkey": (None, ("userName", "userPass")),
}
_PRODUCT_TAGS = ("Code", "ProdName", "ProdUnit", "ProdQuantity", "ProdPrice", "Total", "Amount")
_INVOICE_TAGS = ("CusName", "Amount", "VATAmount", "VATRate")
MAX_BATCH = 5000
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass
class FakeCall:
    """One call as the double saw it (credentials replaced by ``***``)."""

    operation: str
    soap_version: str  # "1.1" | "1.2"
    fields: dict[str, str]
    invoices: list[dict[str, Any]]  # parsed xmlInvData (ImportAndPublishInv only)
    body: bytes  # the raw request body
    soap_action: str  # the SOAPAction header (1.1) or the action parameter (1.2), verbatim
    content_type: str  # the Content-Type header, verbatim
    answer: str = ""  # the result string sent back ("" for faults and hostile replies)


@dataclass
class FakeReceipt:
    fkey: str
    status: str  # PAID | UNPAID | CANCELLED
    pattern: str
    serial: str
    number: str
    amount: str
    invoice: dict[str, Any] = field(repr=False, default_factory=dict)


class _Fault(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class FakeVnpt:
    """The double's state and its aiohttp application (see the module docstring)."""

    def __init__(self, *, wsdl_dir: Path | None = None, range_size: int = 1_000_000, zero_pad: bool = False,
                 xxe_target: Path | None = None) -> None:
        self.url = ""
        self.range_size = range_size
        self.zero_pad = zero_pad  # numbers as 7-digit zero-padded strings (0000001)
        self.xxe_target = xxe_target  # the file an XXE reply points its entity at
        self.ranges = {(PATTERN, SERIAL)}
        self.receipts: dict[str, FakeReceipt] = {}
        self.calls: list[FakeCall] = []
        self.wsdl_requests = 0
        self._issued: dict[tuple[str, str], int] = defaultdict(int)
        self._faults: dict[str, deque[str]] = defaultdict(deque)
        self._wsdl = {s: _wsdl_path(s, wsdl_dir) for s in Service}
        self._declared = {s: _declared_operations(p) for s, p in self._wsdl.items()}
        self._paths = {f"/{s.value.lower()}.asmx": s for s in Service}
        self.app = web.Application()
        self.app.router.add_route("*", "/{name}", self._handle)
        self._handlers: dict[str, Callable[[dict[str, str], FakeCall], str]] = {
            "ImportAndPublishInv": self._issue, "UnConfirmPaymentFkey": self._unconfirm,
            "cancelInv": self._cancel, "getInvViewFkey": self._view, "downloadInvPDFFkey": self._download,
        }

    # ── switches and record ───────────────────────────────────────────────────────────────

    def inject(self, operation: str, *faults: str) -> None:
        """Queue what the next calls of ``operation`` get, one per call, before any check:
        ``"ERR:n"`` (that result, nothing changes), ``"result:<text>"`` (that result string),
        ``"xxe"``, ``"billion_laughs"``, ``"http500"``
        (a text body), ``"fault"`` (a SOAP fault), ``"drop"`` (connection closed, nothing done),
        ``"commit_drop"`` (the call is carried out, then the connection is closed before the
        answer), ``"delay:<seconds>"`` (answer normally after the delay)."""
        self._faults[operation].extend(faults)

    def calls_of(self, operation: str) -> list[FakeCall]:
        return [c for c in self.calls if c.operation == operation]

    # ── HTTP ──────────────────────────────────────────────────────────────────────────────

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        service = self._paths.get("/" + request.match_info["name"].lower())
        if service is None:
            raise web.HTTPNotFound()
        if request.method == "GET" and "wsdl" in {k.lower() for k in request.query}:
            self.wsdl_requests += 1
            return web.Response(body=self._served_wsdl(service, request), content_type="text/xml", charset="utf-8")
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
        return await self._soap(service, request)

    def _served_wsdl(self, service: Service, request: web.Request) -> bytes:
        tree = etree.parse(str(self._wsdl[service]), _SAFE_PARSER)
        for tag in _ADDRESS:
            for node in tree.iter(tag):
                node.set("location", f"{self.url}{request.path}")
        return bytes(etree.tostring(tree, xml_declaration=True, encoding="utf-8"))

    async def _soap(self, service: Service, request: web.Request) -> web.StreamResponse:
        version, action = _version_and_action(request)
        if version is None:
            return web.Response(status=415, text="Unsupported media type")
        body = await request.read()
        try:
            operation, fields = _read_envelope(body, version)
        except _Fault as exc:
            return _fault(version, exc.text)
        if action.strip('"') != TNS + operation or operation not in self._declared[service]:
            return _fault(version, f"Server did not recognize the value of HTTP Header SOAPAction: {action}.")
        call = FakeCall(operation, version, _masked(fields), [], body, action,
                        request.headers.get("Content-Type", ""))
        self.calls.append(call)
        return await self._answer(request, version, operation, fields, call)

    async def _answer(self, request: web.Request, version: str, operation: str, fields: dict[str, str],
                      call: FakeCall) -> web.StreamResponse:
        fault = self._faults[operation].popleft() if self._faults[operation] else None
        if fault is not None and not fault.startswith(("delay:", "commit_drop")):
            return await self._injected(request, version, operation, fault, call)
        if fault is not None and fault.startswith("delay:"):
            await asyncio.sleep(float(fault.removeprefix("delay:")))
        handler = self._handlers.get(operation)
        if handler is None:
            return _fault(version, f"the test double does not implement {operation}")
        try:
            call.answer = handler(fields, call)
        except _Fault as exc:
            return _fault(version, exc.text)
        if fault == "commit_drop":
            return _dropped(request)
        return _reply(version, operation, call.answer)

    async def _injected(self, request: web.Request, version: str, operation: str, fault: str,
                        call: FakeCall) -> web.StreamResponse:
        if fault.startswith(("ERR:", "result:")):
            call.answer = fault.removeprefix("result:")
            return _reply(version, operation, call.answer)
        if fault == "xxe":
            target = self.xxe_target or Path("/etc/hostname")
            return _raw_reply(version, xxe_reply(version, operation, target))
        if fault == "billion_laughs":
            return _raw_reply(version, billion_laughs_reply(version, operation))
        if fault == "http500":
            return web.Response(status=500, text="Internal Server Error")
        if fault == "fault":
            return _fault(version, "Server was unable to process request.")
        if fault == "drop":
            return _dropped(request)
        raise AssertionError(f"unknown injected fault {fault!r}")

    # ── credentials ───────────────────────────────────────────────────────────────────────

    @staticmethod
    def _credentials_ok(operation: str, fields: Mapping[str, str]) -> bool:
        admin, service = _CREDENTIALS[operation]
        pairs = [(service, SERVICE)] + ([(admin, ADMIN)] if admin else [])
        return all(fields.get(names[0]) == value[0] and fields.get(names[1]) == value[1] for names, value in pairs)

    # ── operations (spec §11.3; the first failing check decides) ──────────────────────────

    def _issue(self, fields: dict[str, str], call: FakeCall) -> str:
        if "convert" not in fields or not fields["convert"].strip().lstrip("-").isdigit():
            raise _Fault("Server was unable to read request. ---> convert is required (s:int)")
        if not self._credentials_ok("ImportAndPublishInv", fields):
            return "ERR:1"
        pattern, serial = fields.get("pattern", ""), fields.get("serial", "")
        if bool(pattern) != bool(serial) or (pattern and (pattern, serial) not in self.ranges):
            return "ERR:20"
        pattern, serial = (pattern, serial) if pattern else (PATTERN, SERIAL)
        invoices = _parse_inv_data(fields.get("xmlInvData", ""))
        if invoices is None:
            return "ERR:3"
        call.invoices = invoices
        if len(invoices) > MAX_BATCH:
            return "ERR:10"
        keys = [inv["key"] for inv in invoices]
        if len(set(keys)) != len(keys) or any(k in self.receipts for k in keys):
            return "ERR:13"
        if self._issued[(pattern, serial)] + len(keys) > self.range_size:
            return "ERR:6"
        items = []
        for inv in invoices:
            self._issued[(pattern, serial)] += 1
            n = self._issued[(pattern, serial)]
            number = f"{n:07d}" if self.zero_pad else str(n)
            self.receipts[inv["key"]] = FakeReceipt(inv["key"], "PAID", pattern, serial, number,
                                                    inv["Invoice"].get("Amount", ""), inv)
            items.append(f"{inv['key']}_{number}")
        return f"OK:{pattern};{serial}-{','.join(items)}"

    def _unconfirm(self, fields: dict[str, str], call: FakeCall) -> str:
        if not self._credentials_ok("UnConfirmPaymentFkey", fields):
            return "ERR:1"
        key = fields.get("lstFkey", "")
        if not key:
            return "ERR:2"
        receipt = self.receipts.get(key)
        if receipt is None:
            return "ERR:6"
        if receipt.status != "PAID":
            return "ERR:7"
        receipt.status = "UNPAID"
        return "OK:"

    def _cancel(self, fields: dict[str, str], call: FakeCall) -> str:
        if not self._credentials_ok("cancelInv", fields):
            return "ERR:1"
        receipt = self.receipts.get(fields.get("fkey", ""))
        if receipt is None:
            return "ERR:2"
        if receipt.status == "CANCELLED":
            return "ERR:8"
        if receipt.status == "PAID":
            return "ERR:9"
        receipt.status = "CANCELLED"
        return "OK:"

    def _viewable(self, operation: str, fields: dict[str, str]) -> FakeReceipt | str:
        if not self._credentials_ok(operation, fields):
            return "ERR:1"
        receipt = self.receipts.get(fields.get("fkey", ""))
        if receipt is None:
            return "ERR:6"
        if receipt.status == "UNPAID":
            return "ERR:11"
        return receipt

    def _view(self, fields: dict[str, str], call: FakeCall) -> str:
        r = self._viewable("getInvViewFkey", fields)
        if isinstance(r, str):
            return r
        cancelled = "<p>cancelled</p>" if r.status == "CANCELLED" else ""
        return (f"<!DOCTYPE html><html><body><p>Mẫu số: {escape(r.pattern)}</p><p>Ký hiệu: {escape(r.serial)}</p>"
                f"<p>Số: {r.number}</p><p>Số tiền: {escape(r.amount)}</p>{cancelled}</body></html>")

    def _download(self, fields: dict[str, str], call: FakeCall) -> str:
        r = self._viewable("downloadInvPDFFkey", fields)
        if isinstance(r, str):
            return r
        return base64.b64encode(one_page_pdf(f"Bien lai {r.serial} so {r.number}")).decode("ascii")


# ── envelopes in and out ──────────────────────────────────────────────────────────────────


def _version_and_action(request: web.Request) -> tuple[str | None, str]:
    if request.content_type == "text/xml":
        return "1.1", request.headers.get("SOAPAction", "")
    if request.content_type == "application/soap+xml":
        m = re.search(r'action="?([^";]*)"?', request.headers.get("Content-Type", ""))
        return "1.2", m.group(1) if m else ""
    return None, ""


def _read_envelope(body: bytes, version: str) -> tuple[str, dict[str, str]]:
    """The operation (the body wrapper's local name, in tempuri) and its tempuri children's texts;
    unqualified children are absent (spec §11.1 Schema)."""
    try:
        root = etree.fromstring(body, _SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        raise _Fault("Server was unable to read request.") from exc
    env = SOAP11 if version == "1.1" else SOAP12
    body_el = root.find(f"{{{env}}}Body") if root.tag == f"{{{env}}}Envelope" else None
    wrapper = next(iter(body_el), None) if body_el is not None else None
    if wrapper is None or etree.QName(wrapper).namespace != TNS:
        raise _Fault("Server did not recognize the request element.")
    fields = {etree.QName(c).localname: c.text or "" for c in wrapper if etree.QName(c).namespace == TNS}
    return etree.QName(wrapper).localname, fields


def _parse_inv_data(text: str) -> list[dict[str, Any]] | None:
    """``xmlInvData`` as a list of ``{"key", "Invoice": {tag: text}, "Products": [{tag: text}]}``;
    None when it is not well-formed or an ``<Inv>`` lacks a G1 tag (→ ERR:3)."""
    if "<!DOCTYPE" in text:
        return None
    try:
        root = etree.fromstring(text.encode("utf-8"), _SAFE_PARSER)
    except etree.XMLSyntaxError:
        return None
    out = []
    for inv in root.findall("Inv"):
        parsed = _parse_inv(inv)
        if parsed is None:
            return None
        out.append(parsed)
    return out if out else None


def _parse_inv(inv: Any) -> dict[str, Any] | None:
    key, invoice = inv.findtext("key"), inv.find("Invoice")
    if not key or invoice is None or any(invoice.find(t) is None for t in _INVOICE_TAGS):
        return None
    products = invoice.findall("Products/Product")
    if not products or any(p.find(t) is None for p in products for t in _PRODUCT_TAGS):
        return None
    return {
        "key": key,
        "Invoice": {c.tag: c.text or "" for c in invoice if c.tag != "Products"},
        "Products": [{c.tag: c.text or "" for c in p} for p in products],
    }


def _masked(fields: Mapping[str, str]) -> dict[str, str]:
    return {k: (MASK if k in _SECRET_FIELDS else v) for k, v in fields.items()}


def _envelope(version: str, inner: str, *, prolog: str = "") -> bytes:
    env = SOAP11 if version == "1.1" else SOAP12
    return (f'<?xml version="1.0" encoding="utf-8"?>{prolog}<soap:Envelope xmlns:soap="{env}" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
            f"<soap:Body>{inner}</soap:Body></soap:Envelope>").encode()


def _result(operation: str, content: str) -> str:
    return f'<{operation}Response xmlns="{TNS}"><{operation}Result>{content}</{operation}Result></{operation}Response>'


def _content_type(version: str) -> str:
    return "text/xml" if version == "1.1" else "application/soap+xml"


def _reply(version: str, operation: str, result: str) -> web.Response:
    return _raw_reply(version, _envelope(version, _result(operation, escape(result))))


def _raw_reply(version: str, body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, content_type=_content_type(version), charset="utf-8")


def _fault(version: str, text: str) -> web.Response:
    if version == "1.1":
        inner = f"<soap:Fault><faultcode>soap:Server</faultcode><faultstring>{escape(text)}</faultstring></soap:Fault>"
    else:
        inner = (f"<soap:Fault><soap:Code><soap:Value>soap:Receiver</soap:Value></soap:Code><soap:Reason>"
                 f'<soap:Text xml:lang="en">{escape(text)}</soap:Text></soap:Reason></soap:Fault>')
    return _raw_reply(version, _envelope(version, inner), status=500)


def _dropped(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer (the client sees it reset or closed)."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


def xxe_reply(version: str, operation: str, target: Path) -> bytes:
    """A reply whose result is an external entity pointing at ``target`` (a local file)."""
    prolog = f'<!DOCTYPE soap:Envelope [<!ENTITY xxe SYSTEM "{target.resolve().as_uri()}">]>'
    return _envelope(version, _result(operation, "&xxe;"), prolog=prolog)


def billion_laughs_reply(version: str, operation: str) -> bytes:
    """The classic entity-expansion bomb: ``&lol9;`` is 10^9 times "lol"."""
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)]
    prolog = f"<!DOCTYPE soap:Envelope [{''.join(entities)}]>"
    return _envelope(version, _result(operation, "&lol9;"), prolog=prolog)


# ── WSDLs ─────────────────────────────────────────────────────────────────────────────────

VENDOR_FILES = {Service.PUBLISH: "vnpt-publishservice.wsdl", Service.BUSINESS: "vnpt-businessservice.wsdl",
                Service.PORTAL: "vnpt-portalservice.wsdl"}


def _wsdl_path(service: Service, wsdl_dir: Path | None) -> Path:
    return bundled_wsdl(service) if wsdl_dir is None else wsdl_dir / VENDOR_FILES[service]


def _declared_operations(path: Path) -> frozenset[str]:
    tree = etree.parse(str(path), _SAFE_PARSER)
    return frozenset(op.get("name") for op in tree.iterfind(f"{{{_WSDL}}}portType/{{{_WSDL}}}operation"))


# ── running it ────────────────────────────────────────────────────────────────────────────


@asynccontextmanager
async def running_vnpt(**kwargs: Any) -> AsyncIterator[FakeVnpt]:
    """Serve a :class:`FakeVnpt` on 127.0.0.1, an OS-chosen port, for the block's duration."""
    fake = FakeVnpt(**kwargs)
    async with serving(fake.app, shutdown_timeout=0.5) as url:
        fake.url = url
        yield fake


def receipts_settings(fake: FakeVnpt, **overrides: Any) -> ReceiptsSettings:
    """ReceiptsSettings for ``fake``: enabled, its address, its fixture credentials, short timeouts."""
    base: dict[str, Any] = {
        "enabled": True, "base_url": fake.url, "account": ADMIN[0], "acpass": ADMIN[1],
        "username": SERVICE[0], "password": SERVICE[1], "timeout": 5.0, "wsdl_timeout": 5.0,
    }
    base.update(overrides)
    return ReceiptsSettings(**base)
