"""``dvcgw audit verify``: walks the chain and the seals and names the first broken link.

The walk checks, in order of seq: no record is missing (seq has no gap), each record's content
matches its hash, and each record's ``prev`` is the previous record's hash. Then each seal: its
statement names the head its row claims, that head is the record at that seq (a rewritten tail of
the chain shows here), its signature verifies over the statement, and its time-stamp token covers
the hash tree root its path leads to. Records after the last seal cannot be proven complete
(deleting them leaves no trace until the next seal); the report says how many there are.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field

from audit import store
from audit.chain import GENESIS, leaf, record_hash, root_from
from audit.cms import BadSignature, verify_detached, verify_token


@dataclass
class Report:
    records: int = 0
    seals: int = 0
    stamped: int = 0
    first: int = 0
    last: int = 0
    broken: str = ""  # the first broken link, "" when none
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.broken

    def lines(self) -> list[str]:
        head = (f"records {self.first}..{self.last} ({self.records}), seals {self.seals} "
                f"({self.stamped} time-stamped)")
        return [head, *self.notes, f"BROKEN: {self.broken}" if self.broken else "OK: the chain and its seals verify"]


def _start(conn: sqlite3.Connection, first: int) -> tuple[int, str | None]:
    """Where the walk starts and the hash the first record must link to (None: not checkable)."""
    a = store.anchor(conn) or store.Head(0, GENESIS)
    first = max(first, a.seq + 1)
    if first == a.seq + 1:
        return first, a.hash
    row = conn.execute("SELECT hash FROM records WHERE seq = ?", (first - 1,)).fetchone()
    return first, (str(row[0]) if row else None)


def verify(conn: sqlite3.Connection, first: int = 0, last: int | None = None) -> Report:
    rep = Report()
    seals = store.seals(conn)
    heads = {s.head_seq for s in seals}
    seen: dict[int, str] = {}
    expected, prev = _start(conn, first)
    rep.first = expected
    for r in store.records(conn, expected, last):
        if r.seq != expected:
            rep.broken = (f"record {expected} is missing: the chain jumps from {expected - 1} to {r.seq}"
                          if r.seq > expected else f"record {r.seq} is out of order")
            return rep
        if record_hash(r.canonical()) != r.hash:
            rep.broken = f"record {r.seq}: its content does not match its hash (changed after it was written)"
            return rep
        if prev is not None and r.prev != prev:
            rep.broken = f"record {r.seq}: its link to record {r.seq - 1} is broken (prev does not match that hash)"
            return rep
        if r.seq in heads:
            seen[r.seq] = r.hash
        prev, expected = r.hash, r.seq + 1
        rep.records += 1
        rep.last = r.seq
    _check_seals(conn, rep, seals, seen, last)
    return rep


def _check_seals(conn: sqlite3.Connection, rep: Report, seals: list[store.Seal], seen: dict[int, str],
                 last: int | None) -> None:
    stamps = store.stamps(conn)
    for s in seals:  # without --to, a seal past the last record proves the tail was cut off
        if s.head_seq < rep.first or (last is not None and s.head_seq > last):
            continue
        rep.seals += 1
        problem = _seal_problem(s, seen, stamps)
        if problem:
            rep.broken = f"seal {s.id} (head record {s.head_seq}): {problem}"
            return
        if s.stamp_id is None:
            rep.notes.append(f"seal {s.id} (head record {s.head_seq}) is signed but not yet time-stamped")
        else:
            rep.stamped += 1
    sealed_to = max((s.head_seq for s in seals if s.stamp_id is not None), default=0)
    if rep.last > sealed_to:
        rep.notes.append(f"records {max(sealed_to + 1, rep.first)}..{rep.last} are after the last time-stamped "
                         "seal: their completeness is proven by the next seal")


def _seal_problem(s: store.Seal, seen: dict[int, str], stamps: dict[int, store.Stamp]) -> str:
    try:
        st = json.loads(s.statement)
    except ValueError:
        return "its statement is not JSON"
    if st.get("head_seq") != s.head_seq or st.get("head_hash") != s.head_hash:
        return "its statement names another head than its row"
    if s.head_seq not in seen:
        return f"record {s.head_seq}, which it seals, is missing"
    if seen[s.head_seq] != s.head_hash:
        return f"record {s.head_seq} is not the record it sealed (the chain was rewritten up to there)"
    try:
        verify_detached(s.signature, s.statement)
        if s.stamp_id is not None:
            stamp = stamps.get(s.stamp_id)
            if stamp is None or s.path is None:
                return "its time-stamp is missing"
            if root_from(leaf(s.statement, s.signature), s.path).hex() != stamp.root:
                return "its path does not lead to the time-stamped root"
            verify_token(stamp.token, bytes.fromhex(stamp.root))
    except BadSignature as exc:
        return str(exc)
    return ""
