"""The end-of-run summary on the terminal: every count the checker keeps, violations marked,
and a few examples of each, so a failed CI log says what went wrong without report.json."""

from __future__ import annotations

import json

from checker import VIOLATIONS

ORDER = ("acknowledged", "acked_offset_unknown", "lost", "duplicates_within_session", "duplicates_across_sessions", "inconsistent_offsets",
         "order_violations", "reads_of_lost", "poll_skips", "nonmonotonic_polls", "replica_mismatches", "indeterminate_present", "indeterminate_absent",
         "txn_committed", "txn_aborted", "txn_unknown", "txn_committed_lost", "txn_aborted_read",
         "txn_uncommitted_read", "txn_partial", "stale_leaders", "recovery_timeouts", "no_progress",
         "group_stalled", "incomplete_final_reads", "client_crashes", "panics", "unexpected_exits", "anomalies")
SHOWN = 3


def print_summary(report: dict, results, say) -> None:
    c = report["counts"]
    say(f"summary ({report['mode']}, seed {report['seed']}, {report['faults_done']}/{report['faults_planned']} "
        "faults healed):")
    for k in ORDER:
        if k in c and (report["mode"] == "txn" or not k.startswith("txn_")):
            mark = "  <-- VIOLATION" if k in VIOLATIONS and c[k] else ""
            print(f"    {k.replace('_', ' '):34} {c[k]}{mark}")
    for name in ("first_ack_after_heal_s", "every_partition_ack_after_heal_s", "longest_ack_gap_per_fault_s"):
        s = report[name]
        print(f"    {name.replace('_', ' '):34} max {s['max']} s, median {s['median']} s over {s['n']} heals")
    print(f"    {'writes with no report at end':34} {report['unresolved_writes']}")
    print(f"    {'producer incarnations':34} {report['incarnations']}")
    for k in ORDER:
        if k in VIOLATIONS and c.get(k):
            for e in report["examples"].get(k, [])[:SHOWN]:
                print(f"    e.g. {k}: {json.dumps(e, default=str)[:400]}")
    if report.get("anomalies_by_kind"):
        print(f"    anomalies (not failing): {report['anomalies_by_kind']}")
        for e in report["examples"].get("anomalies", [])[:SHOWN]:
            print(f"    note: anomaly: {json.dumps(e, default=str)[:300]}")
    for e in report["examples"].get("duplicates_across_sessions", [])[:SHOWN]:
        print(f"    note: duplicate across sessions: {json.dumps(e, default=str)[:400]}")
    say(f"{report['violations']} violations; history and report in {results}")
