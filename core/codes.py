"""Code formats shared by the layers: kept here, at the bottom, so that settings checks (config/)
and the HTTP edge (gateway/) use the same expression.

Unit codes (mã định danh of an agency, spec §3 ``madonvi`` and §8 ``MaDinhDanhDonVi``, e.g.
``000.00.01.H55``) are four dot-separated groups of 3, 2, 2 and 3 ASCII letters or digits. The
spec infers the format from examples (``000.00.01.H56``, ``000.00.00.H55``); the gateway accepts
letters in any group and either case, so ``G12.01.00.A01`` or a lower-case spelling also pass
(docs/decisions.md, "hostile input").
"""

from __future__ import annotations

#: A unit code, as a regular expression without anchors.
UNIT_CODE_PATTERN = r"[0-9A-Za-z]{3}\.[0-9A-Za-z]{2}\.[0-9A-Za-z]{2}\.[0-9A-Za-z]{3}"
