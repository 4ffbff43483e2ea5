"""The sealer's own schedule (the daemon's, run=True): a seal as soon as seal_records are unsealed,
without waiting for seal_interval. Signing and stamping are injected functions here (the gateway
tests use the real signing service and TSA)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from audit import store
from audit.log import AuditLog, Sealer
from config.loader import build
from config.schema import AuditSettings
from monitoring.metrics import AuditMetrics, Metrics


async def test_enough_unsealed_records_start_a_round_before_the_interval(tmp_path: Path) -> None:
    settings = build(AuditSettings, {"bodies": "hash", "seal_key": "k", "seal_interval": "1h", "seal_records": 3,
                                     "write_interval": "10ms"}, "audit")
    log = AuditLog(settings, tmp_path / "audit.sqlite3", AuditMetrics(Metrics()))
    stamped: list[bytes] = []

    async def sign(data: bytes) -> bytes:
        return b"sig:" + data

    async def stamp(digest: bytes) -> bytes:
        stamped.append(digest)
        return b"token"

    await log.start()
    sealer = Sealer(log, sign, stamp, key_alias="k")
    await sealer.start(run=True)
    try:
        for i in range(3):
            log.record("agency", "A", "dvcgw", "PUT /x", 202, f"req{i}".encode(), b"ok")
        deadline = time.monotonic() + 10
        while not stamped:
            assert time.monotonic() < deadline, "no seal within 10 s although seal_records were unsealed"
            await asyncio.sleep(0.01)
        assert sealer.covered_seq == 3 and not sealer.halt_reason()
    finally:
        await sealer.close()
        await log.close()
    conn = store.open_reader(tmp_path / "audit.sqlite3")
    seals = store.seals(conn)
    conn.close()
    assert [s.head_seq for s in seals] == [3] and seals[0].stamp_id == 1
