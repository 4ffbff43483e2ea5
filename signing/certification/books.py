"""Register books (sổ chứng thực, spec §3) and their entries (§4), in their own SQLite file.

Rules kept here, each in one transaction (``BEGIN IMMEDIATE``, WAL, ``synchronous=FULL``):

* at most one open electronic book per authority (a partial unique index enforces it too);
* a new book opens by itself at the first reservation of a calendar year (Asia/Ho_Chi_Minh), or
  after an operator closed the current one; it restarts at 1; a closed book is never reopened;
* :meth:`Books.reserve` increases the book's ``current_number`` and inserts the entry with status
  ``reserved`` in the same transaction, so numbers have no gaps and no duplicates, whatever runs
  concurrently, and a crash either keeps both or neither;
* an entry leaves ``reserved`` once: to ``valid`` (signed) or ``void`` (with the reason); a
  ``valid`` entry may become ``revoked``. Entries are never deleted or renumbered. A reservation
  left behind by a crash is voided by :meth:`Books.void_interrupted` at start-up, unless it waits
  for a certifier's remote signature (:meth:`Books.wait_remote`): that wait is durable and goes on.

Requester data (name, ID number) is stored for the record and never logged.
All methods are synchronous and short; the service calls them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from config.schema import FeeScheduleSettings
from signing.certification.errors import BadState, BookConflict, NoSuchEntry

VN_TZ = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")  # no daylight saving in Vietnam
ELECTRONIC_SUFFIX = "-SCTĐT/BS"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS books (
  id TEXT PRIMARY KEY,
  authority_code TEXT NOT NULL,
  name TEXT NOT NULL,
  kind TEXT NOT NULL DEFAULT 'electronic',
  year INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  first_number INTEGER NOT NULL DEFAULT 1,
  current_number INTEGER NOT NULL DEFAULT 0,
  opened_at TEXT NOT NULL,
  closed_at TEXT,
  UNIQUE (authority_code, kind, year, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_book ON books(authority_code, kind) WHERE closed_at IS NULL;
CREATE TABLE IF NOT EXISTS entries (
  book_id TEXT NOT NULL REFERENCES books(id),
  cert_number INTEGER NOT NULL,
  status TEXT NOT NULL,
  certified_at TEXT NOT NULL,
  authority_code TEXT NOT NULL,
  authority_name TEXT NOT NULL,
  certifier_name TEXT NOT NULL,
  certifier_title TEXT NOT NULL,
  requester_name TEXT NOT NULL,
  requester_id_no TEXT NOT NULL,
  document_name TEXT NOT NULL,
  page_count INTEGER NOT NULL,
  paper_copies INTEGER NOT NULL DEFAULT 0,
  fee_vnd INTEGER NOT NULL,
  dossier_code TEXT NOT NULL DEFAULT '',
  original_sha256 TEXT NOT NULL DEFAULT '',
  file_sha256 TEXT NOT NULL DEFAULT '',
  signers TEXT NOT NULL DEFAULT '[]',
  void_reason TEXT NOT NULL DEFAULT '',
  revoked_at TEXT NOT NULL DEFAULT '',
  revocation_reason TEXT NOT NULL DEFAULT '',
  revoked_by TEXT NOT NULL DEFAULT '',
  download_token TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (book_id, cert_number)
);
CREATE TABLE IF NOT EXISTS copies (
  book_id TEXT NOT NULL,
  cert_number INTEGER NOT NULL,
  pdf BLOB NOT NULL,
  PRIMARY KEY (book_id, cert_number)
);
CREATE TABLE IF NOT EXISTS remote_waits (
  book_id TEXT NOT NULL,
  cert_number INTEGER NOT NULL,
  job_id TEXT NOT NULL,
  agency TEXT NOT NULL,
  PRIMARY KEY (book_id, cert_number)
);
CREATE INDEX IF NOT EXISTS entries_sha ON entries(file_sha256);
CREATE INDEX IF NOT EXISTS entries_status ON entries(status);
"""
_BOOK_COLS = ("id", "authority_code", "name", "kind", "year", "seq", "first_number", "current_number",
              "opened_at", "closed_at")
_ENTRY_COLS = ("book_id", "cert_number", "status", "certified_at", "authority_code", "authority_name",
               "certifier_name", "certifier_title", "requester_name", "requester_id_no", "document_name",
               "page_count", "paper_copies", "fee_vnd", "dossier_code", "original_sha256", "file_sha256",
               "signers", "void_reason", "revoked_at", "revocation_reason", "revoked_by", "download_token")
