#!/usr/bin/env bash
# Runs the phases of `make test` one after another and ends with how long each took, and,
# if one failed, what it was doing when it failed. CI shows only the tail of a run's output,
# and a crashed test process (a client library's abort, say) fills that tail with its own
# stack, hiding which test it was and whether the run was close to its time limit.
#
#   scripts/test-phases.sh PHASE...      each PHASE is a make target, run in order
set -uo pipefail
cd "$(dirname "$0")/.."

logs="$(mktemp -d /tmp/samsa-test-phases.XXXXXX)"
declare -a done_phases=()
failed=""
start_all=$SECONDS

summary() {
  echo
  echo "== make test: phase durations =="
  for line in "${done_phases[@]}"; do echo "  $line"; done
  echo "  total: $((SECONDS - start_all)) s"
  if [ -n "$failed" ]; then
    local log="$logs/$failed.log"
    echo "== $failed failed; its last test lines and any fatal error =="
    # pytest -v names a test before running it, so the last such line is the one that was
    # running when the process died.
    grep -E '^[A-Za-z0-9_/.-]+\.py::' "$log" | tail -n 3 | cut -c1-200
    grep -E -m 5 -A 3 'Fatal Python error|Assertion|assert.*failed|panicked at|FAILED|ERROR ' "$log" \
      | cut -c1-200 | head -n 30
    # A faulthandler dump names the test's own frames among pytest's.
    grep -E 'File ".*/compat/(tests|nemesis)/' "$log" | head -n 6 | cut -c1-200
  fi
}
trap summary EXIT

for phase in "$@"; do
  t0=$SECONDS
  make --no-print-directory "$phase" 2>&1 | tee "$logs/$phase.log"
  rc=${PIPESTATUS[0]}
  done_phases+=("$phase: $((SECONDS - t0)) s (exit $rc)")
  if [ "$rc" -ne 0 ]; then
    failed="$phase"
    exit "$rc"
  fi
done
