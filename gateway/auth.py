"""Per-agency and operator identity, and the agencies' grants (deny by default, issue 17).

An agency authenticates with its API key (``X-API-Key`` or ``Authorization: Bearer``) or with a
TLS client certificate mapped to it by subject or SHA-256 fingerprint (``[server] client_cert``,
``agencies.tls_subjects``/``tls_fingerprints``); the operator with the operator key. Keys are
compared by SHA-256 digest in constant time; plaintext keys from settings are hashed at start-up,
so only digests stay in memory. When a request presents both a key and a mapped certificate, they
must name the same agency.

Who called is worked out once per request (:func:`identify`, first by the access middleware for
the limits) and kept on the request; the routes ask :func:`require_agency`,
:func:`require_operator` or :func:`require_operator_or_agency`. A known agency outside its grants
gets 403 from :func:`forbid`: the body names the grant, and the refusal is logged (agency code,
method, route template; never the path or the body) and counted.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web
from cryptography import x509

from config.schema import AgencySettings, OperatorSettings, fingerprint_hex, normal_subject
from core.errors import FieldError
from gateway.appkeys import METRICS, SETTINGS
from gateway.http_errors import HTTPProblem

log = logging.getLogger("dvcgw.access")

#: the grants an agency may lack (the ``grant`` of a 403 body and of dvcgw_access_refusals_total)
UNITS, PROCEDURES, SIGNING_KEYS = "units", "procedures", "signing_keys"
AUTHORITIES, OPERATOR = "authorities", "operator"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def presented_key(request: web.Request) -> str | None:
    """The one key the request presents; None if it presents none.

    Raises 400 (house error shape) when it presents more than one: ``X-API-Key`` twice,
    ``Authorization`` twice, or both headers with different keys. Each route used to take the
    first or the last of them; now no route has to choose (docs/decisions.md, issue 13).
    """
    x_api_keys = request.headers.getall("X-API-Key", [])
    authorizations = request.headers.getall("Authorization", [])
    if len(x_api_keys) > 1 or len(authorizations) > 1:
        raise _more_than_one_key()
    key = presented(x_api_keys[0] if x_api_keys else None, None)
    bearer = presented(None, authorizations[0] if authorizations else None)
    if key is not None and bearer is not None and key != bearer:
        raise _more_than_one_key()
    return key if key is not None else bearer


def _more_than_one_key() -> HTTPProblem:
    return HTTPProblem(400, "bad_request", "the request presents more than one API key; send exactly one, "
                                           "in X-API-Key or in Authorization: Bearer")


def presented(x_api_key: str | None, authorization: str | None) -> str | None:
    """The key from ``X-API-Key``, else from ``Authorization: Bearer``; None if neither has one."""
    if x_api_key:
        return x_api_key.strip()
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


class KeyRing:
    """Maps presented API keys and client certificates to agencies, and recognises the operator key."""

    def __init__(self, agencies: Iterable[AgencySettings], operator: OperatorSettings) -> None:
        self._agencies: list[tuple[bytes, AgencySettings]] = []
        self._by_fingerprint: dict[str, AgencySettings] = {}
        self._by_subject: dict[str, AgencySettings] = {}
        for a in agencies:
            if a.api_key_sha256 or a.api_key:
                d = bytes.fromhex(a.api_key_sha256) if a.api_key_sha256 else _digest(a.api_key)
                self._agencies.append((d, a))
            self._by_fingerprint |= {fingerprint_hex(f): a for f in a.tls_fingerprints}
            self._by_subject |= {normal_subject(dn): a for dn in a.tls_subjects}
        self._operator: bytes | None = None
        if operator.api_key_sha256:
            self._operator = bytes.fromhex(operator.api_key_sha256)
        elif operator.api_key:
            self._operator = _digest(operator.api_key)

    def agency_for(self, key: str) -> AgencySettings | None:
        d = _digest(key)
        found = None
        for digest, agency in self._agencies:
            if hmac.compare_digest(digest, d):
                found = agency
        return found

    def agency_for_certificate(self, der: bytes) -> AgencySettings | None:
        """The agency a (handshake-verified) client certificate is mapped to: by fingerprint, else by subject."""
        fingerprint, subject = _certificate_names(der)
        return self._by_fingerprint.get(fingerprint) or self._by_subject.get(subject)

    def is_operator(self, key: str) -> bool:
        return self._operator is not None and hmac.compare_digest(self._operator, _digest(key))


@functools.lru_cache(maxsize=256)  # a kept-alive connection presents the same certificate each request
def _certificate_names(der: bytes) -> tuple[str, str]:
    """SHA-256 fingerprint (hex) and RFC 4514 subject of a DER certificate."""
    subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    return hashlib.sha256(der).hexdigest(), subject


def peer_certificate(request: web.Request) -> bytes | None:
    """The client certificate (DER) the TLS handshake verified; None over plain HTTP or without one."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return der or None


