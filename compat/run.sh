#!/usr/bin/env bash
# Runs the compat suite: real Kafka clients against a real samsa process.
#
#   compat/run.sh [pytest args...]             against samsa ($SAMSA_BIN, default target/debug/samsa)
#   compat/run.sh --against-kafka [pytest args] against Apache Kafka (compat/reference/kafka_ref.py)
#   COMPAT_BOOTSTRAP=host:port compat/run.sh    against a broker already running there
#
# Exits non-zero on any failure. Run compat/install.sh first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"

ref_pid=""
cleanup() {
  if [ -n "$ref_pid" ] && kill -0 "$ref_pid" 2>/dev/null; then
    kill -TERM "$ref_pid" 2>/dev/null || true
    wait "$ref_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

if [ "${1:-}" = "--against-kafka" ]; then
  shift
  ready="$(mktemp -u /tmp/compat-kafka-ref.XXXXXX)"
  "$PY" compat/reference/kafka_ref.py run --ready-file "$ready" &
  ref_pid=$!
  for _ in $(seq 1 1800); do
    [ -s "$ready" ] && break
    kill -0 "$ref_pid" 2>/dev/null || { echo "compat/run.sh: Apache Kafka failed to start" >&2; exit 1; }
    sleep 0.1
  done
  [ -s "$ready" ] || { echo "compat/run.sh: Apache Kafka not ready after 180s" >&2; exit 1; }
  export COMPAT_BOOTSTRAP="$(cat "$ready")"
fi

if [ -z "${COMPAT_BOOTSTRAP:-}" ]; then
  SAMSA_BIN="${SAMSA_BIN:-target/debug/samsa}"
  case "$SAMSA_BIN" in /*) ;; *) SAMSA_BIN="$ROOT/$SAMSA_BIN" ;; esac
  [ -x "$SAMSA_BIN" ] || { echo "compat/run.sh: no broker binary at $SAMSA_BIN (cargo build --bin samsa, or set SAMSA_BIN)" >&2; exit 1; }
  export SAMSA_BIN
  echo "compat/run.sh: samsa at $SAMSA_BIN"
else
  echo "compat/run.sh: external broker at $COMPAT_BOOTSTRAP"
fi

set +e
"$PY" -m pytest -c compat/pytest.ini --rootdir compat compat/tests -v -p no:cacheprovider "$@"
rc=$?
set -e
exit "$rc"
