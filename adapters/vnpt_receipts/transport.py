"""The one place the VNPT adapter touches the network: :meth:`SoapServices.call`.

zeep's synchronous :class:`zeep.Client` on a :class:`requests.Session`, each call run in the
adapter's own small thread pool, so the event loop never waits on VNPT (why not zeep's
``AsyncClient``: docs/decisions.md, "VNPT e-receipts"). Per service (PublishService,
BusinessService, PortalService):

* the WSDL is the operator's (a file path or the vendor's ``?wsdl`` URL) or the minimal one shipped
  in ``adapters/vnpt_receipts/wsdl/``; it is loaded once, at start-up;
* the SOAP 1.1 port is bound with ``create_service(binding, <[receipts] base_url + path>)``: the
  address inside the WSDL is never used [POLICY §2];
* start-up refuses a WSDL that lacks an operation of spec §4, names its parameters otherwise, or
  gives it another SOAPAction (spec §9).

XML hardening, in three layers: :func:`~adapters.vnpt_receipts.envelope.refuse_doctype` refuses
any reply or WSDL whose prolog declares a DTD before a parser sees it; zeep runs with
``forbid_dtd``, ``forbid_entities`` and ``forbid_external`` (and without ``xml_huge_tree``);
:class:`GuardedTransport` loads no document but the entry WSDL (no ``xsd:import``, no
``wsdl:import``, whatever their scheme). Envelopes are never logged: they carry credentials and
the payer's name (zeep's own transport logs them at DEBUG; ours does not).

Foreign exceptions (requests, zeep, lxml) are translated here, once, ``from`` the original.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import requests
import zeep
import zeep.exceptions
from zeep.proxy import ServiceProxy

from adapters.vnpt_receipts import codes
from adapters.vnpt_receipts.envelope import refuse_doctype
from adapters.vnpt_receipts.errors import ReceiptUnavailable, ReceiptUnsafeReply, ReceiptWsdlError
from config.schema import ReceiptsSettings

TNS = "http://tempuri.org/"


class Service(enum.Enum):
    """The three ASMX services of a VNPT tenant (spec §2)."""

    PUBLISH = "PublishService"
    BUSINESS = "BusinessService"
    PORTAL = "PortalService"

    @property
    def binding(self) -> str:
        """The QName of the SOAP 1.1 binding the gateway uses [POLICY §2]."""
        return f"{{{TNS}}}{self.value}Soap"

    @property
    def bundled_wsdl(self) -> str:
        """File name of the project's own minimal WSDL for this service."""
        return f"{self.value.lower()}.wsdl"


@dataclass(frozen=True)
class Operation:
    service: Service
    parameters: tuple[str, ...]  # in WSDL order, spelled exactly as in the WSDLs (spec §3)


#: The operations of spec §4 the gateway uses.
OPERATIONS: Mapping[str, Operation] = {
    codes.ISSUE: Operation(Service.PUBLISH, ("Account", "ACpass", "xmlInvData", "username", "password",
                                             "pattern", "serial", "convert")),
    codes.UNCONFIRM: Operation(Service.BUSINESS, ("lstFkey", "userName", "userPass")),
    codes.CANCEL: Operation(Service.BUSINESS, ("Account", "ACpass", "fkey", "userName", "userPass")),
    codes.VIEW: Operation(Service.PORTAL, ("fkey", "userName", "userPass")),
    codes.DOWNLOAD: Operation(Service.PORTAL, ("fkey", "userName", "userPass")),
}

_UNSAFE = (zeep.exceptions.DTDForbidden, zeep.exceptions.EntitiesForbidden,
           zeep.exceptions.ExternalReferenceForbidden)


def zeep_settings() -> zeep.Settings:
    """zeep's parser settings for anything VNPT or a WSDL source sends: no DTD, no entity
    declarations, no transitive fetches, lxml's size limits on (``xml_huge_tree`` off), strict."""
    return zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True,
                         xml_huge_tree=False)


