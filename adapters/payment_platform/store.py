"""The payments' own SQLite file (``[payment] path``, default ``payments.sqlite3`` beside
``[storage] path``), in WAL mode, written by the daemon alone.

Tables:

* ``txn``: one row per transaction (``MaThamChieu``): dossier, amount, fee lines, payer, the local
  state of spec §11 (``khoi-tao``, ``thanh-cong``, ``that-bai``, ``het-han``), what the platform said
  (payment URL, ``MaGiaoDich``, ``MaNganHang``, payment time), the next QUERY and GET_BILL times;
* ``history``: every event of a transaction (INIT, CONFIRM, QUERY, expiry, a rejected callback),
  with the state after it;
* ``callbacks``: every rejected CONFIRM with its reason and its body as received (audit);
* ``effects``: the ``on_paid`` hooks a payment promised, written in the transaction that made it
  ``thanh-cong`` (``pending``), then ``ok`` or ``failed: …`` once run: a hook registered later
  never runs for older payments, and a crash between the payment and its hooks loses none;
* ``bills``: the platform's receipt PDFs (GET_BILL).

Every change of state is one transaction (``BEGIN IMMEDIATE`` … ``COMMIT``) that also writes its
history row. The store runs on the event-loop thread: payments are a few a minute, a commit is
well under a millisecond (``[storage] synchronous`` applies here too). ``sqlite3`` errors are
translated here into :class:`~core.errors.QueueUnavailable` (the store cannot take work now).
The file holds payers' names and ID numbers: its folder is 0700 and the file 0600.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from adapters.payment_platform.envelope import FeeLine, Payer, ReceiptContext
from core.errors import QueueUnavailable
from core.sqlitefile import Synchronous, open_private

T = TypeVar("T")

KHOI_TAO, THANH_CONG, THAT_BAI, HET_HAN = "khoi-tao", "thanh-cong", "that-bai", "het-han"
#: spec §11.1, the transaction states
STATES = (KHOI_TAO, THANH_CONG, THAT_BAI, HET_HAN)

SCHEMA = """
CREATE TABLE IF NOT EXISTS txn (
    ref TEXT PRIMARY KEY, mahoso TEXT NOT NULL, agency TEXT NOT NULL, amount INTEGER NOT NULL,
    state TEXT NOT NULL, thoi_gian TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    url TEXT, lines TEXT NOT NULL, payer TEXT NOT NULL, context TEXT NOT NULL,
    ma_giao_dich TEXT, ma_ngan_hang TEXT, paid_at REAL, paid_time TEXT,
    next_query_at REAL, queries INTEGER NOT NULL DEFAULT 0,
    bill_due_at REAL, bill_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS txn_mahoso ON txn (mahoso);
CREATE INDEX IF NOT EXISTS txn_query ON txn (next_query_at) WHERE state = 'khoi-tao';
CREATE INDEX IF NOT EXISTS txn_bill ON txn (bill_due_at) WHERE bill_due_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY, ref TEXT NOT NULL, at REAL NOT NULL, event TEXT NOT NULL, state TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_ref ON history (ref, id);
CREATE TABLE IF NOT EXISTS callbacks (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, result TEXT NOT NULL, ref TEXT NOT NULL, detail TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS effects (
    ref TEXT NOT NULL, hook TEXT NOT NULL, at REAL NOT NULL, result TEXT NOT NULL, PRIMARY KEY (ref, hook)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bills (ref TEXT PRIMARY KEY, pdf BLOB NOT NULL, fetched_at REAL NOT NULL);
"""


@dataclass(frozen=True)
class Txn:
    """One transaction as stored."""

    ref: str
    mahoso: str
    agency: str
    amount: int
    state: str
    thoi_gian: str
    created_at: float
    updated_at: float
    url: str | None
    lines: tuple[FeeLine, ...]
    payer: Payer
    context: ReceiptContext
    ma_giao_dich: str | None
    ma_ngan_hang: str | None
    paid_at: float | None
    paid_time: str | None
    next_query_at: float | None
    queries: int
    bill_due_at: float | None
    bill_attempts: int


@dataclass(frozen=True)
class HistoryEntry:
    at: float
    event: str
    state: str
    detail: str


def _txn(row: sqlite3.Row | dict[str, Any]) -> Txn:
    d = dict(row)
    d["lines"] = tuple(FeeLine(**x) for x in orjson.loads(d["lines"]))
    d["payer"] = Payer(**orjson.loads(d["payer"]))
    d["context"] = ReceiptContext(**orjson.loads(d["context"]))
    return Txn(**d)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class PaymentStore:
    """The file, one connection, synchronous calls; every public write is one transaction."""

    def __init__(self, path: Path, *, synchronous: str = "full") -> None:
        self._path = path
        self._synchronous: Synchronous = "normal" if synchronous.lower() == "normal" else "full"
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        """Open (or create) the file; raises QueueUnavailable when it cannot be used."""
        try:
            conn = open_private(self._path, SCHEMA, synchronous=self._synchronous, busy_ms=2000)
            conn.row_factory = sqlite3.Row
        except (OSError, sqlite3.Error) as exc:
            raise QueueUnavailable(f"cannot open the payments store {self._path}: {exc}") from exc
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise QueueUnavailable("the payments store is not open")
        return self._conn

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise QueueUnavailable(f"payments store: {exc}") from exc

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return fn(self.conn)
        except sqlite3.Error as exc:
            raise QueueUnavailable(f"payments store: {exc}") from exc

    # ------------------------------------------------------------------ writes

    def insert(self, txn: Txn, event: str, detail: str) -> None:
        """A new transaction (after its INIT was answered) and its first history row."""
        with self._tx() as c:
            c.execute(
                "INSERT INTO txn (ref, mahoso, agency, amount, state, thoi_gian, created_at, updated_at, url, lines,"
                " payer, context, next_query_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (txn.ref, txn.mahoso, txn.agency, txn.amount, txn.state, txn.thoi_gian, txn.created_at,
                 txn.updated_at, txn.url, _json([line.__dict__ for line in txn.lines]), _json(txn.payer.__dict__),
                 _json(txn.context.__dict__), txn.next_query_at))
            _history(c, txn.ref, txn.created_at, event, txn.state, detail)

    def transition(self, ref: str, allowed_from: Sequence[str], new_state: str, now: float, event: str, detail: str,
                   *, effects: Sequence[str] = (), **changes: Any) -> Txn | None:
        """Move ``ref`` to ``new_state`` if it is in one of ``allowed_from``, set ``changes``, write the
        history row and promise the ``effects`` (hook names, pending until :meth:`effect_done`): one
        transaction. The new row, or None (not found, or not in an allowed state)."""
        sets = ", ".join(f"{k} = :{k}" for k in changes)
        marks = ", ".join(f":s{i}" for i in range(len(allowed_from)))
        params = {"ref": ref, "new": new_state, "now": now, **changes,
                  **{f"s{i}": s for i, s in enumerate(allowed_from)}}
        with self._tx() as c:
            row = c.execute(f"UPDATE txn SET state = :new, updated_at = :now{', ' + sets if sets else ''}"
                            f" WHERE ref = :ref AND state IN ({marks}) RETURNING *", params).fetchone()
            if row is None:
                return None
            _history(c, ref, now, event, new_state, detail)
            c.executemany("INSERT OR IGNORE INTO effects (ref, hook, at, result) VALUES (?, ?, ?, 'pending')",
                          [(ref, hook, now) for hook in effects])
            return _txn(row)

    def note(self, ref: str, now: float, event: str, detail: str, **changes: Any) -> None:
        """A history row without a change of state (a rejected callback, an inconclusive QUERY),
        with the bookkeeping ``changes`` (next QUERY time …), in one transaction."""
        with self._tx() as c:
            state = c.execute("SELECT state FROM txn WHERE ref = ?", (ref,)).fetchone()
            if state is None:
                return
            if changes:
                sets = ", ".join(f"{k} = :{k}" for k in changes)
                c.execute(f"UPDATE txn SET {sets} WHERE ref = :ref", {"ref": ref, **changes})
            _history(c, ref, now, event, state[0], detail)

    def reject_callback(self, now: float, result: str, ref: str, detail: str, body: str) -> None:
        """A rejected CONFIRM, kept with its body as received; also in the history of a known ``ref``."""
        with self._tx() as c:
            c.execute("INSERT INTO callbacks (at, result, ref, detail, body) VALUES (?, ?, ?, ?, ?)",
                      (now, result, ref, detail, body))
            state = c.execute("SELECT state FROM txn WHERE ref = ?", (ref,)).fetchone()
            if state is not None:
                _history(c, ref, now, "callback_rejected", state[0], f"{result}: {detail}")

    def effect_done(self, ref: str, hook: str, now: float, result: str) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO effects (ref, hook, at, result) VALUES (?, ?, ?, ?)",
                      (ref, hook, now, result))

    def store_bill(self, ref: str, pdf: bytes, now: float) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO bills (ref, pdf, fetched_at) VALUES (?, ?, ?)", (ref, pdf, now))
            c.execute("UPDATE txn SET bill_due_at = NULL, bill_attempts = bill_attempts + 1 WHERE ref = ?", (ref,))
            _history(c, ref, now, "bill", THANH_CONG, f"receipt PDF stored ({len(pdf)} bytes)")

    def schedule_bill(self, ref: str, at: float | None) -> None:
        with self._tx() as c:
            c.execute("UPDATE txn SET bill_due_at = ?, bill_attempts = bill_attempts + 1 WHERE ref = ?", (at, ref))

    # ------------------------------------------------------------------ reads

    def get(self, ref: str) -> Txn | None:
        row = self._read(lambda c: c.execute("SELECT * FROM txn WHERE ref = ?", (ref,)).fetchone())
        return None if row is None else _txn(row)

    def exists(self, ref: str) -> bool:
        return self._read(lambda c: c.execute("SELECT 1 FROM txn WHERE ref = ?", (ref,)).fetchone()) is not None

    def history(self, ref: str) -> list[HistoryEntry]:
        rows = self._read(lambda c: c.execute(
            "SELECT at, event, state, detail FROM history WHERE ref = ? ORDER BY id", (ref,)).fetchall())
        return [HistoryEntry(*row) for row in rows]

    def callbacks(self) -> list[dict[str, Any]]:
        rows = self._read(lambda c: c.execute("SELECT at, result, ref, detail FROM callbacks ORDER BY id").fetchall())
        return [dict(r) for r in rows]

    def paid_dossiers(self) -> set[str]:
        rows = self._read(lambda c: c.execute("SELECT DISTINCT mahoso FROM txn WHERE state = ?", (THANH_CONG,)))
        return {r[0] for r in rows}

    def due_queries(self, now: float, limit: int) -> list[Txn]:
        rows = self._read(lambda c: c.execute(
            "SELECT * FROM txn WHERE state = ? AND next_query_at <= ? ORDER BY next_query_at LIMIT ?",
            (KHOI_TAO, now, limit)).fetchall())
        return [_txn(r) for r in rows]

    def due_bills(self, now: float, limit: int) -> list[Txn]:
        rows = self._read(lambda c: c.execute(
            "SELECT * FROM txn WHERE bill_due_at IS NOT NULL AND bill_due_at <= ? ORDER BY bill_due_at LIMIT ?",
            (now, limit)).fetchall())
        return [_txn(r) for r in rows]

    def pending_effects(self, limit: int) -> list[tuple[Txn, str]]:
        """The effects promised and not yet done: (transaction, hook name), oldest payment first."""
        rows = self._read(lambda c: c.execute(
            "SELECT t.*, e.hook AS hook FROM effects e JOIN txn t ON t.ref = e.ref WHERE e.result = 'pending'"
            " ORDER BY t.paid_at LIMIT ?", (limit,)).fetchall())
        out = []
        for r in rows:
            d = dict(r)
            hook = d.pop("hook")
            out.append((_txn(d), hook))
        return out

    def bill(self, ref: str) -> bytes | None:
        row = self._read(lambda c: c.execute("SELECT pdf FROM bills WHERE ref = ?", (ref,)).fetchone())
        return None if row is None else bytes(row[0])


def _history(c: sqlite3.Connection, ref: str, at: float, event: str, state: str, detail: str) -> None:
    c.execute("INSERT INTO history (ref, at, event, state, detail) VALUES (?, ?, ?, ?, ?)",
              (ref, at, event, state, detail))
