"""Agency signing options: parsed and checked here, without I/O (pure).

JSON shape (multipart ``options`` part, or query parameters for a raw ``application/pdf`` body)::

    {"key": "so-tu-phap", "level": "B-T", "reason": "...", "location": "...", "field_name": "Sig1",
     "certify": false, "docmdp": "form_filling",
     "appearance": {"page": 0, "box": [50, 50, 350, 110],
                    "text": "Ký bởi: %(name)s", "params": {"name": "..."}}}
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Literal, cast

from core.errors import FieldError, ValidationError

Level = Literal["B-B", "B-T", "B-LT", "B-LTA"]
LEVELS: tuple[Level, ...] = ("B-B", "B-T", "B-LT", "B-LTA")
DocMdp = Literal["no_changes", "form_filling", "annotate"]
DOCMDP: tuple[DocMdp, ...] = ("no_changes", "form_filling", "annotate")
_KNOWN = {"key", "level", "reason", "location", "field_name", "certify", "docmdp", "appearance"}
_MAX_TEXT = 500


@dataclass(frozen=True)
class Appearance:
    """A visible stamp: ``box`` is (x1, y1, x2, y2) in PDF points on page ``page`` (0-based)."""

    page: int
    box: tuple[int, int, int, int]
    text: str
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SignOptions:
    key: str
    level: Level = "B-B"
    reason: str | None = None
    location: str | None = None
    field_name: str | None = None
    certify: bool = False
    docmdp: DocMdp = "form_filling"
    appearance: Appearance | None = None

    def needs_tsa(self) -> bool:
        return self.level != "B-B"


def parse_options(raw: object) -> SignOptions:
    """Checks a decoded JSON object; raises ValidationError listing every bad field."""
    if not isinstance(raw, dict):
        raise ValidationError([FieldError("options", "expected a JSON object")])
    errors = [FieldError(k, "unknown option") for k in sorted(set(raw) - _KNOWN)]
    key = _text(raw, "key", errors, required=True)
    level = raw.get("level", "B-B")
    if level not in LEVELS:
        errors.append(FieldError("level", f"must be one of {', '.join(LEVELS)}"))
    docmdp = raw.get("docmdp", "form_filling")
    if docmdp not in DOCMDP:
        errors.append(FieldError("docmdp", f"must be one of {', '.join(DOCMDP)}"))
    certify = raw.get("certify", False)
    if not isinstance(certify, bool):
        errors.append(FieldError("certify", "expected true or false"))
    opts = {n: _text(raw, n, errors) for n in ("reason", "location", "field_name")}
    appearance = _appearance(raw.get("appearance"), errors)
    if errors:
        raise ValidationError(errors)
    return SignOptions(key=cast(str, key), level=cast(Level, level), certify=bool(certify),
                       docmdp=cast(DocMdp, docmdp), appearance=appearance, **opts)


def options_from_query(query: dict[str, str]) -> SignOptions:
    """Options given as query parameters (raw PDF body): strings, ``certify=true``."""
    raw: dict[str, Any] = dict(query)
    if "certify" in raw:
        raw["certify"] = raw["certify"].lower() in ("1", "true", "yes")
    return parse_options(raw)


def _text(raw: dict[str, Any], name: str, errors: list[FieldError], *, required: bool = False) -> str | None:
    value = raw.get(name)
    if value is None:
        if required:
            errors.append(FieldError(name, "required"))
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_TEXT:
        errors.append(FieldError(name, f"expected a non-empty string of at most {_MAX_TEXT} characters"))
        return None
    return unicodedata.normalize("NFC", value)


def _appearance(raw: object, errors: list[FieldError]) -> Appearance | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.append(FieldError("appearance", "expected an object"))
        return None
    before = len(errors)
    page = raw.get("page", 0)
    if not isinstance(page, int) or isinstance(page, bool) or page < 0:
        errors.append(FieldError("appearance.page", "expected a page index (0-based)"))
    box = raw.get("box")
    if not (isinstance(box, list) and len(box) == 4 and all(_is_num(v) for v in box)
            and box[0] < box[2] and box[1] < box[3]):
        errors.append(FieldError("appearance.box", "expected [x1, y1, x2, y2] with x1 < x2 and y1 < y2"))
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > _MAX_TEXT:
        errors.append(FieldError("appearance.text", "expected a non-empty string"))
    params = raw.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        errors.append(FieldError("appearance.params", "expected an object of strings"))
    if len(errors) > before:
        return None
    nfc = unicodedata.normalize
    _check_placeholders(cast(str, text), params, errors)
    box_t = cast(tuple[int, int, int, int], tuple(int(v) for v in cast(list[float], box)))
    return Appearance(page=cast(int, page), box=box_t,
                      text=nfc("NFC", cast(str, text)),
                      params=tuple(sorted((str(k), nfc("NFC", v)) for k, v in params.items())))


def _is_num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_placeholders(text: str, params: dict[str, str], errors: list[FieldError]) -> None:
    known = {"signer": "", "ts": ""} | {k: "" for k in params}
    try:
        text % known
    except (KeyError, ValueError, TypeError) as exc:
        errors.append(FieldError("appearance.text", f"placeholder not given in params: {exc}"))
