#!/usr/bin/env bash
# `make run`: the national-portal sandbox (its own process, on $SANDBOX_PORT, default 9000) and the
# daemon on $DVCGW_CONFIG (default config/example.toml), pointed at that sandbox. Any setting can be
# overridden as DVCGW_SECTION__KEY (e.g. DVCGW_SERVER__LISTEN=127.0.0.1:8181). Logs, pid file:
# $DVCGW_RUN_DIR (default var/). Ctrl-C stops both. A second `make run` while one runs says so and
# exits 1 without touching the running one's files.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
SANDBOX_PORT=${SANDBOX_PORT:-9000}
CONFIG=${DVCGW_CONFIG:-config/example.toml}
RUN_DIR=${DVCGW_RUN_DIR:-var}
PIDFILE="$RUN_DIR/run.pid"
export DVCGW_PORTAL__ADAPTER_URL=${DVCGW_PORTAL__ADAPTER_URL:-http://127.0.0.1:$SANDBOX_PORT}
# the payment platform's side of the same sandbox
export DVCGW_PAYMENT__INIT_URL=${DVCGW_PAYMENT__INIT_URL:-http://127.0.0.1:$SANDBOX_PORT/payment/init}
export DVCGW_PAYMENT__QUERY_URL=${DVCGW_PAYMENT__QUERY_URL:-http://127.0.0.1:$SANDBOX_PORT/payment/query}
export DVCGW_PAYMENT__BILL_URL=${DVCGW_PAYMENT__BILL_URL:-http://127.0.0.1:$SANDBOX_PORT/payment/bill}
mkdir -p "$RUN_DIR"

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "dvc-gateway is already running (make run, pid $(cat "$PIDFILE")); stop it with Ctrl-C in its terminal" >&2
  echo "or 'kill $(cat "$PIDFILE")', or run a second one with another DVCGW_RUN_DIR, listen address and store." >&2
  exit 1
fi

# where the daemon will listen and store, as the settings (file + environment) say
WHERE=$($BIN/dvcgw check-config "$CONFIG" --print) || exit 2
LISTEN=$(sed -n 's/^listen=//p' <<<"$WHERE")
STORE=$(sed -n 's/^store=//p' <<<"$WHERE")
URL="http://$LISTEN"

busy() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
for addr in "$LISTEN" "127.0.0.1:$SANDBOX_PORT"; do
  if busy "$addr"; then
    echo "cannot start: something already listens on $addr (another dvc-gateway, or another program)." >&2
    echo "Set DVCGW_SERVER__LISTEN (the daemon) or SANDBOX_PORT (the sandbox) to a free port." >&2
    exit 1
  fi
done
echo $$ > "$PIDFILE"

# the sandbox's payment side sends its CONFIRM callbacks to this daemon, signed with the secret of
# config/example.toml's [payment] (another config with another secret: set SANDBOX_PAYMENT_SECRET)
$BIN/dvcgw sandbox --port "$SANDBOX_PORT" --payment-callback "$URL/v1/payments/confirm" \
  --payment-secret "${SANDBOX_PAYMENT_SECRET:-sandbox-payment-secret}" >> "$RUN_DIR/sandbox.log" 2>&1 &
SANDBOX_PID=$!
$BIN/dvcgw serve --config "$CONFIG" >> "$RUN_DIR/dvcgw.log" 2>&1 &
DAEMON_PID=$!
cleanup() { kill "$DAEMON_PID" "$SANDBOX_PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -f "$PIDFILE"; }
trap cleanup EXIT INT TERM

for _ in $(seq 1 100); do
  if curl -fsS "$URL/readyz" >/dev/null 2>&1 && \
     curl -fsS -o /dev/null "http://127.0.0.1:$SANDBOX_PORT/_sandbox/record" 2>/dev/null; then
    break
  fi
  kill -0 "$DAEMON_PID" 2>/dev/null || { echo "the daemon did not start; the end of $RUN_DIR/dvcgw.log:"; tail -20 "$RUN_DIR/dvcgw.log"; exit 1; }
  sleep 0.1
done

cat <<EOT

  dvc-gateway is running (config: $CONFIG, store: $STORE, logs: $RUN_DIR/*.log)

  Agency API     $URL/v1/dossiers/{MaHoSo}      (X-API-Key: demo-agency-key)
  Operator API   $URL/v1/dead-letters           (X-API-Key: demo-operator-key)
  Health         $URL/readyz
  Status page    $URL/status                    (open it in a browser; ?lang=en for English)
  Metrics        $URL/metrics
  OpenAPI        $URL/openapi.json
  Sandbox        http://127.0.0.1:${SANDBOX_PORT}   (what it received: /_sandbox/record)
  Payments       $URL/v1/payments               (docs/payments.md; the sandbox pays: /_sandbox/payments)

  Submit the sample dossier:

    curl -sS -X PUT $URL/v1/dossiers/000.00.01.H55-240315-00012 \\
         -H 'X-API-Key: demo-agency-key' -H 'Content-Type: application/json' \\
         --data @docs/examples/dossier.json

  then see it arrive:  curl -sS http://127.0.0.1:${SANDBOX_PORT}/_sandbox/record

  Ctrl-C stops both.
EOT
wait "$DAEMON_PID"
