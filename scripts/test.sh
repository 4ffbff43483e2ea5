#!/usr/bin/env bash
# Starts what the tests need (a real Kafka broker), runs pytest, stops it again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f scripts/kafka.sh ]; then
  bash scripts/kafka.sh start
  trap 'bash scripts/kafka.sh stop' EXIT
  # shellcheck disable=SC1091
  source var/kafka/env.sh
  export DVCGW_TEST_KAFKA_BOOTSTRAP
fi
set +e
.venv/bin/pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
[ "$rc" = 5 ] && { echo "pytest collected no tests" >&2; exit 1; }
exit "$rc"
