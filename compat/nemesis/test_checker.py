"""The checker checked: each violation planted in a small made-up history must be found, and
a clean history must pass. No cluster needed (python3 -m pytest compat/nemesis/test_checker.py);
`make nemesis-short` runs it first, so a checker that has gone blind fails loudly."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from checker import check  # noqa: E402
from disk import HEADER, Record, Replica  # noqa: E402
from history import History  # noqa: E402

RUN = {"panics": {}, "unexpected_exits": [], "stale_leaders": [], "heals": [], "recovery_timeouts": [],
       "no_progress": [], "client_crashes": [], "incomplete_final_reads": [], "group_stalled": []}


def batch(offset: int, tag: bytes = b"") -> bytes:
    body = HEADER.pack(offset, HEADER.size - 12, 0, 2, 0, 0, 0, 0, 0, 7, 0, 0, 0) + tag
    return body


def replicas(log: list[tuple[int, int, str]], epochs: dict = {}) -> dict:
    """Three identical replicas of `log`, each record its own batch."""
    out = {}
    for p in sorted({p for p, _, _ in log}):
        reps = []
        for node in (1, 2, 3):
            rep = Replica(node, p)
            for q, o, v in log:
                if q == p:
                    rep.batches.append(batch(o))
                    rep.records.append(Record(o, v, 7, epochs.get((p, o), 0), False))
            reps.append(rep)
        out[p] = reps
    return out


def history(acks=(), reads=(), txns=()) -> History:
    h = History()
    for v, p, o in acks:
        h.ack(v, p, o)
    for reader, p, o, v in reads:
        h.read(reader, p, o, v)
    for t in txns:
        h.txn(t)
    return h


CLEAN = [(0, 0, "p0-i1-000000000"), (0, 1, "p0-i1-000000003"), (1, 0, "p0-i1-000000001")]


def run(h, log, reps=None, txn=False, committed=None, **extra):
    final = {"uncommitted": log, "committed": committed}
    return check(h, final, reps if reps is not None else replicas(log), {**RUN, **extra}, txn)["counts"]


def test_a_clean_history_passes():
    h = history(acks=[(v, p, o) for p, o, v in CLEAN], reads=[("c0", p, o, v) for p, o, v in CLEAN])
    c = run(h, CLEAN)
    assert c["acknowledged"] == 3
    assert all(c[k] == 0 for k in c if k != "acknowledged"), c


def test_an_acknowledged_record_missing_or_moved_is_lost():
    h = history(acks=[("p0-i1-000000001", 0, 0), ("p0-i1-000000006", 0, 5)])
    assert run(h, CLEAN)["lost"] == 2  # one elsewhere, one absent


def test_an_acknowledgement_without_offset_needs_the_value_somewhere_in_its_partition():
    c = run(history(acks=[("p0-i1-000000003", 0, None), ("p0-i1-000000009", 0, None)]), CLEAN)
    assert c["acked_offset_unknown"] == 1 and c["lost"] == 1


def test_duplicates_within_and_across_idempotent_sessions():
    log = CLEAN + [(0, 2, "p0-i1-000000000")]
    assert run(history(), log)["duplicates_within_session"] == 1
    c = run(history(), log, replicas(log, epochs={(0, 2): 1}))
    assert c["duplicates_within_session"] == 0 and c["duplicates_across_sessions"] == 1


def test_two_values_at_one_offset_and_reads_of_lost_records():
    h = history(reads=[("c0", 0, 1, "p1-i1-000000009")])
    c = run(h, CLEAN)
    assert c["inconsistent_offsets"] == 1 and c["reads_of_lost"] == 1


def test_a_consumer_skipping_or_going_back_within_one_generation():
    log = [(0, o, f"p0-i1-{3 * o:09d}") for o in range(5)]
    reads = [("c0/g1", 0, 0, log[0][2]), ("c0/g1", 0, 2, log[2][2]),   # skips offset 1
             ("c0/g1", 0, 1, log[1][2]),                              # goes back
             ("c0/g2", 0, 0, log[0][2])]                              # a new generation may restart
    c = run(history(reads=reads), log)
    assert c["poll_skips"] == 1 and c["nonmonotonic_polls"] == 1


def test_order_within_a_writer_incarnation():
    log = [(0, 0, "p0-i1-000000003"), (0, 1, "p0-i1-000000000"), (0, 2, "p0-i2-000000000")]
    assert run(history(), log)["order_violations"] == 1


def test_replicas_that_differ():
    reps = replicas(CLEAN)
    reps[0][2].batches[1] = batch(1, b"x")
    assert run(history(), CLEAN, reps)["replica_mismatches"] == 1
    reps = replicas(CLEAN)
    reps[1][1].batches.pop()
    assert run(history(), CLEAN, reps)["replica_mismatches"] == 1


def test_transactions_seen_by_read_committed():
    def t(n, outcome, values):
        return {"incarnation": 1, "txn": n, "commit": outcome != "aborted", "outcome": outcome,
                "values": [[v, 0, o] for v, o in values], "errors": []}
    txns = [t(0, "committed", [("tx-i1-t0-0", 10), ("tx-i1-t0-1", 11)]),  # one record missing
            t(1, "aborted", [("tx-i1-t1-0", 12)]),                          # read by a consumer
            t(2, "unknown", [("tx-i1-t2-0", 13), ("tx-i1-t2-1", 14)])]      # half visible
    log = [(0, o, v) for o, v in [(10, "tx-i1-t0-0"), (11, "tx-i1-t0-1"), (12, "tx-i1-t1-0"),
                                   (13, "tx-i1-t2-0"), (14, "tx-i1-t2-1")]]
    committed = [(0, 10, "tx-i1-t0-0"), (0, 13, "tx-i1-t2-0")]
    h = history(reads=[("c0", 0, 12, "tx-i1-t1-0")], txns=txns)
    c = run(h, log, txn=True, committed=committed)
    assert c["txn_committed_lost"] == 1 and c["txn_aborted_read"] == 1 and c["txn_partial"] == 1
    assert (c["txn_committed"], c["txn_aborted"], c["txn_unknown"]) == (1, 1, 1)


def test_what_the_runner_saw_fails_the_run():
    c = run(history(), CLEAN, panics={2: ["thread 'x' panicked at src/a.rs:1"]},
            unexpected_exits=[{"node": 1, "code": 101}])
    assert c["panics"] == 1 and c["unexpected_exits"] == 1
