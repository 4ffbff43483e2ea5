"""The payment platform's exchanges in the message log: the INIT call the gateway makes (through the
payment session's trace hook) and the platform's CONFIRM callback (through the middleware)."""

from __future__ import annotations

import time
from pathlib import Path

from audit import store
from audit.chain import sha256_hex
from gateway.message_log import AUDIT
from tests.audit.conftest import SEAL_ALIAS, signing_section
from tests.fakes.portal import FakeClock
from tests.gateway.test_payments import PARTNER, SECRET, paid_setup, platform, sandbox_pay
from tests.harness import Sandbox, run_gateway, settings_for
from tests.signing.env import World


async def test_payment_init_and_confirm_callback_are_recorded(world: World, sandbox: Sandbox, tmp_path: Path) -> None:
    """INIT is a counterpart record (server payment); the CONFIRM callback a callback record from the
    payment platform, its request hash the callback body's, its answer the acknowledgement's."""
    payment = {"enabled": True, "init_url": f"{sandbox.url}/payment/init",
               "query_url": f"{sandbox.url}/payment/query", "bill_url": f"{sandbox.url}/payment/bill",
               "partner_code": PARTNER, "secret": SECRET, "ip": "203.0.113.10", "timeout": "5s"}
    settings = settings_for(tmp_path, sandbox.url, payment=payment, signing=signing_section(world),
                            audit={"bodies": "hash", "seal_key": SEAL_ALIAS})
    async with run_gateway(settings, FakeClock(start=time.time())) as gw:
        platform(sandbox).secret = SECRET
        platform(sandbox).callback_url = str(gw.client.make_url("/v1/payments/confirm"))
        ref, _ = await paid_setup(gw, sandbox)
        sent = await sandbox_pay(sandbox, ref)
        assert sent["ack"]["MaLoi"] == "00"
        await gw.app[AUDIT].flush()
    conn = store.open_reader(settings.audit.file(settings.storage.path))
    rows = list(store.records(conn))
    conn.close()
    init = [r for r in rows if r.kind == "counterpart" and r.server == "payment"]
    assert init and init[0].status == 200 and "INIT" in init[0].operation
    callbacks = [r for r in rows if r.kind == "callback"]
    assert len(callbacks) == 1
    cb = callbacks[0]
    assert (cb.client, cb.server, cb.operation, cb.status) == ("payment_platform", "dvcgw",
                                                               "POST /v1/payments/confirm", 200)
    assert cb.request_sha256 != sha256_hex(b"") and cb.response_sha256 != sha256_hex(b"")
    assert any(r.kind == "agency" and r.operation == "POST /v1/payments" for r in rows)
