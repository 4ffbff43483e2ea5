"""Independent checks of a signed PDF: pyHanko (through the gateway's report), poppler's pdfsig,
and ``openssl cms -verify`` over the CMS and ByteRange bytes extracted here by hand."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


def pdfsig(pdf: Path) -> list[dict[str, bool]]:
    """One entry per signature: {'valid': 'Signature is Valid.', 'total': 'Total document signed'}."""
    out = subprocess.run(["pdfsig", "-no-ocsp", str(pdf)], capture_output=True, text=True, timeout=60).stdout
    blocks = re.split(r"^Signature #\d+:", out, flags=re.M)[1:]
    return [{"valid": "Signature Validation: Signature is Valid." in b,
             "total": "Total document signed" in b and "Not total document signed" not in b} for b in blocks]


def _der_length(data: bytes) -> int:
    if data[0] != 0x30:
        raise ValueError("CMS does not start with a SEQUENCE")
    first = data[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    return 2 + n + int.from_bytes(data[2:2 + n], "big")


def extract_cms(pdf: bytes, index: int = 0) -> tuple[bytes, bytes]:
    """(CMS DER, signed bytes) of the ``index``-th /ByteRange in file order."""
    ranges = re.findall(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", pdf)
    a, b, c, d = (int(x) for x in ranges[index])
    hexstr = pdf[a + b:c].strip(b"<> \n\r")
    raw = bytes.fromhex(hexstr.decode())
    return raw[:_der_length(raw)], pdf[a:a + b] + pdf[c:c + d]


def openssl_verify(pdf: bytes, root: Path, work: Path, index: int = 0) -> subprocess.CompletedProcess[str]:
    cms, content = extract_cms(pdf, index)
    work.mkdir(parents=True, exist_ok=True)
    (work / "sig.der").write_bytes(cms)
    (work / "content.bin").write_bytes(content)
    return subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(work / "sig.der"),
         "-content", str(work / "content.bin"), "-CAfile", str(root), "-purpose", "any", "-out", "/dev/null"],
        capture_output=True, text=True, timeout=60)


def openssl_ts_verify(pdf: bytes, root: Path, work: Path, index: int) -> subprocess.CompletedProcess[str]:
    """``openssl ts -verify`` of a document time-stamp (pdfsig cannot check ETSI.RFC3161 ones)."""
    token, content = extract_cms(pdf, index)
    work.mkdir(parents=True, exist_ok=True)
    (work / "tst.der").write_bytes(token)
    (work / "ts-content.bin").write_bytes(content)
    return subprocess.run(
        ["openssl", "ts", "-verify", "-token_in", "-in", str(work / "tst.der"), "-data", str(work / "ts-content.bin"),
         "-CAfile", str(root)], capture_output=True, text=True, timeout=60)
