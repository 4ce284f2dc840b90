"""Transactions v2 (KIP-890 part 2) with the clients that use it: the Java 4.4 producer and
franz-go switch to it when the broker's finalized transaction.version is 2. They then send
no AddPartitionsToTxn or AddOffsetsToTxn (the partitions' leaders add them) and every
EndTxn (v5) bumps the producer epoch. That the v2 protocol was really used is read from the
broker: after N transactions the coordinator holds epoch N (a v1 producer keeps the epoch
InitProducerId gave it). read_committed readers see exactly the committed transactions.

With the level downgraded to 1 (kafka-features), the same producer falls back to the v1
protocol, and the broker serves it as before.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from eos_clients import ck_read
from jvm import of, run_java, run_tool
from marks import EXTERNAL
from test_go import GO_DIR, go_tests  # noqa: F401 (the session fixture building the Go tests)

RECORDS = 10


def epoch_of(bootstrap: str, txn_id: str) -> int:
    """The producer epoch the transaction coordinator holds for txn_id (kafka-transactions)."""
    out = run_tool("kafka-transactions", "--bootstrap-server", bootstrap, "describe",
                   "--transactional-id", txn_id).stdout
    header, row = [line.split() for line in out.strip().splitlines()[:2]]
    return int(row[header.index("ProducerEpoch")])


def committed_values(bootstrap: str, topic: str, partitions: int, plan: list[bool]) -> None:
    """read_committed sees exactly the records of the committed transactions."""
    want = sorted(f"txn-{t}-{i}" for t, commit in enumerate(plan) if commit for i in range(RECORDS))
    got = ck_read(bootstrap, topic, partitions, "read_committed", len(want))
    assert sorted(r.value.decode() for r in got) == want


def java_transactions(bootstrap: str, topic: str, txn_id: str, count: int, group: str = "",
                      partitions: int = 3) -> list[bool]:
    events = run_java("kafka-4", "transactions", bootstrap, topic=topic, partitions=partitions,
                      **{"txn-id": txn_id, "count": count, "records": RECORDS, "abort-every": 3, "group": group})
    plan = [e["committed"] for e in of(events, "txn")]
    assert len(plan) == count, events
    return plan


def test_java_transactions_v2(bootstrap, topic_name):
    """The Java 4.4 producer's transactions, with a group's offsets in each (TxnOffsetCommit
    v5 adds the group): committed ones visible, aborted ones not, one epoch per end."""
    topic, txn_id = topic_name(), topic_name("-txn")
    plan = java_transactions(bootstrap, topic, txn_id, 6, group=topic_name("-group"))
    committed_values(bootstrap, topic, 3, plan)
    assert epoch_of(bootstrap, txn_id) == len(plan), "every end bumps the epoch (transactions v2)"


def test_franz_go_transactions_v2(go_tests, bootstrap, topic_name):  # noqa: F811
    """franz-go's transactional producer: the same, driven by compat/go's TestTransactions."""
    topic, txn_id, count = topic_name(), topic_name("-txn"), 5
    env = dict(os.environ, KAFKA_BOOTSTRAP=bootstrap, KAFKA_TXN_TOPIC=topic, KAFKA_TXN_ID=txn_id,
               KAFKA_TXN_COUNT=str(count))
    proc = subprocess.run([str(go_tests), "-test.v", "-test.count=1", "-test.timeout=5m",
                           "-test.run", "^TestTransactions$"], cwd=GO_DIR, env=env,
                          capture_output=True, text=True, timeout=360, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "--- PASS: TestTransactions " in out, out[-6000:]
    committed_values(bootstrap, topic, 3, [t % 3 != 2 for t in range(count)])
    assert epoch_of(bootstrap, txn_id) == count, "every end bumps the epoch (transactions v2)"


@pytest.mark.skipif(EXTERNAL, reason="changes the cluster's finalized feature levels")
def test_java_transactions_after_a_downgrade_to_v1(bootstrap, topic_name):
    """transaction.version downgraded to 1: the producer keeps to the v1 protocol (the epoch
    InitProducerId gave it stays), and its transactions work as before; upgraded again, v2."""
    features = ["kafka-features", "--bootstrap-server", bootstrap]
    run_tool(*features, "downgrade", "--feature", "transaction.version=1")
    try:
        topic, txn_id = topic_name(), topic_name("-txn")
        plan = java_transactions(bootstrap, topic, txn_id, 4, group=topic_name("-group"))
        committed_values(bootstrap, topic, 3, plan)
        assert epoch_of(bootstrap, txn_id) == 0, "a v1 producer's epoch does not move"
    finally:
        run_tool(*features, "upgrade", "--feature", "transaction.version=2")
    topic, txn_id = topic_name(), topic_name("-txn")
    plan = java_transactions(bootstrap, topic, txn_id, 3)
    committed_values(bootstrap, topic, 3, plan)
    assert epoch_of(bootstrap, txn_id) == len(plan)


@pytest.mark.skipif(EXTERNAL, reason="starts a samsa cluster of its own")
def test_java_transactions_v2_on_a_cluster(cluster, topic_name):
    """Three brokers: the partitions (spread over them) are added by their leaders, most of
    which do not coordinate the transactional id, and each end's markers reach them all."""
    topic, txn_id = topic_name(), topic_name("-txn")
    plan = java_transactions(cluster.bootstrap, topic, txn_id, 6, group=topic_name("-group"), partitions=6)
    committed_values(cluster.bootstrap, topic, 6, plan)
    assert epoch_of(cluster.bootstrap, txn_id) == len(plan)
