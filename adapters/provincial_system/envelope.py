"""Pure build and parse of the provincial system's REST delivery (no I/O here).

The provincial one-stop systems publish no common API, so this is the gateway's own contract
**[POLICY]** (docs/inbound.md), the smallest an idempotent receiver needs:

* ``POST [provincial] url`` with ``Content-Type: application/json; charset=utf-8``, the configured
  authentication header (``[provincial] auth_header: auth_value``), and
  ``Idempotency-Key: <MaHoSo>:<version>``;
* the body (:func:`body`): ``{"MaHoSo", "version", "source": "DVCQG", "TrangThaiDVCQG",
  "TrangThaiHoSo", "pulled_at", "dossier"}``: ``version`` is the SHA-256 of the canonical JSON
  of the dossier as pulled (sorted keys), ``TrangThaiDVCQG`` the portal's textual state,
  ``TrangThaiHoSo`` its §7.9 code (null: unknown, leave the local state as it is), ``dossier``
  the dossier exactly as the portal sent it;
* the receiver is idempotent by ``MaHoSo`` and ``version``: a version it holds is answered 409 (or
  a 4xx saying the dossier already exists): done; a new version of a known dossier replaces it.

Answers (:func:`verdict`): 2xx ok; 409 or "already exists" / "đã tồn tại" exists (done); 429
throttled; 408 and 5xx unavailable; anything else rejected, with the receiver's ``code`` (or
``error``) when it is a short identifier, else ``HTTP <status>``. The receiver's free-text
``message`` is read only to recognise "already exists", never kept: it may quote the citizen.
"""

from __future__ import annotations

import enum
import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

SOURCE = "DVCQG"
_SNIPPET = 200
#: a receiver's own error code is kept when it looks like one (it may be any string: a free text
#: could quote the citizen, and the dead letter's message is logged)
_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_EXISTS_TEXTS = ("already exists", "already exist", "đã tồn tại", "duplicate")


class Verdict(enum.Enum):
    OK = "ok"
    EXISTS = "exists"
    THROTTLED = "throttled"
    UNAVAILABLE = "retryable"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Judged:
    """What an answer means, with the code and message kept for a rejection."""

    verdict: Verdict
    code: str = ""
    message: str = ""


def canonical(dossier: Mapping[str, Any]) -> bytes:
    """The dossier's canonical JSON: keys sorted at every level, UTF-8, no white space."""
    return orjson.dumps(dossier, option=orjson.OPT_SORT_KEYS)


def version_of(dossier: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of :func:`canonical`: equal for a dossier pulled twice unchanged."""
    return hashlib.sha256(canonical(dossier)).hexdigest()


def body(dossier: Mapping[str, Any], *, mahoso: str, version: str, remote_state: str, state_code: str | None,
         pulled_at: str) -> dict[str, Any]:
    """The delivery body (see the module docstring)."""
    return {"MaHoSo": mahoso, "version": version, "source": SOURCE, "TrangThaiDVCQG": remote_state,
            "TrangThaiHoSo": state_code, "pulled_at": pulled_at, "dossier": dict(dossier)}


def headers(auth_header: str, auth_value: str, payload: Mapping[str, Any]) -> dict[str, str]:
    """The request headers: JSON, the authentication header (when a value is set), the idempotency key."""
    out = {"Content-Type": "application/json; charset=utf-8", "Accept": "application/json",
           "Idempotency-Key": f"{payload.get('MaHoSo', '')}:{payload.get('version', '')}"}
    if auth_value:
        out[auth_header] = auth_value
    return out


def encode(payload: Mapping[str, Any]) -> bytes:
    return orjson.dumps(payload)


def _decoded(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _message(data: Mapping[str, Any], raw: bytes) -> str:
    message = data.get("message") or data.get("error_description") or data.get("detail")
    text = message if isinstance(message, str) else raw[:_SNIPPET].decode("utf-8", "replace")
    return text[:_SNIPPET]


def _says_exists(message: str) -> bool:
    folded = unicodedata.normalize("NFC", message).lower()
    return any(t in folded for t in _EXISTS_TEXTS)


def verdict(status: int, raw: bytes) -> Judged:
    """Classify the provincial system's answer (``raw``: its body)."""
    if 200 <= status < 300:
        return Judged(Verdict.OK)
    if status == 409:
        return Judged(Verdict.EXISTS)
    if status == 429:
        return Judged(Verdict.THROTTLED, "429", "HTTP 429")
    if status >= 500 or status == 408:
        return Judged(Verdict.UNAVAILABLE, str(status), f"HTTP {status}")
    data = _decoded(raw)
    if 400 <= status < 500 and _says_exists(_message(data, raw)):
        return Judged(Verdict.EXISTS)
    own = data.get("code") or data.get("error")
    code = own if isinstance(own, str) and _CODE.fullmatch(own) else f"HTTP {status}"
    # the receiver's free text is not kept: it may quote the dossier's owner, and the dead letter's
    # message is written to the log (docs/decisions.md); its code and the status are
    return Judged(Verdict.REJECTED, code, f"HTTP {status}")
