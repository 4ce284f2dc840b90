"""Eligible leader replicas (KIP-966) as Kafka's kafka-topics shows them, on a three-node
samsa cluster: a topic on all three brokers with min.insync.replicas=3, whose ISR falls below
the minimum when a broker stops. `kafka-topics --describe` reads DescribeTopicPartitions and
prints the ELR and the last known ELR in its `Elr:` and `LastKnownElr:` columns.

Kafka 4.4 decides the same lists for the same steps (its PartitionChangeBuilder): a replica
that leaves an ISR already below the minimum is eligible, a regrown ISR clears the ELR, and a
broker back from a crash (SIGKILL) is no longer eligible; with eligible.leader.replicas.version
downgraded to 0 no replica is. The suite has no three-node Kafka to run this against, so the
expected columns come from Kafka's rules.
"""

from __future__ import annotations

import re

import pytest

from cluster import SamsaCluster
from clients import wait_until
from jvm import run_tool
from marks import EXTERNAL

pytestmark = pytest.mark.skipif(EXTERNAL, reason="starts a samsa cluster of its own")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = SamsaCluster(tmp_path_factory.mktemp("elr-cluster"), extra="auto_leader_rebalance_enable = false\n").start()
    try:
        yield c
    finally:
        c.stop()


def ids(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def describe(bootstrap: str, topic: str) -> tuple[int, list[int], list[int], list[int]]:
    """kafka-topics --describe of partition 0: (leader, isr, elr, last known elr)."""
    out = run_tool("kafka-topics", "--bootstrap-server", bootstrap, "--describe", "--topic", topic).stdout
    m = re.search(r"Partition: 0\s+Leader: (-?\d+|none)\s+Replicas: [\d,]+\s+Isr: ([\d,]*)\s+"
                  r"Elr: ([\d,]*)\s+LastKnownElr: ([\d,]*)", out)
    assert m, out
    leader = -1 if m.group(1) == "none" else int(m.group(1))
    return leader, ids(m.group(2)), ids(m.group(3)), ids(m.group(4))


def settles(bootstrap: str, topic: str, want: tuple) -> None:
    seen = []

    def matches():
        seen.append(describe(bootstrap, topic))
        return seen[-1] == want

    try:
        wait_until(matches, f"kafka-topics shows {want}")
    except AssertionError as e:
        raise AssertionError(f"{e}; last shown {seen[-1:]}") from None


def test_kafka_topics_shows_the_eligible_leader_replicas(cluster, topic_name):
    topic = topic_name()
    via = cluster.nodes[1].bootstrap
    run_tool("kafka-topics", "--bootstrap-server", via, "--create", "--topic", topic,
             "--replica-assignment", "1:2:3", "--config", "min.insync.replicas=3")
    settles(via, topic, (1, [1, 2, 3], [], []))

    # A clean stop takes the ISR below the minimum: the stopped follower is eligible.
    assert cluster.nodes[3].stop() == 0
    settles(via, topic, (1, [1, 2], [3], []))
    # Back and caught up, it rejoins the ISR, which at the minimum needs no ELR.
    cluster.nodes[3].start()
    settles(via, topic, (1, [1, 2, 3], [], []))

    # A crash: eligible while it is away (nothing was committed without it) ...
    cluster.nodes[2].kill()
    settles(via, topic, (1, [1, 3], [2], []))
    # ... but back from a crash it may have lost acknowledged records: no longer eligible,
    # until it has caught up and rejoined the ISR.
    cluster.nodes[2].start()
    settles(via, topic, (1, [1, 2, 3], [], []))


def test_with_the_feature_downgraded_no_replica_is_eligible(cluster, topic_name):
    topic = topic_name()
    via = cluster.nodes[1].bootstrap
    run_tool("kafka-features", "--bootstrap-server", via, "downgrade",
             "--feature", "eligible.leader.replicas.version=0")
    try:
        run_tool("kafka-topics", "--bootstrap-server", via, "--create", "--topic", topic,
                 "--replica-assignment", "1:2:3", "--config", "min.insync.replicas=3")
        settles(via, topic, (1, [1, 2, 3], [], []))
        assert cluster.nodes[3].stop() == 0
        settles(via, topic, (1, [1, 2], [], []))
        cluster.nodes[3].start()
        settles(via, topic, (1, [1, 2, 3], [], []))
    finally:
        run_tool("kafka-features", "--bootstrap-server", via, "upgrade",
                 "--feature", "eligible.leader.replicas.version=1")
