"""Schema versions of a SQLite file: ``PRAGMA user_version`` and a list of migration steps.

A file's schema version is its ``user_version`` (0 in a new file, and in files written before it
was kept). ``steps[i]`` takes a file from version ``i`` to ``i + 1``, so the code's version is
``len(steps)`` and a new file runs every step from the first. A step is SQL text (one or more
statements) or a function of the connection; it never commits.

:func:`migrate` runs the steps a file lacks and sets the new version in **one transaction**
(``BEGIN IMMEDIATE`` … ``COMMIT``): a step that fails rolls all of them back, and the file keeps
its old version and data. A file of a newer version than the code knows is refused with a
:class:`~core.errors.ConfigError` naming the settings key of the file, before anything is
written: an older build must not write into a layout it does not know.

Add a migration by appending one step; never edit a step that has shipped (files out there went
through it as it was).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from core.errors import ConfigError

Step = str | Callable[[sqlite3.Connection], None]


def version_of(conn: sqlite3.Connection) -> int:
    """The file's schema version (``PRAGMA user_version``)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, steps: Sequence[Step], *, key: str, what: str) -> tuple[int, int]:
    """Bring the file of ``conn`` (autocommit mode, no transaction open) to version ``len(steps)``.
    Returns (the version found, the version now). ``key`` and ``what`` name the file in the error
    raised for a newer one (e.g. ``"storage.path"``, ``"the queue store /var/lib/dvcgw/…"``).
    Raises ConfigError (newer file) or ``sqlite3.Error`` (a step failed; nothing changed)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = version_of(conn)
        if found > len(steps):
            raise ConfigError(key, (
                f"{what} has schema version {found}, but this version of dvcgw knows schema versions up to "
                f"{len(steps)}: it was written by a newer dvcgw. Run that version again, or restore a backup "
                "taken with this one (docs/operator-guide.md, Upgrades)"))
        for step in steps[found:]:
            _run(conn, step)
        if found != len(steps):
            conn.execute(f"PRAGMA user_version = {len(steps)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found, len(steps)


def _run(conn: sqlite3.Connection, step: Step) -> None:
    if callable(step):
        step(conn)
        return
    for statement in statements(step):
        conn.execute(statement)


def statements(script: str) -> list[str]:
    """``script`` split into complete statements (``executescript`` would commit first, which
    would break the one transaction)."""
    out: list[str] = []
    buf = ""
    for part in script.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n\t;"):
                out.append(buf.strip())
            buf = ""
    if buf.strip(" \n\t;"):
        raise ValueError(f"incomplete SQL statement: {buf.strip()[:80]!r}")
    return out
