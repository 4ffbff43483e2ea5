"""Code formats every layer checks the same way.

A unit code (mã định danh of an agency, Decision 20/2020/QĐ-TTg) is four dot-separated groups:
three digits, two digits, two digits, then a letter and two digits (``H56`` for a province's
units, ``G…`` for central bodies), e.g. ``000.00.01.H56``. It is the first dash segment of every
``MaHoSo`` and the portal's ``madonvi`` (spec §2, §8; the spec marks the format [INFERRED], so the
letter is not fixed to ``H``). The same expression checks ``[[agencies]] units`` and
``portal.madonvi`` (config/) and the first segment of every ``MaHoSo`` in a request path
(gateway/dossier/code.py).
"""

from __future__ import annotations

import re

UNIT_CODE = r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}"
UNIT_CODE_RE = re.compile(UNIT_CODE)


def is_unit_code(text: str) -> bool:
    return UNIT_CODE_RE.fullmatch(text) is not None
