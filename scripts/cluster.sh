#!/usr/bin/env bash
# Starts the three-node cluster of etc/cluster/ on this machine (the `make cluster` target):
# each node in the background with its log in data/cluster/nodeN.log, until Ctrl-C or
# SIGTERM, which stops all three with SIGTERM (each fences itself and flushes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${SAMSA_BIN:-target/release/samsa}"
mkdir -p data/cluster
pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT
for k in 1 2 3; do
  "$BIN" --config "etc/cluster/node$k.toml" 2>"data/cluster/node$k.log" &
  pids+=("$!")
done
for k in 1 2 3; do
  until grep -q "samsa ready" "data/cluster/node$k.log" 2>/dev/null; do
    kill -0 "${pids[$((k - 1))]}" 2>/dev/null || { echo "node $k exited; see data/cluster/node$k.log" >&2; exit 1; }
    sleep 0.2
  done
done
echo "samsa cluster up: bootstrap 127.0.0.1:9192,127.0.0.1:9292,127.0.0.1:9392 (logs in data/cluster/); Ctrl-C stops it"
wait -n "${pids[@]}" || true
echo "a node exited; stopping the others" >&2
