#!/usr/bin/env python3
"""samsa's nemesis: a three-node cluster under a seeded schedule of faults (SIGKILLs of a
leader, of the controller, of a coordinator, of two nodes at once; SIGSTOP pauses past the
broker session; network partitions; restarts) while idempotent and transactional producers write and a
consumer group reads; then a Jepsen-style check of the history (see README, "Nemesis").

    python3 compat/nemesis/run.py --faults 7 --seed 42            # one run, plain workload
    python3 compat/nemesis/run.py --faults 7 --seed 42 --txn      # with transactions
    python3 compat/nemesis/run.py --faults 7 --both               # both, each its own process

Exits 0 only if every run passed; the last line is "nemesis: N passed, M failed". Needs root
(network namespaces) unless --loopback, which leaves partitions out. SAMSA_BIN names the
broker binary (default target/debug/samsa).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from faults import KINDS  # noqa: E402

# Per fault: the gap and hold (at most ~10 s), a restart (30 s), the recovery and progress bounds.
PER_FAULT_BOUND_S = 40


def parse_args(argv=None) -> argparse.Namespace:
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--faults", type=int, default=7, help="faults to inject (default 7: one of each kind)")
    a.add_argument("--seed", type=int, default=None, help="schedule seed (default: random, printed)")
    a.add_argument("--txn", action="store_true", help="add a transactional producer; consumers read_committed")
    a.add_argument("--both", action="store_true", help="a plain run then a --txn run, same seed")
    a.add_argument("--duration", type=float, default=0, help="stop injecting after this many seconds (0: no limit)")
    a.add_argument("--rate", type=float, default=250, help="records/s of each idempotent producer (default 250)")
    a.add_argument("--pause", default="3:8", help="SIGSTOP length range MIN:MAX s (default 3:8; the session is 2 s)")
    a.add_argument("--kinds", default=",".join(KINDS), help=f"fault kinds to draw from (default {','.join(KINDS)})")
    a.add_argument("--recovery-timeout", type=float, default=60, help="bound on full ISR after a heal (s)")
    a.add_argument("--progress-timeout", type=float, default=30, help="bound on acks everywhere after a heal (s)")
    a.add_argument("--message-timeout-ms", type=int, default=60_000, help="producers' message.timeout.ms")
    a.add_argument("--dir", type=Path, default=None, help="where runs go (default: a new dir under $TMPDIR)")
    a.add_argument("--loopback", action="store_true", help="no network namespaces (no root needed; no partitions)")
    a.add_argument("--keep", action="store_true", help="keep the nodes' data dirs even when the run passes")
    o = a.parse_args(argv)
    if o.seed is None:
        o.seed = random.SystemRandom().randrange(1, 2**31)
    lo, hi = (float(x) for x in o.pause.split(":"))
    o.pause = (lo, hi)
    o.kinds = tuple(k for k in o.kinds.split(",") if k)
    unknown = set(o.kinds) - set(KINDS)
    if unknown or not o.kinds:
        a.error(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    return o


def bound_s(o) -> float:
    """How long a run may take before the watchdog ends it."""
    return 300 + o.faults * (PER_FAULT_BOUND_S + o.recovery_timeout + o.progress_timeout) + o.message_timeout_ms / 1000


def preflight(o) -> None:
    """Fail loudly, never skip: everything the run needs is checked before it starts."""
    import confluent_kafka  # noqa: F401  (compat/install.sh)
    import crc32c  # noqa: F401
    binary = Path(os.environ.get("SAMSA_BIN") or HERE.parents[1] / "target" / "debug" / "samsa")
    if not binary.is_file():
        sys.exit(f"nemesis: no broker binary at {binary} (cargo build --bin samsa, or set SAMSA_BIN)")
    os.environ["SAMSA_BIN"] = str(binary)
    if not o.loopback:
        if os.geteuid() != 0:
            sys.exit("nemesis: network partitions need root (network namespaces); run as root or pass --loopback")
        if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
            sys.exit("nemesis: `ip netns` does not work here (iproute2 missing?)")


def both(o, argv: list[str]) -> int:
    """The plain run and the --txn run, each in a process of its own (its own namespaces)."""
    passed = failed = 0
    base = [a for a in argv if a != "--both"]
    if "--seed" not in base:
        base += ["--seed", str(o.seed)]
    for extra in ([], ["--txn"]):
        cmd = [sys.executable, str(Path(__file__).resolve()), *base, *extra]
        try:
            rc = subprocess.run(cmd, timeout=bound_s(o) + 120).returncode
        except subprocess.TimeoutExpired:
            print(f"nemesis: {' '.join(cmd)} overran its bound", flush=True)
            rc = 1
        passed, failed = (passed + 1, failed) if rc == 0 else (passed, failed + 1)
    print(f"nemesis: {passed} passed, {failed} failed (seed {o.seed}; reproduce with --seed {o.seed})", flush=True)
    return 0 if failed == 0 else 1


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    o = parse_args(argv)
    preflight(o)
    if o.both:
        return both(o, argv)
    mode = "txn" if o.txn else "plain"
    root = Path(tempfile.mkdtemp(prefix=f"samsa-nemesis-{mode}-{o.seed}-", dir=o.dir))
    t0 = time.monotonic()

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - t0:7.1f}s] {msg}", flush=True)

    say(f"nemesis {mode}: seed {o.seed}, {o.faults} faults of {','.join(o.kinds)}; run dir {root}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from runner import Run
    run = Run(o, root, say)
    watchdog = threading.Timer(bound_s(o), lambda: overrun(run, say, bound_s(o)))
    watchdog.daemon = True
    watchdog.start()
    try:
        report = run.execute()
    except Exception as e:
        say(f"ERROR: the run itself failed: {e!r}")
        import traceback
        traceback.print_exc()
        print(f"nemesis: 0 passed, 1 failed (seed {o.seed}, {mode}; run dir {root})", flush=True)
        return 1
    finally:
        watchdog.cancel()
    from summary import print_summary
    print_summary(report, root / "results", say)
    ok = report["violations"] == 0
    print(f"nemesis: {int(ok)} passed, {int(not ok)} failed (seed {o.seed}, {mode}, "
          f"{time.monotonic() - t0:.0f}s; results in {root / 'results'})", flush=True)
    return 0 if ok else 1


def overrun(run, say, bound: float) -> None:
    """The run took longer than any bounded path through it can: stop everything, loudly."""
    say(f"WATCHDOG: the run exceeded {bound:.0f}s; killing the cluster")
    try:
        run.nodes.teardown()
    finally:
        print("nemesis: 0 passed, 1 failed (watchdog)", flush=True)
        os._exit(3)


if __name__ == "__main__":
    rc = main()
    # Everything is written; do not let a librdkafka handle that will not close (a consumer
    # stuck in its close) hold the process at interpreter exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
