#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft, combined broker + controller) on 127.0.0.1 for tests.
#
#   scripts/kafka.sh start     resolve the broker jars (cached), format once, start, wait until ready
#   scripts/kafka.sh stop      stop it (TERM, then KILL after a bounded wait)
#   scripts/kafka.sh restart   stop + start on the same ports, keeping the data
#   scripts/kafka.sh status    print the bootstrap address, exit 1 when not running
#   scripts/kafka.sh reset     stop and delete the data
#
# The jars come from Maven Central (org.apache.kafka:kafka_2.13 plus a log4j2 backend, which the
# published POMs do not carry) into .cache/kafka/lib/. State lives in $DVCGW_KAFKA_HOME (default
# var/kafka/); a test can run a second, private broker by pointing DVCGW_KAFKA_HOME elsewhere.
# After `start`, $DVCGW_KAFKA_HOME/env.sh exports DVCGW_TEST_KAFKA_BOOTSTRAP and DVCGW_TEST_KAFKA_PID.
# Every failure is loud (non-zero exit with a message): the Kafka tests must never be skipped silently.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
LOG4J_VERSION="${LOG4J_VERSION:-2.25.5}"   # the log4j2 version kafka-server $KAFKA_VERSION depends on
SLF4J_BINDING="${SLF4J_BINDING:-log4j-slf4j-impl}"  # Kafka 4.4 still uses slf4j-api 1.7.x
CACHE="$ROOT/.cache/kafka"
LIB="$CACHE/lib"
HOME_DIR="${DVCGW_KAFKA_HOME:-$ROOT/var/kafka}"
PIDFILE="$HOME_DIR/kafka.pid"
HEAP="${DVCGW_KAFKA_HEAP:--Xmx512m -Xms128m}"
START_TIMEOUT="${DVCGW_KAFKA_START_TIMEOUT:-90}"

die() { echo "kafka.sh: $*" >&2; exit 1; }

need_tools() {
  if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    bash "$ROOT/scripts/install-system-deps.sh" || true
  fi
  command -v java >/dev/null || die "java is missing (scripts/install-system-deps.sh could not install it)"
  command -v mvn >/dev/null || die "mvn is missing (scripts/install-system-deps.sh could not install it)"
}

write_pom() {
  cat >"$CACHE/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.dvcgw</groupId><artifactId>kafka-broker-for-tests</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>$SLF4J_BINDING</artifactId>
      <version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
}

resolve_jars() {
  local stamp="$CACHE/lib.complete" want="kafka=$KAFKA_VERSION log4j=$LOG4J_VERSION $SLF4J_BINDING"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  need_tools
  mkdir -p "$CACHE"; rm -rf "$LIB"
  write_pom
  echo "kafka.sh: resolving kafka_2.13:$KAFKA_VERSION + log4j $LOG4J_VERSION into $LIB" >&2
  (cd "$CACHE" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIB") \
    || die "Maven could not resolve the Kafka broker jars"
  ls "$LIB"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || die "kafka_2.13 jar missing after resolve"
  echo "$want" >"$stamp"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# SO_REUSEADDR as the JVM sets it: a port whose old connections linger in TIME_WAIT after a stop is
# free for the restarted broker. Without it a restart under load would move to new ports and every
# client would retry the old address forever.
port_free() {
  python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(1)' "$1" 2>/dev/null
}

port_answers() {
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),timeout=1).close()' \
    "$1" 2>/dev/null
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

# Reuse the ports of an earlier run (restart keeps clients' bootstrap address) when still free.
choose_ports() {
  BPORT=""; CPORT=""
  if [ -f "$HOME_DIR/ports" ]; then
    read -r BPORT CPORT <"$HOME_DIR/ports" || true
    if ! port_free "$BPORT" || ! port_free "$CPORT"; then
      echo "kafka.sh: earlier ports $BPORT/$CPORT are taken; clients of the old address will not reconnect" >&2
      BPORT=""; CPORT=""
    fi
  fi
  if [ -z "$BPORT" ]; then BPORT="$(free_port)"; CPORT="$(free_port)"; fi
  while [ "$CPORT" = "$BPORT" ]; do CPORT="$(free_port)"; done
  echo "$BPORT $CPORT" >"$HOME_DIR/ports"
}

write_config() {
  cat >"$HOME_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$BPORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$BPORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$HOME_DIR/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=24
log.segment.bytes=16777216
log.cleaner.dedupe.buffer.size=8388608
# the cleaner looks for work every second (default 15 s): the retention test waits for compaction
log.cleaner.backoff.ms=1000
EOF
  cat >"$HOME_DIR/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $HOME_DIR/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
EOF
}

format_once() {
  [ -f "$HOME_DIR/data/meta.properties" ] && return 0
  local cid
  cid="$(java -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
  [ -n "$cid" ] || die "StorageTool random-uuid failed"
  java -cp "$LIB/*" -Dlog4j2.configurationFile="$HOME_DIR/log4j2.properties" \
    kafka.tools.StorageTool format -t "$cid" -c "$HOME_DIR/server.properties" >"$HOME_DIR/format.out" 2>&1 \
    || { cat "$HOME_DIR/format.out" >&2; die "StorageTool format failed"; }
}

wait_ready() {
  local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
  while [ $SECONDS -lt $deadline ]; do
    kill -0 "$pid" 2>/dev/null || { tail -40 "$HOME_DIR/server.log" "$HOME_DIR/kafka.out" >&2 || true
                                    die "broker exited during start-up"; }
    if port_answers "$BPORT" && grep -q "Kafka Server started" "$HOME_DIR/server.log" 2>/dev/null; then
      return 0
    fi
    sleep 0.3
  done
  tail -40 "$HOME_DIR/server.log" >&2 || true
  die "broker not ready on 127.0.0.1:$BPORT within ${START_TIMEOUT}s"
}

write_env() {
  cat >"$HOME_DIR/env.sh" <<EOF
export DVCGW_TEST_KAFKA_BOOTSTRAP=127.0.0.1:$BPORT
export DVCGW_TEST_KAFKA_PID=$1
EOF
}

start() {
  mkdir -p "$HOME_DIR"
  if running; then
    echo "kafka.sh: already running (pid $(cat "$PIDFILE"))" >&2; return 0
  fi
  resolve_jars
  need_tools
  choose_ports
  write_config
  format_once
  : >"$HOME_DIR/server.log"
  # setsid: the broker gets its own process group, so a Ctrl-C in pytest does not kill it mid-write
  # shellcheck disable=SC2086
  setsid java $HEAP -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HOME_DIR/log4j2.properties" \
    -cp "$LIB/*" kafka.Kafka "$HOME_DIR/server.properties" >"$HOME_DIR/kafka.out" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PIDFILE"
  wait_ready "$pid"
  write_env "$pid"
  echo "kafka.sh: broker up on 127.0.0.1:$BPORT (pid $pid)" >&2
}

stop() {
  running || { rm -f "$PIDFILE"; return 0; }
  local pid; pid="$(cat "$PIDFILE")"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka.sh: broker did not stop in 30s; killing" >&2
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PIDFILE"
}

status() {
  if running; then
    read -r BPORT _ <"$HOME_DIR/ports"; echo "127.0.0.1:$BPORT (pid $(cat "$PIDFILE"))"
  else
    echo "not running"; return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  reset) stop; rm -rf "$HOME_DIR" ;;
  *) echo "usage: $0 start|stop|restart|status|reset" >&2; exit 2 ;;
esac
