"""Pure build and parse of the national-portal (DVCQG) JSON service API. No I/O here.

Wire rules (spec ``national-portal.md`` §2–§5, §9):

* login body ``{"username", "password"}``; success = ``error_code`` 0 **and** a ``session``;
* service body ``{"session", "madonvi", "service", **params}`` with the parameters flattened;
* ``TraCuuHoSo`` takes ``mahoso`` (lower case), ``DongBoHoSoMC`` takes ``isUpdating`` as the
  *string* ``"True"``/``"False"`` and ``data[]``, ``CapNhatTienDoHoSoMC`` takes ``data[]`` of at
  most 10 progress items;
* ``error_code`` is trimmed; if it parses as an integer equal to 0 the call succeeded (``0``,
  ``"0"``, ``"00"``). Message texts are compared after NFC normalisation and lower-casing.
"""

from __future__ import annotations

import base64
import email.utils
import enum
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from core.errors import PortalAuthFailed, PortalUnavailable

LOOKUP = "TraCuuHoSo"
SYNC_DOSSIERS = "DongBoHoSoMC"
PUSH_PROGRESS = "CapNhatTienDoHoSoMC"
PROCEDURE = "LayThuTuc"  # integration endpoint
PROCEDURE_LIST = "LayDanhSachTTHC"  # share endpoint
MAX_PROGRESS_ITEMS = 10

_EXISTS_CODES = frozenset({"0", "3", "-3"})
_EXISTS_TEXT = "đã tồn tại"
# [UNCERTAIN] the portal's words for "this dossier does not exist" to an update are not public; the
# simulator and the reports we have say "Hồ sơ … không tồn tại …". Both words are required, so a
# rejection such as "Mã TTHC không tồn tại" (an unknown procedure code) stays a rejection.
_MISSING_TEXTS = ("hồ sơ", "không tồn tại")
# [UNCERTAIN] the portal's expired-session reply is not public; these words in a non-zero reply's
# message are taken to mean "log in again" (spec §2.5 reactive refresh, §9 auth_expired).
_SESSION_WORDS = ("phiên", "session", "đăng nhập", "login")


class Verdict(enum.Enum):
    """What a decoded service reply means to the caller."""

    OK = "ok"
    EXISTS = "exists"  # "đã tồn tại" with error_code in {"0", "3", "-3"}
    NOT_FOUND = "not_found"  # a non-zero reply saying the dossier ("hồ sơ") does not exist
    SESSION_EXPIRED = "session_expired"
    REJECTED = "rejected"


# ── text and code normalisation ────────────────────────────────────────────────────────────


def fold(text: str) -> str:
    """NFC-normalise and lower-case ``text``, the one way portal messages are compared."""
    return unicodedata.normalize("NFC", text).lower()


def code_text(error_code: Any) -> str:
    """``error_code`` as trimmed text (``0`` → ``"0"``, ``None`` → ``""``)."""
    return "" if error_code is None else str(error_code).strip()


def is_ok(error_code: Any) -> bool:
    """True when the trimmed ``error_code`` parses as an integer equal to 0 (spec §2.4)."""
    if isinstance(error_code, bool):
        return False
    try:
        return int(code_text(error_code)) == 0
    except ValueError:
        return False


def message_of(reply: Mapping[str, Any]) -> str:
    """The reply's ``message`` as text, verbatim ("" when absent)."""
    msg = reply.get("message")
    return "" if msg is None else str(msg)


def is_already_exists(reply: Mapping[str, Any]) -> bool:
    """The §5.6 "đã tồn tại" reply: code in {"0","3","-3"} and the folded message contains it."""
    return code_text(reply.get("error_code")) in _EXISTS_CODES and _EXISTS_TEXT in fold(message_of(reply))


def is_not_found(reply: Mapping[str, Any]) -> bool:
    """A non-zero reply whose folded message says the dossier does not exist."""
    folded = fold(message_of(reply))
    return not is_ok(reply.get("error_code")) and all(text in folded for text in _MISSING_TEXTS)


def mentions_session(message: str) -> bool:
    """True when a message speaks of the session or of logging in (the expiry heuristic)."""
    folded = fold(message)
    return any(word in folded for word in _SESSION_WORDS)


def verdict(reply: Mapping[str, Any]) -> Verdict:
    """Classify a decoded service reply; "already exists" is tested before the success test."""
    if is_already_exists(reply):
        return Verdict.EXISTS
    if is_ok(reply.get("error_code")):
        return Verdict.OK
    if mentions_session(message_of(reply)):
        return Verdict.SESSION_EXPIRED
    if is_not_found(reply):
        return Verdict.NOT_FOUND
    return Verdict.REJECTED


# ── request bodies ─────────────────────────────────────────────────────────────────────────


def login_body(username: str, password: str) -> dict[str, str]:
    """The §2.2 login body."""
    return {"username": username, "password": password}


def service_body(
    service: str, params: Mapping[str, Any], *, madonvi: str, session: str | None
) -> dict[str, Any]:
    """The §2.3 envelope; ``session`` is omitted when None (pure ``oauth2`` deployments)."""
    body: dict[str, Any] = {}
    if session is not None:
        body["session"] = session
    body["madonvi"] = madonvi
    body["service"] = service
    body.update(params)
    return body


def lookup_params(mahoso: str) -> dict[str, str]:
    """``TraCuuHoSo`` parameters, with the OC wire spelling ``mahoso``."""
    return {"mahoso": mahoso}


