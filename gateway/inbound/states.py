"""Spec §7.9: the portal's textual dossier states → ``TrangThaiHoSo`` codes (TH
``FormatTrangThaiHoSoDVCQG.cs``, kept exactly as the source has it, ``receiving`` → 1 and ``new``
→ 2 included [UNCERTAIN])."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: §7.9 as given; "0" is the source's "unknown" (``interoperating``, ``posting``)
TEXT_STATES: Mapping[str, str] = MappingProxyType({
    "receiving": "1", "new": "2", "denied": "3", "processing": "4", "waiting": "5", "paying": "6",
    "cancelled": "7", "unresolved": "8", "releasing": "9", "done": "10",
    "interoperating": "0", "posting": "0",
})
CODES = frozenset(str(n) for n in range(1, 11))


def state_code(value: object) -> str | None:
    """The §7.1 code of a pulled dossier's state, or None when it has none (code 0, an unlisted
    text, no value): the provincial system then leaves its local state as it is [POLICY]. The text
    is compared trimmed and lower-cased; a code the portal already sent as "1".."10" is kept."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text in CODES:
        return text
    code = TEXT_STATES.get(text.lower())
    return None if code in (None, "0") else code
