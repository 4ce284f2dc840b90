"""The checker: judges a run's history against the final state of the log, as Jepsen's Kafka
checker does for its queue workload.

Readers are the group consumers during the run, the final read through the leaders, and each
replica's log on disk after the cluster stopped. The final read (read_uncommitted) is the
log; what it says is checked against what clients were told (acks) and what every other
reader saw. Each check returns examples, not just counts, so a failure can be read from
report.json without replaying the run.
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter, defaultdict

from disk import Replica, compare
from workload import TXN_VALUE, parse_value

EXAMPLES = 20

# The counts that fail a run. "duplicates_across_sessions" is not among them: librdkafka may
# write a record twice when it bumps its idempotent epoch, which Kafka allows.
VIOLATIONS = ("lost", "duplicates_within_session", "inconsistent_offsets", "order_violations", "reads_of_lost",
              "poll_skips", "nonmonotonic_polls",
              "replica_mismatches", "panics", "unexpected_exits", "stale_leaders", "recovery_timeouts",
              "no_progress", "client_crashes", "incomplete_final_reads", "group_stalled",
              "txn_committed_lost", "txn_aborted_read", "txn_uncommitted_read", "txn_partial")


def writer_key(value: str):
    """(writer, incarnation) and the position of a value in its writer's order."""
    v = parse_value(value)
    if v:
        return (v[0], v[1]), v[2]
    m = TXN_VALUE.match(value)
    if m:
        return ("tx", int(m.group(2))), (int(m.group(3)), int(m.group(4)))
    return None, None


def check(history, final: dict, replicas: dict[int, list[Replica]], run: dict, txn: bool) -> dict:
    """`final["uncommitted"]`/`final["committed"]`: [(partition, offset, value)] of the final
    reads; `run`: what the runner observed (panics, exits, recoveries, ...)."""
    r: dict = {"counts": {}, "examples": defaultdict(list)}
    counts, ex = r["counts"], r["examples"]

    def note(what: str, example, n: int = 1) -> None:
        counts[what] = counts.get(what, 0) + n
        if len(ex[what]) < EXAMPLES:
            ex[what].append(example)

    for what in VIOLATIONS + ("duplicates_across_sessions", "indeterminate_present", "indeterminate_absent",
                              "acked_offset_unknown", "anomalies"):
        counts[what] = 0

    log: dict[int, dict[int, str]] = defaultdict(dict)
    where: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for p, o, v in sorted(final["uncommitted"]):
        if o in log[p] and log[p][o] != v:
            note("inconsistent_offsets", {"partition": p, "offset": o, "values": [log[p][o], v], "by": "final read"})
        log[p][o] = v
        where[v].append((p, o))

    # Lost: acknowledged, but not at the acknowledged offset in the final log.
    acked = [(v, p, o) for _, v, p, o in history.acks]
    counts["acknowledged"] = len(acked)
    for v, p, o in acked:
        if o is None:
            # librdkafka reports success without an offset when it concludes a retried batch
            # was written already (the broker refused the retry as out of sequence): the
            # value must then be somewhere in the partition.
            if not any(q == p for q, _ in where.get(v, [])):
                note("lost", {"value": v, "partition": p, "acked_offset": None, "found_at": where.get(v, [])})
            else:
                note("acked_offset_unknown", {"value": v, "partition": p, "found_at": where[v]})
        elif log[p].get(o) != v:
            note("lost", {"value": v, "partition": p, "acked_offset": o, "found_at": where.get(v, []),
                          "offset_holds": log[p].get(o)})
    acked_values = {v for v, _, _ in acked}
    for _, v, p, err in history.failures:
        if v in acked_values:
            continue
        note("indeterminate_present" if v in where else "indeterminate_absent", {"value": v, "error": err})

    # Duplicates: one value at several offsets, told apart by the producer id and epoch of
    # each copy's batch on disk.
    on_disk = {}
    for reps in replicas.values():
        if reps:
            for rec in reps[0].records:
                on_disk[(reps[0].partition, rec.offset)] = rec
    for v, places in where.items():
        if len(places) < 2:
            continue
        sessions = [(on_disk[pl].producer_id, on_disk[pl].producer_epoch) if pl in on_disk else None for pl in places]
        e = {"value": v, "at": places, "producer_sessions": sessions}
        if None not in sessions and len(set(sessions)) > 1:
            e["reason"] = (f"written under producer id/epoch {sorted(set(sessions))}: librdkafka bumped its "
                           "idempotent epoch and sent the record again")
            note("duplicates_across_sessions", e)
        else:
            note("duplicates_within_session", e)

    # Order: within one writer incarnation and partition, the log holds values in the order
    # they were written (first copies only: a re-sent duplicate is reported above).
    last: dict = {}
    seen: set = set()
    for p in sorted(log):
        for o in sorted(log[p]):
            v = log[p][o]
            if v in seen:
                continue
            seen.add(v)
            w, pos = writer_key(v)
            if w is None:
                continue
            key = (w, p)
            if key in last and pos < last[key][0]:
                note("order_violations", {"partition": p, "value": v, "offset": o,
                                          "after": {"value": last[key][2], "offset": last[key][1]}})
            if key not in last or pos > last[key][0]:
                last[key] = (pos, o, v)

    # Inconsistent offsets across every reader, and reads of records the log no longer has.
    values_at: dict[tuple[int, int], dict[str, str]] = defaultdict(dict)
    for p, o, v in final["uncommitted"]:
        values_at[(p, o)].setdefault(v, "final read")
    for p, o, v in final.get("committed") or []:
        values_at[(p, o)].setdefault(v, "final read_committed read")
    for reps in replicas.values():
        for rep in reps:
            for rec in rep.records:
                v = rec.value if rec.control is None else f"<{rec.control} marker>"
                values_at[(rep.partition, rec.offset)].setdefault(v, f"node {rep.node} disk")
    for _, reader, p, o, v in history.reads:
        values_at[(p, o)].setdefault(v, reader)
        if v not in where:
            note("reads_of_lost", {"reader": reader, "partition": p, "offset": o, "value": v})
    for (p, o), vs in values_at.items():
        if len(vs) > 1:
            note("inconsistent_offsets", {"partition": p, "offset": o, "values": vs})

    check_polls(history, final, note, txn)

    # Replicas byte-identical, batch by batch.
    for p, reps in sorted(replicas.items()):
        for rep in reps:
            for problem in rep.problems:
                note("replica_mismatches", f"node {rep.node} partition {p}: {problem}")
        for diff in compare(reps):
            note("replica_mismatches", diff)

    if txn:
        check_transactions(history, final, note, counts)

    # What the runner saw happen to the processes and the cluster.
    for k, lines in run["panics"].items():
        note("panics", {"node": k, "lines": lines}, len(lines))
    for kind in ("unexpected_exits", "stale_leaders", "recovery_timeouts", "no_progress",
                 "client_crashes", "incomplete_final_reads", "group_stalled"):
        for e in run[kind]:
            note(kind, e)

    # Odd but not wrong by the rules above: counted and shown, never failing a run.
    for e in run.get("anomalies", []):
        note("anomalies", e)
    r["anomalies_by_kind"] = dict(Counter(e["kind"] for e in run.get("anomalies", [])))

    firsts = [h["first_ack_s"] for h in run["heals"] if h.get("first_ack_s") is not None]
    everys = [h["every_partition_ack_s"] for h in run["heals"] if h.get("every_partition_ack_s") is not None]
    r["first_ack_after_heal_s"] = stats(firsts)
    r["every_partition_ack_after_heal_s"] = stats(everys)
    r["longest_ack_gap_per_fault_s"] = stats([h["longest_ack_gap_s"] for h in run["heals"]])
    r["violations"] = sum(counts[v] for v in VIOLATIONS)
    r["examples"] = dict(ex)
    return r


