"""VNPT's ``ERR:n`` codes per operation, their meaning and what the gateway does about each.

The meanings are the spec's tables (``e-receipts.md`` §7.2, from VNPT integration guides G1/G2,
**[UNCERTAIN source]**). The same code means different things in different operations, so every
table is per operation. The category decides the verdict:

============================  =========  ==================================================
category                      verdict    what the caller does
============================  =========  ==================================================
``already_done``              DONE       nothing: the effect is already there (ERR:13 issue,
                                         ERR:8 cancel)
``transient``                 TRANSIENT  retry later with the same fkey (§7.3)
``pending_tax_authority``     TRANSIENT  the tax authority has not accepted it yet: later
``configuration``             PERMANENT  a person fixes the tenant settings (login, pattern,
                                         serial, certificate); alert the operator
``data``                      PERMANENT  the request must be corrected
``capacity``                  PERMANENT  the unit registers a new receipt range
``not_found``                 PERMANENT  VNPT does not hold that fkey
``not_paid``                  PERMANENT  the receipt is marked unpaid (view, download)
``state``                     PERMANENT  the receipt's status forbids the operation
``unlisted``                  PERMANENT  a code the spec does not list, or a bare ``ERR:``:
                                         a person looks at ``vendor_text``
============================  =========  ==================================================

Unlisted codes are permanent [POLICY, docs/decisions.md]: the gateway cannot know whether retrying
is safe or useful, and a dead letter can be replayed by an operator once understood.
"""

from __future__ import annotations

import enum
from types import MappingProxyType
from typing import NamedTuple


class Verdict(enum.Enum):
    """What an answer means to the caller."""

    OK = "ok"  # done now
    DONE = "done"  # already done before: not an error
    TRANSIENT = "transient"  # retry later
    PERMANENT = "permanent"  # dead-letter it


class Category(enum.Enum):
    ALREADY_DONE = "already_done"
    TRANSIENT = "transient"
    PENDING_TAX_AUTHORITY = "pending_tax_authority"
    CONFIGURATION = "configuration"
    DATA = "data"
    CAPACITY = "capacity"
    NOT_FOUND = "not_found"
    NOT_PAID = "not_paid"
    STATE = "state"
    UNLISTED = "unlisted"
    UNKNOWN_OUTCOME = "unknown_outcome"  # not a code: ``OK:`` without our key (§7.1 rule 4)

    @property
    def verdict(self) -> Verdict:
        if self is Category.ALREADY_DONE:
            return Verdict.DONE
        if self in (Category.TRANSIENT, Category.PENDING_TAX_AUTHORITY, Category.UNKNOWN_OUTCOME):
            return Verdict.TRANSIENT
        return Verdict.PERMANENT


class Code(NamedTuple):
    meaning: str
    category: Category


ISSUE = "ImportAndPublishInv"
UNCONFIRM = "UnConfirmPaymentFkey"
CANCEL = "cancelInv"
VIEW = "getInvViewFkey"
DOWNLOAD = "downloadInvPDFFkey"

_C = Category
_LOGIN = Code("Wrong login, or no permission", _C.CONFIGURATION)
_NOT_ACCEPTED_CODED = Code("Document with a tax-authority code not yet accepted by the tax authority",
                           _C.PENDING_TAX_AUTHORITY)
_NOT_ACCEPTED_UNCODED = Code("Document without a tax-authority code not yet accepted by the tax authority",
                             _C.PENDING_TAX_AUTHORITY)

TABLES: MappingProxyType[str, MappingProxyType[str, Code]] = MappingProxyType({
    ISSUE: MappingProxyType({
        "1": _LOGIN,
        "3": Code("Input XML invalid; the whole batch is rejected", _C.DATA),
        "5": Code("Could not publish; rolled back", _C.TRANSIENT),
        "6": Code("The receipt range does not have enough numbers for the batch", _C.CAPACITY),
        "7": Code("User name does not match; no company found for the user", _C.CONFIGURATION),
        "10": Code("Batch larger than the allowed maximum", _C.DATA),
        "13": Code("Duplicate fkey", _C.ALREADY_DONE),
        "20": Code("Pattern and serial do not match, no registered range uses them, or only one of the two "
                   "was sent", _C.CONFIGURATION),
        # [UNCERTAIN whether ERR:21 is transient] — the spec's §7.3 class; the fkey keeps a retry safe
        "21": Code("Duplicate receipt number", _C.TRANSIENT),
        "29": Code("Certificate expired", _C.CONFIGURATION),
        "30": Code("The batch has a receipt date earlier than receipts already issued", _C.DATA),
    }),
    UNCONFIRM: MappingProxyType({
        "1": Code("Wrong login", _C.CONFIGURATION),
        "2": Code("Key string not valid", _C.DATA),
        "6": Code("No receipt found for the given key", _C.NOT_FOUND),
        "7": Code('Could not reverse the "paid" mark', _C.STATE),
    }),
    CANCEL: MappingProxyType({
        "1": _LOGIN,
        "2": Code("The receipt to cancel does not exist", _C.NOT_FOUND),
        "8": Code("Already replaced or already cancelled", _C.ALREADY_DONE),
        "9": Code("The receipt's status does not allow cancelling", _C.STATE),
    }),
    VIEW: MappingProxyType({
        "1": _LOGIN,
        "4": Code("The company has no registered pattern", _C.CONFIGURATION),
        "6": Code("Receipt not found", _C.NOT_FOUND),
        "7": Code("Company information not found", _C.CONFIGURATION),
        "11": Code("Not paid, so it cannot be viewed", _C.NOT_PAID),
        "12": _NOT_ACCEPTED_CODED,
        "13": _NOT_ACCEPTED_UNCODED,
    }),
    DOWNLOAD: MappingProxyType({
        "1": Code("Wrong login, or the account lacks the ServiceRole permission", _C.CONFIGURATION),
        "2": Code("Key string badly formed", _C.DATA),
        "4": Code("No issuance notice (range) found", _C.CONFIGURATION),
        "6": Code("Receipt not found", _C.NOT_FOUND),
        "7": Code("User name does not match any company", _C.CONFIGURATION),
        # not in G2's table for this call but listed for its sibling downloadInvFkey [POLICY §7.2]
        "11": Code("Not paid, so it cannot be downloaded", _C.NOT_PAID),
        "12": _NOT_ACCEPTED_CODED,
        "13": _NOT_ACCEPTED_UNCODED,
    }),
})


def lookup(operation: str, code: str) -> Code:
    """The meaning and category of ``ERR:<code>`` answered by ``operation``; unlisted codes (and
    the bare ``ERR:``) get category UNLISTED."""
    found = TABLES.get(operation, MappingProxyType({})).get(code)
    if found is not None:
        return found
    if not code:
        return Code(f"Unspecified error (a bare ERR: from {operation})", _C.UNLISTED)
    return Code(f"ERR:{code} is not listed for {operation} in the spec's tables", _C.UNLISTED)