def sync_params(dossiers: Sequence[Mapping[str, Any]], *, updating: bool) -> dict[str, Any]:
    """``DongBoHoSoMC`` parameters: ``isUpdating`` is the string "True"/"False", never a boolean."""
    return {"isUpdating": "True" if updating else "False", "data": [dict(d) for d in dossiers]}


def progress_params(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``CapNhatTienDoHoSoMC`` parameters; raises ValueError for more than 10 items."""
    if len(items) > MAX_PROGRESS_ITEMS:
        raise ValueError(f"at most {MAX_PROGRESS_ITEMS} progress items per call, got {len(items)}")
    return {"data": [dict(i) for i in items]}


def procedure_params(ma_tthc: str) -> dict[str, str]:
    """``LayThuTuc`` parameters, with the OC wire spelling ``maTTHC`` (spec §5)."""
    return {"maTTHC": ma_tthc}


def base_headers(dstcode: str) -> dict[str, str]:
    """Headers every portal call carries, the login included."""
    return {"Accept": "application/json", "dstcode": dstcode}


# ── replies ────────────────────────────────────────────────────────────────────────────────


def decode_json_object(body: bytes, *, what: str) -> dict[str, Any]:
    """Decode a reply body that must be one JSON object; anything else is PortalUnavailable.

    An HTML error page, an empty body or a JSON array means broken upstream (spec §9).
    """
    try:
        data = orjson.loads(body[3:] if body.startswith(b"\xef\xbb\xbf") else body)  # a BOM is tolerated
    except orjson.JSONDecodeError as exc:
        raise PortalUnavailable(f"{what}: reply is not JSON ({len(body)} bytes)") from exc
    if not isinstance(data, dict):
        raise PortalUnavailable(f"{what}: reply is JSON but not an object")
    return data


def session_from_login(reply: Mapping[str, Any]) -> str:
    """The session of a successful login reply; raises PortalAuthFailed when refused."""
    session = reply.get("session")
    if is_ok(reply.get("error_code")) and isinstance(session, str) and session:
        return session
    code = code_text(reply.get("error_code"))
    raise PortalAuthFailed(message_of(reply) or "portal login refused", code=code)


def result_rows(reply: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The objects of ``result[]`` (LayDanhSachTTHC, LayThuTuc, a dossier pull), in order; a missing
    or null ``result`` is no rows, and elements that are not JSON objects are left out."""
    result = reply.get("result")
    if not isinstance(result, list):
        return []
    return [row for row in result if isinstance(row, dict)]


def has_result(reply: Mapping[str, Any]) -> bool:
    """``TraCuuHoSo``: True when ``result`` is a non-empty array (the dossier exists)."""
    result = reply.get("result")
    return isinstance(result, list) and len(result) > 0


# ── HTTP-level details ─────────────────────────────────────────────────────────────────────


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """``Retry-After`` in seconds from now (RFC 9110: delta-seconds or HTTP-date), or None.

    ``now`` is the wall clock (epoch seconds). A date in the past gives 0; garbage gives None, and
    so do more than 10 digits (over 300 years). ASCII digits only: ``str.isdigit()`` also takes "²",
    which ``int()`` refuses, and 400 nines overflowed ``float()``, each a foreign exception.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text)) if len(text) <= 10 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; obsolete forms may come without a zone
        return None
    return max(0.0, when.timestamp() - now)


# ── OAuth2 client credentials (spec §3) ─────────────────────────────────────────────────────


@dataclass(frozen=True)
class TokenRequest:
    """Form fields and headers of a client-credentials token request."""

    form: dict[str, str]
    headers: dict[str, str]


@dataclass(frozen=True)
class Token:
    """A bearer token and how long it may be used (already reduced by the safety margin)."""

    header_value: str
    usable_for: float


TOKEN_MARGIN_S = 60.0
DEFAULT_EXPIRES_IN_S = 300.0  # [POLICY] when the platform omits expires_in


def token_request(client_id: str, client_secret: str, *, client_auth: str) -> TokenRequest:
    """``grant_type=client_credentials`` with Basic client auth, or id/secret in the form body."""
    form = {"grant_type": "client_credentials"}
    headers = {"Accept": "application/json"}
    if client_auth == "form":
        form |= {"client_id": client_id, "client_secret": client_secret}
    else:
        raw = f"{client_id}:{client_secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
    return TokenRequest(form=form, headers=headers)


def usable_lifetime(expires_in: float) -> float:
    """Reuse a token until ``expires_in − 60 s``; short-lived tokens get half their life."""
    if expires_in > 2 * TOKEN_MARGIN_S:
        return expires_in - TOKEN_MARGIN_S
    return expires_in / 2


def parse_token(reply: Mapping[str, Any]) -> Token:
    """A token reply → :class:`Token`; raises PortalAuthFailed when no access_token came back."""
    access = reply.get("access_token")
    if not isinstance(access, str) or not access:
        raise PortalAuthFailed("token endpoint returned no access_token")
    token_type = reply.get("token_type")
    kind = token_type if isinstance(token_type, str) and token_type else "Bearer"
    try:
        expires_in = float(reply.get("expires_in", DEFAULT_EXPIRES_IN_S))
    except (TypeError, ValueError):
        expires_in = DEFAULT_EXPIRES_IN_S
    return Token(header_value=f"{kind} {access}", usable_for=usable_lifetime(expires_in))
