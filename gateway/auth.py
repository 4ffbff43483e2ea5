"""Per-agency and operator identity: one API key, in the ``X-API-Key`` header or ``Authorization: Bearer``.

Keys are compared by SHA-256 digest in constant time; plaintext keys from settings are hashed at
start-up, so only digests stay in memory. Which agency called is stored on the request.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from aiohttp import web

from config.schema import AgencySettings, OperatorSettings
from gateway.http_errors import HTTPProblem


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
    """Maps presented API keys to agencies, and recognises the operator key."""

    def __init__(self, agencies: Iterable[AgencySettings], operator: OperatorSettings) -> None:
        self._agencies: list[tuple[bytes, AgencySettings]] = []
        for a in agencies:
            d = bytes.fromhex(a.api_key_sha256) if a.api_key_sha256 else _digest(a.api_key)
            self._agencies.append((d, a))
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

    def is_operator(self, key: str) -> bool:
        return self._operator is not None and hmac.compare_digest(self._operator, _digest(key))


KEYRING = web.AppKey("keyring", KeyRing)
AGENCY = web.RequestKey("agency", AgencySettings)  # set on the request once require_agency succeeded


def require_agency(request: web.Request) -> AgencySettings:
    """The calling agency, also stored on the request (``request[AGENCY]``); raises 401 (house
    error shape) for no key or an unknown key."""
    key = presented_key(request)
    if key is None:
        raise HTTPProblem(401, "unauthenticated", "an agency API key is required (X-API-Key header)")
    agency = request.app[KEYRING].agency_for(key)
    if agency is None:
        raise HTTPProblem(401, "unauthenticated", "unknown API key")
    request[AGENCY] = agency
    return agency


def require_operator(request: web.Request) -> None:
    """Raises 401 unless the operator key was presented."""
    key = presented_key(request)
    if key is None or not request.app[KEYRING].is_operator(key):
        raise HTTPProblem(401, "unauthenticated", "the operator API key is required (X-API-Key header)")


def require_operator_or_agency(request: web.Request) -> AgencySettings | None:
    """None for the operator key, the agency (also stored on the request) for an agency key;
    raises 401 (house error shape) for no key or an unknown key."""
    key = presented_key(request)
    if key is not None and request.app[KEYRING].is_operator(key):
        return None
    return require_agency(request)
