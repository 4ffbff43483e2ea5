"""The message log's own SQLite file: records, seals, time-stamps, exports, and the pruning anchor.

One :class:`AuditStore` per daemon writes it, on its worker thread (:class:`core.filework.FileWorker`):
a batch of entries is chained, hashed, optionally encrypted and inserted in one transaction, so the
event loop only appends to a list. ``dvcgw audit verify|export`` read the same file with
:func:`open_reader` (WAL: they never block the daemon); export also records itself in ``exports``.

Tables (``seq`` is the record's place in the chain; nothing is ever updated except a seal's stamp):

* ``records``: the chained fields (:data:`audit.chain.FIELDS`), ``hash``, and the encrypted bodies;
* ``seals``: the chain head (``head_seq``, ``head_hash``) signed: ``statement`` (canonical JSON) and
  ``signature`` (CMS, detached), then the time-stamp (``stamp_id``) and the seal's ``path`` in its tree;
* ``stamps``: RFC 3161 tokens over a hash tree's ``root`` (several seals per token);
* ``exports``: archives written, up to which record (retention prunes only what they cover);
* ``anchor``: the last pruned record's seq and hash (where the chain continues).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from audit.chain import GENESIS, Entry, Record, link_row
from core.filework import FileWorker
from core.sqlitefile import Synchronous, open_private

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL, client TEXT NOT NULL, server TEXT NOT NULL,
    operation TEXT NOT NULL, status INTEGER NOT NULL, request_sha256 TEXT NOT NULL, response_sha256 TEXT NOT NULL,
    prev TEXT NOT NULL, hash TEXT NOT NULL, request_body BLOB, response_body BLOB);
CREATE INDEX IF NOT EXISTS records_at ON records(at);
CREATE TABLE IF NOT EXISTS stamps (
    id INTEGER PRIMARY KEY, root TEXT NOT NULL, token BLOB NOT NULL, stamped_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS seals (
    id INTEGER PRIMARY KEY, head_seq INTEGER NOT NULL, head_hash TEXT NOT NULL, sealed_at REAL NOT NULL,
    statement BLOB NOT NULL, signature BLOB NOT NULL, stamp_id INTEGER REFERENCES stamps(id), path TEXT);
CREATE TABLE IF NOT EXISTS exports (
    id INTEGER PRIMARY KEY, upto_seq INTEGER NOT NULL, at REAL NOT NULL, file TEXT NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS anchor (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
"""
_RECORD_COLUMNS = "seq, at, kind, client, server, operation, status, request_sha256, response_sha256, prev, hash"


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


@dataclass(frozen=True)
class Seal:
    id: int
    head_seq: int
    head_hash: str
    sealed_at: float
    statement: bytes
    signature: bytes
    stamp_id: int | None
    path: list[tuple[str, str]] | None


@dataclass(frozen=True)
class Stamp:
    id: int
    root: str
    token: bytes
    stamped_at: float


class BodyCipher:
    """AES-256-GCM for bodies at rest; the record's seq and side are the associated data, so a body
    moved to another record or side does not decrypt. The key never leaves this object."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "BodyCipher(<key hidden>)"

    def seal(self, seq: int, side: str, body: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, body, f"{seq}:{side}".encode())

    def open(self, seq: int, side: str, blob: bytes) -> bytes:
        return self._aead.decrypt(blob[:12], blob[12:], f"{seq}:{side}".encode())


class AuditStore(FileWorker):
    """The daemon's writer of the log file. ``head`` is the chain's last record (kept in memory,
    changed only on the worker thread after a commit)."""

    def __init__(self, path: Path, *, synchronous: Synchronous = "full", cipher: BodyCipher | None = None) -> None:
        super().__init__("dvcgw-audit")
        self.path = path
        self._synchronous = synchronous
        self._cipher = cipher
        self.head = Head(0, GENESIS)

    async def start(self) -> None:
        def open_() -> None:
            self._conn = open_private(self.path, SCHEMA, synchronous=self._synchronous)
            self.head = read_head(self._conn)
        await self._in_thread(open_)

    async def append(self, entries: list[Entry]) -> Head:
        """Chains and writes ``entries`` in one transaction; returns the new head."""
        return await self._in_thread(lambda: self._append(entries))

    def _append(self, entries: list[Entry]) -> Head:
        conn = self._connection()
        seq, prev = self.head.seq, self.head.hash
        rows = []
        cipher = self._cipher
        for e in entries:
            seq += 1
            row = link_row(e, seq, prev)
            prev = row[-1]
            if cipher is None:
                rows.append((*row, None, None))
            else:
                rows.append((*row, cipher.seal(seq, "request", e.request), cipher.seal(seq, "response", e.response)))
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(f"INSERT INTO records ({_RECORD_COLUMNS}, request_body, response_body) "
                             "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.head = Head(seq, prev)
        return self.head

    async def add_seal(self, head: Head, sealed_at: float, statement: bytes, signature: bytes) -> None:
        await self._in_thread(lambda: self._connection().execute(
            "INSERT INTO seals (head_seq, head_hash, sealed_at, statement, signature) VALUES (?,?,?,?,?)",
            (head.seq, head.hash, sealed_at, statement, signature)))

    async def unstamped(self) -> list[Seal]:
        return await self._in_thread(lambda: seals(self._connection(), "WHERE stamp_id IS NULL"))

    async def last_seal(self) -> Seal | None:
        found = await self._in_thread(lambda: seals(self._connection(), "ORDER BY id DESC LIMIT 1"))
        return found[0] if found else None

    async def stamp(self, sealed: list[Seal], root: bytes, token: bytes, at: float,
                    paths: list[list[tuple[str, str]]]) -> None:
        def write() -> None:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute("INSERT INTO stamps (root, token, stamped_at) VALUES (?,?,?)",
                                   (root.hex(), token, at))
                conn.executemany("UPDATE seals SET stamp_id = ?, path = ? WHERE id = ?",
                                 [(cur.lastrowid, json.dumps(p), s.id) for s, p in zip(sealed, paths, strict=True)])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        await self._in_thread(write)

    async def last_stamped_at(self) -> float | None:
        row = await self._in_thread(lambda: self._connection().execute(
            "SELECT max(stamped_at) FROM stamps").fetchone())
        return float(row[0]) if row and row[0] is not None else None

    async def prune(self, before: float) -> int:
        """Deletes records older than ``before`` that an export covers and a time-stamped seal covers;
        keeps the last deleted one's hash as the anchor. Returns how many were deleted."""
        return await self._in_thread(lambda: prune(self._connection(), before))