def check_polls(history, final: dict, note, txn: bool) -> None:
    """Within one assignment generation of one consumer, each partition is read in offset
    order (nonmonotonic_polls otherwise) and without passing over a record that consumer
    should see (poll_skips): every offset of the final read at its isolation level."""
    visible = final.get("committed") if txn else final["uncommitted"]
    offsets: dict[int, list[int]] = defaultdict(list)
    for p, o, _ in visible or []:
        offsets[p].append(o)
    for p in offsets:
        offsets[p].sort()
    last: dict[tuple[str, int], int] = {}
    for _, reader, p, o, v in history.reads:
        prev = last.get((reader, p))
        last[(reader, p)] = o
        if prev is None:
            continue
        if o <= prev:
            note("nonmonotonic_polls", {"reader": reader, "partition": p, "offset": o, "after": prev})
            continue
        xs = offsets[p]
        i = bisect.bisect_right(xs, prev)
        if i < len(xs) and xs[i] < o:
            note("poll_skips", {"reader": reader, "partition": p, "from": prev, "to": o, "skipped": xs[i]})


def check_transactions(history, final: dict, note, counts: dict) -> None:
    """read_committed readers see every committed transaction whole, exactly once, and
    nothing of an aborted one; a transaction of unknown outcome is all there or not at all."""
    committed_read = Counter(v for _, _, v in final.get("committed") or [])
    at = {v: (p, o) for p, o, v in final.get("committed") or []}
    run_reads = defaultdict(list)
    for _, reader, p, o, v in history.reads:
        if v.startswith("tx-"):
            run_reads[v].append(reader)
    known = set()
    for outcome in ("committed", "aborted", "unknown"):
        counts[f"txn_{outcome}"] = 0
    for t in history.txns:
        counts[f"txn_{t['outcome']}"] += 1
        values = [v for v, _, _ in t["values"]]
        known.update(values)
        name = f"i{t['incarnation']}-t{t['txn']}"
        if t["outcome"] == "committed":
            for v, p, o in t["values"]:
                if committed_read[v] != 1 or (o is not None and at.get(v) != (p, o)):
                    note("txn_committed_lost", {"txn": name, "value": v, "acked": [p, o],
                                                "read_times": committed_read[v], "read_at": at.get(v)})
        elif t["outcome"] == "aborted":
            for v in values:
                if committed_read[v] or run_reads[v]:
                    note("txn_aborted_read", {"txn": name, "value": v, "final_read": committed_read[v],
                                              "readers": run_reads[v][:5]})
        else:
            present = [v for v in values if committed_read[v]]
            if present and len(present) != len(values):
                note("txn_partial", {"txn": name, "present": present, "values": values})
            if not present:
                for v in values:
                    if run_reads[v]:
                        note("txn_uncommitted_read", {"txn": name, "value": v, "readers": run_reads[v][:5]})
    # A transactional value of no recorded transaction (its producer died mid-way): it can
    # only have been aborted.
    for v in set(committed_read) | set(run_reads):
        if v.startswith("tx-") and v not in known:
            note("txn_aborted_read", {"txn": "unrecorded", "value": v})


def stats(xs: list[float]) -> dict:
    if not xs:
        return {"n": 0, "max": None, "median": None}
    return {"n": len(xs), "max": round(max(xs), 3), "median": round(statistics.median(xs), 3)}
