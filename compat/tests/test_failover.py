"""A three-node samsa cluster under failures, driven by confluent-kafka (librdkafka 2.16).

A topic of 6 partitions, replication factor 3 and min.insync.replicas 2 takes acks=all
records from an idempotent producer, about 2 500 a second, while the test SIGKILLs the leader
of some partitions, then the active controller, restarting each; the producer stops a
moment after the second one is back. Afterwards every acknowledged
record is read back exactly once at the offset it was acknowledged at, in order; nothing
a consumer saw during the failures has gone; the producer reached every new leader within
5 seconds of its election; and a consumer group kept consuming across the failovers.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from cluster import SamsaCluster, create_replicated, describe, read_back
from marks import EXTERNAL

PARTITIONS = 6
# Acknowledged records before the first failure, and after the last recovery: the failures
# land in the middle of the stream, and the producer meets every partition's final leaders.
BEFORE = 5_000
AFTER = 5_000
RECONNECT_LIMIT_S = 5.0

pytestmark = pytest.mark.skipif(EXTERNAL, reason="starts a samsa cluster of its own")


class Acks:
    """What the producer's delivery reports said, per partition, with when."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_partition: dict[int, list[tuple[int, bytes, float]]] = defaultdict(list)
        self.errors: list[str] = []
        self.count = 0

    def on_delivery(self, err, msg):
        with self.lock:
            if err is not None:
                self.errors.append(str(err))
                return
            self.by_partition[msg.partition()].append((msg.offset(), msg.value(), time.monotonic()))
            self.count += 1

    def first_after(self, partition: int, t: float):
        with self.lock:
            return next((at for _, _, at in self.by_partition[partition] if at >= t), None)


def produce_all(bootstrap: str, topic: str, acks: Acks, enough: threading.Event, sent: list,
                done: threading.Event, failures: list):
    """Produces until `enough` is set, then flushes; `sent` ends holding how many it sent."""
    try:
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 5, "message.timeout.ms": 120_000, "request.timeout.ms": 5000,
                      "topic.metadata.refresh.interval.ms": 1000})
        i = 0
        while not enough.is_set():
            while True:
                try:
                    p.produce(topic, key=str(i).encode(), value=f"r{i}".encode(), on_delivery=acks.on_delivery)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
            # About 2 500 records a second: the failures below happen while it produces.
            if i % 250 == 249:
                time.sleep(0.1)
            i += 1
        sent.append(i)
        left = p.flush(120)
        if left:
            failures.append(f"{left} records still unacknowledged after flush")
    except Exception as e:  # reported by the test, not lost in the thread
        failures.append(repr(e))
    finally:
        done.set()


def watch(bootstrap: str, topic: str, seen: dict, stop: threading.Event, failures: list):
    """A consumer reading every partition while the failures happen, recording what it saw."""
    try:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "watch-unused", "enable.auto.commit": False})
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        while not stop.is_set():
            m = c.poll(0.2)
            if m is None or (m.error() and m.error().code() == KafkaError._PARTITION_EOF):
                continue
            if m.error():
                continue  # transient: leader moves; the consumer carries on
            seen[(m.partition(), m.offset())] = m.value()
        c.close()
    except Exception as e:
        failures.append(f"watching consumer: {e!r}")


def consume_in_group(bootstrap: str, topic: str, values: set, stop: threading.Event, failures: list):
    """A consumer group member committing as it goes, across the failovers."""
    try:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-group", "auto.offset.reset": "earliest",
                      "enable.auto.commit": True, "auto.commit.interval.ms": 500, "session.timeout.ms": 10_000})
        c.subscribe([topic])
        while not stop.is_set():
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            values.add(m.value())
        c.close()
    except Exception as e:
        failures.append(f"group consumer: {e!r}")


