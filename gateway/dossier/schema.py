"""JSON Schema of the accepted bodies, derived from the same §6 tables as the validator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.dossier.spec import (
    DOSSIER,
    FIELD_LIMITS,
    FROM_CATALOGUE,
    LOCAL_ONLY_FIELD,
    MAHOSO_KHAC,
    MAX_NUMBER_DIGITS,
    MAX_PROGRESS_ITEMS,
    PROGRESS,
    Kind,
    Spec,
    Table,
)

_NON_BLANK = {"type": "string", "pattern": r"\S"}


def _scalar_schema(spec: Spec) -> dict[str, Any]:
    """JSON Schema of one present, non-blank scalar value."""
    whole = [{"type": "string", "pattern": f"^[0-9]{{1,{MAX_NUMBER_DIGITS}}}$"},
             {"type": "integer", "minimum": 0, "maximum": 10**MAX_NUMBER_DIGITS - 1}]
    schemas: dict[Kind, dict[str, Any]] = {
        Kind.TEXT: dict(_NON_BLANK),
        Kind.ID: {"anyOf": [dict(_NON_BLANK), {"type": "integer"}]},
        Kind.DATE: {"type": "string", "pattern": "^[0-9]{14}$"},
        Kind.CODE: {"enum": [*spec.codes, *(int(c) for c in spec.codes)]},
        Kind.AMOUNT: {"anyOf": whole},
        Kind.COUNT: {"anyOf": whole},
        Kind.URL: {"type": "string", "format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s/?#]+"},
        Kind.DELETED: {"enum": ["True", "False", "0", "1", True, False, 0, 1]},
    }
    return schemas[spec.kind]


def _field_schema(spec: Spec) -> dict[str, Any]:
    if spec.kind is Kind.LIST:
        assert spec.item is not None
        schema: dict[str, Any] = {"type": "array", "items": _object_schema(spec.item)}
    else:
        schema = _scalar_schema(spec)
    if spec.req != "R":
        # Absent, null, "" and white space all mean "not known" for an optional field.
        schema = {"anyOf": [schema, {"type": "null"}, {"type": "string", "pattern": r"^\s*$"}]}
    limit = FIELD_LIMITS.get(spec.name)
    if limit is not None:
        schema["description"] = f"Longer texts are cut to {limit} characters, ending in \"...\"."
    if spec.name in FROM_CATALOGUE:
        schema["description"] = ("Filled from the procedure catalogue (GET /v1/procedures/{MaTTHC}) when left out."
                                 + (" Required when the catalogue does not hold MaTTHC." if spec.name == "TenTTHC"
                                    else ""))
    return schema


def _object_schema(table: Table, extra: Mapping[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    properties = {spec.name: _field_schema(spec) for spec in table.fields}
    properties.update(extra or {})
    return {
        "type": "object",
        "title": table.title,
        "properties": properties,
        "required": [spec.name for spec in table.fields if spec.req == "R"],
        "additionalProperties": False,
    }


def dossier_json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12, OpenAPI 3.1 compatible, no ``$ref``) of an accepted snapshot body.

    It describes shapes only: whether a date is a real time and whether the body ``MaHoSo`` is
    the path's are checked by :func:`validate_snapshot` alone.
    """
    alt = _field_schema(MAHOSO_KHAC)
    alt["description"] = ("Alternative dossier code (spec §8): checked, never forwarded to the portal, "
                          "not stored by the gateway yet.")
    schema = _object_schema(DOSSIER, {LOCAL_ONLY_FIELD: alt})
    schema["description"] = ("One dossier snapshot in DVCQG field names (spec §6.1). Codes may be "
                             "strings or integers; absent optional values are sent as \"\" or [].")
    return schema


def progress_json_schema() -> dict[str, Any]:
    """JSON Schema of an accepted progress body: one §6.9 item or a list of 1–500 of them.

    ``MaHoSo`` may be left out (it is taken from the path), so it is not required here.
    """
    item = _object_schema(PROGRESS)
    item["required"] = [name for name in item["required"] if name != "MaHoSo"]
    return {
        "description": "Progress items (spec §6.9), in the order they happened.",
        "oneOf": [item, {"type": "array", "minItems": 1, "maxItems": MAX_PROGRESS_ITEMS, "items": item}],
    }