#: what anyone may see (spec §7: no requester data)
PUBLIC_FIELDS = ("book_id", "book_name", "cert_number", "copy_kind", "status", "certified_at", "authority_code",
                 "authority_name", "certifier_name", "certifier_title", "document_name", "page_count", "fee_vnd",
                 "file_sha256", "signers", "void_reason", "revoked_at", "revocation_reason")


def fee_vnd(pages: int, *, first_rate: int = 2000, later_rate: int = 1000, first_pages: int = 2,
            cap: int = 200_000) -> int:
    """Fee of one copy (spec §5): ``min(cap, 2000·min(n, 2) + 1000·max(n − 2, 0))``; 0 pages counts as 1."""
    n = max(pages, 1)
    return min(cap, first_rate * min(n, first_pages) + later_rate * max(n - first_pages, 0))


def fee_on(day: date, pages: int, schedules: tuple[FeeScheduleSettings, ...] = ()) -> int:
    """The fee of one copy certified on ``day`` (Vietnam date): the schedule with the latest
    ``effective_from`` on or before it, else the spec §5 default table."""
    applicable = [s for s in schedules if date.fromisoformat(s.effective_from) <= day]
    if not applicable:
        return fee_vnd(pages)
    s = max(applicable, key=lambda s: s.effective_from)
    return fee_vnd(pages, first_rate=s.first_rate, later_rate=s.later_rate, first_pages=s.first_pages, cap=s.cap)


def book_name(seq: int, year: int) -> str:
    """The printed name, e.g. ``01/2025-SCTĐT/BS`` (sequence of the book within the year)."""
    return f"{seq:02d}/{year}{ELECTRONIC_SUFFIX}"


def books_path(storage_path: str) -> Path:
    """``certification.sqlite3`` beside the gateway's main SQLite file."""
    return Path(storage_path).parent / "certification.sqlite3"


@dataclass(frozen=True)
class Book:
    id: str
    authority_code: str
    name: str
    kind: str
    year: int
    seq: int
    first_number: int
    current_number: int
    opened_at: str
    closed_at: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"status": "open" if self.closed_at is None else "closed"}


@dataclass(frozen=True)
class RemoteWait:
    """A ``reserved`` entry waiting for a remote signing job, and the agency that asked for it."""

    book_id: str
    cert_number: int
    job_id: str
    agency: str


@dataclass(frozen=True)
class NewEntry:
    """What a certification request brings (spec §4 field names)."""

    authority_code: str
    authority_name: str
    certifier_name: str
    certifier_title: str
    requester_name: str
    requester_id_no: str
    document_name: str
    page_count: int
    fee_vnd: int
    paper_copies: int = 0
    dossier_code: str = ""
    original_sha256: str = ""


@dataclass(frozen=True)
class Entry:
    book_id: str
    cert_number: int
    status: str
    certified_at: str
    authority_code: str
    authority_name: str
    certifier_name: str
    certifier_title: str
    requester_name: str
    requester_id_no: str
    document_name: str
    page_count: int
    paper_copies: int
    fee_vnd: int
    dossier_code: str
    original_sha256: str
    file_sha256: str
    signers: list[dict[str, Any]]
    void_reason: str
    revoked_at: str
    revocation_reason: str
    revoked_by: str
    download_token: str
    book_name: str = ""
    copy_kind: str = "electronic"

    def __repr__(self) -> str:  # never print requester data by accident (logs, tracebacks)
        return f"Entry({self.book_id}/{self.cert_number} {self.status})"

    @property
    def certified_date(self) -> datetime:
        return datetime.fromisoformat(self.certified_at)

    def record(self) -> dict[str, Any]:
        """The whole record (spec §4), for the certifying agency."""
        return {k: getattr(self, k) for k in (*_ENTRY_COLS, "book_name", "copy_kind")}

    def public(self) -> dict[str, Any]:
        """The part anyone may see: no requester data, no dossier code (spec §7)."""
        return {k: getattr(self, k) for k in PUBLIC_FIELDS}


