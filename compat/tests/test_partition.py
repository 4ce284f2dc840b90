"""A broker cut off from the rest of its cluster (network namespaces, see cluster.py) while
a client can still reach it: it acknowledges no acks=all write, the majority fences it and
goes on with a new leader, and once the cut heals the isolated broker's unacknowledged
tail is truncated away.
"""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from cluster import SamsaCluster, create_replicated, read_back
from marks import EXTERNAL

pytestmark = pytest.mark.skipif(EXTERNAL, reason="starts a samsa cluster of its own")


@pytest.fixture
def partitioned_cluster(tmp_path):
    """A cluster whose nodes each run in a network namespace of their own (needs root and
    iproute2, which compat/install.sh provides; fails, never skips, without them)."""
    c = SamsaCluster(tmp_path / "cluster", netns=True)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def test_a_broker_cut_off_from_its_cluster_acknowledges_no_acks_all_write(partitioned_cluster, topic_name):
    cluster, topic = partitioned_cluster, topic_name()
    create_replicated(cluster, topic, 1)
    isolated = cluster.leaders(topic, 1)[0]
    others = [k for k in cluster.ids() if k != isolated]

    def producer(bootstrap: str) -> Producer:
        return Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, "retries": 0,
                         "message.timeout.ms": 8000, "request.timeout.ms": 4000})

    def send(p: Producer, values: list[bytes]) -> tuple[list, list]:
        ok, failed = [], []
        for v in values:
            p.produce(topic, value=v, partition=0,
                      on_delivery=lambda err, msg: (failed if err else ok).append((msg.offset(), msg.value())))
        p.flush(30)
        return ok, failed

    before, failed = send(producer(cluster.nodes[isolated].bootstrap), [b"before-%d" % i for i in range(20)])
    assert len(before) == 20 and not failed

    cluster.isolate(isolated)
    try:
        # The isolated leader still believes it leads, but no follower confirms its writes.
        stale = producer(cluster.nodes[isolated].bootstrap)
        ok, failed = send(stale, [b"isolated-%d" % i for i in range(5)])
        assert not ok, f"an isolated broker acknowledged acks=all writes: {ok}"
        assert failed
        # Meanwhile the majority fences it, elects another leader and takes writes.
        cluster.await_metadata(others, "a leader on the majority side", lambda m: set(m.brokers) == set(others)
                               and m.topics[topic].partitions[0].leader in others)
        majority = ",".join(cluster.nodes[k].bootstrap for k in others)
        after, failed = send(producer(majority), [b"after-%d" % i for i in range(20)])
        assert len(after) == 20 and not failed
    finally:
        cluster.heal(isolated)
    cluster.await_metadata(cluster.ids(), "the isolated broker back in the ISR", lambda m: set(m.brokers) == set(cluster.ids())
                           and len(m.topics[topic].partitions[0].isrs) == 3)
    # Its unacknowledged tail is gone from the log every replica now shares.
    log = read_back(cluster.bootstrap, topic, 1)[0]
    values = [v for _, v in log]
    assert [v for _, v in before + after] == [v for v in values if not v.startswith(b"isolated-")]
    assert not any(v.startswith(b"isolated-") for v in values), values
