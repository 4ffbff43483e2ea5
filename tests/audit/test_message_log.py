"""The message log end to end: real gateway app, sandbox, signing pool, test PKI and TSA."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

from audit import export, store, verify
from audit.chain import sha256_hex
from audit.store import BodyCipher
from tests.audit.conftest import Audited, audited
from tests.harness import AGENCY_KEY, OPERATOR_KEY, Sandbox
from tests.samples import sample_dossier
from tests.signing.env import World

M = "000.00.01.H55-240315-{:05d}"
BODY_KEY = "11" * 32


async def _traffic(a: Audited, n: int = 3) -> None:
    for i in range(n):
        r = await a.gw.put(M.format(i), sample_dossier(M.format(i)))
        assert r.status == 202, await r.text()
    await a.gw.drain()
    await a.log.flush()


def _verify(path: Path) -> verify.Report:
    conn = store.open_reader(path)
    try:
        return verify.verify(conn)
    finally:
        conn.close()


async def test_every_exchange_is_recorded_chained_and_a_clean_log_verifies(world: World, sandbox: Sandbox,
                                                                           tmp_path: Path) -> None:
    """Accepted agency requests and the portal calls they cause are records with the parties, the
    operation, the status and the SHA-256 of both bodies; sealed, the log verifies clean."""
    async with audited(tmp_path, world, sandbox) as a:
        await _traffic(a)
        body = sample_dossier(M.format(9))
        r = await a.gw.put(M.format(9), body)
        assert r.status == 202
        answer = await r.read()
        assert await a.sealer.seal_once()
        conn = store.open_reader(a.path)
        rows = list(store.records(conn))
        conn.close()
    agency = [x for x in rows if x.kind == "agency"]
    portal = [x for x in rows if x.kind == "counterpart"]
    assert len(agency) == 4 and {x.client for x in agency} == {"000.00.01.H55"}
    assert agency[-1].operation == "PUT /v1/dossiers/{MaHoSo}" and agency[-1].status == 202
    assert agency[-1].response_sha256 == sha256_hex(answer)
    assert portal and all(x.server == "portal" and x.status == 200 for x in portal)
    assert all(x.response_sha256 != sha256_hex(b"") and x.request_sha256 != sha256_hex(b"") for x in portal)
    assert any("DongBoHoSoMC" in x.operation for x in portal)
    rep = _verify(a.path)
    assert rep.ok, rep.lines()
    assert rep.records == len(rows) and rep.seals == 1 and rep.stamped == 1


async def test_verify_pinpoints_the_record_whose_body_hash_lost_one_byte(world: World, sandbox: Sandbox,
                                                                        tmp_path: Path) -> None:
    """One hex digit of one record's request hash changed on disk: verify names that record."""
    async with audited(tmp_path, world, sandbox) as a:
        await _traffic(a)
        assert await a.sealer.seal_once()
    conn = sqlite3.connect(a.path)
    old = conn.execute("SELECT request_sha256 FROM records WHERE seq = 3").fetchone()[0]
    conn.execute("UPDATE records SET request_sha256 = ? WHERE seq = 3", (("0" if old[0] != "0" else "1") + old[1:],))
    conn.commit()
    conn.close()
    rep = _verify(a.path)
    assert not rep.ok
    assert rep.broken.startswith("record 3: its content does not match its hash"), rep.broken


async def test_verify_detects_a_deleted_record_and_a_rewritten_chain(world: World, sandbox: Sandbox,
                                                                     tmp_path: Path) -> None:
    """A deleted record is a gap in the chain; renumbering and rehashing the rest to hide it breaks the seal."""
    async with audited(tmp_path, world, sandbox) as a:
        await _traffic(a)
        assert await a.sealer.seal_once()
    conn = sqlite3.connect(a.path)
    conn.execute("DELETE FROM records WHERE seq = 2")
    conn.commit()
    rep = _verify(a.path)
    assert rep.broken == "record 2 is missing: the chain jumps from 1 to 3", rep.broken
    _rewrite_from(conn, 2)  # the forger's best: renumber and re-chain everything after the hole
    conn.close()
    rep = _verify(a.path)
    assert rep.broken.startswith("seal 1 (head record"), rep.broken


def _rewrite_from(conn: sqlite3.Connection, seq: int) -> None:
    from audit.chain import record_hash
    prev = conn.execute("SELECT hash FROM records WHERE seq = ?", (seq - 1,)).fetchone()[0]
    rows = list(store.records(conn, seq))
    conn.execute("DELETE FROM records WHERE seq >= ?", (seq,))
    for i, r in enumerate(rows):
        fields = {**r.canonical(), "seq": seq + i, "prev": prev}
        prev = record_hash(fields)
        conn.execute("INSERT INTO records (seq, at, kind, client, server, operation, status, request_sha256, "
                     "response_sha256, prev, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                     (seq + i, r.at, r.kind, r.client, r.server, r.operation, r.status, r.request_sha256,
                      r.response_sha256, fields["prev"], prev))
    conn.commit()


