"""Issue 13: every time in the HTTP API is ISO 8601, /readyz's portal gate included."""

from __future__ import annotations

import datetime as dt

from tests.harness import Gateway, Sandbox
from tests.samples import sample_dossier


async def test_readyz_reopens_at_is_iso_8601(gateway: Gateway, sandbox: Sandbox) -> None:
    """With the circuit open, ``checks.portal.reopens_at`` is an ISO 8601 UTC time (like
    ``next_attempt_at`` and ``dead_at``), equal to the opening time plus ``cool_down``; closed, it is null."""
    body = await (await gateway.client.get("/readyz")).json()
    assert body["checks"]["portal"]["reopens_at"] is None
    await sandbox.fault(mode="http503", count=3)
    for i in range(3):
        m = f"000.00.01.H55-240315-0000{i}"
        await gateway.put(m, sample_dossier(m))
    await gateway.drain()
    assert gateway.engine.gate.state == "open"
    body = await (await gateway.client.get("/readyz")).json()
    reopens_at = body["checks"]["portal"]["reopens_at"]
    assert isinstance(reopens_at, str), reopens_at
    parsed = dt.datetime.fromisoformat(reopens_at)
    assert parsed.utcoffset() == dt.timedelta(0)
    expected = dt.datetime.fromtimestamp(gateway.clock.now + 30, dt.UTC)
    assert abs((parsed - expected).total_seconds()) <= 1
