#!/usr/bin/env bash
# `make run`: the national-portal sandbox on 127.0.0.1:9000 (its own process) and the daemon on
# config/example.toml at 127.0.0.1:8080. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
SANDBOX_PORT=${SANDBOX_PORT:-9000}
CONFIG=${DVCGW_CONFIG:-config/example.toml}
mkdir -p var

$BIN/dvcgw check-config "$CONFIG" >/dev/null
$BIN/dvcgw sandbox --port "$SANDBOX_PORT" > var/sandbox.log 2>&1 &
SANDBOX_PID=$!
$BIN/dvcgw serve --config "$CONFIG" > var/dvcgw.log 2>&1 &
DAEMON_PID=$!
cleanup() { kill "$DAEMON_PID" "$SANDBOX_PID" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

for _ in $(seq 1 100); do
  if curl -fsS http://127.0.0.1:8080/readyz >/dev/null 2>&1 && \
     curl -fsS -o /dev/null http://127.0.0.1:${SANDBOX_PORT}/_sandbox/record 2>/dev/null; then
    break
  fi
  kill -0 "$DAEMON_PID" 2>/dev/null || { echo "the daemon did not start; see var/dvcgw.log:"; tail -20 var/dvcgw.log; exit 1; }
  sleep 0.1
done

cat <<EOT

  dvc-gateway is running (config: $CONFIG, store: var/dvcgw.sqlite3, logs: var/*.log)

  Agency API     http://127.0.0.1:8080/v1/dossiers/{MaHoSo}      (X-API-Key: demo-agency-key)
  Operator API   http://127.0.0.1:8080/v1/dead-letters           (X-API-Key: demo-operator-key)
  Health         http://127.0.0.1:8080/readyz
  Metrics        http://127.0.0.1:8080/metrics
  OpenAPI        http://127.0.0.1:8080/openapi.json
  Sandbox        http://127.0.0.1:${SANDBOX_PORT}   (what it received: /_sandbox/record)

  Submit the sample dossier:

    curl -sS -X PUT http://127.0.0.1:8080/v1/dossiers/000.00.01.H55-240315-00012 \\
         -H 'X-API-Key: demo-agency-key' -H 'Content-Type: application/json' \\
         --data @docs/examples/dossier.json

  then see it arrive:  curl -sS http://127.0.0.1:${SANDBOX_PORT}/_sandbox/record

  Ctrl-C stops both.
EOT
wait "$DAEMON_PID"
