"""Register books: gap-free, duplicate-free numbering under concurrency and across a restart."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from config.schema import FeeScheduleSettings
from signing.certification.books import Books, NewEntry, book_name, fee_on, fee_vnd
from signing.certification.errors import BadState, BookConflict

NOW = datetime(2025, 3, 15, 3, 0, tzinfo=UTC)  # 10:00 in Hà Nội


def new(authority: str = "000.00.01.H01", pages: int = 3) -> NewEntry:
    return NewEntry(authority, "UBND xã A", "Nguyễn Văn A", "Công chức Tư pháp – Hộ tịch", "Trần Thị B",
                    "001099000001", "Giấy khai sinh", pages, fee_vnd(pages))


@pytest.mark.parametrize(("pages", "fee"), [(0, 2000), (1, 2000), (2, 4000), (3, 5000), (10, 12000),
                                            (198, 200_000), (250, 200_000), (300, 200_000)])
def test_fee_rule(pages: int, fee: int) -> None:
    """Spec §5: 2,000 VND for pages 1–2, 1,000 after, capped at 200,000 per copy (0 pages count as 1)."""
    assert fee_vnd(pages) == fee


def test_book_name_has_the_spec_form() -> None:
    """Book names look like 01/2025-SCTĐT/BS."""
    assert book_name(1, 2025) == "01/2025-SCTĐT/BS"


async def test_fifty_concurrent_reservations_are_one_to_fifty(tmp_path: Path) -> None:
    """50 reservations at once, through two connections to the same file, get 1..50 exactly."""
    a, b = Books(tmp_path / "c.sqlite3"), Books(tmp_path / "c.sqlite3")
    try:
        got = await asyncio.gather(*(asyncio.to_thread((a if i % 2 else b).reserve, new(), NOW)
                                     for i in range(50)))
        numbers = sorted(e.cert_number for e in got)
        assert numbers == list(range(1, 51))
        assert len({e.book_id for e in got}) == 1
        assert [e.cert_number for e in a.entries(got[0].book_id)] == list(range(1, 51))
        assert all(e.status == "reserved" for e in got)
    finally:
        a.close()
        b.close()


def test_void_keeps_the_number_and_the_next_takes_the_next(tmp_path: Path) -> None:
    """A failure after reservation voids the entry with its reason; the next certification takes n+1."""
    books = Books(tmp_path / "c.sqlite3")
    first = books.reserve(new(), NOW)
    voided = books.void(first.book_id, first.cert_number, "every TSA failed")
    assert (voided.status, voided.void_reason) == ("void", "every TSA failed")
    second = books.reserve(new(), NOW)
    assert second.cert_number == first.cert_number + 1
    with pytest.raises(BadState):
        books.finalize(first.book_id, first.cert_number, "0" * 64, [])
    books.close()


def test_restart_keeps_numbering_and_voids_interrupted(tmp_path: Path) -> None:
    """After a crash mid-signing, the reservation is voided at start-up and numbering continues."""
    books = Books(tmp_path / "c.sqlite3")
    for _ in range(3):
        e = books.reserve(new(), NOW)
    books.finalize(e.book_id, 3, "a" * 64, [{"serial": "1"}])
    books.reserve(new(), NOW)  # number 4 is cut off by the "crash"
    books.close()
    books = Books(tmp_path / "c.sqlite3")
    assert books.void_interrupted() == 3  # 1, 2 and 4 were still reserved
    assert books.entry(e.book_id, 4).status == "void"
    assert books.entry(e.book_id, 3).status == "valid"
    assert books.reserve(new(), NOW).cert_number == 5
    books.close()


def test_one_open_book_per_authority_and_yearly_rollover(tmp_path: Path) -> None:
    """One open book per authority; a new year or a close opens the next book, restarting at 1."""
    books = Books(tmp_path / "c.sqlite3")
    e1 = books.reserve(new(), NOW)
    assert e1.book_name == "01/2025-SCTĐT/BS"
    assert re.fullmatch(r"[A-Za-z0-9_-]+", e1.book_id)
    with pytest.raises(BookConflict):
        books.open_book("000.00.01.H01", NOW)
    books.close_book("000.00.01.H01", NOW)
    e2 = books.reserve(new(), NOW)
    assert (e2.book_name, e2.cert_number) == ("02/2025-SCTĐT/BS", 1)
    e3 = books.reserve(new(), datetime(2025, 12, 31, 17, 30, tzinfo=UTC))  # 00:30 on 1 Jan 2026 in VN
    assert (e3.book_name, e3.cert_number) == ("01/2026-SCTĐT/BS", 1)
    other = books.reserve(new("000.00.02.H01"), NOW)
    assert (other.book_name, other.cert_number) == ("01/2025-SCTĐT/BS", 1)
    opened = [b for b in books.books("000.00.01.H01") if b.closed_at is None]
    assert [b.name for b in opened] == ["01/2026-SCTĐT/BS"]
    with pytest.raises(BookConflict):
        books.close_book("nobody", NOW)
    books.close()


def test_revoke_only_a_valid_entry_and_public_part_hides_requester(tmp_path: Path) -> None:
    """valid → revoked with date and reason; the public part has no requester data."""
    books = Books(tmp_path / "c.sqlite3")
    e = books.reserve(new(), NOW)
    with pytest.raises(BadState):
        books.revoke(e.book_id, 1, "wrong", "op", NOW)
    books.finalize(e.book_id, 1, "b" * 64, [])
    r = books.revoke(e.book_id, 1, "bản chính giả", "operator", NOW)
    assert (r.status, r.revocation_reason, r.revoked_at) == ("revoked", "bản chính giả", "2025-03-15T10:00:00+07:00")
    pub = r.public()
    assert "requester_name" not in pub and "requester_id_no" not in pub
    assert "Trần Thị B" not in repr(r) and "Trần Thị B" not in str(pub)
    books.close()


def test_a_wait_for_a_remote_signature_survives_a_restart(tmp_path: Path) -> None:
    """A reserved entry waiting for the certifier's remote signature is not voided at start-up (the
    person may confirm after the restart); a plain reserved one is. Leaving reserved ends the wait."""
    books = Books(tmp_path / "c.sqlite3")
    waiting, cut = books.reserve(new(), NOW), books.reserve(new(), NOW)
    books.wait_remote(waiting.book_id, waiting.cert_number, "job-1", "STP")
    books.close()
    books = Books(tmp_path / "c.sqlite3")
    try:
        assert books.void_interrupted() == 1
        assert books.entry(cut.book_id, cut.cert_number).status == "void"
        assert books.entry(waiting.book_id, waiting.cert_number).status == "reserved"
        assert [(w.cert_number, w.job_id, w.agency) for w in books.remote_waits()] == [(1, "job-1", "STP")]
        books.void(waiting.book_id, waiting.cert_number, "the certifier rejected")
        assert books.remote_waits() == []
        with pytest.raises(BadState):
            books.wait_remote(cut.book_id, cut.cert_number, "job-2", "STP")
    finally:
        books.close()


def test_dated_fee_schedules() -> None:
    """The schedule with the latest effective_from on or before the day applies (its rates and cap);
    before every configured one, the spec's table."""
    schedules = (FeeScheduleSettings("2027-01-01", first_pages=1, first_rate=5000, later_rate=2000, cap=50_000),
                 FeeScheduleSettings("2026-07-01", first_rate=3000, later_rate=1500, cap=300_000))
    assert fee_on(date(2026, 6, 30), 3, schedules) == 5000  # spec §5 table
    assert fee_on(date(2026, 7, 1), 3, schedules) == 7500  # 2 × 3,000 + 1,500
    assert fee_on(date(2026, 12, 31), 250, schedules) == 300_000  # that schedule's cap
    assert fee_on(date(2027, 1, 1), 3, schedules) == 9000  # 5,000 + 2 × 2,000
    assert fee_on(date(2030, 1, 1), 100, schedules) == 50_000
    assert fee_on(date(2030, 1, 1), 3) == 5000  # none configured


def test_close_waits_for_a_call_running_in_another_thread(tmp_path: Path) -> None:
    """The remote-waits loop reads the register through ``asyncio.to_thread``; a task cancelled at
    shutdown leaves that thread running, and closing the connection under a running statement
    crashed the process. close() now waits: readers running while it closes either finish or get
    sqlite3.ProgrammingError ("closed database"), never anything else, and the process lives on."""
    import sqlite3
    import threading
    import time

    books = Books(tmp_path / "c.sqlite3")
    started = threading.Barrier(5)
    errors: list[BaseException] = []
    calls = [0] * 4

    def reader(i: int) -> None:
        started.wait()
        while True:
            try:
                books.remote_waits()
                calls[i] += 1
            except sqlite3.ProgrammingError:
                return  # the register is closed: the expected end
            except BaseException as exc:  # anything else fails the test
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    started.wait()
    deadline = time.monotonic() + 10
    while sum(calls) < 200 and not errors and time.monotonic() < deadline:  # the readers are in their loops
        threading.Event().wait(0.001)
    books.close()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads) and errors == []