class GuardedTransport(zeep.Transport):
    """zeep's requests transport, narrowed: every reply and the WSDL pass
    :func:`~adapters.vnpt_receipts.envelope.refuse_doctype` first; only one document is ever loaded
    (the entry WSDL); envelopes are not logged."""

    def __init__(self, session: requests.Session, *, load_timeout: float, operation_timeout: float) -> None:
        super().__init__(session=session, timeout=load_timeout,  # type: ignore[no-untyped-call]
                         operation_timeout=operation_timeout)
        self._loaded = False

    def load(self, url: str) -> bytes:
        if self._loaded:  # an xsd:import, xsd:include or wsdl:import: the WSDL must stand alone
            raise zeep.exceptions.ExternalReferenceForbidden(url)  # type: ignore[no-untyped-call]
        self._loaded = True
        content: bytes = super().load(url)  # type: ignore[no-untyped-call]
        refuse_doctype(content)
        return content

    def post(self, address: str, message: bytes, headers: Mapping[str, str]) -> requests.Response:
        # zeep's post() logs the envelope and the reply at DEBUG: credentials and personal data;
        # and a redirect would carry the credentials to an address the settings never named
        return self.session.post(address, data=message, headers=headers, timeout=self.operation_timeout,
                                 allow_redirects=False)

    def post_xml(self, address: str, envelope: Any, headers: Mapping[str, str]) -> requests.Response:
        response: requests.Response = super().post_xml(address, envelope, headers)  # type: ignore[no-untyped-call]
        refuse_doctype(response.content)
        return response


class SoapServices:
    """The three bound services of one tenant and the thread pool their calls run in."""

    def __init__(self, proxies: Mapping[Service, ServiceProxy], pool: ThreadPoolExecutor,
                 session: requests.Session, *, owns_session: bool) -> None:
        self._proxies = dict(proxies)
        self._pool = pool
        self._session = session
        self._owns_session = owns_session

    @classmethod
    async def open(cls, settings: ReceiptsSettings, *, session: requests.Session | None = None) -> SoapServices:
        """Load and check the three WSDLs (in the pool: loading is blocking I/O) and bind each to
        its configured address. Raises ReceiptWsdlError."""
        pool = ThreadPoolExecutor(max_workers=settings.max_concurrency, thread_name_prefix="dvcgw-vnpt")
        http = session if session is not None else new_session()
        try:
            proxies = await asyncio.get_running_loop().run_in_executor(pool, partial(bind_services, settings, http))
        except BaseException:
            pool.shutdown(wait=False)
            if session is None:
                http.close()
            raise
        return cls(proxies, pool, http, owns_session=session is None)

    async def aclose(self) -> None:
        """Wait for calls in flight (each bounded by the timeout), then release the pool and session."""
        await asyncio.to_thread(self._pool.shutdown, wait=True)
        if self._owns_session:
            self._session.close()

    async def call(self, operation: str, fields: Mapping[str, object]) -> str | None:
        """Call ``operation`` with ``fields`` (the WSDL's names) and return its ``…Result`` string.

        Raises ReceiptUnavailable (timeout, connection, HTTP status, SOAP fault, a reply that is not
        the expected XML: the outcome is unknown), ReceiptUnsafeReply (a DTD in the reply) or
        ReceiptWsdlError (the request does not fit the WSDL's types)."""
        proxy = self._proxies[OPERATIONS[operation].service]
        loop = asyncio.get_running_loop()
        with _translated(operation):
            result = await loop.run_in_executor(self._pool, partial(proxy[operation], **fields))
        if result is not None and not isinstance(result, str):
            raise ReceiptUnavailable(f"{operation}: the result is not a string", operation=operation)
        return result


@contextmanager
def _translated(operation: str) -> Iterator[None]:
    """requests/zeep exceptions → the adapter's tree. Messages never quote the reply (it may hold
    personal data, and zeep's own messages do quote it)."""
    try:
        yield
    except ReceiptUnsafeReply as exc:
        raise ReceiptUnsafeReply(f"{operation}: {exc}", operation=operation) from exc
    except _UNSAFE as exc:
        raise ReceiptUnsafeReply(f"{operation}: the reply holds a DTD, an entity or an external reference "
                                 f"({type(exc).__name__}); refused unexpanded", operation=operation) from exc
    except requests.Timeout as exc:
        raise ReceiptUnavailable(f"{operation}: no answer from VNPT within the timeout", operation=operation) from exc
    except requests.RequestException as exc:
        raise ReceiptUnavailable(f"{operation}: {type(exc).__name__} talking to VNPT", operation=operation) from exc
    except zeep.exceptions.Fault as exc:
        raise ReceiptUnavailable(f"{operation}: VNPT answered a SOAP fault", operation=operation) from exc
    except zeep.exceptions.TransportError as exc:
        raise ReceiptUnavailable(f"{operation}: VNPT answered HTTP {exc.status_code} without a SOAP reply",
                                 operation=operation) from exc
    except zeep.exceptions.ValidationError as exc:
        raise ReceiptWsdlError(f"{operation}: the request does not fit the WSDL's types", operation=operation) from exc
    except zeep.exceptions.Error as exc:
        raise ReceiptUnavailable(f"{operation}: unexpected reply ({type(exc).__name__})", operation=operation) from exc


