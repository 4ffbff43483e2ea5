"""The accept path's use of the catalogue: fill what the agency left out, judge unknown codes.

:func:`complete` runs after :func:`gateway.dossier.validate_snapshot`, before the durable append:

* ``TenTTHC``, ``MaLinhVuc`` and ``TenLinhVuc`` left out (absent, null or blank: the validator
  made them "") are taken from the catalogue entry of ``MaTTHC``; what the agency sent is kept;
* a ``MaTTHC`` the catalogue does not hold is, under ``[catalogue] strictness = "warn"``, accepted,
  counted (``dvcgw_catalogue_unknown_procedures_total{action="accepted"}``) and logged with the
  procedure code and the agency only; under ``"reject"`` refused with a 422 naming ``MaTTHC``.
  While the catalogue is empty (never pulled, or disabled) nothing is judged unknown;
* ``TenTTHC`` is required by the portal (spec §6.1): a snapshot without it whose procedure the
  catalogue cannot name is refused with a 422 naming ``TenTTHC``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace

from core.errors import FieldError, ValidationError
from gateway.catalogue.service import Catalogue
from gateway.dossier import Validated
from monitoring.metrics import Metrics

log = logging.getLogger("dvcgw.catalogue")

#: The dossier fields the catalogue fills, with the catalogue entry's attribute for each.
FILLED = (("TenTTHC", "ten_tthc"), ("MaLinhVuc", "ma_linh_vuc"), ("TenLinhVuc", "ten_linh_vuc"))

UNKNOWN_CODE = "unknown_procedure"
_CODE = re.compile(r"[0-9A-Za-z._-]{1,64}")


def complete(item: Validated, catalogue: Catalogue | None, metrics: Metrics, agency: str) -> Validated:
    """``item`` with the catalogue's names filled in; raises ValidationError (422) for an unknown
    ``MaTTHC`` under ``reject``, or a ``TenTTHC`` nobody can supply."""
    payload = item.payload
    ma_tthc = str(payload.get("MaTTHC", ""))
    found = catalogue.find(ma_tthc) if catalogue is not None else None
    errors: list[FieldError] = []
    if found is None and catalogue is not None and catalogue.size:
        errors += _unknown(ma_tthc, catalogue, metrics, agency)
    missing = [name for name, _ in FILLED if not payload.get(name)]
    if found is not None and missing:
        filled = dict(payload)
        for name, attr in FILLED:
            if not filled.get(name):
                filled[name] = getattr(found, attr)
        item = replace(item, payload=filled)
    if not item.payload.get("TenTTHC"):
        errors.append(FieldError("TenTTHC", "required field is missing; the procedure catalogue holds no name "
                                            "for this MaTTHC, so the agency must send it"))
    if errors:
        unknown = any(e.field == "MaTTHC" for e in errors)
        raise ValidationError(errors, code=UNKNOWN_CODE if unknown else "validation_failed")
    return item


def _unknown(ma_tthc: str, catalogue: Catalogue, metrics: Metrics, agency: str) -> list[FieldError]:
    """Count and log an unknown procedure code; the error to report under ``reject``."""
    reject = catalogue.settings.strictness == "reject"
    metrics.catalogue_unknown.labels("refused" if reject else "accepted").inc()
    shown = repr(ma_tthc) if _CODE.fullmatch(ma_tthc) else f"<{len(ma_tthc)} characters, not shown>"
    log.warning("procedure code %s of agency %s is not in the procedure catalogue (%d procedures); %s",
                shown, agency, catalogue.size, "refused" if reject else "accepted")
    if not reject:
        return []
    # like every validation message, the value is not repeated (gateway/dossier/validate.py)
    return [FieldError("MaTTHC", "not in the national procedure catalogue (LayDanhSachTTHC); look the code up "
                                 "with GET /v1/procedures")]
