"""``Catalogue``: the national procedure catalogue, pulled on a schedule and held in memory.

* :meth:`Catalogue.pull` calls ``LayDanhSachTTHC`` (the list), then ``LayThuTuc`` for each
  procedure whose detail is missing or older than ``[catalogue] interval`` (``details = true``),
  and replaces the stored catalogue in one transaction. A failed list call, or an empty list where
  a catalogue was held, changes nothing: the previous catalogue stays in use. A failed detail call
  keeps that procedure's previous detail (or none).
* The catalogue is read from its file at start-up (it survives restarts), and kept in memory, so
  that the accept path's look-up (:meth:`Catalogue.find`) is one dict access.
* :meth:`Catalogue.start_puller` runs the schedule: a pull at once when the file holds none younger
  than ``interval``, then one every ``interval``; after a failure, another ``retry_interval`` later.

File work runs on one worker thread, one connection, in order.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from adapters.national_portal.client import PortalClient
from config.schema import CatalogueSettings, Settings
from core.errors import PortalError
from core.filework import FileWorker
from gateway.catalogue import store
from gateway.catalogue.store import Procedure
from monitoring.metrics import Metrics

log = logging.getLogger("dvcgw.catalogue")
T = TypeVar("T")

#: LayThuTuc calls in flight during a pull (the portal client caps all calls at max_concurrency too)
DETAIL_CONCURRENCY = 4


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else str(value) if isinstance(value, int) else ""


def base_code(ma_tthc: str) -> str:
    """The national part of a procedure code: ``1.003560`` of ``1.003560.000.00.00.H56`` [INFERRED:
    the longer form names the procedure's implementation in one province, docs/decisions.md]."""
    parts = ma_tthc.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else ma_tthc


def fold(text: str) -> str:
    """Text for searching: case and Vietnamese accents ignored ("Đăng ký" → "dang ky")."""
    bare = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return bare.replace("đ", "d").replace("Đ", "D").casefold()


def linh_vuc(detail: Mapping[str, Any] | None) -> tuple[str, str]:
    """``LINHVUCTHUCHIEN[0]``'s ``MALINHVUC`` and ``TENLINHVUC`` (as OC takes them), or empty."""
    fields = detail.get("LINHVUCTHUCHIEN") if detail else None
    first = fields[0] if isinstance(fields, list) and fields else None
    if not isinstance(first, dict):
        return "", ""
    return _text(first.get("MALINHVUC")), _text(first.get("TENLINHVUC"))


def procedure_of(row: dict[str, Any], detail: dict[str, Any] | None, detail_at: float | None) -> Procedure | None:
    """A catalogue entry from a ``LayDanhSachTTHC`` row and its ``LayThuTuc`` detail; None for a row
    without ``MATTHC``. The row's ``TENTTHC`` wins over the detail's."""
    ma = _text(row.get("MATTHC"))
    if not ma:
        return None
    ten = _text(row.get("TENTTHC")) or _text((detail or {}).get("TENTTHC"))
    ma_lv, ten_lv = linh_vuc(detail)
    return Procedure(ma, ten, ma_lv, ten_lv, row, detail, detail_at)


class Catalogue(FileWorker):
    """The procedure catalogue of one gateway instance (docs/inbound.md)."""

    def __init__(self, settings: Settings, portal: PortalClient | None, metrics: Metrics,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__("dvcgw-catalogue")
        self.settings: CatalogueSettings = settings.catalogue
        self.path: Path = settings.catalogue.file(settings.storage.path)
        self._portal = portal
        self._metrics = metrics
        self._clock = clock
        self._by_code: dict[str, Procedure] = {}
        self._codes: list[str] = []  # sorted
        self._folded: dict[str, str] = {}  # code → folded "code name" for search
        self._pulled_at: float | None = None
        self._pulling = asyncio.Lock()

    # ------------------------------------------------------------------ reading

    def find(self, ma_tthc: str) -> Procedure | None:
        """The procedure ``ma_tthc``, else the one of its national part (:func:`base_code`), else None."""
        found = self._by_code.get(ma_tthc)
        return found if found is not None else self._by_code.get(base_code(ma_tthc))

    @property
    def size(self) -> int:
        return len(self._by_code)

    @property
    def pulled_at(self) -> float | None:
        """When the catalogue held was pulled (Unix time); None: never."""
        return self._pulled_at

    def search(self, query: str = "", ma_linh_vuc: str = "", after: str = "", limit: int = 100) -> list[Procedure]:
        """Up to ``limit`` procedures ordered by MaTTHC, after the code ``after``: those whose code or
        name contains ``query`` (case and accents ignored) and whose field is ``ma_linh_vuc`` (if given)."""
        wanted = fold(query.strip())
        out: list[Procedure] = []
        for code in self._codes:
            if code <= after:
                continue
            p = self._by_code[code]
            if (not ma_linh_vuc or p.ma_linh_vuc == ma_linh_vuc) and (not wanted or wanted in self._folded[code]):
                out.append(p)
                if len(out) >= limit:
                    break
        return out

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open (or create) the file and load the catalogue it holds."""
        self._conn = await self._in_thread(lambda: store.open_store(self.path))
        conn = self._conn
        procedures, pulled_at = await self._in_thread(lambda: store.load(conn))
        self._use(procedures, pulled_at)

    def start_puller(self) -> None:
        """Pull on the schedule until :meth:`close` (the daemon; tests call :meth:`pull`)."""
        self._start_task(self._run(), "dvcgw-catalogue")

    # ------------------------------------------------------------------ pulling

    async def pull(self) -> bool:
        """One pull (list, details, store). True when the catalogue was replaced; False when the
        portal failed or sent an empty list while one was held (the previous one stays)."""
        async with self._pulling:
            try:
                ok = await self._pull()
            except PortalError as exc:
                log.warning("procedure catalogue: pull failed (%s); the previous catalogue stays in use",
                            type(exc).__name__)
                ok = False
            except (sqlite3.Error, OSError) as exc:
                log.error("procedure catalogue: cannot write %s: %s", self.path, exc)
                ok = False
        self._metrics.catalogue_pulls.labels("ok" if ok else "failed").inc()
        return ok

    async def _pull(self) -> bool:
        rows = await self._require_portal().list_procedures()
        if not rows and self._by_code:
            log.warning("procedure catalogue: LayDanhSachTTHC returned no procedure; keeping the %d held",
                        len(self._by_code))
            return False
        now = self._clock()
        entries = [p for p in (procedure_of(r, None, None) for r in rows) if p is not None]
        if self.settings.details:
            entries = await self._with_details(entries, now)
        else:
            entries = [self._keep_detail(p) for p in entries]
        conn = self._connection()
        await self._in_thread(lambda: store.replace_all(conn, entries, now))
        self._use(entries, now)
        log.info("procedure catalogue: %d procedures pulled", len(entries))
        return True

    def _keep_detail(self, entry: Procedure) -> Procedure:
        """``entry`` with the detail held before, if any (``details = false``, or a failed call)."""
        held = self._by_code.get(entry.ma_tthc)
        if held is None or held.detail is None:
            return entry
        return procedure_of(entry.row, held.detail, held.detail_at) or entry

    async def _with_details(self, entries: list[Procedure], now: float) -> list[Procedure]:
        """Each entry with its LayThuTuc detail: the held one while younger than ``interval``, else
        fetched now (at most DETAIL_CONCURRENCY at once); a failed fetch keeps the held one."""
        gate = asyncio.Semaphore(DETAIL_CONCURRENCY)
        failures = 0

        async def one(entry: Procedure) -> Procedure:
            nonlocal failures
            held = self._by_code.get(entry.ma_tthc)
            if held is not None and held.detail_at is not None and now - held.detail_at < self.settings.interval:
                return self._keep_detail(entry)
            async with gate:
                try:
                    detail = await self._require_portal().procedure(entry.ma_tthc)
                except PortalError:
                    failures += 1
                    return self._keep_detail(entry)
            return procedure_of(entry.row, detail, now) or entry

        done = await asyncio.gather(*(one(e) for e in entries))
        if failures:
            log.warning("procedure catalogue: LayThuTuc failed for %d of %d procedures; their previous "
                        "details (if any) are kept", failures, len(entries))
        return list(done)

    def _use(self, procedures: list[Procedure], pulled_at: float | None) -> None:
        self._by_code = {p.ma_tthc: p for p in procedures}
        self._codes = sorted(self._by_code)
        self._folded = {p.ma_tthc: fold(f"{p.ma_tthc} {p.ten_tthc}") for p in procedures}
        self._pulled_at = pulled_at
        self._metrics.catalogue_procedures.set(len(procedures))
        self.publish_age()

    def publish_age(self) -> None:
        """``dvcgw_catalogue_age_seconds`` now (+Inf while never pulled); called at each scrape."""
        age = math.inf if self._pulled_at is None else max(self._clock() - self._pulled_at, 0.0)
        self._metrics.catalogue_age.set(age)

    async def _run(self) -> None:
        """Pull when due, forever: due at ``pulled_at + interval`` (at once if never pulled)."""
        while True:
            due = 0.0 if self._pulled_at is None else self._pulled_at + float(self.settings.interval)
            wait = due - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                ok = await self.pull()
            except Exception:  # a bug must not stop the schedule: logged, tried again later
                log.exception("procedure catalogue: pull crashed")
                ok = False
            if not ok:
                await asyncio.sleep(float(self.settings.retry_interval))

    # ------------------------------------------------------------------ inside

    def _require_portal(self) -> PortalClient:
        if self._portal is None:
            raise RuntimeError("the catalogue has no portal client")
        return self._portal

