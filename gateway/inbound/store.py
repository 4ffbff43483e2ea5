"""The inbound puller's own SQLite file (``[inbound] path``, default ``inbound.sqlite3`` beside
``[storage] path``): the pull cursor, per pull service name.

The cursor is written only after every dossier of the page it follows is durable in the jobs
outbox, so a crash between the two re-reads that page, and the outbox's dedupe makes the re-read
harmless. Synchronous functions, run on the puller's worker thread.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.sqlitefile import open_private

SCHEMA = """
CREATE TABLE IF NOT EXISTS cursor (
    service TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL
) WITHOUT ROWID;
"""


def open_store(path: Path) -> sqlite3.Connection:
    """Open (or create) the file: 0600, WAL, synchronous FULL (a cursor that ran ahead of a lost
    write would skip dossiers)."""
    return open_private(path, SCHEMA, synchronous="full")


def read_cursor(conn: sqlite3.Connection, service: str) -> str:
    """The cursor of ``service``; "" before its first page."""
    row = conn.execute("SELECT value FROM cursor WHERE service = ?", (service,)).fetchone()
    return str(row[0]) if row else ""


def write_cursor(conn: sqlite3.Connection, service: str, value: str, now: float) -> None:
    conn.execute("INSERT INTO cursor VALUES (?, ?, ?) ON CONFLICT (service) DO UPDATE SET"
                 " value = excluded.value, updated_at = excluded.updated_at", (service, value, now))