async def test_exported_seals_verify_with_openssl_alone(world: World, sandbox: Sandbox, tmp_path: Path) -> None:
    """Seals made while the TSA was down are stamped together once it is back (one token over their tree);
    the archive's time-stamps pass ``openssl ts -verify``, its seal signatures ``openssl cms -verify``,
    its chain the stdlib-only script."""
    async with audited(tmp_path, world, sandbox) as a:
        world.tsa_a.fail = True
        await _traffic(a, 2)
        assert not await a.sealer.seal_once()
        await _traffic(a, 1)
        assert not await a.sealer.seal_once()
        world.tsa_a.fail = False
        await _traffic(a, 1)
        assert await a.sealer.seal_once()
    conn = store.open_reader(a.path)
    assert len(store.stamps(conn)) == 1 and len(store.seals(conn)) == 3
    out = tmp_path / "export" / "audit.tar.gz"
    first, last = export.export(conn, out, [world.root_pem])
    conn.close()
    assert first == 1 and last > 3
    _check_archive_with_openssl(out, tmp_path / "unpacked")


def _run(cwd: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=30)


def _check_archive_with_openssl(out: Path, folder: Path) -> None:
    with tarfile.open(out) as tar:
        tar.extractall(folder, filter="data")
    root = (folder / "stamps" / "1.root").read_text().strip()
    ts = _run(folder, "openssl", "ts", "-verify", "-digest", root, "-token_in", "-in", "stamps/1.tst",
              "-CAfile", "certs/roots.pem", "-untrusted", "certs/chain.pem")
    assert ts.returncode == 0 and "Verification: OK" in ts.stdout, ts.stdout + ts.stderr
    for sid in (1, 2, 3):
        sig = _run(folder, "openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", f"seals/{sid}.p7s",
                   "-content", f"seals/{sid}.statement.json", "-CAfile", "certs/roots.pem",
                   "-certfile", "certs/chain.pem", "-purpose", "any", "-out", "/dev/null")
        assert sig.returncode == 0, sig.stderr
    chain = _run(folder, sys.executable, "verify_chain.py")
    assert chain.returncode == 0 and "OK: records 1.." in chain.stdout, chain.stdout + chain.stderr
    bad = _run(folder, "openssl", "ts", "-verify", "-digest", "00" * 32, "-token_in", "-in", "stamps/1.tst",
               "-CAfile", "certs/roots.pem", "-untrusted", "certs/chain.pem")
    assert bad.returncode != 0  # the check can fail: another digest is refused


async def test_halt_after_unsealed_refuses_agency_writes_until_a_seal_succeeds(world: World, sandbox: Sandbox,
                                                                               tmp_path: Path) -> None:
    """With halt_after_unsealed = 4h and the TSA down: accepted while inside the grace; past it (injected
    clock) /readyz is 503 naming the log and agency writes get 503; a successful seal resumes both."""
    async with audited(tmp_path, world, sandbox, halt_after_unsealed="4h") as a:
        world.tsa_a.fail = True
        assert (await a.gw.put(M.format(1), sample_dossier(M.format(1)))).status == 202
        assert not await a.sealer.seal_once()
        a.gw.clock.advance(3 * 3600)
        assert (await a.gw.put(M.format(2), sample_dossier(M.format(2)))).status == 202
        assert (await a.gw.client.get("/readyz")).status == 200
        a.gw.clock.advance(3600 + 1)
        ready = await a.gw.client.get("/readyz")
        assert ready.status == 503
        check = (await ready.json())["checks"]["audit"]
        assert check["status"] == "fail" and "halt_after_unsealed" in check["reason"]
        refused = await a.gw.put(M.format(3), sample_dossier(M.format(3)))
        assert refused.status == 503 and (await refused.json())["error"] == "message_log_unsealed"
        assert refused.headers["Retry-After"]
        assert (await a.gw.client.get(f"/v1/dossiers/{M.format(1)}", headers={"X-API-Key": AGENCY_KEY})).status == 200
        assert a.gw.metric("dvcgw_audit_halted") == 1
        world.tsa_a.fail = False
        assert await a.sealer.seal_once()
        assert (await a.gw.put(M.format(3), sample_dossier(M.format(3)))).status == 202
        assert (await a.gw.client.get("/readyz")).status == 200
        assert a.gw.metric("dvcgw_audit_halted") == 0


