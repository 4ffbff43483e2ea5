#!/usr/bin/env bash
# `make bench`: runs every bench/bench_*.py module in turn (.venv/bin/python -m bench.<name>),
# carries on past a failing one, and exits non-zero at the end if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
failed=()
for f in bench/bench_*.py; do
  [ -e "$f" ] || continue
  name=$(basename "$f" .py)
  echo "=== bench.$name"
  if ! .venv/bin/python -m "bench.$name"; then
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "benchmarks failed or missed a target: ${failed[*]}" >&2
  exit 1
fi
