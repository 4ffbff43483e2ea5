"""Every way out of ``reserved`` after a number was taken ends in ``void`` with the reason: here, a
request abandoned while its reservation commits (the signing paths are in test_certify and
test_certifier). Real register file; the reservation is held at the commit by a threading.Event."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from prometheus_client import CollectorRegistry

from config.schema import AgencySettings, CertificationAuthoritySettings, CertificationSettings
from monitoring.metrics import CertificationMetrics, Metrics
from signing.certification.books import Books, Entry, NewEntry
from signing.certification.service import CertificationService, FilePart, parse_metadata
from signing.service import SigningService
from tests.signing.certification.client import metadata
from tests.signing.certification.conftest import HOA_BINH
from tests.signing.certification.scans import scan_pdf

AGENCY = AgencySettings("STP", api_key="k")


class HeldBooks(Books):
    """Books whose reservation waits in its thread, after the commit, until released."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.committed, self.release = threading.Event(), threading.Event()

    def reserve(self, new: NewEntry, now: datetime) -> Entry:
        entry = super().reserve(new, now)
        self.committed.set()
        self.release.wait(10)
        return entry


async def test_request_abandoned_while_numbering_voids_its_entry(tmp_path: Path) -> None:
    """The caller goes away (cancellation) while the number is being committed: the number stays
    used, and the entry is void with the reason at once, not left reserved until the next start.
    The next certification takes the next number."""
    settings = CertificationSettings(authorities=(CertificationAuthoritySettings(
        HOA_BINH, "UBND xã Hòa Bình", key="file-pem", agencies=("STP",)),), path=str(tmp_path / "c.sqlite3"))
    registry = CollectorRegistry()
    service = CertificationService(settings, str(tmp_path / "gw.sqlite3"), cast(SigningService, None),
                                   CertificationMetrics(Metrics(registry)), lambda: datetime.now(UTC))
    service.start()
    assert service.books is not None
    service.books.close()
    books = service.books = HeldBooks(tmp_path / "c.sqlite3")
    meta = parse_metadata(metadata())
    try:
        task = asyncio.create_task(service.certify(AGENCY, meta, [FilePart("application/pdf", scan_pdf(1))]))
        assert await asyncio.to_thread(books.committed.wait, 10)
        task.cancel()
        books.release.set()
        results: list[Any] = await asyncio.gather(task, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        [book] = books.books(HOA_BINH)
        [entry] = books.entries(book.id)
        assert (entry.cert_number, entry.status) == (1, "void") and "cancelled" in entry.void_reason
        assert registry.get_sample_value("dvcgw_certifications_total",
                                         {"authority": HOA_BINH, "outcome": "voided"}) == 1
        books.committed.clear()
        nxt = books.reserve(NewEntry(HOA_BINH, "UBND xã Hòa Bình", "A", "B", "C", "D", "E", 1, 2000),
                            datetime.now(UTC))
        assert nxt.cert_number == 2
    finally:
        books.release.set()
        service.close()
