"""E-receipts as durable jobs: queues.jobs runs the receipt handler against the fake VNPT tenant
(tests/fakes/vnpt.py); assertions read the fake's record and the jobs' states."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.vnpt_receipts import FeeKind, FeeLine, Payer, PaymentMethod, ReceiptsClient, receipt_requests
from adapters.vnpt_receipts.envelope import Outcome
from adapters.vnpt_receipts.jobs import cancel_payload, issue_payloads, receipt_handler, request_from_json
from config.schema import RetrySettings
from queues.jobs import RECEIPT, Job, Jobs
from tests.fakes.portal import FakeClock
from tests.fakes.vnpt import FakeVnpt, receipts_settings, running_vnpt

pytestmark = pytest.mark.usefixtures("loopback_only")

DOSSIER = "000.00.01.H56-250101-0001"
RETRY = RetrySettings(delays=(5.0,), give_up_after=3600.0, jitter=0.0)  # type: ignore[arg-type]


class World:
    def __init__(self, fake: FakeVnpt, jobs: Jobs, clock: FakeClock) -> None:
        self.fake, self.jobs, self.clock = fake, jobs, clock
        self.done: list[tuple[str, str, Outcome]] = []

    async def on_done(self, op: str, job: Job, outcome: Outcome) -> None:
        self.done.append((op, job.key, outcome))

    async def pay(self) -> list[str]:
        requests = receipt_requests(DOSSIER, "1.003560.000.00.00.H56", Payer("Nguyễn Văn Mẫu", "Thái Nguyên"),
                                    [FeeLine(FeeKind.PHI, "Phí thẩm định", 50000, "PHI01"),
                                     FeeLine(FeeKind.LEPHI, "Lệ phí cấp phép", 30000, "LP01")], PaymentMethod.ONLINE)
        for fkey, payload in issue_payloads(requests):
            await self.jobs.put(RECEIPT, fkey, payload)
        return [r.fkey for r in requests]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeClock(start=1_750_000_000.0)
    async with running_vnpt() as fake:
        client = await ReceiptsClient.open(receipts_settings(fake))
        jobs = Jobs(tmp_path / "jobs.sqlite3", RETRY, clock=clock)
        w = World(fake, jobs, clock)
        jobs.handle(RECEIPT, receipt_handler(client, w.on_done))
        await jobs.start()
        try:
            yield w
        finally:
            await jobs.close()
            await client.aclose()


async def test_a_payment_with_a_fee_and_a_charge_issues_two_receipts(world: World) -> None:
    """One job per fee kind, each under its §8 fkey, with its own lines; both reported done."""
    fkeys = await world.pay()
    await world.jobs.drain()
    assert fkeys == [f"{DOSSIER}-PHI-1", f"{DOSSIER}-LEPHI-1"]
    assert set(world.fake.receipts) == set(fkeys)
    issued = world.fake.calls_of("ImportAndPublishInv")
    lines = sorted([p["ProdName"] for p in c.invoices[0]["Products"]] for c in issued)
    assert lines == [["Lệ phí cấp phép"], ["Phí thẩm định"]]  # the two keys run side by side
    assert sorted((op, k, o.verdict.value) for op, k, o in world.done) == [("issue", fkeys[1], "ok"),
                                                                            ("issue", fkeys[0], "ok")]
    assert await world.jobs.counts() == {(RECEIPT, "done"): 2}


async def test_a_transient_err_is_retried_and_a_duplicate_is_done(world: World) -> None:
    """ERR:5 → retried with the same fkey; when VNPT already holds it (ERR:13) the job is done."""
    world.fake.inject("ImportAndPublishInv", "ERR:5", "ERR:13")
    await world.pay()
    await world.jobs.drain()
    assert await world.jobs.counts() == {(RECEIPT, "pending"): 1, (RECEIPT, "done"): 1}
    world.clock.advance(5.0)
    await world.jobs.drain()
    assert await world.jobs.counts() == {(RECEIPT, "done"): 2}
    assert sorted(o.verdict.value for _, _, o in world.done) == ["done", "ok"]


async def test_a_permanent_err_is_a_dead_letter_with_its_code_and_meaning(world: World) -> None:
    world.fake.inject("ImportAndPublishInv", "ERR:3")
    await world.pay()
    await world.jobs.drain()
    (dead,), _ = await world.jobs.dead_letters(None, 10)
    assert dead.code == "ERR:3" and "ImportAndPublishInv" in dead.message
    assert "Nguyễn" not in dead.message


async def test_a_refund_cancels_after_the_issue(world: World) -> None:
    """The cancel job shares the fkey, so it runs after the issue; VNPT ends with it cancelled."""
    fkeys = await world.pay()
    await world.jobs.put(RECEIPT, fkeys[0], cancel_payload(fkeys[0]))
    await world.jobs.drain()
    assert world.fake.receipts[fkeys[0]].status == "CANCELLED"
    assert world.fake.receipts[fkeys[1]].status == "PAID"
    assert [op for op, _, _ in world.done].count("cancel") == 1


def test_a_payload_that_is_not_a_request_names_the_problem() -> None:
    from adapters.vnpt_receipts.errors import ReceiptInvalid

    with pytest.raises(ReceiptInvalid) as err:
        request_from_json({"fkey": "X-PHI-1"})
    assert err.value.field == "payload"
