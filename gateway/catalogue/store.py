"""The procedure catalogue's own SQLite file (``[catalogue] path``, default ``catalogue.sqlite3``
beside ``[storage] path``): one row per procedure, and when it was last pulled.

Two tables:

* ``procedure``: ``MaTTHC`` → the names the accept path fills (``TenTTHC``, ``MaLinhVuc``,
  ``TenLinhVuc``), the ``LayDanhSachTTHC`` row as sent and the ``LayThuTuc`` detail as sent (JSON),
  with the time the detail was fetched;
* ``meta``: ``last_success`` (Unix time of the last complete pull) and the schema version.

A pull replaces the whole table in one transaction (:func:`replace_all`): the file always holds one
complete catalogue, the previous one until the next pull has succeeded. Synchronous functions, run
on the service's worker thread (:mod:`gateway.catalogue.service`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from core.sqlitefile import open_private

SCHEMA_VERSION = 1

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS procedure (
    ma_tthc TEXT PRIMARY KEY,
    ten_tthc TEXT NOT NULL, ma_linh_vuc TEXT NOT NULL, ten_linh_vuc TEXT NOT NULL,
    row TEXT NOT NULL,       -- the LayDanhSachTTHC row, as sent (JSON)
    detail TEXT,             -- the LayThuTuc result[0], as sent (JSON); NULL: not fetched
    detail_at REAL           -- when detail was fetched (Unix time)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('schema', '{SCHEMA_VERSION}');
"""


@dataclass(frozen=True)
class Procedure:
    """One procedure of the national catalogue (CSDL quốc gia về TTHC)."""

    ma_tthc: str
    ten_tthc: str
    ma_linh_vuc: str
    ten_linh_vuc: str
    row: dict[str, Any]
    detail: dict[str, Any] | None = None
    detail_at: float | None = None


def open_store(path: Path) -> sqlite3.Connection:
    """Open (or create) the file: 0600, WAL."""
    return open_private(path, SCHEMA, synchronous="normal")


def load(conn: sqlite3.Connection) -> tuple[list[Procedure], float | None]:
    """Every stored procedure, and the time of the last complete pull (None: never)."""
    rows = conn.execute("SELECT ma_tthc, ten_tthc, ma_linh_vuc, ten_linh_vuc, row, detail, detail_at"
                        " FROM procedure ORDER BY ma_tthc").fetchall()
    found = conn.execute("SELECT value FROM meta WHERE key = 'last_success'").fetchone()
    procedures = [Procedure(ma, ten, ma_lv, ten_lv, orjson.loads(row), orjson.loads(detail) if detail else None,
                            detail_at) for ma, ten, ma_lv, ten_lv, row, detail, detail_at in rows]
    return procedures, float(found[0]) if found else None


def replace_all(conn: sqlite3.Connection, procedures: Iterable[Procedure], pulled_at: float) -> None:
    """The catalogue becomes ``procedures``, pulled at ``pulled_at``: one transaction."""
    values = [(p.ma_tthc, p.ten_tthc, p.ma_linh_vuc, p.ten_linh_vuc, orjson.dumps(p.row).decode(),
               orjson.dumps(p.detail).decode() if p.detail is not None else None, p.detail_at) for p in procedures]
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DELETE FROM procedure")
        conn.executemany("INSERT INTO procedure VALUES (?, ?, ?, ?, ?, ?, ?)", values)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('last_success', ?)", (repr(pulled_at),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
