"""schemathesis hooks for tests/fuzz/test_schemathesis.py, loaded by the ``schemathesis run`` it starts.

- Every id and cursor at and past the 64-bit bounds (gateway.params.BOUNDARY_IDS) is an explicit
  example of each route that takes one (the portal's dead letters and the jobs'). The served
  document lists them all, but schemathesis drops an example its schema rejects (2^64, 26 digits
  and -1 on SQLite), and those are the point.
- Every path parameter and number-like query parameter gets Unicode digits ("²", "١٢"), the trap
  of a number check written with ``str.isdigit()``.
- A well-formed dossier code is moved into the test agency's unit, a body's own well-formed code
  to the path's, and a body's 14-digit dates that are no real time (the schema gives their shape
  only) to one, so that fuzzed dossiers and progress get past 403 (another agency's unit), the
  path/body mismatch and the calendar to the rest of the checks and the store behind them (202).
  Malformed codes are left alone.
- A snapshot without ``TenTTHC`` gets one. The schema leaves it optional because the procedure
  catalogue fills it (gateway/catalogue/fill.py), but the fuzzed daemon runs without a catalogue
  (tests/daemon.py), where the agency must send it, as for a code the catalogue does not hold.
- A fuzzed ``PUT /v1/maintenance`` never turns maintenance mode on: that makes ``/readyz`` answer
  503 on purpose, which the server-error check would take for a failure of every later /readyz.
  tests/gateway/test_readiness.py covers turning it on.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

import schemathesis

from gateway.dossier.code import code_problem
from gateway.params import BOUNDARY_IDS
from tests.harness import AGENCY_KEY, OPERATOR_KEY, UNIT

#: the environment variable through which the test hands its seeded identifiers (JSON) to the hooks
SEEDS_ENV = "DVCGW_FUZZ_SEEDS"

#: Text that ``str.isdigit()`` takes and ``int()`` refuses ("²") or reads as another number ("١" is
#: 1): the trap of a number check written with isdigit(). schemathesis' own negative strings
#: rarely hold them, so every path parameter and every number-like query parameter gets them.
UNICODE_DIGITS = ("²", "١٢", "0²")
_NUMBER_QUERY = frozenset({"limit", "cursor", "period"})


@schemathesis.hook
def before_add_examples(context: schemathesis.HookContext, examples: list[schemathesis.Case]) -> None:
    operation = context.operation
    if operation is None:
        return
    examples.extend(_unicode_digit_cases(operation))
    examples.extend(_seeded_cases(operation))
    key = {"X-API-Key": OPERATOR_KEY}  # schemathesis' auth is applied to the cases it generates only
    for value, _ in BOUNDARY_IDS.values():
        if operation.path.startswith(("/v1/dead-letters/{id}", "/v1/jobs/dead-letters/{id}")):
            examples.append(operation.Case(path_parameters={"id": value}, headers=key))
        elif operation.path in ("/v1/dead-letters", "/v1/jobs/dead-letters"):
            examples.append(operation.Case(query={"cursor": value}, headers=key))


def _key_for(operation: Any) -> dict[str, str]:
    """The key of the operation's first security scheme (none for an open route)."""
    security = operation.definition.raw.get("security") or [{}]
    scheme = next(iter(security[0]), "")
    return {"X-API-Key": OPERATOR_KEY if scheme.startswith("operator") else AGENCY_KEY} if scheme else {}


def _seeded_cases(operation: Any) -> list[schemathesis.Case]:
    """The test's seeded identifiers (``SEEDS_ENV``: a real payment reference) as examples of the
    routes that take them, so those get past their 404."""
    seeds = json.loads(os.environ.get(SEEDS_ENV, "{}"))
    path = {p.name for p in operation.iter_parameters() if p.location.value == "path"}
    if not path or not path <= set(seeds):
        return []
    return [operation.Case(path_parameters={n: seeds[n] for n in path}, headers=_key_for(operation))]


def _unicode_digit_cases(operation: Any) -> list[schemathesis.Case]:
    """One case per trap value, with every path parameter set to it, and one per number-like query
    parameter, each with the key the operation's first security scheme names."""
    headers = _key_for(operation)
    params = [(p.location.value, p.name) for p in operation.iter_parameters()]
    path = [n for where, n in params if where == "path"]
    query = [n for where, n in params if where == "query" and n in _NUMBER_QUERY]
    cases = []
    for value in UNICODE_DIGITS:
        if path:
            cases.append(operation.Case(path_parameters=dict.fromkeys(path, value), headers=headers))
        cases += [operation.Case(query={n: value}, headers=headers) for n in query]
    return cases


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    if case.operation.path == "/v1/maintenance" and isinstance(case.body, dict) and case.body.get("enabled") is True:
        case.body = {**case.body, "enabled": False}
    code = (case.path_parameters or {}).get("MaHoSo")
    if not isinstance(code, str) or code_problem(code):
        return case
    owned = UNIT + code[code.index("-"):]
    case.path_parameters = {**case.path_parameters, "MaHoSo": owned}
    if isinstance(case.body, list):
        case.body = [_owned_body(item, owned) for item in case.body]
    else:
        case.body = _owned_body(case.body, owned)
    return case


def _owned_body(body: Any, owned: str) -> Any:
    if not isinstance(body, dict):
        return body
    code = body.get("MaHoSo")
    return _named(_real_times({**body, "MaHoSo": owned} if isinstance(code, str) and not code_problem(code) else body))


def _named(body: dict[str, Any]) -> dict[str, Any]:
    """A snapshot (it has a MaTTHC) without a TenTTHC given one: no catalogue can fill it here."""
    name = body.get("TenTTHC")
    if "MaTTHC" in body and (name is None or (isinstance(name, str) and not name.strip())):
        return {**body, "TenTTHC": "Thủ tục thử nghiệm"}
    return body


def _real_times(value: Any) -> Any:
    """``value`` with each 14-digit string that is not a real time (the schema's shape of a date,
    which it does not check further) made one, so a body can get past the date checks."""
    if isinstance(value, dict):
        return {k: _real_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_real_times(v) for v in value]
    if isinstance(value, str) and len(value) == 14 and value.isascii() and value.isdigit():
        try:
            datetime.strptime(value, "%Y%m%d%H%M%S")
        except ValueError:
            return "20240315093000"
    return value
