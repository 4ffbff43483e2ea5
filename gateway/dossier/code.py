"""The dossier code, ``MaHoSo``: what every code in a request path must look like (issue 13).

Every code, the portal's own and a local one that §8 will later map to a portal code:

* at most :data:`MAX_CODE_LENGTH` characters, all of them ASCII letters, digits, ``.``, ``_`` or
  ``-`` (so no space, slash, backslash, percent sign, control character or Vietnamese letter: one
  spelling per dossier, nothing that forges a log line or escapes a path);
* a first dash segment that is a unit code (:data:`core.codes.UNIT_CODE`, e.g. ``000.00.01.H55``),
  the same format the settings demand of ``[[agencies]] units``, which it is compared with;
* at least one more dash segment, none of them empty.

With ``[dossiers] strict_code = true`` it must moreover have the portal's form
``<unit>-<yyMMdd>-<digits>`` (spec §8 step 3), the yyMMdd a real date. :func:`code_pattern` is
the same rule as a JSON Schema pattern (less the date's realness), for the OpenAPI document.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from core.codes import UNIT_CODE, is_unit_code

MAX_CODE_LENGTH = 64

_ALPHABET_RE = re.compile(r"[0-9A-Za-z._-]+")
_REST_RE = re.compile(r"(?:-[0-9A-Za-z._]+)+")
_STRICT_REST_RE = re.compile(r"-([0-9]{2})([0-9]{2})([0-9]{2})-[0-9]+")
EXAMPLE = "000.00.01.H55-240315-00012"


def code_pattern(strict: bool = False) -> str:
    """The rule as one anchored regular expression (JSON Schema ``pattern``)."""
    rest = r"-[0-9]{6}-[0-9]+" if strict else r"(?:-[0-9A-Za-z._]+)+"
    return f"^{UNIT_CODE}{rest}$"


def code_schema(strict: bool = False) -> dict[str, Any]:
    """JSON Schema of a dossier code."""
    form = "<unit>-<yyMMdd>-<digits>" if strict else "<unit>-<one or more segments>"
    return {"type": "string", "pattern": code_pattern(strict), "maxLength": MAX_CODE_LENGTH,
            "description": f"Dossier code, {form}, e.g. {EXAMPLE}: ASCII letters, digits, '.', '_' and '-'; "
                           f"the first dash segment is the unit code (e.g. 000.00.01.H55)."}


def code_problem(code: str, strict: bool = False) -> str:
    """Why ``code`` is not a well-formed dossier code ("" if it is). Never repeats the code."""
    if len(code) > MAX_CODE_LENGTH:
        return f"is {len(code)} characters long; a dossier code has at most {MAX_CODE_LENGTH}"
    if not _ALPHABET_RE.fullmatch(code):
        return ("may contain only the ASCII letters A-Z and a-z, digits, '.', '_' and '-' (no space, slash, "
                "backslash, percent sign, control character or Vietnamese letter)")
    unit, dash, rest = code.partition("-")
    if not is_unit_code(unit):
        return ("its first dash segment must be a unit code: digits in groups of 3, 2 and 2, then a capital "
                "letter and 2 digits, dot-separated, e.g. 000.00.01.H55")
    if strict:
        return _strict_problem(dash + rest)
    if not _REST_RE.fullmatch(dash + rest):
        return f"needs one or more dash segments after the unit code, none of them empty, e.g. {EXAMPLE}"
    return ""


def _strict_problem(rest: str) -> str:
    m = _STRICT_REST_RE.fullmatch(rest)
    if m is None:
        return f"expected the portal's form <unit>-<yyMMdd>-<digits>, e.g. {EXAMPLE} ([dossiers] strict_code)"
    yy, mm, dd = (int(g) for g in m.groups())
    try:
        date(2000 + yy, mm, dd)
    except ValueError:
        return "the yyMMdd after the unit code is not a real date"
    return ""
