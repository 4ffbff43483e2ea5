"""``dvcgw backup`` and ``dvcgw restore`` (gateway/backup.py): online, consistent, verified."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from config.schema import load
from gateway.backup import sqlite_files
from queues import sqlstate
from queues.sqlite import SQLiteQueue
from tests.daemon import Daemon, free_port, write_config
from tests.harness import AGENCY_KEY, OPERATOR_KEY, Sandbox
from tests.samples import sample_dossier

pytestmark = pytest.mark.slow

WRITERS = 12
HISTORY = 300  # events acknowledged before the backup begins


async def dvcgw(*args: str) -> tuple[int, str, str]:
    """The real command line, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVCGW_")}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Writers:
    """Agencies sending snapshots without pause: every 202 is recorded with its sequence."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acked: list[tuple[str, int, str]] = []  # (MaHoSo, sequence, GhiChu), in the order acknowledged
        self.stop = asyncio.Event()
        self.history = asyncio.Event()  # set at HISTORY acknowledged events

    async def run(self, http: aiohttp.ClientSession, m: str) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            note = f"{m}#{n}"
            async with http.put(f"{self.url}/v1/dossiers/{m}", json=sample_dossier(m, GhiChu=note)) as r:
                body = await r.json()
                assert r.status == 202, body
                self.acked.append((m, body["sequence"], note))
                if len(self.acked) >= HISTORY:
                    self.history.set()


def stored_events(store: Path) -> tuple[str, list[tuple[str, int, str]]]:
    conn = sqlite3.connect(store)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        rows = [(m, seq, json.loads(p)["GhiChu"])
                for m, seq, p in conn.execute("SELECT mahoso, seq, payload FROM events ORDER BY id")]
    finally:
        conn.close()
    return check, rows


async def test_backup_under_load_then_restore_loses_nothing_acknowledged(sandbox: Sandbox, tmp_path: Path) -> None:
    """While agencies keep writing to a running daemon (which keeps delivering), `dvcgw backup`
    copies every SQLite file; `dvcgw restore` puts them in place for another installation. The
    restored store passes integrity_check, holds every event acknowledged before the backup began,
    each dossier's events in order with no gap, and nothing that was never acknowledged; the
    daemon started on it goes on from there."""
    port = free_port()
    cfg = write_config(tmp_path / "gw.toml", port, sandbox.url, tmp_path / "live" / "gw.sqlite3")
    daemon = Daemon(cfg, port, tmp_path / "daemon.log")
    await daemon.start()
    writers = Writers(daemon.url)
    codes = [f"000.00.01.H55-240316-{i:05d}" for i in range(WRITERS)]
    try:
        async with aiohttp.ClientSession(headers={"X-API-Key": AGENCY_KEY}) as http:
            tasks = [asyncio.create_task(writers.run(http, m)) for m in codes]
            await asyncio.wait_for(writers.history.wait(), 60)  # a store with some history
            before = list(writers.acked)
            rc, out, err = await dvcgw("backup", str(tmp_path / "bk"), "--url", daemon.url, "--key", OPERATOR_KEY)
            during = len(writers.acked) - len(before)
            writers.stop.set()
            await asyncio.gather(*tasks)
    finally:
        await daemon.stop()
    assert rc == 0, err
    assert during > 0, "no write was acknowledged while the backup ran: the test did not test concurrency"
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    names = {e["name"] for e in manifest["files"]}
    assert {"store", "jobs", "kpi"} <= names, names
    assert next(e for e in manifest["files"] if e["name"] == "store")["user_version"] == sqlstate.SCHEMA_VERSION
    assert "store.sqlite3" in out and "received" in err

    target = tmp_path / "restored"
    cfg2 = write_config(tmp_path / "gw2.toml", free_port(), sandbox.url, target / "gw.sqlite3")
    rc, out, err = await dvcgw("restore", str(tmp_path / "bk"), "--config", str(cfg2))
    assert rc == 0, err
    check, rows = stored_events(target / "gw.sqlite3")
    assert check == "ok"
    assert set(before) <= set(rows), "an event acknowledged before the backup began is missing"
    assert set(rows) <= set(writers.acked), "the copy holds an event that was never acknowledged"
    for m in codes:
        seqs = [seq for mm, seq, _ in rows if mm == m]
        assert seqs == list(range(1, len(seqs) + 1)), f"{m}: events out of order or with a gap"
        notes = [note for mm, _, note in rows if mm == m]
        assert notes == [f"{m}#{i}" for i in range(1, len(notes) + 1)]
    for f in sqlite_files(load(cfg2)):
        if f.name in names:
            conn = sqlite3.connect(f.path)
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", f.name
            conn.close()

    port2 = load(cfg2).server.port
    restored = Daemon(cfg2, port2, tmp_path / "daemon2.log")
    await restored.start()
    try:
        async with aiohttp.ClientSession(headers={"X-API-Key": AGENCY_KEY}) as http:
            m = codes[0]
            async with http.get(f"{restored.url}/v1/dossiers/{m}") as r:
                assert r.status == 200
            async with http.put(f"{restored.url}/v1/dossiers/{m}", json=sample_dossier(m)) as r:
                assert r.status == 202  # the next event takes the next sequence after the copy's last
                assert (await r.json())["sequence"] == max(s for mm, s, _ in rows if mm == m) + 1
    finally:
        await restored.stop()


async def _queue_with_events(path: Path, n: int) -> None:
    from queues.api import EventKind, NewEvent

    q = SQLiteQueue(path)
    await q.start()
    await q.enqueue([NewEvent("D1", EventKind.PROGRESS, {"MaHoSo": "D1", "n": i}, "A") for i in range(n)])
    await q.close()


async def test_restore_checks_before_it_writes(tmp_path: Path) -> None:
    """restore refuses, writing nothing: a damaged backup (SHA-256 differs), files already in place
    without --force, and a store that a running daemon holds even with --force."""
    live = tmp_path / "live" / "gw.sqlite3"
    await _queue_with_events(live, 5)
    cfg = write_config(tmp_path / "gw.toml", free_port(), "http://127.0.0.1:9", live)
    rc, _, err = await dvcgw("backup", str(tmp_path / "bk"), "--offline", "--config", str(cfg))
    assert rc == 0, err
    await _queue_with_events(live, 2)  # the live store moves on: 7 events

    rc, _, err = await dvcgw("restore", str(tmp_path / "bk"), "--config", str(cfg))
    assert rc == 1 and "pass --force" in err
    assert stored_count(live) == 7

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for f in (tmp_path / "bk").iterdir():
        data = bytearray(f.read_bytes())
        if f.name == "store.sqlite3":
            data[-1] ^= 1
        (damaged / f.name).write_bytes(bytes(data))
    rc, _, err = await dvcgw("restore", str(damaged), "--config", str(cfg), "--force")
    assert rc == 1 and "differs from the manifest" in err
    rc, _, err = await dvcgw("restore", str(damaged), "--verify-only")
    assert rc == 1 and "store.sqlite3" in err

    q = SQLiteQueue(live)
    await q.start()
    try:
        rc, _, err = await dvcgw("restore", str(tmp_path / "bk"), "--config", str(cfg), "--force")
        assert rc == 1 and "stop the daemon" in err
        rc, _, err = await dvcgw("backup", str(tmp_path / "bk2"), "--offline", "--config", str(cfg))
        assert rc == 1 and "without --offline" in err and not (tmp_path / "bk2").exists()
    finally:
        await q.close()
    assert stored_count(live) == 7

    rc, _, err = await dvcgw("restore", str(tmp_path / "bk"), "--config", str(cfg), "--force")
    assert rc == 0, err
    assert stored_count(live) == 5
    rc, _, err = await dvcgw("backup", str(tmp_path / "bk"), "--offline", "--config", str(cfg))
    assert rc == 1 and "not an empty folder" in err


def stored_count(store: Path) -> int:
    conn = sqlite3.connect(store)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


async def test_backup_route_is_for_the_operator_and_one_at_a_time(sandbox: Sandbox, tmp_path: Path) -> None:
    """POST /v1/backup needs the operator role (an agency key: 403 naming the grant; no key: 401,
    house error bodies); a second request
    while one runs is answered 409 backup_running; a file that cannot be copied is 503
    backup_failed naming it, before any byte is sent; the working copies never stay behind."""
    from gateway.backup_routes import RUNNING
    from tests.harness import run_gateway, settings_for

    async with run_gateway(settings_for(tmp_path, sandbox.url)) as gw:
        r = await gw.client.post("/v1/backup", headers={"X-API-Key": AGENCY_KEY})
        assert r.status == 403 and (await r.json())["grant"] == "operator"
        r = await gw.client.post("/v1/backup")
        assert r.status == 401 and (await r.json())["error"] == "unauthenticated"
        async with gw.app[RUNNING]:
            r = await gw.operator("POST", "/v1/backup")
            assert r.status == 409 and (await r.json())["error"] == "backup_running"
        r = await gw.operator("POST", "/v1/backup")
        assert r.status == 200 and r.content_type == "application/x-tar"
        body: Any = await r.read()
        assert len(body) == r.content_length and body[-1024:] == b"\0" * 1024
        # a file beside the store that is not a database (never opened: no province code set)
        (tmp_path / "portal_codes.sqlite3").write_bytes(b"not a database" * 100)
        r = await gw.operator("POST", "/v1/backup")
        problem = await r.json()
        assert r.status == 503 and problem["error"] == "backup_failed", problem
        assert "portal_codes.sqlite3" in problem["message"]
    assert not list(tmp_path.glob(".backup-*")), "the daemon's working copy was not removed"


def test_the_files_follow_the_settings(tmp_path: Path) -> None:
    """The list comes from the settings: a file's own path setting moves it, and on the Kafka
    backend there is no store file to copy (its events are in Kafka)."""
    from tests.harness import settings_for

    s = settings_for(tmp_path, "http://127.0.0.1:9", jobs={"path": str(tmp_path / "elsewhere" / "j.sqlite3")})
    files = {f.name: f for f in sqlite_files(s)}
    assert files["store"].path == tmp_path / "gw.sqlite3"
    assert files["jobs"].path == tmp_path / "elsewhere" / "j.sqlite3" and files["jobs"].key == "jobs.path"
    assert files["kpi"].path == tmp_path / "kpi.sqlite3"
    kafka = settings_for(tmp_path, "http://127.0.0.1:9", queue={"backend": "kafka"})
    assert "store" not in {f.name for f in sqlite_files(kafka)}


async def test_offline_backup_on_kafka_copies_the_other_files(tmp_path: Path) -> None:
    """A Kafka deployment's backup holds its SQLite files (here the jobs file) and no store."""
    from core.sqlitefile import open_private
    from queues.jobs import SCHEMA

    open_private(tmp_path / "jobs.sqlite3", SCHEMA).close()  # as the jobs queue opens it
    cfg = write_config(tmp_path / "gw.toml", free_port(), "http://127.0.0.1:9", tmp_path / "gw.sqlite3",
                       queue={"backend": "kafka"})
    rc, out, err = await dvcgw("backup", str(tmp_path / "bk"), "--offline", "--config", str(cfg))
    assert rc == 0, err
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    assert [e["name"] for e in manifest["files"]] == ["jobs"] and manifest["queue_backend"] == "kafka"
    assert "jobs.sqlite3" in out