def group_coordinator(cluster: SamsaCluster, group: str) -> int:
    """The broker coordinating `group`, once the group exists."""
    deadline = time.monotonic() + 30
    while True:
        admin = cluster.admin()
        try:
            return admin.describe_consumer_groups([group])[group].result(10).coordinator.id
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def fail_broker(cluster: SamsaCluster, topic: str, victim: int, acks: Acks) -> float:
    """SIGKILLs `victim`, waits for new leaders of what it led, and returns the longest time the
    producer took from a new leader's election to its first acknowledged write there."""
    led = [p for p, leader in cluster.leaders(topic, victim).items() if leader == victim]
    cluster.nodes[victim].kill()
    survivors = [k for k in cluster.ids() if k != victim]
    cluster.await_metadata(survivors, f"new leaders for broker {victim}'s partitions", lambda m: all(
        m.topics[topic].partitions[p].leader not in (-1, victim) for p in led))
    elected = time.monotonic()
    worst = 0.0
    for p in led:
        deadline = elected + 30
        while (at := acks.first_after(p, elected)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert at is not None, f"no write acknowledged on partition {p} after its new leader was elected"
        worst = max(worst, at - elected)
    return worst


def recover(cluster: SamsaCluster, topic: str, victim: int) -> None:
    cluster.nodes[victim].start()
    cluster.await_metadata(cluster.ids(), f"broker {victim} back in every ISR", lambda m: set(m.brokers) == set(cluster.ids())
                           and all(len(p.isrs) == 3 for p in m.topics[topic].partitions.values()))


def test_acknowledged_records_survive_leader_and_controller_failures(cluster, topic_name):
    topic = topic_name()
    create_replicated(cluster, topic, PARTITIONS)
    acks, failures = Acks(), []
    produced, stop, enough, sent = threading.Event(), threading.Event(), threading.Event(), []
    seen: dict = {}
    group_values: set = set()
    threads = [
        threading.Thread(target=produce_all, args=(cluster.bootstrap, topic, acks, enough, sent, produced, failures)),
        threading.Thread(target=watch, args=(cluster.bootstrap, topic, seen, stop, failures)),
        threading.Thread(target=consume_in_group, args=(cluster.bootstrap, topic, group_values, stop, failures)),
    ]
    for t in threads:
        t.start()
    try:
        while acks.count < BEFORE and not produced.is_set():
            time.sleep(0.05)
        # The leader of some partitions that is not the controller, then the controller. One
        # of the two coordinates the group: it is the first when it is not the controller.
        controller = cluster.controller(1)
        leaders = cluster.leaders(topic, 1)
        coordinator = group_coordinator(cluster, f"{topic}-group")
        victim = coordinator if coordinator != controller else next(
            k for k in cluster.ids() if k != controller and k in leaders.values())
        reconnects, coordinator_moved = [], False
        for pick in (lambda: victim, lambda: cluster.controller(1)):
            killed = pick()
            coordinator = group_coordinator(cluster, f"{topic}-group")
            reconnects.append(fail_broker(cluster, topic, killed, acks))
            if killed == coordinator:
                assert group_coordinator(cluster, f"{topic}-group") != killed
                coordinator_moved = True
            recover(cluster, topic, killed)
        assert coordinator_moved, "neither failure took the group coordinator"
        settled = acks.count
        while acks.count < settled + AFTER and not produced.is_set():
            time.sleep(0.05)
        enough.set()
        assert produced.wait(180), "the producer did not finish"
    finally:
        enough.set()  # also when a failure above ends the test early
        produced.wait(180)
        # Give the group consumer the time it needs to reach the end, then stop everyone.
        deadline = time.monotonic() + 60
        while len(group_values) < acks.count and time.monotonic() < deadline and not failures:
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(60)
    print(f"acknowledged {acks.count}, group consumed {len(group_values)}, watcher saw {len(seen)}, "
          f"new leaders reached after {[round(r, 2) for r in reconnects]} s")
    assert not failures, failures
    assert not acks.errors, f"{len(acks.errors)} delivery errors, e.g. {acks.errors[:3]}"
    assert sent and acks.count == sent[0], f"{acks.count} of {sent} records acknowledged"
    assert max(reconnects) <= RECONNECT_LIMIT_S, f"producer reached new leaders after {reconnects} s"

    log = read_back(cluster.bootstrap, topic, PARTITIONS)
    for p in range(PARTITIONS):
        offsets = [o for o, _ in log[p]]
        assert offsets == sorted(set(offsets)), f"partition {p}: offsets out of order or repeated"
        at = dict(log[p])
        acked = sorted(acks.by_partition[p])
        missing = [(o, v) for o, v, _ in acked if at.get(o) != v]
        assert not missing, f"partition {p}: {len(missing)} acknowledged records not where acknowledged, e.g. {missing[:3]}"
        # Exactly once: an idempotent producer's retries never land twice.
        values = [v for _, v in log[p]]
        assert len(values) == len(set(values)), f"partition {p}: a record written twice"
    lost = [(k, v) for k, v in seen.items() if dict(log[k[0]]).get(k[1]) != v]
    assert not lost, f"{len(lost)} records a consumer saw are gone, e.g. {lost[:3]}"
    every_value = {v for p in range(PARTITIONS) for _, v in log[p]}
    assert group_values >= {v for p in acks.by_partition.values() for _, v, _ in p}, (
        f"the group consumed {len(group_values)} of {acks.count} records; {describe(cluster.metadata(1))}")
    assert len(every_value) == sent[0]
