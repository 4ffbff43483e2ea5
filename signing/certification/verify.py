"""Verify a presented certified copy (spec §7): open to anyone, no key.

Checks, each adding a reason code when it fails:

1. the file's SHA-256 is a record's ``file_sha256`` (else the block's book and number are looked up,
   so a changed or forged file is reported against the record it claims: ``HASH_MISMATCH``; with no
   record at all: ``NOT_FOUND``);
2. the record is ``valid`` (``RECORD_REVOKED`` with date and reason in the record; ``RECORD_VOID``);
3. every signature is intact and trusted (``SIGNATURE_INVALID``; ``SIGNATURE_INDETERMINATE`` when
   trust or revocation data cannot be had) and was made by a signer the record names (``SIGNER_MISMATCH``);
4. the block printed on the last page carries the record's number, book and date (``BLOCK_MISMATCH``);
5. nothing was changed after signing: the last signature covers the whole file (``MODIFIED_AFTER_SIGNING``).

Verdict: ``valid`` when nothing failed; ``revoked`` when the only failure is the record's revocation;
``unknown`` when no record matches by hash or by block; else ``invalid``. Only the record's public
part is returned (no requester data).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from signing.certification.books import VN_TZ, Books, Entry
from signing.certification.errors import CertificationError
from signing.certification.stamp import page_count
from signing.report import INDETERMINATE, PASSED
from signing.service import SigningService

_NUMBER = re.compile(r"Số chứng thực:\s*(\d{1,9})\s+Quyển số:\s*(\S+)")
_DATE = re.compile(r"Ngày\s+(\d{2})\s+tháng\s+(\d{2})\s+năm\s+(\d{4})")
_PDFTOTEXT_TIMEOUT = 20.0


def unchanged_since(report: dict[str, Any]) -> bool:
    """Nothing was changed after this signature, save validation data and time-stamps (B-LT, B-LTA:
    pyHanko's ``lta_updates``): spec §3 check 3 "except permitted later DSS or timestamp updates"."""
    return bool(report["covers_whole_document"]) or report.get("modification_level") == "lta_updates"


@dataclass(frozen=True)
class Block:
    number: int | None = None
    book_name: str | None = None
    date: str | None = None  # dd/MM/yyyy


@dataclass
class Outcome:
    record: Entry | None = None
    reasons: list[dict[str, str]] = field(default_factory=list)

    def fail(self, code: str, message: str) -> None:
        self.reasons.append({"code": code, "message": message})

    def as_json(self) -> dict[str, Any]:
        codes = {r["code"] for r in self.reasons} - {"BLOCK_NOT_CHECKED"}  # informative, not a failure
        if self.record is None:
            verdict = "unknown"
        elif not codes:
            verdict = "valid"
        elif codes == {"RECORD_REVOKED"}:
            verdict = "revoked"
        else:
            verdict = "invalid"
        return {"verdict": verdict, "reasons": self.reasons,
                "record": self.record.public() if self.record is not None else None}


async def read_block(pdf: bytes) -> Block | None:
    """The block's number, book and date from the last page's text (poppler ``pdftotext``); None if
    the tool is missing or the text cannot be read."""
    exe = shutil.which("pdftotext")
    if exe is None:
        return None
    try:
        last = str(page_count(pdf))
    except CertificationError:  # not a readable PDF: no block; the other checks say why
        return Block()
    proc = await asyncio.create_subprocess_exec(exe, "-layout", "-f", last, "-l", last, "-", "-",
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(pdf), timeout=_PDFTOTEXT_TIMEOUT)
    except (OSError, TimeoutError):
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        return None
    text = unicodedata.normalize("NFC", out.decode("utf-8", "replace"))
    m, d = _NUMBER.search(text), _DATE.search(text)
    return Block(int(m.group(1)) if m else None, m.group(2) if m else None,
                 f"{d.group(1)}/{d.group(2)}/{d.group(3)}" if d else None)


async def verify(books: Books, signing: SigningService, pdf: bytes) -> dict[str, Any]:
    """Runs the five checks; raises BadPdf (from the signing service) for a file that is no PDF."""
    out = Outcome()
    reports = await signing.validate(pdf)
    block = await read_block(pdf)
    out.record = await asyncio.to_thread(_find, books, pdf, block)
    if out.record is None:
        out.fail("NOT_FOUND", "no certification record matches this file or the number printed on it")
        return out.as_json()
    record = out.record
    if hashlib.sha256(pdf).hexdigest() != record.file_sha256:
        out.fail("HASH_MISMATCH", "the file is not the certified copy recorded under that number")
    _status(out, record)
    _signatures(out, record, reports)
    _block(out, record, block)
    return out.as_json()


def _find(books: Books, pdf: bytes, block: Block | None) -> Entry | None:
    by_hash = books.by_sha256(hashlib.sha256(pdf).hexdigest())
    if by_hash is not None or block is None or block.number is None or block.book_name is None:
        return by_hash
    found = books.find(block.book_name, block.number)
    return found[0] if len(found) == 1 else None


def _status(out: Outcome, record: Entry) -> None:
    if record.status == "revoked":
        out.fail("RECORD_REVOKED", f"revoked on {record.revoked_at}: {record.revocation_reason}")
    elif record.status != "valid":
        out.fail("RECORD_VOID" if record.status == "void" else "RECORD_NOT_VALID",
                 f"the record is {record.status}" + (f": {record.void_reason}" if record.void_reason else ""))


def _signatures(out: Outcome, record: Entry, reports: list[dict[str, Any]]) -> None:
    sigs = [r for r in reports if r["type"] == "signature"]
    if not sigs:
        out.fail("SIGNATURE_INVALID", "the file carries no signature")
        return
    for r in sigs:
        if r["indication"] == INDETERMINATE:
            out.fail("SIGNATURE_INDETERMINATE", f"signature {r['field_name']}: {r['sub_indication']}")
        elif r["indication"] != PASSED:
            out.fail("SIGNATURE_INVALID", f"signature {r['field_name']}: {r['sub_indication']}")
    if not unchanged_since(sigs[-1]):
        out.fail("MODIFIED_AFTER_SIGNING", "the file was changed after its last signature")
    known = {s.get("serial") for s in record.signers}
    if any(r["signer"]["serial"] not in known for r in sigs):
        out.fail("SIGNER_MISMATCH", "a signature was made by a certificate the record does not name")


def _block(out: Outcome, record: Entry, block: Block | None) -> None:
    if block is None:
        out.reasons.append({"code": "BLOCK_NOT_CHECKED", "message": "the block's text could not be read here"})
        return
    date = record.certified_date.astimezone(VN_TZ).strftime("%d/%m/%Y")
    if (block.number, block.book_name, block.date) != (record.cert_number, record.book_name, date):
        out.fail("BLOCK_MISMATCH", "the number, book or date printed on the last page differ from the record")
