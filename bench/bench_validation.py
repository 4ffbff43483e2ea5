"""Validation micro-benchmark: µs per :func:`gateway.dossier.validate_snapshot` of the realistic
sample dossier (``tests/samples.py:sample_dossier()``) and per :func:`validate_progress` of a
10-item progress list, beside a baseline measured in the same run: ``json.loads`` of the same
body, the parse cost a bare aiohttp handler pays for it. Both validators are the one form in
``gateway/dossier/validate.py`` (per-field checkers built once from the §6 tables).

Method: the body is serialised once (as an agency would send it) and parsed once; the parsed
object is what the validators get, as in the handler. Each figure is ``timeit`` over
``NUMBER`` calls, repeated ``REPEAT`` times; the best repeat is the figure (the least disturbed
by other processes: see the ``timeit`` documentation), the median is printed beside it.

Target: validate_snapshot <= 80 µs. Prints PASS/FAIL and exits 1 on FAIL.
Run: ``.venv/bin/python -m bench.bench_validation`` (no arguments, a few seconds).
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import timeit
from collections.abc import Callable

from gateway.dossier import validate_progress, validate_snapshot
from tests.samples import DEFAULT_MAHOSO, sample_dossier, sample_progress

TARGET_US = 80.0
NUMBER = 2000
REPEAT = 7


def _micros(call: Callable[[], object]) -> tuple[float, float]:
    """Best and median µs per call of ``call`` over REPEAT runs of NUMBER calls."""
    call()  # warm up (first-call costs such as lazy imports are not the steady state)
    runs = [t / NUMBER * 1e6 for t in timeit.repeat(call, number=NUMBER, repeat=REPEAT)]
    return min(runs), statistics.median(runs)


def main() -> int:
    """Measure, print the table, return the exit status (0 PASS, 1 FAIL)."""
    snapshot_body = json.dumps(sample_dossier(DEFAULT_MAHOSO), ensure_ascii=False).encode()
    progress_body = json.dumps(sample_progress(DEFAULT_MAHOSO, 10), ensure_ascii=False).encode()
    snapshot = json.loads(snapshot_body)
    progress = json.loads(progress_body)
    validate_snapshot(DEFAULT_MAHOSO, snapshot)  # the sample must be accepted: this raises if not
    assert len(validate_progress(DEFAULT_MAHOSO, progress)) == 10

    rows = [
        ("json.loads, snapshot body (baseline)", len(snapshot_body),
         _micros(lambda: json.loads(snapshot_body))),
        ("validate_snapshot, sample dossier", len(snapshot_body),
         _micros(lambda: validate_snapshot(DEFAULT_MAHOSO, snapshot))),
        ("json.loads, 10-item progress body (baseline)", len(progress_body),
         _micros(lambda: json.loads(progress_body))),
        ("validate_progress, 10 items", len(progress_body),
         _micros(lambda: validate_progress(DEFAULT_MAHOSO, progress))),
    ]
    print(f"Python {platform.python_version()} on {platform.machine()}, "
          f"best and median of {REPEAT} x {NUMBER} calls")
    print(f"{'what':<46} {'bytes':>6} {'best µs':>9} {'median µs':>10}")
    for what, size, (best, median) in rows:
        print(f"{what:<46} {size:>6} {best:>9.1f} {median:>10.1f}")
    loads_us, snapshot_us = rows[0][2][0], rows[1][2][0]
    print(f"validate_snapshot = {snapshot_us / loads_us:.2f} x json.loads of the same body")
    ok = snapshot_us <= TARGET_US
    print(f"{'PASS' if ok else 'FAIL'}: validate_snapshot {snapshot_us:.1f} µs "
          f"(target <= {TARGET_US:.0f} µs)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
