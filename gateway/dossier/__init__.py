"""The dossier model (spec §6) split by job: the tables as data (:mod:`.spec`), the one validator
derived from them (:mod:`.validate`) and the JSON Schema derived from them (:mod:`.schema`).

The dossier code every path names is checked by :func:`code_problem` (:mod:`.code`).

Callers import from here: the HTTP layer calls :func:`validate_snapshot` for
``PUT /v1/dossiers/{MaHoSo}`` and :func:`validate_progress` for ``POST …/progress``; the OpenAPI
document embeds :func:`dossier_json_schema` and :func:`progress_json_schema`.
"""

from gateway.dossier.code import MAX_CODE_LENGTH, code_pattern, code_problem, code_schema
from gateway.dossier.schema import dossier_json_schema, progress_json_schema
from gateway.dossier.spec import (
    DOSSIER,
    FIELD_LIMITS,
    IS_DELETED_FALSE,
    IS_DELETED_TRUE,
    MAX_PROGRESS_ITEMS,
    PERSONAL_FIELDS,
    PROGRESS,
)
from gateway.dossier.validate import (
    Validated,
    derive_dinh_danh,
    truncate,
    validate_progress,
    validate_snapshot,
)
from gateway.transitions import TransitionClass, classify_transition

__all__ = [
    "DOSSIER",
    "FIELD_LIMITS",
    "IS_DELETED_FALSE",
    "IS_DELETED_TRUE",
    "MAX_CODE_LENGTH",
    "MAX_PROGRESS_ITEMS",
    "PERSONAL_FIELDS",
    "PROGRESS",
    "TransitionClass",
    "Validated",
    "classify_transition",
    "code_pattern",
    "code_problem",
    "code_schema",
    "derive_dinh_danh",
    "dossier_json_schema",
    "progress_json_schema",
    "truncate",
    "validate_progress",
    "validate_snapshot",
]
