"""``KpiService``: records the facts the delivery engine reports, keeps them in the indicators'
own file, and computes the 766 figures every ``[kpi] refresh_interval``.

* :meth:`KpiService.observe` is the sync engine's observer: it buffers a row per event a
  recorded outcome mentions (:func:`monitoring.kpi.facts.outcome_facts`: its times and its
  payload's JSON text, no payload read on the event loop). Its time is counted by
  ``dvcgw_kpi_facts_seconds_total``.
* Every ``flush_interval`` (and at once when the buffer passes :data:`FLUSH_ROWS`) the buffer is
  written in one transaction by a worker thread (:func:`monitoring.kpi.store.write`): SQLite
  reads the figures from the JSON texts and folds the events into their dossiers' rows. A crash of
  the process loses what was buffered since the last write: at most one ``flush_interval`` of
  facts. Those dossiers' events are re-recorded only if the engine handles them again (see
  docs/kpi.md); nothing in the queue depends on this file.
* Every ``refresh_interval`` the same thread computes the current month, quarter and year for
  every configured unit and the province (``all``), and renders the ``dvcgw_kpi766_*`` families
  to bytes, which ``GET /metrics`` appends (:meth:`metrics_text`).

All file work runs on one worker thread, one connection, in order: a write never races a
computation, and SQLite does most of it without the GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from prometheus_client import Counter

from config.schema import KpiSettings, Settings
from monitoring.kpi import store
from monitoring.kpi.exposition import render
from monitoring.kpi.facts import Facts, outcome_facts
from monitoring.kpi.indicators import INDICATOR_NAMES, KpiReport, KpiRow, Scoring, unit_rows
from monitoring.kpi.periods import Period, current_periods, make_period, parse_period
from queues.api import Outcome, Work

log = logging.getLogger("dvcgw.kpi")
T = TypeVar("T")

#: A buffer this long is written at once rather than at the next tick.
FLUSH_ROWS = 20_000
#: While the file cannot be written, at most this many rows wait; older ones are dropped (logged).
MAX_BUFFER = 500_000
ALL_UNITS = "all"
OTHER_UNIT = "other"


class Calculator:
    """Everything the computation needs from the settings, and the computation itself (pure but for
    the connection it reads; the ``dvcgw kpi`` command uses it on a read-only connection)."""

    def __init__(self, settings: Settings) -> None:
        k = settings.kpi
        self.offset_s = settings.monitoring.timezone_offset_hours * 3600
        self.rules = store.Rules(float(k.sync_lag_slo), k.open_dossier_cut, k.no_deadline, k.population_db_codes,
                                 self.offset_s)
        self.scoring = Scoring(k.so_hoa_full_at, k.online_share_max_points)
        self.targets = {name: k.targets.for_indicator(name) for name in INDICATOR_NAMES}
        self.units = tuple(sorted({u for a in settings.agencies for u in a.units}))

    def rows(self, conn: sqlite3.Connection, periods: Sequence[Period], now: float) -> list[KpiRow]:
        """For each period in turn, the rows of every configured unit, then ``other`` (dossiers of
        units no agency has, if any), then ``all`` (the province: every dossier); counted by one
        scan of the dossier rows of all the periods (:func:`store.aggregate`)."""
        counted = store.aggregate(conn, self.rules, [(p.start, p.end) for p in periods], now)
        known = set(self.units)
        rows: list[KpiRow] = []
        for period, by_unit in zip(periods, counted, strict=True):
            total, other = store.Counts(), store.Counts()
            for unit, counts in by_unit.items():
                total = store.plus(total, counts)
                if unit not in known:
                    other = store.plus(other, counts)
            for unit in self.units:
                rows += unit_rows(unit, period.kind, period.id, by_unit.get(unit, store.Counts()), self.scoring,
                                  self.targets)
            if other.received:
                rows += unit_rows(OTHER_UNIT, period.kind, period.id, other, self.scoring, self.targets)
            rows += unit_rows(ALL_UNITS, period.kind, period.id, total, self.scoring, self.targets)
        return rows

    def current(self, conn: sqlite3.Connection, now: float) -> KpiReport:
        """The current month, quarter and year (one scan of the year's dossier rows)."""
        started = time.perf_counter()
        periods = current_periods(now, self.offset_s)
        rows = self.rows(conn, list(periods.values()), now)
        return KpiReport({k: p.id for k, p in periods.items()}, now, rows, time.perf_counter() - started)

    def one(self, conn: sqlite3.Connection, period: Period, unit: str | None, now: float) -> KpiReport:
        started = time.perf_counter()
        rows = [r for r in self.rows(conn, [period], now) if unit is None or r.unit == unit]
        return KpiReport({period.kind: period.id}, now, rows, time.perf_counter() - started)


class KpiService:
    """The live 766 indicators of one gateway instance (docs/kpi.md)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time,
                 facts_seconds: Counter | None = None) -> None:
        self.settings: KpiSettings = settings.kpi
        self.calc = Calculator(settings)
        self.path: Path = settings.kpi.file(settings.storage.path)
        self._clock = clock
        self._buffer: list[Facts] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dvcgw-kpi")
        self._conn: sqlite3.Connection | None = None
        self._latest: KpiReport | None = None
        self._text = b""
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._pruned_year: int | None = None
        self.dropped_rows = 0
        #: the event loop's time in :meth:`observe` since the last write, added to ``facts_seconds``
        #: (``dvcgw_kpi_facts_seconds_total``) at each write, not at each call (a counter's lock)
        self._facts_seconds = facts_seconds
        self._observing = 0.0

    # ------------------------------------------------------------------ the contract

    def latest(self) -> KpiReport | None:
        """The last periodic computation (current month, quarter, year; every unit and ``all``)."""
        return self._latest

    async def report(self, period_id: str, unit: str | None = None) -> KpiReport:
        """Any period (``2025-11`` | ``2025-Q4`` | ``2025``), every unit or one (``all`` = the
        province), computed now from everything recorded so far. Raises
        :class:`~monitoring.kpi.periods.PeriodError` for a malformed period."""
        period = parse_period(period_id, self.calc.offset_s)
        await self.flush()
        conn = self._connection()
        return await self._in_thread(lambda: self.calc.one(conn, period, unit, self._clock()))

    @property
    def buffered(self) -> int:
        """Rows recorded and not yet written."""
        return len(self._buffer)

    def metrics_text(self) -> bytes:
        """The ``dvcgw_kpi766_*`` families of the last computation (text format 0.0.4), or b""."""
        return self._text

    # ------------------------------------------------------------------ the engine's observer

    def observe(self, work: Work, recorded: Sequence[tuple[Outcome, float]]) -> None:
        """The sync engine's observer: called after each delivery round with what ``queue.record``
        recorded for one dossier of it. Never raises (a fault here must not touch delivery): a
        payload orjson cannot write is logged and skipped. Its time goes to ``dvcgw_kpi_facts_seconds_total``: the
        indicators' one cost on the event loop for every event (docs/kpi.md, Cost)."""
        started = time.perf_counter()
        try:
            rows = outcome_facts(work, recorded)
        except Exception:  # a bug in fact extraction must not become a delivery retry
            log.exception("766 indicators: could not read the facts of a recorded outcome")
            return
        if rows:
            self._buffer += rows
            if len(self._buffer) >= FLUSH_ROWS:
                self._wake.set()
        self._observing += time.perf_counter() - started

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open (or create) the file and start the periodic writes and computations."""
        self._conn = await self._in_thread(lambda: store.open_store(self.path))
        self._task = asyncio.create_task(self._run(), name="dvcgw-kpi")

    async def close(self) -> None:
        """Stop the periodic work, write what is buffered, close the file."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._conn is not None:
            await self.flush()
            conn, self._conn = self._conn, None
            await self._in_thread(lambda: store.close(conn))
        self._executor.shutdown(wait=True)

    async def flush(self) -> None:
        """Write the buffered rows now (one transaction)."""
        if self._facts_seconds is not None and self._observing:
            self._facts_seconds.inc(self._observing)
            self._observing = 0.0
        rows, self._buffer = self._buffer, []
        if not rows or self._conn is None:
            self._buffer = rows + self._buffer
            return
        conn = self._conn
        try:
            await self._in_thread(lambda: store.write(conn, rows, self.calc.rules))
        except sqlite3.Error as exc:
            self._keep(rows)
            log.error("766 indicators: cannot write %s: %s; %d rows wait", self.path, exc, len(self._buffer))

    async def refresh(self) -> KpiReport:
        """Write what is buffered, compute the current periods, render them for ``/metrics``."""
        await self.flush()
        conn, now = self._connection(), self._clock()
        report, text = await self._in_thread(lambda: self._compute(conn, now))
        self._latest, self._text = report, text
        await self._prune(now)
        return report

    # ------------------------------------------------------------------ inside

    def _compute(self, conn: sqlite3.Connection, now: float) -> tuple[KpiReport, bytes]:
        report = self.calc.current(conn, now)
        return report, render(report, self.calc.targets)

    async def _prune(self, now: float) -> None:
        """Once a year (and at start): forget dossiers received before the previous year."""
        year = int(current_periods(now, self.calc.offset_s)["year"].id)
        if self._pruned_year == year:
            return
        keep = make_period("year", year - 1, 0, self.calc.offset_s)
        conn = self._connection()
        n = await self._in_thread(lambda: store.prune(conn, keep.start))
        self._pruned_year = year
        if n:
            log.info("766 indicators: forgot %d dossiers received before %d", n, year - 1)

    async def _run(self) -> None:
        """Compute at once (the figures of what the file holds), then write every tick and
        compute every ``refresh_interval`` (monotonic time: the injected clock only dates them)."""
        loop = asyncio.get_running_loop()
        next_refresh = loop.time()
        while True:
            try:
                if loop.time() >= next_refresh:
                    next_refresh = loop.time() + float(self.settings.refresh_interval)
                    await self.refresh()
                else:
                    await self.flush()
            except Exception:  # the next tick tries again; delivery is never affected
                log.exception("766 indicators: periodic computation failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), float(self.settings.flush_interval))
            self._wake.clear()

    def _keep(self, rows: Iterable[Facts]) -> None:
        """Put rows that could not be written back in front, dropping the oldest past MAX_BUFFER."""
        self._buffer = [*rows, *self._buffer]
        extra = len(self._buffer) - MAX_BUFFER
        if extra > 0:
            del self._buffer[:extra]
            self.dropped_rows += extra

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the KPI service is not started")
        return self._conn

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
