"""Old and new clients, unchanged, against a three-node samsa cluster: the Java client (4.x and
3.0, its default idempotent producer and a consumer group), kcat on librdkafka 2.0 (a strict
parser of Metadata with several brokers, replicas and ISRs) and kafka-python. Each writes to
a topic replicated three times and reads it back, bootstrapped from any node. KIP-848
consumer groups (`group.protocol=consumer`) of confluent-kafka and franz-go split a topic
with the coordinator on one node and the partitions led by all three. A Kafka Streams word
count (`group.protocol=streams`) keeps its tasks when its group's coordinator is killed.
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


def offsets_partition(group: str, partitions: int = 6) -> int:
    """The __consumer_offsets partition of `group`: Kafka's abs(String.hashCode) % partitions."""
    h = 0
    for unit in group.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % partitions


def test_word_count_survives_its_coordinators_death(cluster, topic_name, tmp_path):
    """The word count of compat/streams (group.protocol=streams) on the three-node cluster: the
    broker coordinating its streams group is killed; the new leader of the group's
    __consumer_offsets partition loads the group from the records the old one replicated, and
    the application keeps its tasks and counts on exactly."""
    from test_streams import PARTITIONS, STREAMS_WAIT_S, Instance, counts, produce_lines
    from clients import wait_until
    source, sink, app = topic_name("-in"), topic_name("-out"), topic_name("-app")
    create_replicated(cluster, source, PARTITIONS)
    create_replicated(cluster, sink, PARTITIONS)
    words = [f"w{i}" for i in range(20)]
    expected = produce_lines(cluster.bootstrap, source, [" ".join(words[i % 7:i % 7 + 3]) for i in range(100)])
    a = Instance(cluster.bootstrap, app, source, sink, tmp_path / "a")
    try:
        every = sorted(f"{s}_{p}" for s in (0, 1) for p in range(PARTITIONS))
        wait_until(lambda: sorted(a.active()) == every, "the instance to run every task", timeout=STREAMS_WAIT_S)
        wait_until(lambda: counts(cluster.bootstrap, sink) == dict(expected),
                   "the output topic to hold the exact counts", timeout=STREAMS_WAIT_S)
        partition = offsets_partition(app)
        coordinator = cluster.leaders("__consumer_offsets", via=1)[partition]
        survivors = [k for k in cluster.ids() if k != coordinator]
        cluster.nodes[coordinator].kill()
        cluster.await_metadata(survivors, "a new coordinator", lambda m: m.topics["__consumer_offsets"]
                               .partitions[partition].leader not in (-1, coordinator))
        bootstrap = ",".join(cluster.nodes[k].bootstrap for k in survivors)
        more = produce_lines(bootstrap, source, [" ".join(words[:5])] * 4)
        wait_until(lambda: counts(bootstrap, sink) == dict(expected + more),
                   "the counts to take the new lines in after the failover", timeout=STREAMS_WAIT_S)
        assert sorted(a.active()) == every
    finally:
        try:
            a.stop()
        except Exception:
            a.kill()
