"""The dossier-code rule's own SQLite file (spec §8): per-unit, per-day sequences and the mapping
local code → portal code. ``[portal] codes_path``, default ``portal_codes.sqlite3`` beside
``[storage] path`` (as the 766 indicators keep ``kpi.sqlite3``).

Two tables:

* ``seq``: the last number drawn per (MaDinhDanh, yyMMdd). :meth:`CodeStore.allocate` draws the
  next one in one transaction of its own, synced to disk (``synchronous=FULL``) before it returns,
  so a number is never drawn twice, even across a crash or a power cut: a number drawn and then
  not adopted (its code already on the portal, or the process died) is skipped, never reused;
* ``code``: local ``MaHoSo`` → the portal's, with the rule that chose it (``alternative``,
  ``on_portal``, ``generated``). :meth:`CodeStore.adopt` keeps the first mapping of a local code:
  adopting again returns the one stored. A portal code belongs to one local code (unique).

All calls are synchronous; :class:`gateway.portalcode.mapping.CodeMapper` runs them on one
worker thread. sqlite3 errors leave as :class:`~core.errors.CodeStoreUnavailable`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from core.errors import CodeStoreUnavailable
from core.sqlitefile import open_private

SCHEMA = """
CREATE TABLE IF NOT EXISTS seq (
    prefix TEXT NOT NULL, day TEXT NOT NULL, last INTEGER NOT NULL,
    PRIMARY KEY (prefix, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS code (
    local TEXT PRIMARY KEY, portal TEXT NOT NULL UNIQUE, rule TEXT NOT NULL, at REAL NOT NULL
);
"""


class CodeConflict(Exception):
    """The portal code is already the mapping of another local code."""


class CodeStore:
    """One connection to the file; not thread-safe (one worker thread uses it)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        try:
            self._conn = open_private(path, SCHEMA, synchronous="full")  # it names dossiers
        except (sqlite3.Error, OSError) as exc:
            raise CodeStoreUnavailable(f"dossier-code file {path}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()

    def get(self, local: str) -> str | None:
        """The portal code stored for ``local``, or None."""
        try:
            row = self._conn.execute("SELECT portal FROM code WHERE local = ?", (local,)).fetchone()
        except sqlite3.Error as exc:
            raise CodeStoreUnavailable(f"dossier-code file {self.path}: {exc}") from exc
        return None if row is None else str(row[0])

    def allocate(self, prefix: str, day: str) -> int:
        """The next number of (``prefix``, ``day``), starting at 1; one transaction, on disk when
        this returns."""
        try:
            row = self._conn.execute(
                "INSERT INTO seq (prefix, day, last) VALUES (?, ?, 1)"
                " ON CONFLICT (prefix, day) DO UPDATE SET last = last + 1 RETURNING last", (prefix, day)).fetchone()
        except sqlite3.Error as exc:
            raise CodeStoreUnavailable(f"dossier-code file {self.path}: {exc}") from exc
        return int(row[0])

    def adopt(self, local: str, portal: str, rule: str) -> str:
        """Store ``local`` → ``portal`` unless ``local`` has a mapping already; returns the one that
        is stored. Raises CodeConflict when ``portal`` is another local code's."""
        at = self._clock()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT portal FROM code WHERE local = ?", (local,)).fetchone()
                if row is None:
                    self._conn.execute("INSERT INTO code (local, portal, rule, at) VALUES (?, ?, ?, ?)",
                                       (local, portal, rule, at))
                self._conn.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                self._conn.execute("ROLLBACK")
                raise CodeConflict(portal) from exc
            except sqlite3.Error:
                self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise CodeStoreUnavailable(f"dossier-code file {self.path}: {exc}") from exc
        return portal if row is None else str(row[0])

    def rules(self) -> dict[str, int]:
        """How many mappings each rule made (diagnostics and tests)."""
        try:
            rows = self._conn.execute("SELECT rule, count(*) FROM code GROUP BY rule").fetchall()
        except sqlite3.Error as exc:
            raise CodeStoreUnavailable(f"dossier-code file {self.path}: {exc}") from exc
        return {str(r): int(n) for r, n in rows}