# ------------------------------------------------------------------ reading (daemon thread or a CLI)


def open_reader(path: Path) -> sqlite3.Connection:
    """The log file for ``dvcgw audit`` (the daemon may be writing it meanwhile)."""
    if not path.exists():
        raise FileNotFoundError(str(path))
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def read_head(conn: sqlite3.Connection) -> Head:
    row = conn.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
    if row is not None:
        return Head(int(row[0]), str(row[1]))
    a = anchor(conn)
    return a if a is not None else Head(0, GENESIS)


def anchor(conn: sqlite3.Connection) -> Head | None:
    row = conn.execute("SELECT seq, hash FROM anchor WHERE id = 1").fetchone()
    return Head(int(row[0]), str(row[1])) if row else None


def records(conn: sqlite3.Connection, first: int = 0, last: int | None = None) -> Iterator[Record]:
    sql = f"SELECT {_RECORD_COLUMNS} FROM records WHERE seq >= ?" + (" AND seq <= ?" if last is not None else "")
    args: tuple[Any, ...] = (first,) if last is None else (first, last)
    for row in conn.execute(sql + " ORDER BY seq", args):
        yield Record(*row)


def seq_at(conn: sqlite3.Connection, at: float, *, after: bool) -> int | None:
    """The first record at or after ``at`` (``after``), or the last one at or before it."""
    sql = ("SELECT min(seq) FROM records WHERE at >= ?" if after else "SELECT max(seq) FROM records WHERE at <= ?")
    row = conn.execute(sql, (at,)).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def seals(conn: sqlite3.Connection, where: str = "") -> list[Seal]:
    rows = conn.execute("SELECT id, head_seq, head_hash, sealed_at, statement, signature, stamp_id, path "
                        f"FROM seals {where or 'ORDER BY id'}").fetchall()
    return [Seal(r[0], r[1], r[2], r[3], bytes(r[4]), bytes(r[5]), r[6],
                 [tuple(x) for x in json.loads(r[7])] if r[7] else None) for r in rows]  # type: ignore[misc]


def stamps(conn: sqlite3.Connection) -> dict[int, Stamp]:
    return {r[0]: Stamp(r[0], r[1], bytes(r[2]), r[3])
            for r in conn.execute("SELECT id, root, token, stamped_at FROM stamps ORDER BY id")}


def exported_upto(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(upto_seq) FROM exports").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def stamped_upto(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(head_seq) FROM seals WHERE stamp_id IS NOT NULL").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def record_export(conn: sqlite3.Connection, upto: int, at: float, file: str, sha256: str) -> None:
    conn.execute("INSERT INTO exports (upto_seq, at, file, sha256) VALUES (?,?,?,?)", (upto, at, file, sha256))


def prune(conn: sqlite3.Connection, before: float) -> int:
    limit = min(exported_upto(conn), stamped_upto(conn))
    row = conn.execute("SELECT max(seq) FROM records WHERE seq <= ? AND at < ?", (limit, before)).fetchone()
    if not row or row[0] is None:
        return 0
    upto = int(row[0])
    last = conn.execute("SELECT hash FROM records WHERE seq = ?", (upto,)).fetchone()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("INSERT INTO anchor (id, seq, hash) VALUES (1, ?, ?) "
                     "ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash", (upto, last[0]))
        n = conn.execute("DELETE FROM records WHERE seq <= ?", (upto,)).rowcount
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(n)
