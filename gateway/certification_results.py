"""A certified copy tied to a dossier reaches DVCQG as one of its result documents (spec §8):
``DanhSachGiayToKetQua`` gains ``{TenGiayTo, DuongDanTepTinKetQua, MaGiayToKetQua}`` with the copy's
public link, in a new snapshot through the accept path, so the core sync carries it.

Durable: issuing a valid copy puts a job (topic ``certification``, key = the dossier); its handler
reads the dossier's newest accepted snapshot and appends it again with the link. Idempotent: a
snapshot that already lists the link is left alone. No snapshot yet, or the dossier moved on while
the link was added: TransientError, retried on the ladder (a dead letter in the end, replayable)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from core.errors import TransientError
from gateway import dossier
from gateway.accept import SnapshotOvertaken
from gateway.appkeys import ACCEPT, JOBS, QUEUE, SETTINGS
from queues.api import EventKind, state_of
from queues.jobs import CERTIFICATION, Job
from signing.certification.books import Entry
from signing.certification.service import CertificationService

log = logging.getLogger("dvcgw.certification")
RESULTS = "DanhSachGiayToKetQua"


def result_document(entry: Entry, url: str) -> dict[str, str]:
    return {"TenGiayTo": f"Bản sao chứng thực: {entry.document_name}"[:500], "DuongDanTepTinKetQua": url,
            "MaGiayToKetQua": f"{entry.book_name}#{entry.cert_number}"}


def wire(app: web.Application, service: CertificationService) -> None:
    """Registers the job handler and the service's ``on_issued`` hook (before the jobs' worker starts)."""
    jobs = app[JOBS]

    async def issued(entry: Entry) -> None:
        payload = {"mahoso": entry.dossier_code, "document": result_document(entry, service.download_url(entry))}
        await jobs.put(CERTIFICATION, entry.dossier_code, payload, dedupe=f"{entry.book_id}/{entry.cert_number}")

    async def handle(job: Job) -> None:
        await add_result(app, str(job.payload["mahoso"]), dict(job.payload["document"]))

    jobs.handle(CERTIFICATION, handle)
    service.on_issued = issued


async def add_result(app: web.Application, mahoso: str, document: dict[str, Any]) -> None:
    """Appends the dossier's newest snapshot with ``document`` among its results; raises TransientError."""
    newest = await app[QUEUE].newest_snapshot(mahoso)
    if newest is None:
        raise TransientError(f"dossier {mahoso} has no snapshot here yet; the copy's link waits for it")
    results = list(newest.payload.get(RESULTS) or [])
    if any(r.get("DuongDanTepTinKetQua") == document["DuongDanTepTinKetQua"] for r in results):
        return
    item = dossier.validate_snapshot(mahoso, {**newest.payload, RESULTS: [*results, document]},
                                     app[SETTINGS].dossiers)
    try:
        await app[ACCEPT].snapshot(mahoso, item, newest.agency,
                                   expect_previous=state_of(EventKind.SNAPSHOT, newest.payload))
    except SnapshotOvertaken as exc:
        raise TransientError(f"the dossier moved on while the copy's link was added: {exc}") from exc
    log.info("dossier %s: certified copy %s added as a result document", mahoso, document["MaGiayToKetQua"])
