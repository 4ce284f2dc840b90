"""Kafka's own tools against a three-node samsa cluster: kafka-topics creates and describes a
replicated topic, kafka-reassign-partitions moves a partition to other brokers while records
are in it (execute, then verify, which also clears throttles), and kafka-leader-election
gives a partition back to its preferred leader; kafka-configs sets client quotas through one
node that every node describes.
"""

from __future__ import annotations

import json
import re

import pytest

from cluster import SamsaCluster, read_back
from clients import ck_produce, make_records, wait_until
from jvm import run_tool
from marks import EXTERNAL
from test_tools_quotas import configs, described

pytestmark = pytest.mark.skipif(EXTERNAL, reason="starts a samsa cluster of its own")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = SamsaCluster(tmp_path_factory.mktemp("tools-cluster"), extra="auto_leader_rebalance_enable = false\n").start()
    try:
        yield c
    finally:
        c.stop()


def describe(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """kafka-topics --describe: {partition: (leader, replicas, isr)}."""
    out = run_tool("kafka-topics", "--bootstrap-server", bootstrap, "--describe", "--topic", topic).stdout
    got = {}
    for m in re.finditer(r"Partition: (\d+)\s+Leader: (-?\d+)\s+Replicas: ([\d,]+)\s+Isr: ([\d,]*)", out):
        ids = lambda s: [int(x) for x in s.split(",") if x]
        got[int(m.group(1))] = (int(m.group(2)), ids(m.group(3)), ids(m.group(4)))
    assert got, out
    return got


def test_kafka_topics_creates_a_replicated_topic(cluster, topic_name):
    topic = topic_name()
    out = run_tool("kafka-topics", "--bootstrap-server", cluster.bootstrap, "--create", "--topic", topic,
                   "--partitions", "3", "--replication-factor", "3", "--config", "min.insync.replicas=2").stdout
    assert out.strip().splitlines()[-1] == f"Created topic {topic}.", out
    wait_until(lambda: all(len(isr) == 3 for _, _, isr in describe(cluster.bootstrap, topic).values()),
               "every ISR complete")
    partitions = describe(cluster.bootstrap, topic)
    assert sorted(partitions) == [0, 1, 2]
    assert {leader for leader, _, _ in partitions.values()} == {1, 2, 3}, "leaders spread over the brokers"
    for leader, replicas, isr in partitions.values():
        assert sorted(replicas) == [1, 2, 3] and leader == replicas[0]


def test_kafka_reassign_partitions_moves_a_partition(cluster, topic_name, tmp_path):
    topic = topic_name()
    run_tool("kafka-topics", "--bootstrap-server", cluster.bootstrap, "--create", "--topic", topic,
             "--replica-assignment", "1:2")
    wait_until(lambda: describe(cluster.bootstrap, topic)[0][2] == [1, 2], "the topic led with its ISR")
    records = make_records("moved", 200, edge_cases=False)
    ck_produce(cluster.bootstrap, topic, records)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": [2, 3]}]}))
    out = run_tool("kafka-reassign-partitions", "--bootstrap-server", cluster.bootstrap,
                   "--reassignment-json-file", str(plan), "--execute").stdout
    assert f"Successfully started partition reassignment for {topic}-0" in out, out

    def verified():
        out = run_tool("kafka-reassign-partitions", "--bootstrap-server", cluster.bootstrap,
                       "--reassignment-json-file", str(plan), "--verify").stdout
        return f"Reassignment of partition {topic}-0 is completed." in out
    wait_until(verified, "the reassignment completed")
    leader, replicas, isr = describe(cluster.bootstrap, topic)[0]
    assert (replicas, sorted(isr)) == ([2, 3], [2, 3]) and leader in (2, 3)
    got = read_back(cluster.bootstrap, topic, 1)[0]
    assert [v for _, v in got] == [r.value for r in records]


def test_kafka_leader_election_restores_the_preferred_leader(cluster, topic_name):
    topic = topic_name()
    run_tool("kafka-topics", "--bootstrap-server", cluster.bootstrap, "--create", "--topic", topic,
             "--replica-assignment", "3:1:2")
    wait_until(lambda: len(describe(cluster.bootstrap, topic)[0][2]) == 3, "the ISR complete")
    cluster.nodes[3].kill()
    others = [1, 2]
    cluster.await_metadata(others, "another leader", lambda m: m.topics[topic].partitions[0].leader in others)
    cluster.nodes[3].start()
    wait_until(lambda: len(describe(cluster.bootstrap, topic)[0][2]) == 3, "broker 3 back in the ISR")
    assert describe(cluster.bootstrap, topic)[0][0] != 3
    out = run_tool("kafka-leader-election", "--bootstrap-server", cluster.bootstrap, "--election-type", "PREFERRED",
                   "--topic", topic, "--partition", "0").stdout
    assert f"Successfully completed leader election (PREFERRED) for partitions {topic}-0" in out, out
    wait_until(lambda: describe(cluster.bootstrap, topic)[0][0] == 3, "broker 3 leading again")


def test_kafka_metadata_quorum_shows_three_voters(cluster):
    """kafka-metadata-quorum describe --replication through any node: the leader and two
    followers, all caught up (the leader's own view, asked of it by the node)."""
    from test_tools import quorum_replication

    def caught_up():
        rows = quorum_replication(cluster.bootstrap)
        statuses = sorted(r["Status"] for r in rows)
        return statuses == ["Follower", "Follower", "Leader"] and all(r["Lag"] == "0" for r in rows)

    wait_until(caught_up, "three voters, caught up, in kafka-metadata-quorum's view")


def test_kafka_configs_client_quotas_reach_every_node(cluster):
    """A quota set through any node (the controller's or another, which forwards it) is
    described by every node, and removed everywhere."""
    for via in cluster.ids():
        user = f"quota-user-via-{via}"
        entity = ["--entity-type", "users", "--entity-name", user]
        configs(cluster.nodes[via].bootstrap, *entity, alter=["--add-config", f"producer_byte_rate={via}000"])
        want = {f"user-principal '{user}'": {"producer_byte_rate": float(f"{via}000")}}
        for other in cluster.ids():
            wait_until(lambda: described(cluster.nodes[other].bootstrap, *entity) == want,
                       f"node {other} describes the quota set through node {via}")
        configs(cluster.nodes[via].bootstrap, *entity, alter=["--delete-config", "producer_byte_rate"])
        for other in cluster.ids():
            wait_until(lambda: described(cluster.nodes[other].bootstrap, *entity) == {},
                       f"node {other} no longer describes it")