# ── start-up: load, check, bind ───────────────────────────────────────────────────────────


def new_session() -> requests.Session:
    """A session that ignores proxy and CA settings from the environment and ~/.netrc, and follows
    no redirect (a WSDL URL included): what the gateway reaches is decided by its settings alone."""
    session = requests.Session()
    session.trust_env = False
    session.max_redirects = 0
    return session


def bind_services(settings: ReceiptsSettings, session: requests.Session) -> dict[Service, ServiceProxy]:
    """Blocking: load each WSDL, check it (spec §9) and bind its 1.1 port to the configured address."""
    return {service: _bind(settings, session, service) for service in Service}


def _bind(settings: ReceiptsSettings, session: requests.Session, service: Service) -> ServiceProxy:
    client = load_client(settings, session, service)
    address = settings.address_of(service.value)
    proxy: ServiceProxy = client.create_service(service.binding, address)  # type: ignore[no-untyped-call]
    return proxy


def load_client(settings: ReceiptsSettings, session: requests.Session, service: Service) -> zeep.Client:
    """Blocking: ``service``'s configured (or bundled) WSDL loaded with the hardened transport and
    settings, and checked (spec §9). Raises ReceiptWsdlError."""
    source = settings.wsdl_for(service.value)
    with _wsdl_location(source, service) as location:
        transport = GuardedTransport(session, load_timeout=float(settings.wsdl_timeout),
                                     operation_timeout=float(settings.timeout))
        try:
            client = zeep.Client(location, transport=transport, settings=zeep_settings())  # type: ignore[no-untyped-call]
        except (ReceiptUnsafeReply, *_UNSAFE) as exc:
            raise ReceiptWsdlError(f"{service.value}: the WSDL from {_name(source)} declares a DTD, an entity "
                                   "or imports another document; refused") from exc
        except (OSError, requests.RequestException, zeep.exceptions.Error, ValueError) as exc:
            raise ReceiptWsdlError(f"{service.value}: cannot load the WSDL from {_name(source)} "
                                   f"({type(exc).__name__})") from exc
    check_wsdl(client, service, _name(source))
    return client


@contextmanager
def _wsdl_location(source: str, service: Service) -> Iterator[str]:
    """The operator's WSDL as given, or a file path to the bundled one."""
    if source:
        yield source
        return
    with resources.as_file(resources.files("adapters.vnpt_receipts").joinpath("wsdl", service.bundled_wsdl)) as p:
        yield str(p)


def _name(source: str) -> str:
    return source or "the gateway's own WSDL"


def check_wsdl(client: zeep.Client, service: Service, source: str) -> None:
    """Raise ReceiptWsdlError unless ``client``'s WSDL has ``service``'s SOAP 1.1 binding with every
    operation of spec §4 on it, with the expected parameter names in order and SOAPAction."""
    try:
        binding = client.wsdl.bindings[service.binding]
    except KeyError:
        raise ReceiptWsdlError(f"{service.value}: the WSDL from {source} has no binding {service.value}Soap") from None
    for name, op in OPERATIONS.items():
        if op.service is service:
            _check_operation(binding, name, op, f"{service.value}: the WSDL from {source}")


def _check_operation(binding: Any, name: str, op: Operation, where: str) -> None:
    try:
        operation = binding.get(name)
    except ValueError:
        raise ReceiptWsdlError(f"{where} lacks the operation {name}", operation=name) from None
    params = tuple(n for n, _ in operation.input.body.type.elements)
    if params != op.parameters:
        raise ReceiptWsdlError(f"{where} declares {name}({', '.join(params)}); expected "
                               f"{name}({', '.join(op.parameters)})", operation=name)
    if operation.soapaction != f"{TNS}{name}":
        raise ReceiptWsdlError(f"{where} gives {name} the SOAPAction {operation.soapaction!r}; expected "
                               f"{TNS}{name}", operation=name)


def bundled_wsdl(service: Service) -> Path:
    """Path of the project's own WSDL for ``service`` (a file inside the installed package)."""
    return Path(str(resources.files("adapters.vnpt_receipts").joinpath("wsdl", service.bundled_wsdl)))
