"""``dvcgw audit export``: a self-contained archive (tar.gz) of the sealed part of the log.

Contents: ``records.jsonl`` (every chained field and hash, no bodies), ``anchor.json`` (where the
chain starts), ``seals/`` (statement, detached CMS signature, path in its tree), ``stamps/``
(RFC 3161 tokens and the roots they cover), ``certs/`` (every certificate embedded in the
signatures and tokens, and the trust roots given), ``verify_chain.py`` (Python standard library
only) and ``README.md`` with the commands. The export is recorded in the log file: retention
prunes only records an export covers.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import tarfile
import time
from pathlib import Path

from asn1crypto import cms, pem

from audit import store
from audit.chain import GENESIS

README = """# dvc-gateway message log, records {first}..{last}

Exported {when} (UTC). Every file needed to check this part of the log is here; nothing is fetched.

1. The chain and the seal statements (Python 3, standard library only):

       python3 verify_chain.py

   It recomputes every record's hash (SHA-256 of its canonical JSON: the fields except `hash`, sorted
   keys, no spaces), checks each `prev` link from `anchor.json` on, checks that each seal's statement
   names a record hash of the chain, and prints the hash-tree root each seal's path leads to; it
   checks that root against `stamps/<id>.root`.

2. Each seal's signature (the gateway's own key) over its statement:

       openssl cms -verify -binary -inform DER -in seals/<id>.p7s -content seals/<id>.statement.json \\
           -CAfile certs/roots.pem -certfile certs/chain.pem -purpose any -out /dev/null

3. Each time-stamp (RFC 3161) over its root, from the TSA:

       openssl ts -verify -digest "$(cat stamps/<id>.root)" -token_in -in stamps/<id>.tst \\
           -CAfile certs/roots.pem -untrusted certs/chain.pem

`certs/roots.pem` holds the trust roots the operator exported with the archive; check them against
the roots you trust (for example the Government CA's published root) before relying on step 2 and 3.

Seals in this archive:
{seals}
"""

VERIFY_CHAIN = '''#!/usr/bin/env python3
"""Checks records.jsonl, anchor.json and seals/ of this archive (standard library only)."""
import glob, hashlib, json, sys
FIELDS = %r
def node(a, b): return hashlib.sha256(b"\\x01" + a + b).digest()
anchor = json.load(open("anchor.json"))
prev, seq, hashes = anchor["hash"], anchor["seq"], {}
for line in open("records.jsonl", encoding="utf-8"):
    r = json.loads(line)
    canon = json.dumps({k: r[k] for k in sorted(FIELDS)}, separators=(",", ":"), ensure_ascii=False)
    if r["seq"] != seq + 1: sys.exit(f"record {seq + 1} is missing")
    if hashlib.sha256(canon.encode()).hexdigest() != r["hash"]: sys.exit(f"record {r['seq']}: hash mismatch")
    if r["prev"] != prev: sys.exit(f"record {r['seq']}: broken link")
    prev, seq, hashes[r["seq"]] = r["hash"], r["seq"], r["hash"]
for p in sorted(glob.glob("seals/*.statement.json")):
    sid = p.split("/")[-1].split(".")[0]
    st_bytes, sig = open(p, "rb").read(), open(f"seals/{sid}.p7s", "rb").read()
    st, path = json.loads(st_bytes), json.load(open(f"seals/{sid}.path.json"))
    if hashes.get(st["head_seq"]) != st["head_hash"]: sys.exit(f"seal {sid}: not a record of this chain")
    h = hashlib.sha256(b"\\x00" + hashlib.sha256(st_bytes).digest() + hashlib.sha256(sig).digest()).digest()
    for side, sib in path["path"]:
        h = node(bytes.fromhex(sib), h) if side == "L" else node(h, bytes.fromhex(sib))
    if h.hex() != open(f"stamps/{path['stamp']}.root").read().strip(): sys.exit(f"seal {sid}: root mismatch")
    print(f"seal {sid}: head record {st['head_seq']}, root {h.hex()} (stamps/{path['stamp']}.tst)")
print(f"OK: records {anchor['seq'] + 1}..{seq} chain correctly")
'''


def _certs(der: bytes) -> list[bytes]:
    sd = cms.ContentInfo.load(der)["content"]
    return [c.chosen.dump() for c in (sd["certificates"] or [])]


def _add(tar: tarfile.TarFile, name: str, data: bytes, when: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(when), 0o644
    tar.addfile(info, io.BytesIO(data))


def export(conn: sqlite3.Connection, out: Path, roots: list[Path], *, now: float | None = None) -> tuple[int, int]:
    """Writes the archive of every record up to the last time-stamped seal; returns (first, last)
    seq. Raises ValueError when nothing is sealed yet."""
    when = time.time() if now is None else now
    upto = store.stamped_upto(conn)
    if upto == 0:
        raise ValueError("nothing is sealed and time-stamped yet: there is nothing to export")
    a = store.anchor(conn) or store.Head(0, GENESIS)
    seals = [s for s in store.seals(conn) if s.stamp_id is not None and a.seq < s.head_seq <= upto]
    stamps = store.stamps(conn)
    out.parent.mkdir(parents=True, exist_ok=True)
    certs: dict[bytes, None] = {}
    with tarfile.open(out, "w:gz") as tar:
        lines = [json.dumps({**r.canonical(), "hash": r.hash}, ensure_ascii=False, separators=(",", ":"))
                 for r in store.records(conn, a.seq + 1, upto)]
        _add(tar, "records.jsonl", ("\n".join(lines) + "\n").encode(), when)
        _add(tar, "anchor.json", json.dumps({"seq": a.seq, "hash": a.hash}).encode(), when)
        for s in seals:
            _add(tar, f"seals/{s.id}.statement.json", s.statement, when)
            _add(tar, f"seals/{s.id}.p7s", s.signature, when)
            _add(tar, f"seals/{s.id}.path.json", json.dumps({"stamp": s.stamp_id, "path": s.path}).encode(), when)
            certs.update(dict.fromkeys(_certs(s.signature)))
        for sid in sorted({s.stamp_id for s in seals if s.stamp_id is not None}):
            _add(tar, f"stamps/{sid}.tst", stamps[sid].token, when)
            _add(tar, f"stamps/{sid}.root", stamps[sid].root.encode() + b"\n", when)
            certs.update(dict.fromkeys(_certs(stamps[sid].token)))
        _add(tar, "certs/chain.pem", b"".join(pem.armor("CERTIFICATE", c) for c in certs), when)
        _add(tar, "certs/roots.pem", b"".join(p.read_bytes() for p in roots), when)
        from audit.chain import FIELDS
        _add(tar, "verify_chain.py", (VERIFY_CHAIN % (FIELDS,)).encode(), when)
        listing = "\n".join(f"- seal {s.id}: head record {s.head_seq}, time-stamp {s.stamp_id}" for s in seals)
        _add(tar, "README.md", README.format(first=a.seq + 1, last=upto, seals=listing,
                                             when=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))).encode(), when)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    conn.execute("BEGIN IMMEDIATE")
    store.record_export(conn, upto, when, str(out), digest)
    conn.execute("COMMIT")
    return a.seq + 1, upto