class Books:
    """The register. One connection, one lock: every method is one short transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the file once no call is running on it: a call started through ``asyncio.to_thread``
        goes on after its task is cancelled, and closing a connection under a running statement
        crashes the process (seen: the remote-waits loop cancelled at shutdown)."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken before any read so that no other writer interleaves."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ------------------------------------------------------------ books

    def books(self, authority_code: str | None = None) -> list[Book]:
        sql = f"SELECT {','.join(_BOOK_COLS)} FROM books"
        args: tuple[str, ...] = ()
        if authority_code is not None:
            sql, args = sql + " WHERE authority_code=?", (authority_code,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY authority_code, year, seq", args).fetchall()
        return [Book(*r) for r in rows]

    def book(self, book_id: str) -> Book | None:
        with self._lock:
            row = self._db.execute(f"SELECT {','.join(_BOOK_COLS)} FROM books WHERE id=?", (book_id,)).fetchone()
        return Book(*row) if row else None

    def open_book(self, authority_code: str, now: datetime) -> Book:
        """Opens a new book (operator); raises BookConflict if one is already open."""
        with self._tx() as db:
            if _open_book(db, authority_code) is not None:
                raise BookConflict(f"authority {authority_code} already has an open book; close it first")
            return _new_book(db, authority_code, now)

    def close_book(self, authority_code: str, now: datetime) -> Book:
        """Closes the authority's open book (operator); the next certification opens a new one."""
        with self._tx() as db:
            book = _open_book(db, authority_code)
            if book is None:
                raise BookConflict(f"authority {authority_code} has no open book")
            db.execute("UPDATE books SET closed_at=? WHERE id=?", (_iso(now), book.id))
            return Book(**(asdict(book) | {"closed_at": _iso(now)}))

    # ------------------------------------------------------------ entries

    def reserve(self, new: NewEntry, now: datetime) -> Entry:
        """Takes the next number of the authority's open book (opening one if needed: none open, or
        the open one is from an earlier year) and writes the ``reserved`` entry, in one transaction."""
        with self._tx() as db:
            book = _current_book(db, new.authority_code, now)
            number = book.current_number + 1
            db.execute("UPDATE books SET current_number=? WHERE id=?", (number, book.id))
            values = asdict(new) | {"book_id": book.id, "cert_number": number, "status": "reserved",
                                    "certified_at": _iso(now)}
            cols = list(values)
            db.execute(f"INSERT INTO entries ({','.join(cols)}) VALUES ({','.join('?' for _ in cols)})",
                       [values[c] for c in cols])
            return _entry_in(db, book.id, number)

    def finalize(self, book_id: str, number: int, file_sha256: str, signers: list[dict[str, Any]],
                 pdf: bytes | None = None) -> Entry:
        """``reserved`` → ``valid`` with the signed file's hash and the signer data, and the certified
        copy itself (served by the gateway), in one transaction."""
        return self._move(book_id, number, "reserved", pdf=pdf, status="valid", file_sha256=file_sha256,
                          signers=json.dumps(signers, ensure_ascii=False), download_token=secrets.token_urlsafe(24))

    def pdf(self, book_id: str, number: int) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT pdf FROM copies WHERE book_id=? AND cert_number=?",
                                   (book_id, number)).fetchone()
        return bytes(row[0]) if row else None

    def void(self, book_id: str, number: int, reason: str) -> Entry:
        """``reserved`` → ``void``: the number stays consumed and visible (no gap, never reused)."""
        return self._move(book_id, number, "reserved", status="void", void_reason=reason[:500] or "unknown")

    def revoke(self, book_id: str, number: int, reason: str, by: str, now: datetime) -> Entry:
        """``valid`` → ``revoked`` with the date, the reason and who revoked it."""
        return self._move(book_id, number, "valid", status="revoked", revoked_at=_iso(now),
                          revocation_reason=reason[:500], revoked_by=by)

    def void_interrupted(self, reason: str = "interrupted: the gateway stopped while signing") -> int:
        """At start-up (one process owns the file): every entry still ``reserved`` and not waiting for
        a remote signature was cut off by a crash; it becomes ``void`` so that its number stays
        consumed. Returns how many."""
        with self._tx() as db:
            return db.execute("UPDATE entries SET status='void', void_reason=? WHERE status='reserved' AND NOT "
                              "EXISTS (SELECT 1 FROM remote_waits w WHERE w.book_id=entries.book_id AND "
                              "w.cert_number=entries.cert_number)", (reason,)).rowcount

    def wait_remote(self, book_id: str, number: int, job_id: str, agency: str) -> None:
        """The ``reserved`` entry waits for the remote signing job ``job_id`` (a certifier confirming
        on a phone); recorded durably, so a restart neither voids it nor forgets it."""
        with self._tx() as db:
            entry = _entry_in(db, book_id, number)
            if entry.status != "reserved":
                raise BadState(f"entry {number} of book {book_id} is {entry.status}, not reserved")
            db.execute("INSERT INTO remote_waits (book_id, cert_number, job_id, agency) VALUES (?, ?, ?, ?)",
                       (book_id, number, job_id, agency))

    def remote_waits(self) -> list[RemoteWait]:
        """Entries waiting for a remote signature, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT book_id, cert_number, job_id, agency FROM remote_waits "
                                    "ORDER BY rowid").fetchall()
        return [RemoteWait(*r) for r in rows]

    def _move(self, book_id: str, number: int, from_status: str, pdf: bytes | None = None, **changes: Any) -> Entry:
        with self._tx() as db:
            entry = _entry_in(db, book_id, number)
            if entry.status != from_status:
                raise BadState(f"entry {number} of book {book_id} is {entry.status}, not {from_status}")
            if pdf is not None:
                db.execute("INSERT INTO copies (book_id, cert_number, pdf) VALUES (?, ?, ?)", (book_id, number, pdf))
            if from_status == "reserved":  # leaving reserved ends any wait for a remote signature
                db.execute("DELETE FROM remote_waits WHERE book_id=? AND cert_number=?", (book_id, number))
            sets = ",".join(f"{c}=?" for c in changes)
            db.execute(f"UPDATE entries SET {sets} WHERE book_id=? AND cert_number=?",
                       [*changes.values(), book_id, number])
            return _entry_in(db, book_id, number)

    def entry(self, book_id: str, number: int) -> Entry:
        """Raises NoSuchEntry."""
        with self._lock:
            return _entry_in(self._db, book_id, number)

    def entries(self, book_id: str) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(f"{_ENTRY_SELECT} WHERE e.book_id=? ORDER BY e.cert_number",
                                    (book_id,)).fetchall()
        return [_entry(r) for r in rows]

    def by_sha256(self, sha256: str) -> Entry | None:
        with self._lock:
            row = self._db.execute(f"{_ENTRY_SELECT} WHERE e.file_sha256=? LIMIT 1", (sha256,)).fetchone()
        return _entry(row) if row else None

    def find(self, book_name_: str, number: int, authority_code: str | None = None) -> list[Entry]:
        """Entries by printed book name and number (several authorities may share a name)."""
        sql, args = f"{_ENTRY_SELECT} WHERE b.name=? AND e.cert_number=?", [book_name_, number]
        if authority_code:
            sql, args = sql + " AND e.authority_code=?", [*args, authority_code]
        with self._lock:
            return [_entry(r) for r in self._db.execute(sql, args).fetchall()]

    def counts(self) -> dict[tuple[str, str], int]:
        """(authority, status) → entries, for metrics and the 766 evidence."""
        with self._lock:
            rows = self._db.execute("SELECT authority_code, status, count(*) FROM entries GROUP BY 1, 2").fetchall()
        return {(a, s): n for a, s, n in rows}


_ENTRY_SELECT = (f"SELECT {','.join('e.' + c for c in _ENTRY_COLS)}, b.name, b.kind "
                 "FROM entries e JOIN books b ON b.id = e.book_id")


def _iso(now: datetime) -> str:
    return now.astimezone(VN_TZ).isoformat(timespec="seconds")


def _entry(row: tuple[Any, ...]) -> Entry:
    values = dict(zip((*_ENTRY_COLS, "book_name", "copy_kind"), row, strict=True))
    values["signers"] = json.loads(values["signers"])
    return Entry(**values)


def _entry_in(db: sqlite3.Connection, book_id: str, number: int) -> Entry:
    row = db.execute(f"{_ENTRY_SELECT} WHERE e.book_id=? AND e.cert_number=?", (book_id, number)).fetchone()
    if row is None:
        raise NoSuchEntry(f"no certification {number} in book {book_id}")
    return _entry(row)


def _open_book(db: sqlite3.Connection, authority_code: str) -> Book | None:
    row = db.execute(f"SELECT {','.join(_BOOK_COLS)} FROM books WHERE authority_code=? AND kind='electronic' "
                     "AND closed_at IS NULL", (authority_code,)).fetchone()
    return Book(*row) if row else None


def _current_book(db: sqlite3.Connection, authority_code: str, now: datetime) -> Book:
    book = _open_book(db, authority_code)
    year = now.astimezone(VN_TZ).year
    if book is not None and book.year == year:
        return book
    if book is not None:  # a new year: the old book closes where it stands
        db.execute("UPDATE books SET closed_at=? WHERE id=?", (_iso(now), book.id))
    return _new_book(db, authority_code, now)


def _new_book(db: sqlite3.Connection, authority_code: str, now: datetime) -> Book:
    year = now.astimezone(VN_TZ).year
    (last,) = db.execute("SELECT coalesce(max(seq), 0) FROM books WHERE authority_code=? AND kind='electronic' "
                         "AND year=?", (authority_code, year)).fetchone()
    book = Book(secrets.token_urlsafe(12), authority_code, book_name(last + 1, year), "electronic", year,
                last + 1, 1, 0, _iso(now), None)
    db.execute(f"INSERT INTO books ({','.join(_BOOK_COLS)}) VALUES ({','.join('?' for _ in _BOOK_COLS)})",
               list(asdict(book).values()))
    return book