@dataclass(frozen=True)
class Identity:
    """Who a request comes from: an agency, the operator, or nobody known (``problem`` says why)."""

    agency: AgencySettings | None = None
    operator: bool = False
    problem: HTTPProblem | None = None


KEYRING = web.AppKey("keyring", KeyRing)
AGENCY = web.RequestKey("agency", AgencySettings)  # set on the request once require_agency succeeded
IDENTITY = web.RequestKey("identity", Identity)


def identify(request: web.Request) -> Identity:
    """The request's identity, worked out once and kept on the request; never raises."""
    known = request.get(IDENTITY)
    if known is None:
        try:
            known = _identify(request)
        except HTTPProblem as problem:  # two keys: 400
            known = Identity(problem=problem)
        request[IDENTITY] = known
    return known


def _identify(request: web.Request) -> Identity:
    ring = request.app[KEYRING]
    key = presented_key(request)
    der = peer_certificate(request)
    by_cert = ring.agency_for_certificate(der) if der is not None else None
    if key is not None:
        if ring.is_operator(key):
            return Identity(operator=True)
        agency = ring.agency_for(key)
        if agency is None:
            return Identity(problem=_unauthenticated("unknown API key"))
        if by_cert is not None and by_cert.code != agency.code:
            return Identity(problem=_unauthenticated("the client certificate and the API key belong to "
                                                     "different agencies"))
        return Identity(agency=agency)
    if by_cert is not None:
        return Identity(agency=by_cert)
    if der is not None:
        return Identity(problem=_unauthenticated("the client certificate is not mapped to any agency "
                                                 "(agencies.tls_subjects, tls_fingerprints)"))
    return Identity()


#: the 401 without credentials names the client certificate only where the server asks for one
_NO_CREDENTIALS = {False: "an agency API key is required (X-API-Key header)",
                   True: "an agency API key (X-API-Key header) or client certificate is required"}


def _unauthenticated(message: str) -> HTTPProblem:
    return HTTPProblem(401, "unauthenticated", message)


def require_agency(request: web.Request) -> AgencySettings:
    """The calling agency, also stored on the request (``request[AGENCY]``); raises 400 for two
    keys, 401 (house error shape) for no credentials, unknown ones or the operator key."""
    who = identify(request)
    if who.agency is None:
        if who.problem is not None:
            raise who.problem
        if who.operator:  # as before issue 17: the operator key is no agency's key
            raise _unauthenticated("unknown API key: this route is for agencies")
        settings = request.app.get(SETTINGS)
        raise _unauthenticated(_NO_CREDENTIALS[settings is not None and settings.server.client_cert != "none"])
    request[AGENCY] = who.agency
    return who.agency


def require_operator(request: web.Request) -> None:
    """Raises 401 unless the operator key was presented; 403 (grant ``operator``) for an agency."""
    who = identify(request)
    if who.operator:
        return
    if who.agency is not None:
        raise forbid(request, who.agency, OPERATOR, "X-API-Key", "this route is for the operator only")
    if who.problem is not None and who.problem.status_code == 400:
        raise who.problem
    raise _unauthenticated("the operator API key is required (X-API-Key header)")


def require_operator_or_agency(request: web.Request) -> AgencySettings | None:
    """None for the operator key, the agency (also stored on the request) for an agency;
    raises 400/401 (house error shape) as :func:`require_agency`."""
    if identify(request).operator:
        return None
    return require_agency(request)


def forbid(request: web.Request, agency: AgencySettings, grant: str, field: str, message: str,
           detail: str = "") -> HTTPProblem:
    """The 403 for an agency outside ``grant`` (body: ``"grant"``, and the field with ``detail``),
    logged and counted.

    The log line holds the agency code, the grant, the method and the route template only: the
    path (a dossier code) and the body stay out of it."""
    log.warning("forbidden: agency %s lacks the %s grant for %s %s", agency.code, grant, request.method,
                route_template(request))
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.access_refused(agency.code, grant)
    errors = [FieldError(field, detail or f"not within agency {agency.code}'s {grant!r} grant")]
    return HTTPProblem(403, "forbidden", message, errors, extra={"grant": grant})


def route_template(request: web.Request) -> str:
    """The matched route's template, ``-`` when none (as gateway.requestlog, which imports this module)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "-"


def may_send_procedure(agency: AgencySettings, ma_tthc: str) -> bool:
    """Whether one of the agency's ``procedures`` patterns (globs, case-sensitive) matches ``ma_tthc``."""
    return any(fnmatch.fnmatchcase(ma_tthc, pattern) for pattern in agency.procedures)
