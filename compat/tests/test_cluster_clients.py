"""Old and new clients, unchanged, against a three-node samsa cluster: the Java client (4.x and
3.0, its default idempotent producer and a consumer group), kcat on librdkafka 2.0 (a strict
parser of Metadata with several brokers, replicas and ISRs) and kafka-python. Each writes to
a topic replicated three times and reads it back, bootstrapped from any node. KIP-848
consumer groups (`group.protocol=consumer`) of confluent-kafka and franz-go split a topic
with the coordinator on one node and the partitions led by all three.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from cluster import SamsaCluster, create_replicated
from clients import kcat_consume, kcat_metadata, kcat_produce_lines, kp_consume, kp_produce, make_records
from jvm import CLIENT_PROFILES, of, run_java
from marks import EXTERNAL
from test_go import go_tests, run_go  # noqa: F401 (go_tests is a fixture)
from test_groups import run_group

pytestmark = pytest.mark.skipif(EXTERNAL, reason="starts a samsa cluster of its own")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = SamsaCluster(tmp_path_factory.mktemp("clients-cluster")).start()
    try:
        yield c
    finally:
        c.stop()


def dense_offsets(produced: list[dict]) -> None:
    by_partition = defaultdict(list)
    for e in produced:
        by_partition[e["p"]].append(e["o"])
    for p, offsets in by_partition.items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {p} offsets {sorted(offsets)}"
    assert len(by_partition) > 1


@pytest.mark.parametrize("profile", CLIENT_PROFILES)
def test_java_idempotent_producer_and_consumer(cluster, topic_name, profile):
    topic = topic_name()
    create_replicated(cluster, topic, 3)
    # Bootstrapped from one node only: the client finds the other leaders in Metadata.
    bootstrap = cluster.nodes[2].bootstrap
    produced = of(run_java(profile, "produce", bootstrap, topic=topic, count=300), "produced")
    assert len(produced) == 300
    dense_offsets(produced)
    consumed = of(run_java(profile, "consume", cluster.nodes[3].bootstrap, topic=topic, expect=300), "consumed")
    key = lambda e: (e["p"], e["o"], e["k"], e["v"])
    assert Counter(map(key, consumed)) == Counter(map(key, produced))


@pytest.mark.parametrize("profile", CLIENT_PROFILES)
def test_java_consumer_group(cluster, topic_name, profile):
    count = 200
    ev = run_java(profile, "group-consume", cluster.bootstrap, topic=topic_name(), group=topic_name("-g"), count=count)
    produced = of(ev, "produced")
    phase2 = next(i for i, e in enumerate(ev) if e["ev"] == "phase" and e["n"] == 2)
    first = [(e["p"], e["o"]) for e in of(ev[:phase2], "consumed")]
    second = [(e["p"], e["o"]) for e in of(ev[phase2:], "consumed")]
    assert Counter(first) == Counter((e["p"], e["o"]) for e in produced[:count])
    assert Counter(second) == Counter((e["p"], e["o"]) for e in produced[count:])


def test_kcat_reads_cluster_metadata_and_round_trips(cluster, topic_name):
    topic = topic_name()
    create_replicated(cluster, topic, 3)
    md = kcat_metadata(cluster.nodes[1].bootstrap, topic)
    assert sorted(b["id"] for b in md["brokers"]) == cluster.ids()
    [t] = [t for t in md["topics"] if t["topic"] == topic]
    for p in t["partitions"]:
        assert sorted(r["id"] for r in p["replicas"]) == cluster.ids()
        assert sorted(r["id"] for r in p["isrs"]) == cluster.ids()
        assert p["leader"] in cluster.ids()
    lines = [b"k%d:v%d" % (i, i) for i in range(100)]
    kcat_produce_lines(cluster.bootstrap, topic, lines)
    got = kcat_consume(cluster.nodes[2].bootstrap, topic, count=len(lines))
    assert sorted(r.key + b":" + r.value for r in got) == sorted(lines)


def test_kafka_python_round_trips(cluster, topic_name):
    topic = topic_name()
    create_replicated(cluster, topic, 3)
    records = make_records("kp", 150)
    kp_produce(cluster.bootstrap, topic, records)
    got = kp_consume(cluster.nodes[3].bootstrap, topic, partitions=3)
    assert Counter((r.key, r.value) for r in got) == Counter((r.key, r.value) for r in records)


def test_confluent_consumer_protocol_group(cluster, topic_name, tmp_path):
    """Three confluent-kafka members with `group.protocol=consumer` split a replicated topic,
    each record consumed exactly once (run_group checks it)."""
    topic = topic_name()
    create_replicated(cluster, topic)
    _, members, _ = run_group("confluent-consumer", cluster.bootstrap, topic, tmp_path, 3, 6, 3_000)
    for m in members:
        m.stop()


def test_franz_consumer_protocol_group(go_tests, cluster):  # noqa: F811 (the fixture)
    """franz-go's KIP-848 members (compat/go TestConsumerProtocol) against the cluster."""
    # compat/go takes one seed broker; any node leads the client to the others.
    out = run_go(go_tests, cluster.nodes[1].bootstrap, "^TestConsumerProtocol$")
    assert "--- PASS: TestConsumerProtocol " in out, f"franz-go consumer protocol:\n{out[-6000:]}"
