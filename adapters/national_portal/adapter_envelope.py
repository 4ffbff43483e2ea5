"""Pure build and parse of the province-adapter variant (spec §3.4, TH's ``KetNoiMotCuaQuocGia``).
No I/O here.

Wire rules:

* one URL per operation (``[portal.adapter]``), every call a ``POST`` of a **bare JSON array**: no
  ``session``/``madonvi``/``service`` envelope, no ``isUpdating`` (create and update have their own
  URLs);
* create and update succeed when ``error_code`` is 0 (trimmed, as §2.4) **and** the ``message``
  says "thành công"; "đã tồn tại" with a code in {"0", "3", "-3"} is tested first (§5.6);
* progress succeeds when the reply, plain text, says "thành công"; a JSON reply is read the same
  way (its ``message`` and, when present, its ``error_code``);
* [UNCERTAIN] the lookup, which TH does not have: ``{"mahoso": …}`` answered like §5.3.

[POLICY] "Says thành công" means the folded text (NFC, lower case) contains "thành công" and not
"không thành công" ("unsuccessful"), which TH's bare substring test would take for a success.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from adapters.national_portal import envelope
from adapters.national_portal.envelope import Verdict

SUCCESS_TEXT = "thành công"
FAILURE_TEXT = "không thành công"
TEXT_REPLY_CODE = "text"  # PortalRejected.code of a plain-text refusal (it carries no code)
_KEPT_CHARS = 500  # of a plain-text refusal, kept as the rejection's message


def dossier_body(dossiers: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Create or update: the dossiers as a bare array (the operation is the URL)."""
    return [dict(d) for d in dossiers]


def progress_body(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Progress: the items as a bare array; raises ValueError for more than 10."""
    if len(items) > envelope.MAX_PROGRESS_ITEMS:
        raise ValueError(f"at most {envelope.MAX_PROGRESS_ITEMS} progress items per call, got {len(items)}")
    return [dict(i) for i in items]


def lookup_body(mahoso: str) -> dict[str, str]:
    """[UNCERTAIN] the lookup's body: the §5 parameter with the OC wire spelling."""
    return envelope.lookup_params(mahoso)


def says_success(text: str) -> bool:
    """True when ``text`` says "thành công" and not "không thành công"."""
    folded = envelope.fold(text)
    return SUCCESS_TEXT in folded and FAILURE_TEXT not in folded


def sync_verdict(reply: Mapping[str, Any]) -> Verdict:
    """Classify a create or update reply. SESSION_EXPIRED means a refusal that speaks of logging
    in: there is no session to renew here, so the caller treats it as refused credentials."""
    if envelope.is_already_exists(reply):
        return Verdict.EXISTS
    if envelope.is_ok(reply.get("error_code")) and says_success(envelope.message_of(reply)):
        return Verdict.OK
    if envelope.is_not_found(reply):
        return Verdict.NOT_FOUND
    if envelope.mentions_session(envelope.message_of(reply)):
        return Verdict.SESSION_EXPIRED
    return Verdict.REJECTED


@dataclass(frozen=True)
class TextReply:
    """A progress reply read: success, or the refusal's code and message (verbatim, shortened)."""

    ok: bool
    code: str = ""
    message: str = ""
    broken: bool = False  # empty or an HTML page: upstream trouble, not an answer (spec §9)


def progress_reply(body: bytes) -> TextReply:
    """Read a progress reply: plain text, a JSON string, or a JSON object with ``message``."""
    text = body.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace").strip()
    if not text or text.startswith("<"):
        return TextReply(ok=False, broken=True)
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        data = text
    if isinstance(data, dict):
        return _object_reply(data, text)
    said = data if isinstance(data, str) else text
    if says_success(said):
        return TextReply(ok=True)
    return TextReply(ok=False, code=TEXT_REPLY_CODE, message=said[:_KEPT_CHARS])


def _object_reply(data: Mapping[str, Any], text: str) -> TextReply:
    message = envelope.message_of(data) if "message" in data else text
    has_code = "error_code" in data
    code_ok = envelope.is_ok(data.get("error_code")) if has_code else True
    if code_ok and says_success(message):
        return TextReply(ok=True)
    code = envelope.code_text(data.get("error_code")) if has_code else TEXT_REPLY_CODE
    return TextReply(ok=False, code=code, message=message[:_KEPT_CHARS])
