#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks need. Idempotent; fails loudly.
set -euo pipefail
# `install-system-deps.sh run`: only what `make run` needs (a venv for Debian's python3, curl)
if [ "${1:-}" = run ]; then
  missing=()
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} = 0 ] && exit 0
  echo "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then echo "need root to apt-get install ${missing[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
# docker-compose: its `config` and its Compose Specification schema check deploy/compose*.yml (no engine
# needed); systemd: systemd-analyze verify checks deploy/dvcgw.service (tests/ship)
PKGS=(softhsm2 opensc poppler-utils openssl fonts-dejavu-core wrk prometheus chromium curl docker-compose systemd)
need_java=0; command -v java >/dev/null || need_java=1
command -v mvn >/dev/null || need_java=1
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ "$need_java" = 1 ] && missing+=(default-jdk-headless maven)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then echo "need root to apt-get install ${missing[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || { echo "apt-get update failed" >&2; exit 1; }
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { echo "apt-get install ${missing[*]} failed; Kafka, signing and monitoring tests cannot run" >&2; exit 1; }
fi
java -version >/dev/null 2>&1 || { echo "Java is not usable after install" >&2; exit 1; }
# Debian's prometheus package starts no daemon here (no systemd); the tests start their own
command -v promtool >/dev/null || { echo "promtool is missing after installing prometheus" >&2; exit 1; }
command -v chromium >/dev/null || { echo "chromium is missing after install" >&2; exit 1; }
command -v docker-compose >/dev/null || { echo "docker-compose is missing after install" >&2; exit 1; }
command -v systemd-analyze >/dev/null || { echo "systemd-analyze is missing after install" >&2; exit 1; }