async def test_by_default_an_unsealed_log_stops_nothing(world: World, sandbox: Sandbox, tmp_path: Path) -> None:
    """halt_after_unsealed = 0 (the default): a week of failed sealing, and requests and readiness go on;
    the failure shows in the metrics (the alert's input)."""
    async with audited(tmp_path, world, sandbox) as a:
        world.tsa_a.fail = True
        assert (await a.gw.put(M.format(1), sample_dossier(M.format(1)))).status == 202
        assert not await a.sealer.seal_once()
        a.gw.clock.advance(7 * 86400)
        assert not await a.sealer.seal_once()
        assert (await a.gw.put(M.format(2), sample_dossier(M.format(2)))).status == 202
        assert (await a.gw.client.get("/readyz")).status == 200
        assert a.gw.metric("dvcgw_audit_seal_attempts_total", outcome="stamp_failed") == 2
        assert a.gw.metric("dvcgw_audit_unsealed_records") >= 1
        await a.log.flush()
        assert a.log.store.head.seq >= 2  # the log kept accepting


async def test_full_bodies_are_encrypted_at_rest(world: World, sandbox: Sandbox, tmp_path: Path) -> None:
    """bodies = "full": the file holds no plaintext of a request (its ID number); the key opens it, bound
    to its record."""
    async with audited(tmp_path, world, sandbox, bodies="full", key=BODY_KEY) as a:
        body = sample_dossier(M.format(1))
        assert (await a.gw.put(M.format(1), body)).status == 202
        await a.log.flush()
        assert "BodyCipher(<key hidden>)" == repr(a.log.store._cipher)
    raw = b"".join(p.read_bytes() for p in a.path.parent.glob(a.path.name + "*"))
    assert body["SoGiayToChuHoSo"].encode() not in raw and BODY_KEY.encode() not in raw
    conn = sqlite3.connect(a.path)
    seq, blob, digest = conn.execute(
        "SELECT seq, request_body, request_sha256 FROM records WHERE kind = 'agency'").fetchone()
    conn.close()
    plain = BodyCipher(bytes.fromhex(BODY_KEY)).open(seq, "request", blob)
    assert sha256_hex(plain) == digest and body["SoGiayToChuHoSo"].encode() in plain


async def test_retention_prunes_only_what_an_export_covers(world: World, sandbox: Sandbox, tmp_path: Path) -> None:
    """Old sealed records stay until exported; after the export they are pruned, and the rest still
    verifies from the kept anchor."""
    async with audited(tmp_path, world, sandbox, retention="1d") as a:
        await _traffic(a, 2)
        assert await a.sealer.seal_once()
        a.gw.clock.advance(2 * 86400)
        assert await a.log.store.prune(a.gw.clock() - 86400) == 0  # not exported yet
        conn = store.open_reader(a.path)
        _, upto = export.export(conn, tmp_path / "a.tar.gz", [world.root_pem])
        conn.close()
        await _traffic(a, 1)
        assert await a.log.store.prune(a.gw.clock() - 86400) == upto
        assert await a.sealer.seal_once()
    rep = _verify(a.path)
    assert rep.ok and rep.first == upto + 1, rep.lines()


async def test_cli_verify_and_export(world: World, sandbox: Sandbox, tmp_path: Path) -> None:
    """``dvcgw audit verify`` exits 0 on a clean log and 1 naming the broken record; export writes the archive."""
    from gateway.cli import main
    async with audited(tmp_path, world, sandbox) as a:
        await _traffic(a, 1)
        assert await a.sealer.seal_once()
    k = world.tmp / "seal"
    conf = tmp_path / "gw.toml"
    conf.write_text(f'''[storage]
path = "{a.settings.storage.path}"
[operator]
api_key_sha256 = "{hashlib.sha256(OPERATOR_KEY.encode()).hexdigest()}"
[[signing.keys]]
alias = "gw-seal"
source = "file"
key_file = "{k / 'seal.key.pem'}"
cert_file = "{k / 'seal.crt.pem'}"
[signing]
tsa_urls = ["{world.tsa_urls[0]}"]
trust_roots = ["{world.root_pem}"]
[audit]
bodies = "hash"
seal_key = "gw-seal"
''')
    assert main(["audit", "--config", str(conf), "verify"]) == 0
    assert main(["audit", "--config", str(conf), "verify", "--from", "2", "--to", "3"]) == 0
    assert main(["audit", "--config", str(conf), "verify", "--from", "2000-01-01T00:00:00"]) == 0
    assert main(["audit", "--config", str(conf), "verify", "--from", "yesterday"]) == 2  # a ConfigError
    assert main(["audit", "--config", str(conf), "export", "--out", str(tmp_path / "x.tar.gz")]) == 0
    conn = sqlite3.connect(a.path)
    conn.execute("UPDATE records SET status = 500 WHERE seq = 2")
    conn.commit()
    conn.close()
    assert main(["audit", "--config", str(conf), "verify"]) == 1
