"""``dvcgw backup`` and ``dvcgw restore``: consistent copies of every SQLite file the daemon uses.

**What is copied.** :func:`sqlite_files` lists the files a settings tree gives the daemon: the
queue store (``[storage] path``, SQLite backend only) and the files beside it (jobs, 766
indicators, catalogue, inbound cursor, dossier codes, payments, signing jobs, certification
register). Those that exist are copied; a Kafka deployment's events live in Kafka, not here.

**How.** Each file is copied with SQLite's backup API, which reads one transaction's view of the
database, so each copy is consistent in itself, and the daemon keeps running:

* the store is held by the daemon alone (``locking_mode = EXCLUSIVE``), so the daemon copies it
  itself, between two group commits (:meth:`queues.sqlite.SQLiteQueue.backup_to`): everything
  acknowledged before the backup began is in the copy, and requests that arrive during the copy
  wait for it (none is refused);
* the other files are in WAL mode: a second connection reads them while their writers go on.

Files are copied one after another, the store first; each is checked (``PRAGMA
integrity_check``) and described in ``manifest.json``: name, size, SHA-256, schema version
(``user_version``), the settings key that places it.

**Online** (:func:`take`, run by the daemon for ``POST /v1/backup``): the copies are made in a
private folder beside the store, sent as one tar stream, and deleted. **Offline** (``dvcgw backup
--offline``, the daemon stopped): the same copies, made by the command itself.

**Restore** (:func:`restore`, the daemon stopped) checks the manifest (every file's size and
SHA-256) before it writes anything, refuses to replace existing files without ``force``, and puts
each file in place atomically (its stale ``-wal`` and ``-shm`` removed first). A store of an older
schema version is migrated at the next start (queues/sqlstate.py).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import shutil
import sqlite3
import tarfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.schema import Settings
from core.errors import PermanentError
from signing.certification.books import books_path
from signing.jobs import jobs_path

MANIFEST = "manifest.json"
FORMAT = "dvcgw-backup/1"
CHUNK = 1 << 20
LOCK_WAIT_S = 5.0  # how long a copy waits for a file another process holds

#: ``progress(file name, done, total)``: pages while a file is copied, bytes while one is sent.
Progress = Callable[[str, int, int], None]


class BackupError(PermanentError):
    """A backup or restore that cannot be done as asked (the message says why and what to do)."""


@dataclass(frozen=True)
class DataFile:
    """One SQLite file of the daemon: ``name`` in the backup, where it lives, and which setting says so."""

    name: str
    path: Path
    key: str


def sqlite_files(settings: Settings) -> list[DataFile]:
    """Every SQLite file these settings give the daemon, whether it exists yet or not."""
    sp = settings.storage.path
    cert = settings.certification
    files = [
        DataFile("jobs", settings.jobs.file(sp), "jobs.path"),
        DataFile("kpi", settings.kpi.file(sp), "kpi.path"),
        DataFile("catalogue", settings.catalogue.file(sp), "catalogue.path"),
        DataFile("inbound", settings.inbound.file(sp), "inbound.path"),
        DataFile("portal_codes", settings.portal.codes_file(sp), "portal.codes_path"),
        DataFile("payments", settings.payment.file(sp), "payment.path"),
        DataFile("signing_jobs", jobs_path(sp), "storage.path"),
        DataFile("certification", Path(cert.path) if cert.path else books_path(sp), "certification.path"),
    ]
    if settings.queue.backend == "sqlite":
        files.insert(0, DataFile("store", Path(sp), "storage.path"))
    return files


# ------------------------------------------------------------------------------ copies


StoreCopier = Callable[[Path, Progress], Awaitable[None]]


async def take(settings: Settings, workdir: Path, copy_store: StoreCopier | None,
               progress: Progress | None = None) -> dict[str, Any]:
    """Copy every existing file into ``workdir`` (new, private) and write the manifest; returns it.
    ``copy_store(target, progress)`` copies the store (the daemon's own connection); None copies
    it like the others (offline: no daemon holds it). Raises BackupError."""
    report = progress or (lambda _n, _d, _t: None)
    entries: list[dict[str, Any]] = []
    for f in sqlite_files(settings):
        if not f.path.exists():
            continue
        target = workdir / f"{f.name}.sqlite3"
        if f.name == "store" and copy_store is not None:
            await copy_store(target, report)
        else:
            await asyncio.to_thread(copy_file, f.path, target, _named(report, f.name))
        entries.append(await asyncio.to_thread(describe, f, target))
    manifest = {"format": FORMAT, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "dvcgw_version": _version(), "queue_backend": settings.queue.backend, "files": entries}
    (workdir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _named(report: Progress, name: str) -> Callable[[int, int], None]:
    return lambda done, total: report(name, done, total)


def copy_file(source: Path, target: Path, progress: Callable[[int, int], None] | None = None) -> None:
    """A consistent copy of the SQLite file ``source`` at ``target`` (new, 0600), read in one
    transaction while its writers go on (WAL). Raises BackupError naming the file."""
    try:  # read-write, though nothing is written: it may have to recover a WAL a crash left
        src = sqlite3.connect(str(source), timeout=LOCK_WAIT_S)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {source}: {exc}") from exc
    try:
        # a read first: Connection.backup() would wait forever for a file another process holds
        src.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        os.close(os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        dst = sqlite3.connect(str(target))
        try:
            # all pages in one step: a step-wise copy restarts whenever another connection writes
            src.backup(dst, pages=-1)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise BackupError(f"{source} is held by a running daemon: run dvcgw backup without --offline") from exc
        raise BackupError(f"cannot copy {source}: {exc}") from exc
    finally:
        src.close()
    if progress is not None:
        size = target.stat().st_size
        progress(size, size)


def describe(f: DataFile, copy: Path) -> dict[str, Any]:
    """The manifest entry of one copy; raises BackupError if the copy is not sound."""
    conn = sqlite3.connect(f"{copy.resolve().as_uri()}?mode=ro", uri=True)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()
    if check != "ok":
        raise BackupError(f"the copy of {f.path} fails integrity_check: {check}")
    return {"name": f.name, "file": copy.name, "source": str(f.path), "settings_key": f.key,
            "bytes": copy.stat().st_size, "sha256": sha256_of(copy), "user_version": version}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(functools.partial(fh.read, CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _version() -> str:
    from monitoring.metrics import build_version

    return build_version()


def private_dir(path: Path) -> None:
    """Create ``path`` (0700); it must not exist, or be an empty folder. Raises BackupError."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BackupError(f"{path} exists and is not an empty folder: give a new one")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


# ------------------------------------------------------------------------------ the tar stream


def tar_members(workdir: Path, manifest: dict[str, Any]) -> list[tuple[tarfile.TarInfo, Path]]:
    """The stream's members: each copy, then the manifest (its checksums cover the copies)."""
    out = []
    for name in [e["file"] for e in manifest["files"]] + [MANIFEST]:
        path = workdir / name
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = path.stat().st_size, 0o600, int(time.time())
        out.append((info, path))
    return out


def tar_size(members: list[tuple[tarfile.TarInfo, Path]]) -> int:
    """The stream's exact length: a 512-byte header and the padded content per member, two empty
    blocks at the end (ustar, as :func:`tar_chunks` writes it)."""
    return sum(512 + -(-info.size // 512) * 512 for info, _ in members) + 1024


def tar_chunks(members: list[tuple[tarfile.TarInfo, Path]]) -> Iterator[bytes]:
    """The tar stream in pieces of at most :data:`CHUNK` bytes."""
    for info, path in members:
        yield info.tobuf(format=tarfile.USTAR_FORMAT)
        with path.open("rb") as fh:
            yield from iter(functools.partial(fh.read, CHUNK), b"")
        if info.size % 512:
            yield b"\0" * (512 - info.size % 512)
    yield b"\0" * 1024


def unpack(archive: Path, into: Path) -> None:
    """Extract the stream the daemon sent (plain files only, no path outside ``into``)."""
    with tarfile.open(archive, "r:") as tar:
        for member in tar.getmembers():
            if not member.isfile() or "/" in member.name or member.name.startswith("."):
                raise BackupError(f"unexpected member {member.name!r} in the backup stream")
        tar.extractall(into, filter="data")
    for child in into.iterdir():
        child.chmod(0o600)


# ------------------------------------------------------------------------------ verify and restore


def verify(backup: Path) -> dict[str, Any]:
    """Read ``backup``'s manifest and check every file it lists (size, SHA-256); returns the
    manifest. Raises BackupError naming the first file that differs."""
    try:
        manifest: dict[str, Any] = json.loads((backup / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{backup / MANIFEST}: cannot read the manifest: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{backup / MANIFEST}: not a dvcgw backup ({FORMAT})")
    for e in manifest["files"]:
        path = backup / e["file"]
        if not path.is_file() or "/" in e["file"]:
            raise BackupError(f"{path}: listed in the manifest but missing")
        if path.stat().st_size != e["bytes"] or sha256_of(path) != e["sha256"]:
            raise BackupError(f"{path}: differs from the manifest (size or SHA-256): the backup is damaged")
    return manifest


def restore(backup: Path, settings: Settings, *, force: bool = False,
            progress: Callable[[str, Path], None] | None = None) -> list[tuple[str, Path]]:
    """Put the files of ``backup`` where ``settings`` say they live. The daemon must be stopped.
    Nothing is written unless the whole backup verifies and, without ``force``, no target exists.
    Returns (name, path) of each file restored. Raises BackupError."""
    manifest = verify(backup)
    places = {f.name: f for f in sqlite_files(settings)}
    plan: list[tuple[dict[str, Any], Path]] = []
    for e in manifest["files"]:
        if e["name"] not in places:
            raise BackupError(f"{e['name']}: these settings have no such file (queue backend "
                              f"{settings.queue.backend!r}; the backup's was {manifest.get('queue_backend')!r})")
        plan.append((e, places[e["name"]].path))
    present = [p for _, p in plan if any(Path(f"{p}{s}").exists() for s in ("", "-wal", "-shm"))]
    if present and not force:
        raise BackupError("would replace " + ", ".join(map(str, present)) + ": pass --force to overwrite "
                          "(the daemon must be stopped)")
    for _, path in plan:
        _refuse_if_in_use(path)
    done = []
    for e, path in plan:
        _put(backup / e["file"], path)
        if progress is not None:
            progress(e["name"], path)
        done.append((e["name"], path))
    return done


def _refuse_if_in_use(path: Path) -> None:
    """A file some process holds open for writing (the store of a running daemon) is not replaced."""
    if not path.exists():
        return
    conn = sqlite3.connect(str(path), timeout=0.1, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise BackupError(f"{path} is in use ({exc}): stop the daemon before restoring") from exc
    finally:
        conn.close()


def _put(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically (a temporary file beside it, synced, renamed)."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.restoring")
    tmp.unlink(missing_ok=True)
    with source.open("rb") as src, os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as dst:
        shutil.copyfileobj(src, dst, CHUNK)
        dst.flush()
        os.fsync(dst.fileno())
    for suffix in ("-wal", "-shm"):  # the old file's log would be replayed into the restored one
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, target)
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
