#!/usr/bin/env bash
# Runs every wire-level test, the differential ones included: starts one reference Apache
# Kafka (compat/reference/kafka_ref.py), exports KAFKA_REF_BOOTSTRAP, runs
# `cargo test -p samsa-protocol-tests`, and stops Kafka on every exit path.
# Extra arguments go to cargo test. SAMSA_BIN picks the broker binary (see src/lib.rs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_REF="$ROOT/compat/reference/kafka_ref.py"
READY_TIMEOUT="${KAFKA_REF_TIMEOUT:-180}"

python3 "$KAFKA_REF" ensure

WORK="$(mktemp -d)"
READY="$WORK/bootstrap"
LOG="$WORK/kafka-ref.log"
KAFKA_PID=""

stop_kafka() {
    if [[ -n "$KAFKA_PID" ]] && kill -0 "$KAFKA_PID" 2>/dev/null; then
        kill -TERM "$KAFKA_PID" 2>/dev/null || true
        wait "$KAFKA_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap stop_kafka EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

python3 "$KAFKA_REF" run --ready-file "$READY" >"$LOG" 2>&1 &
KAFKA_PID=$!

deadline=$((SECONDS + READY_TIMEOUT))
until [[ -s "$READY" ]]; do
    if ! kill -0 "$KAFKA_PID" 2>/dev/null; then
        echo "protocol-tests/run.sh: the reference Kafka exited before it was ready:" >&2
        tail -n 60 "$LOG" >&2
        exit 1
    fi
    if (( SECONDS >= deadline )); then
        echo "protocol-tests/run.sh: the reference Kafka not ready after ${READY_TIMEOUT}s:" >&2
        tail -n 60 "$LOG" >&2
        exit 1
    fi
    sleep 0.5
done

KAFKA_REF_BOOTSTRAP="$(cat "$READY")"
export KAFKA_REF_BOOTSTRAP
echo "protocol-tests/run.sh: reference Kafka on $KAFKA_REF_BOOTSTRAP"

status=0
(cd "$ROOT" && cargo test -p samsa-protocol-tests "$@") || status=$?
exit "$status"
