#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks need. Idempotent; fails loudly.
set -euo pipefail
PKGS=(softhsm2 opensc poppler-utils openssl fonts-dejavu-core wrk prometheus chromium curl)
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
