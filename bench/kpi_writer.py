"""The indicators' writer alone (monitoring.kpi.store.write): CPU an event and WAL pages a write.

Builds the year's indicators' file (``bench.bench_kpi.prefill_year``: 200,000 dossiers of 500
units, through the daemon's own write path), then, on a copy, writes batches of new dossiers of
every unit (one snapshot and two progress items each, delivered together as the bench's backlog
is: ``bench.bench_kpi._year_dossier``, a row per event with its payload's JSON text) as the
daemon's writer thread does at peak,
``dossiers`` per write. Per write: the writer's CPU (``time.process_time``, one thread) divided by
its events (three a dossier), and the WAL frames its transaction
wrote (the WAL is checkpointed and truncated between writes so each write is counted alone).
The first ``warmup`` writes fill the page cache, as a running daemon's writes have; they are not
counted. The figures of schema 4 (a row per event, dossiers re-derived at each write), measured
with this script on the same machine before schema 5, are printed beside.

Run: ``.venv/bin/python -m bench.kpi_writer [--year N] [--writes N] [--dossiers N ...]``
(about a minute; no subprocess, no network).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.bench_kpi import Plan, _year_dossier, prefill_year
from gateway import dossier
from monitoring.kpi import store
from monitoring.kpi.facts import Facts
from tests.samples import sample_dossier

#: schema 4 on this machine (this script at 695467b, 2026-12-07): dossiers a write -> (µs an event,
#: pages)
SCHEMA_4 = {1_700: (15.5, 923), 4_250: (14.9, 1_374)}
EVENTS_PER_DOSSIER = 3


def batches(first: int, dossiers: int, writes: int) -> list[list[Facts]]:
    """``writes`` batches of ``dossiers`` new dossiers each (numbered from ``first``)."""
    rng, now = random.Random(766), time.time()
    base = dict(dossier.validate_snapshot("X", sample_dossier("X", DSKetNoiCSDL=[], DanhSachHoSoBoSung=[])).payload)
    out = []
    for w in range(writes):
        batch: list[Facts] = []
        for i in range(first + w * dossiers, first + (w + 1) * dossiers):
            batch += _year_dossier(rng, i, now, base)
        out.append(batch)
    return out


def measure(year: Path, work: Path, first: int, dossiers: int, writes: int, warmup: int) -> tuple[float, float]:
    """Median µs of CPU an event and WAL pages a write over ``writes`` counted writes."""
    shutil.copyfile(year, work)
    rules = store.Rules()
    todo = batches(first, dossiers, warmup + writes)
    conn = store.open_store(work)
    cpu: list[float] = []
    pages: list[int] = []
    try:
        for n, batch in enumerate(todo):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            started = time.process_time()
            store.write(conn, batch, rules)
            spent = time.process_time() - started
            (_, frames, _) = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if n >= warmup:
                cpu.append(spent * 1e6 / (len(batch) * EVENTS_PER_DOSSIER))
                pages.append(frames)
    finally:
        store.close(conn)
    return statistics.median(cpu), statistics.median(pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--year", type=int, default=200_000, help="dossiers in the year's file")
    parser.add_argument("--writes", type=int, default=6, help="writes counted per size")
    parser.add_argument("--warmup", type=int, default=2, help="writes first, not counted")
    parser.add_argument("--dossiers", type=int, nargs="+", default=[1_700, 4_250], help="dossiers a write")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dvcgw-kpi-writer-") as tmp:
        year = Path(tmp) / "year.sqlite3"
        started = time.perf_counter()
        prefill_year(year, Plan(year=args.year))
        print(f"the year: {args.year:,} dossiers, {year.stat().st_size / 1e6:.0f} MB, "
              f"{time.perf_counter() - started:.1f} s (schema {store.SCHEMA_VERSION})")
        for n in args.dossiers:
            us, pages = measure(year, Path(tmp) / "work.sqlite3", args.year, n, args.writes, args.warmup)
            old = SCHEMA_4.get(n)
            before = f"   (schema 4: {old[0]:.1f} µs, {old[1]:,} pages)" if old and args.year == 200_000 else ""
            print(f"{n:6,} dossiers x 3 events a write: {us:5.1f} µs an event of CPU, "
                  f"{pages:6,.0f} WAL pages a write{before}")


if __name__ == "__main__":
    main()
