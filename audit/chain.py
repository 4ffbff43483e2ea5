"""One record of the message log and the chain rule, as pure functions (the store, the verifier and
the stdlib-only script in an exported archive all compute the same bytes).

A record's hash is SHA-256 over its canonical form: the JSON object of its fields (``prev``, the
previous record's hash, included) with sorted keys, no spaces, UTF-8. The first record's ``prev``
is :data:`GENESIS`; after pruning, the chain goes on from the anchor the store keeps.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import orjson

GENESIS = "0" * 64
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: the fields of a record that its hash covers, in the canonical form's (sorted) order
FIELDS = ("at", "client", "kind", "operation", "prev", "request_sha256", "response_sha256", "seq", "server",
          "status")


class Entry(NamedTuple):
    """What the application records: one exchange, before it has a place in the chain.

    ``kind``: ``agency`` (an accepted agency request), ``counterpart`` (a call the gateway made and
    its answer), ``callback`` (a payment or remote-signer callback). ``status`` is the HTTP status
    answered or received (0: no answer came). The bodies are hashed off the event loop, on the
store's thread, and kept (encrypted) only with ``[audit] bodies = "full"``. A named tuple: it is
made on the event loop for every exchange, and costs a third of a frozen dataclass.
    """

    at: float
    kind: str
    client: str
    server: str
    operation: str
    status: int
    request: bytes
    response: bytes


@dataclass(frozen=True)
class Record:
    seq: int
    at: float
    kind: str
    client: str
    server: str
    operation: str
    status: int
    request_sha256: str
    response_sha256: str
    prev: str
    hash: str

    def canonical(self) -> dict[str, Any]:
        d = asdict(self)
        del d["hash"]
        return d


def canonical_bytes(fields: dict[str, Any]) -> bytes:
    return orjson.dumps({k: fields[k] for k in FIELDS}, option=orjson.OPT_SORT_KEYS)


def record_hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(fields)).hexdigest()


def link(entry: Entry, seq: int, prev: str) -> Record:
    """The entry as record ``seq`` after ``prev``."""
    return Record(*link_row(entry, seq, prev))


def link_row(entry: Entry, seq: int, prev: str) -> tuple[Any, ...]:
    """:func:`link`'s fields as a row in :class:`Record`'s order (the store's hot path: no object)."""
    req, resp = sha256_hex(entry.request), sha256_hex(entry.response)
    fields: dict[str, Any] = {
        "at": entry.at, "client": entry.client, "kind": entry.kind, "operation": entry.operation, "prev": prev,
        "request_sha256": req, "response_sha256": resp, "seq": seq, "server": entry.server, "status": entry.status}
    digest = hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return (seq, entry.at, entry.kind, entry.client, entry.server, entry.operation, entry.status, req, resp, prev,
            digest)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ hash tree over seals


def leaf(statement: bytes, signature: bytes) -> bytes:
    """A seal's leaf in the time-stamp's hash tree (RFC 6962 style prefixes: 0 leaf, 1 node)."""
    return hashlib.sha256(b"\x00" + hashlib.sha256(statement).digest() + hashlib.sha256(signature).digest()).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def tree(leaves: list[bytes]) -> tuple[bytes, list[list[tuple[str, str]]]]:
    """The root over ``leaves`` and, per leaf, its path: ``[(side, sibling hex)]`` from the leaf up,
    side ``L`` when the sibling is on the left. An odd node at a level goes up unchanged."""
    paths: list[list[tuple[str, str]]] = [[] for _ in leaves]
    level = [(h, [i]) for i, h in enumerate(leaves)]
    while len(level) > 1:
        up: list[tuple[bytes, list[int]]] = []
        for j in range(0, len(level), 2):
            if j + 1 == len(level):
                up.append(level[j])
                continue
            (lh, li), (rh, ri) = level[j], level[j + 1]
            for i in li:
                paths[i].append(("R", rh.hex()))
            for i in ri:
                paths[i].append(("L", lh.hex()))
            up.append((_node(lh, rh), li + ri))
        level = up
    return level[0][0], paths


def root_from(leaf_hash: bytes, path: list[tuple[str, str]]) -> bytes:
    h = leaf_hash
    for side, sibling in path:
        s = bytes.fromhex(sibling)
        h = _node(s, h) if side == "L" else _node(h, s)
    return h
