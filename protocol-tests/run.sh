#!/usr/bin/env bash
# Runs every wire-level test, the differential ones included: starts one reference Apache
# Kafka (compat/reference/kafka_ref.py) with ACLs enforced (ANONYMOUS a super user) and a
# SASL_PLAINTEXT listener, exports KAFKA_REF_BOOTSTRAP and KAFKA_REF_SASL_BOOTSTRAP, runs
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

python3 "$KAFKA_REF" run --authorizer --ready-file "$READY" >"$LOG" 2>&1 &
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

# The ready file: the PLAINTEXT address, then the SASL_PLAINTEXT one.
KAFKA_REF_BOOTSTRAP="$(sed -n 1p "$READY")"
KAFKA_REF_SASL_BOOTSTRAP="$(sed -n 2p "$READY")"
export KAFKA_REF_BOOTSTRAP KAFKA_REF_SASL_BOOTSTRAP
echo "protocol-tests/run.sh: reference Kafka on $KAFKA_REF_BOOTSTRAP (SASL on $KAFKA_REF_SASL_BOOTSTRAP)"

status=0
(cd "$ROOT" && cargo test -p samsa-protocol-tests "$@") || status=$?
exit "$status"
