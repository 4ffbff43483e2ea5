"""Durable remote-signing jobs (half-signed documents) in their own SQLite file.

One row per job; the state is changed by :meth:`JobStore.update` in one transaction and always
read back from the file, so a restarted daemon resumes every job that was waiting.

States: ``prepared`` (document ready, the remote signer not yet asked), ``pending`` (a person must
confirm), ``signed`` (signature value received, not yet embedded: e.g. every TSA was down),
``completed`` (signed PDF stored), ``failed`` (``error`` says why). Agencies see ``prepared`` and
``signed`` as ``pending``.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS signing_jobs (
  id TEXT PRIMARY KEY,
  agency TEXT NOT NULL,
  key_alias TEXT NOT NULL,
  level TEXT NOT NULL,
  state TEXT NOT NULL,
  transaction_id TEXT NOT NULL DEFAULT '',
  prepared_pdf BLOB NOT NULL,
  document_digest BLOB NOT NULL,
  reserved_start INTEGER NOT NULL,
  reserved_end INTEGER NOT NULL,
  signed_attrs BLOB NOT NULL,
  tbs_hash BLOB NOT NULL,
  signature BLOB,
  result_pdf BLOB,
  error TEXT NOT NULL DEFAULT '',
  created_at REAL NOT NULL,
  updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS signing_jobs_state ON signing_jobs(state);
"""
OPEN_STATES = ("prepared", "pending", "signed")
_COLUMNS = ("id", "agency", "key_alias", "level", "state", "transaction_id", "prepared_pdf", "document_digest",
            "reserved_start", "reserved_end", "signed_attrs", "tbs_hash", "signature", "result_pdf", "error",
            "created_at", "updated_at")


@dataclass(frozen=True)
class Job:
    id: str
    agency: str
    key_alias: str
    level: str
    state: str
    transaction_id: str
    prepared_pdf: bytes
    document_digest: bytes
    reserved_start: int
    reserved_end: int
    signed_attrs: bytes
    tbs_hash: bytes
    signature: bytes | None
    result_pdf: bytes | None
    error: str
    created_at: float
    updated_at: float

    @property
    def public_state(self) -> str:
        return "pending" if self.state in OPEN_STATES else self.state


def jobs_path(storage_path: str) -> Path:
    """``signing-jobs.sqlite3`` beside the gateway's main SQLite file."""
    return Path(storage_path).parent / "signing-jobs.sqlite3"


class JobStore:
    """Small synchronous store; every call is one short transaction (rows hold a few hundred KB)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def insert(self, job: Job) -> None:
        marks = ",".join("?" for _ in _COLUMNS)
        with self._lock, self._db:
            self._db.execute(f"INSERT INTO signing_jobs ({','.join(_COLUMNS)}) VALUES ({marks})",
                             [getattr(job, c) for c in _COLUMNS])

    def update(self, job_id: str, now: float, **changes: Any) -> None:
        """Changes the named columns of one job in one transaction."""
        bad = set(changes) - set(_COLUMNS)
        if bad:
            raise ValueError(f"unknown job columns: {sorted(bad)}")
        sets = ",".join(f"{c}=?" for c in changes)
        with self._lock, self._db:
            self._db.execute(f"UPDATE signing_jobs SET {sets}, updated_at=? WHERE id=?",
                             [*changes.values(), now, job_id])

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute(f"SELECT {','.join(_COLUMNS)} FROM signing_jobs WHERE id=?",
                                   (job_id,)).fetchone()
        return Job(*row) if row else None

    def open_jobs(self) -> list[Job]:
        marks = ",".join("?" for _ in OPEN_STATES)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {','.join(_COLUMNS)} FROM signing_jobs WHERE state IN ({marks}) ORDER BY created_at",
                OPEN_STATES).fetchall()
        return [Job(*r) for r in rows]
