"""The inbound puller's own SQLite file (``[inbound] path``, default ``inbound.sqlite3`` beside
``[storage] path``): the pull cursor, per pull service name.

The cursor is written only after every dossier of the page it follows is durable in the jobs
outbox, so a crash between the two re-reads that page, and the outbox's dedupe makes the re-read
harmless. Synchronous functions, run on the puller's worker thread.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS cursor (
    service TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL
) WITHOUT ROWID;
"""


def open_store(path: Path) -> sqlite3.Connection:
    """Open (or create) the file: folder 0700, file 0600, WAL, synchronous FULL (a cursor that
    ran ahead of a lost write would skip dossiers)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(SCHEMA)
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def read_cursor(conn: sqlite3.Connection, service: str) -> str:
    """The cursor of ``service``; "" before its first page."""
    row = conn.execute("SELECT value FROM cursor WHERE service = ?", (service,)).fetchone()
    return str(row[0]) if row else ""


def write_cursor(conn: sqlite3.Connection, service: str, value: str, now: float) -> None:
    conn.execute("INSERT INTO cursor VALUES (?, ?, ?) ON CONFLICT (service) DO UPDATE SET"
                 " value = excluded.value, updated_at = excluded.updated_at", (service, value, now))
