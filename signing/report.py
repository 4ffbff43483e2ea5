"""One validation report per embedded signature, with an ETSI-style main indication.

Report shape (JSON)::

    {"field_name", "type": "signature" | "document_timestamp", "intact", "valid", "trusted",
     "signer": {"subject", "serial"}, "signing_time", "timestamp": {"valid", "time"} | null,
     "coverage", "covers_whole_document", "modification_level", "docmdp_ok",
     "revocation": "good" | "revoked" | "unknown" | "not_checked",
     "indication": "TOTAL-PASSED" | "INDETERMINATE" | "TOTAL-FAILED", "sub_indication"}

Mapping (first match wins): broken digest → TOTAL-FAILED/HASH_FAILURE; bad signature value →
TOTAL-FAILED/SIG_CRYPTO_FAILURE; revoked signer → TOTAL-FAILED/REVOKED; pyHanko's trust problem
(AdES sub-indication) → its own class; DocMDP violated → TOTAL-FAILED/FORMAT_FAILURE; a signature
time-stamp that does not validate → INDETERMINATE; else TOTAL-PASSED.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESStatus
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureStatus
from pyhanko_certvalidator import ValidationContext

PASSED, INDETERMINATE, FAILED = "TOTAL-PASSED", "INDETERMINATE", "TOTAL-FAILED"


async def validate_one(sig: EmbeddedPdfSignature, vc: ValidationContext, ts_vc: ValidationContext
                       ) -> dict[str, Any]:
    """Validates one signature or document time-stamp; never raises for a bad signature."""
    if sig.sig_object_type == "/DocTimeStamp":
        status: Any = await async_validate_pdf_timestamp(sig, validation_context=vc)
        return _report(sig, status, "document_timestamp")
    status = await async_validate_pdf_signature(sig, signer_validation_context=vc, ts_validation_context=ts_vc)
    return _report(sig, status, "signature")


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def _report(sig: EmbeddedPdfSignature, st: Any, kind: str) -> dict[str, Any]:
    cert = st.signing_cert
    ts = getattr(st, "timestamp_validity", None)
    indication, sub = indication_for(st)
    coverage = st.coverage.name.lower() if st.coverage is not None else None
    return {
        "field_name": sig.field_name,
        "type": kind,
        "intact": bool(st.intact),
        "valid": bool(st.valid),
        "trusted": bool(st.trusted),
        "signer": {"subject": cert.subject.human_friendly, "serial": format(cert.serial_number, "x")},
        "signing_time": _iso(getattr(st, "signer_reported_dt", None) or getattr(st, "timestamp", None)),
        "timestamp": None if ts is None else {"valid": bool(ts.valid and ts.intact and ts.trusted),
                                              "time": _iso(ts.timestamp)},
        "coverage": coverage,
        "covers_whole_document": coverage == "entire_file",
        "modification_level": st.modification_level.name.lower() if st.modification_level else None,
        "docmdp_ok": st.docmdp_ok,
        "revocation": revocation_result(st),
        "indication": indication,
        "sub_indication": sub,
    }


def revocation_result(st: SignatureStatus) -> str:
    """``revoked``; ``good`` once the chain validated with hard-fail revocation checks; else why not."""
    if st.revoked:
        return "revoked"
    if st.trusted:
        return "good"
    if st.trust_problem_indic in (AdESIndeterminate.TRY_LATER, AdESIndeterminate.REVOCATION_OUT_OF_BOUNDS_NO_POE):
        return "unknown"
    return "not_checked"


def indication_for(st: Any) -> tuple[str, str | None]:
    """The ETSI EN 319 102-1 style (main indication, sub-indication) for a pyHanko status."""
    if not st.intact:
        return FAILED, AdESFailure.HASH_FAILURE.name
    if not st.valid:
        return FAILED, AdESFailure.SIG_CRYPTO_FAILURE.name
    if st.revoked:
        return FAILED, AdESFailure.REVOKED.name
    problem = st.trust_problem_indic
    if problem is not None:
        main = FAILED if problem.status == AdESStatus.FAILED else INDETERMINATE
        return main, problem.name
    if not st.trusted:
        return INDETERMINATE, AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND.name
    if getattr(st, "docmdp_ok", True) is False:
        return FAILED, AdESFailure.FORMAT_FAILURE.name
    ts = getattr(st, "timestamp_validity", None)
    if ts is not None and not (ts.intact and ts.valid and ts.trusted):
        return INDETERMINATE, AdESIndeterminate.GENERIC.name
    return PASSED, None
