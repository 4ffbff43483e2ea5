"""VNPT e-receipt adapter (biên lai điện tử over SOAP, spec ``e-receipts.md``): issue, cancel, view,
download. zeep with the operator's WSDL or the project's own (``wsdl/``), bound to the configured
address; pure envelopes and result parsing; one translated ``call()``.

Callers use :class:`ReceiptsClient`, the request model (:func:`receipt_requests`, the fkey rule) and
the outcome types; errors come from :mod:`adapters.vnpt_receipts.errors`.
"""

from adapters.vnpt_receipts.client import Presence, ReceiptsClient
from adapters.vnpt_receipts.codes import Category, Verdict
from adapters.vnpt_receipts.envelope import Outcome, Receipt
from adapters.vnpt_receipts.model import (
    FeeKind,
    FeeLine,
    Payer,
    PaymentMethod,
    ReceiptRequest,
    fkey_for,
    receipt_requests,
)

__all__ = [
    "Category",
    "FeeKind",
    "FeeLine",
    "Outcome",
    "Payer",
    "PaymentMethod",
    "Presence",
    "Receipt",
    "ReceiptRequest",
    "ReceiptsClient",
    "Verdict",
    "fkey_for",
    "receipt_requests",
]
