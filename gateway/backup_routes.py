"""``POST /v1/backup`` (operator): the daemon copies its SQLite files and sends them as one tar stream.

The copies are made in a private folder beside the store (``.backup-<random>``, removed when the
answer has been sent, or at the next backup if the daemon died meanwhile), so that folder's disk
needs room for one copy of every file. One backup runs at a time: a second request is answered
409. ``dvcgw backup DIR`` is the client (gateway/cli.py); gateway/backup.py says what is copied.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import time
from pathlib import Path

from aiohttp import web

from core.errors import QueueUnavailable
from gateway.appkeys import QUEUE, SETTINGS
from gateway.auth import require_operator
from gateway.backup import BackupError, Progress, private_dir, take, tar_chunks, tar_members, tar_size
from gateway.http_errors import HTTPProblem
from queues.sqlite import SQLiteQueue

log = logging.getLogger("dvcgw.backup")
RUNNING = web.AppKey("backup_running", asyncio.Lock)


def add_routes(app: web.Application) -> None:
    app[RUNNING] = asyncio.Lock()
    app.router.add_post("/v1/backup", post_backup)


async def post_backup(request: web.Request) -> web.StreamResponse:
    """Copy every SQLite file of the daemon (consistent, online) and stream them with their manifest."""
    require_operator(request)
    app = request.app
    if app[RUNNING].locked():
        raise HTTPProblem(409, "backup_running", "a backup is already running; try again when it has finished")
    async with app[RUNNING]:
        workdir = _new_workdir(Path(app[SETTINGS].storage.path))
        try:
            return await _send(request, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


async def _send(request: web.Request, workdir: Path) -> web.StreamResponse:
    app = request.app
    started = time.monotonic()
    queue = app[QUEUE]

    async def copy_store(target: Path, progress: Progress) -> None:
        assert isinstance(queue, SQLiteQueue)
        await queue.backup_to(target, lambda done, total: progress("store", done, total))

    try:
        private_dir(workdir)
        manifest = await take(app[SETTINGS], workdir, copy_store if isinstance(queue, SQLiteQueue) else None)
    except (BackupError, QueueUnavailable, OSError) as exc:  # a disk full, a damaged file: nothing sent yet
        log.error("backup failed: %s", exc)
        raise HTTPProblem(503, "backup_failed", f"the backup could not be taken: {exc}") from exc
    members = tar_members(workdir, manifest)
    total = sum(e["bytes"] for e in manifest["files"])
    log.info("backup: %d files, %d bytes copied in %.2fs; sending", len(manifest["files"]), total,
             time.monotonic() - started)
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar", "Cache-Control": "no-store"})
    response.content_length = tar_size(members)
    await response.prepare(request)
    chunks = tar_chunks(members)
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        await response.write(chunk)
    await response.write_eof()
    return response


def _new_workdir(store: Path) -> Path:
    """A new folder name beside the store; folders of backups a dead daemon did not finish go."""
    parent = store.resolve().parent
    for old in parent.glob(".backup-*"):
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return parent / f".backup-{secrets.token_hex(8)}"
