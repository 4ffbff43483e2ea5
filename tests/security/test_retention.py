"""Personal data at rest (issue 17, Hygiene): once a dossier's final state has been delivered, its
payloads are pruned after ``[storage] retention``, and the fixture's ID number, name, phone and
e-mail are gone from the SQLite store file, while the status API and the dead letters still answer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.appkeys import PRUNER
from queues.api import ErrorInfo, EventKind, NewEvent, Outcome, OutcomeClass, ReplayResult
from queues.sqlite import MemoryQueue
from tests.fakes.portal import FakeClock
from tests.harness import OPERATOR_KEY, Sandbox, run_gateway, settings_for
from tests.samples import sample_dossier

DAY = 86400.0
MAHOSO = "000.00.01.H55-240315-00777"
#: what the fixture carries that identifies a person (tests/samples.py)
PERSONAL = ("079199000001", "Trần Thị Mẫu", "0912000001", "tran.thi.mau@example.com")


def on_disk(store: Path) -> list[str]:
    """The fixture's personal values found in the store's files (database and WAL), as bytes."""
    blobs = b"".join(p.read_bytes() for p in store.parent.glob(store.name + "*") if p.is_file())
    return [v for v in PERSONAL if v.encode() in blobs]


def final(**fields: str) -> dict[str, object]:
    return sample_dossier(MAHOSO, TrangThaiHoSo="10", NgayKetThucXuLy="20240319100000",
                          NgayTra="20240319100000", **fields)


async def test_payloads_of_a_finished_dossier_leave_the_sqlite_file_after_the_retention(
        sandbox: Sandbox, tmp_path: Path) -> None:
    """A dossier in processing (4) is delivered, its next snapshot (9) dies (rejected), then the
    final one (10) is delivered. Before the retention ends
    nothing is pruned and the ID number is in the file; after it (injected clock), one pass prunes
    the dossier: status and dead letter still answer, the dead letter replays as superseded
    (nothing left to send), and no personal value is in the file, neither after the pass's
    checkpoint (secure_delete) nor after VACUUM."""
    settings = settings_for(tmp_path, sandbox.url)
    store = Path(settings.storage.path)
    clock = FakeClock(start=1_700_000_000.0)
    async with run_gateway(settings, clock) as gw:
        assert (await gw.put(MAHOSO, sample_dossier(MAHOSO))).status == 202
        await gw.drain()
        await sandbox.fault(mode="reject", count=1, message="Dữ liệu không hợp lệ")
        assert (await gw.put(MAHOSO, sample_dossier(MAHOSO, TrangThaiHoSo="9"))).status == 202
        await gw.drain()
        assert (await gw.put(MAHOSO, final())).status == 202
        await gw.drain()
        status = await gw.status(MAHOSO)
        assert (status["delivery"], status["delivered_state"]) == ("delivered", "10"), status
        letters = await (await gw.operator("GET", "/v1/dead-letters")).json()
        assert len(letters["items"]) == 1, letters

        clock.advance(float(settings.storage.retention) - DAY)
        assert await gw.app[PRUNER].run_once() == 0
        assert on_disk(store), "the fixture must be in the file before the retention ends, or this proves nothing"

        clock.advance(2 * DAY)
        assert await gw.app[PRUNER].run_once() == 1
        assert await gw.app[PRUNER].run_once() == 0  # done once
        assert on_disk(store) == []  # secure_delete + the checkpoint: no VACUUM needed

        after = await gw.status(MAHOSO)
        assert after == status
        again = await (await gw.operator("GET", "/v1/dead-letters")).json()
        assert [i["id"] for i in again["items"]] == [i["id"] for i in letters["items"]]
        dl_id = letters["items"][0]["id"]
        r = await gw.client.post(f"/v1/dead-letters/{dl_id}/replay", headers={"X-API-Key": OPERATOR_KEY})
        assert r.status == 202, await r.text()
        assert (await r.json())["result"] == "superseded"
        assert await gw.queue.newest_snapshot(MAHOSO) is None
    with sqlite3.connect(store) as conn:
        conn.execute("VACUUM")
    assert on_disk(store) == []


async def test_a_dossier_not_finished_keeps_its_payload(sandbox: Sandbox, tmp_path: Path) -> None:
    """A delivered dossier in processing (4) is never pruned, however old: the retention starts
    with a final state."""
    settings = settings_for(tmp_path, sandbox.url)
    clock = FakeClock(start=1_700_000_000.0)
    async with run_gateway(settings, clock) as gw:
        assert (await gw.put(MAHOSO, sample_dossier(MAHOSO))).status == 202
        await gw.drain()
        clock.advance(10 * float(settings.storage.retention))
        assert await gw.app[PRUNER].run_once() == 0
        newest = await gw.queue.newest_snapshot(MAHOSO)
        assert newest is not None and newest.payload["SoGiayToChuHoSo"] == PERSONAL[0]
    assert on_disk(Path(settings.storage.path))


async def test_a_pruned_dead_progress_item_replays_as_superseded_and_sends_nothing() -> None:
    """The queue contract on the memory backend (the SQL the SQLite store runs): the final snapshot
    is delivered and a progress item dies; pruning empties both payloads; replaying the letter
    answers superseded and leaves nothing to claim; the status is unchanged."""
    q = MemoryQueue(clock=lambda: 50.0)
    await q.start()
    try:
        await q.enqueue([NewEvent(MAHOSO, EventKind.SNAPSHOT, final(), "A"),
                         NewEvent(MAHOSO, EventKind.PROGRESS, {"MaHoSo": MAHOSO, "NguoiXuLy": "Lê Văn Thử"}, "A")])
        [work] = await q.claim(10, 100.0)
        assert work.snapshot is not None
        error = ErrorInfo(OutcomeClass.REJECTED, "-1", "rejected")
        await q.record(work, Outcome(delivered=(work.snapshot.event_id,), dead=(work.progress[0].event_id,),
                                     error=error), 100.0)
        before = await q.status(MAHOSO)
        [letter] = (await q.dead_letters(None, 10)).items
        assert await q.prune(100.0, 10) == 0  # delivered at 100.0: not before it
        assert await q.prune(101.0, 10) == 1
        assert await q.replay(letter.id, 200.0) is ReplayResult.SUPERSEDED
        assert await q.claim(10, 300.0) == []
        assert await q.status(MAHOSO) == before
    finally:
        await q.close()
