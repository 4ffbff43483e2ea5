"""The gateway's own SQLite files (jobs, catalogue, inbound cursor, dossier codes, payments, the
766 indicators): each opened the same way by :func:`open_private`.

Every one of them names dossiers or people, so its folder is created 0700 and the file 0600
(SQLite gives its WAL and shared-memory files the file's mode). Each is in WAL mode, so a reader
(``dvcgw`` commands, a worker thread) never blocks the writer, with a busy timeout, and at the
durability its owner chose: ``FULL`` where a lost write would skip or repeat work (jobs, cursors,
codes, payments), ``NORMAL`` where it only costs a little of a derived figure (the indicators).
The queue store (queues/sqlite.py) is opened by its own code: it also tightens an existing file's
mode and checks for a second process.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

Synchronous = Literal["full", "normal", "FULL", "NORMAL"]


def open_private(path: Path, schema: str, *, synchronous: Synchronous = "full", busy_ms: int = 5000,
                 pragmas: Sequence[str] = (), page_size: int | None = None) -> sqlite3.Connection:
    """Open (or create) ``path`` and run ``schema`` (``CREATE … IF NOT EXISTS``); ``pragmas`` (e.g.
    ``"cache_size=-16384"``) are set before it. The connection is in autocommit mode
    (``isolation_level=None``: callers write ``BEGIN IMMEDIATE`` … ``COMMIT``) and may be used from
    a worker thread. Raises ``OSError`` or ``sqlite3.Error``; the caller translates them."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        if page_size is not None:  # a new file only; an existing one keeps its own
            conn.execute(f"PRAGMA page_size={int(page_size)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        for pragma in pragmas:
            conn.execute(f"PRAGMA {pragma}")
        conn.executescript(schema)
    except sqlite3.Error:
        conn.close()
        raise
    return conn
