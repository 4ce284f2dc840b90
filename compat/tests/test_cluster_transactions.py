"""Transactions across a three-node samsa cluster, driven by confluent-kafka (librdkafka).

A topic of 6 partitions, replication factor 3, led by every broker, so each transaction's
markers go to all three (appended by the coordinator for the partitions it leads, sent with
WriteTxnMarkers to the others):

- committed and aborted transactions: a read_committed consumer sees exactly the committed
  records, a read_uncommitted one the aborted ones too;
- consume-transform-produce with send_offsets_to_transaction to a group coordinated by
  another broker than the transaction: the group's offsets move on commit only;
- the transaction coordinator's broker SIGKILLed between transactions, and again right
  after the producer called commit: the producer (re-created with the same transactional.id
  when its own instance gave up) carries on, no committed record is lost, every transaction
  is seen whole or not at all by read_committed, and none that was aborted is seen.
"""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import KafkaException, Producer

from clients import WAIT_S
from cluster import SamsaCluster, create_replicated
from eos_clients import GroupOffsets, by_partition, ck_consume_transform_produce, ck_read
from marks import EXTERNAL

pytestmark = pytest.mark.skipif(EXTERNAL, reason="starts a samsa cluster of its own")

PARTITIONS = 6
PER_PARTITION = 5
TXN_STATE = "__transaction_state"
OFFSETS = "__consumer_offsets"


def java_hash(s: str) -> int:
    """Java's String.hashCode, over UTF-16 code units."""
    b, h = s.encode("utf-16-be"), 0
    for i in range(0, len(b), 2):
        h = (31 * h + (b[i] << 8 | b[i + 1])) & 0xFFFFFFFF
    return h


def partition_for(key: str, partitions: int) -> int:
    """Kafka's abs(key.hashCode()) % partitions, which places groups and transactional ids."""
    return (java_hash(key) & 0x7FFFFFFF) % partitions


def coordinator(cluster: SamsaCluster, internal: str, key: str, via: int) -> int:
    """The leader of `key`'s partition of an internal topic (once it has one): its coordinator."""
    m = cluster.await_metadata([via], f"{internal} led", lambda m: internal in m.topics and m.topics[internal].error is None
                               and all(q.leader > 0 for q in m.topics[internal].partitions.values()))
    partitions = m.topics[internal].partitions
    return partitions[partition_for(key, len(partitions))].leader


def producer(cluster: SamsaCluster, txn_id: str) -> Producer:
    p = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": txn_id, "acks": "all",
                  "linger.ms": 5, "transaction.timeout.ms": 60000, "message.timeout.ms": 60000,
                  "request.timeout.ms": 5000, "topic.metadata.refresh.interval.ms": 1000})
    p.init_transactions(WAIT_S)
    return p


def values(txn: int) -> dict[int, list[bytes]]:
    return {p: [f"t{txn}-p{p}-{i}".encode() for i in range(PER_PARTITION)] for p in range(PARTITIONS)}


def write(p: Producer, topic: str, txn: int) -> None:
    """Transaction `txn`'s records to every partition, acknowledged (so an abort leaves them
    in the log, where read_uncommitted must see them)."""
    failed = []
    for partition, vs in values(txn).items():
        for v in vs:
            p.produce(topic, value=v, partition=partition, on_delivery=lambda err, _m: err and failed.append(err))
    assert p.flush(WAIT_S) == 0, f"txn {txn}: records not acknowledged"
    assert not failed, f"txn {txn}: delivery errors {failed[:3]}"


def run_txn(p: Producer, topic: str, txn: int, commit: bool) -> None:
    p.begin_transaction()
    write(p, topic, txn)
    if commit:
        p.commit_transaction(WAIT_S)
    else:
        p.abort_transaction(WAIT_S)


def committed_view(cluster: SamsaCluster, topic: str, expect: int) -> dict[int, list[bytes]]:
    return by_partition((r.partition, r.value) for r in ck_read(cluster.bootstrap, topic, PARTITIONS, "read_committed", expect))


def expected(txns: list[int]) -> dict[int, list[bytes]]:
    want: dict[int, list[bytes]] = {}
    for txn in txns:
        for partition, vs in values(txn).items():
            want.setdefault(partition, []).extend(vs)
    return want


def test_markers_reach_every_broker(cluster, topic_name):
    topic = topic_name()
    create_replicated(cluster, topic, PARTITIONS)
    leaders = cluster.leaders(topic, 1)
    assert set(leaders.values()) == set(cluster.ids()), f"the partitions are not led by every broker: {leaders}"

    p = producer(cluster, topic_name("-txn"))
    plan = {0: True, 1: False, 2: True, 3: True, 4: False, 5: True}
    for txn, commit in plan.items():
        run_txn(p, topic, txn, commit)
    committed = [t for t, c in plan.items() if c]

    assert committed_view(cluster, topic, len(committed) * PARTITIONS * PER_PARTITION) == expected(committed)
    every = ck_read(cluster.bootstrap, topic, PARTITIONS, "read_uncommitted", len(plan) * PARTITIONS * PER_PARTITION)
    assert by_partition((r.partition, r.value) for r in every) == expected(list(plan)), \
        "read_uncommitted is not every record of the committed and the aborted transactions"


def test_offsets_committed_to_a_group_coordinated_elsewhere(cluster, topic_name):
    src, dst, txn_id = topic_name("-in"), topic_name("-out"), topic_name("-txn")
    create_replicated(cluster, src, PARTITIONS)
    create_replicated(cluster, dst, PARTITIONS)
    for partition, vs in values(0).items():
        feed = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
        for v in vs:
            feed.produce(src, value=v, partition=partition)
        assert feed.flush(WAIT_S) == 0
    p = producer(cluster, txn_id)
    txn_coordinator = coordinator(cluster, TXN_STATE, txn_id, 1)
    # A group whose offsets partition another broker leads (the offsets topic exists once
    # a group has been looked up).
    probe = GroupOffsets(cluster.bootstrap, topic_name("-probe"), src, PARTITIONS)
    probe.get()
    probe.close()
    group = next(g for g in (topic_name(f"-group{i}") for i in range(100))
                 if coordinator(cluster, OFFSETS, g, 1) != txn_coordinator)
    print(f"transaction coordinator {txn_coordinator}, group coordinator {coordinator(cluster, OFFSETS, group, 1)}")

    run = ck_consume_transform_produce(cluster.bootstrap, p, src, dst, group, PARTITIONS, PARTITIONS * PER_PARTITION,
                                       10, {1}, lambda v, txn: v.upper() + f"|{txn}".encode())
    assert run.settled == {partition: PER_PARTITION for partition in range(PARTITIONS)}
    got = ck_read(cluster.bootstrap, dst, PARTITIONS, "read_committed", len(run.committed))
    assert by_partition((r.partition, r.value) for r in got) == by_partition((q, v) for q, v, _ in run.committed)
    every = ck_read(cluster.bootstrap, dst, PARTITIONS, "read_uncommitted", len(run.committed) + len(run.aborted))
    assert sorted(r.value for r in every) == sorted(v for _, v, _ in run.committed + run.aborted)


def await_led_by(cluster: SamsaCluster, topics: list[str], live: list[int]) -> None:
    def led(m) -> bool:
        return set(m.brokers) == set(live) and all(
            m.topics.get(t) is not None and all(q.leader in live for q in m.topics[t].partitions.values()) for t in topics)
    cluster.await_metadata(live, f"every partition of {topics} led by a live broker", led)


class Outcomes:
    """What became of each transaction (each its own number, so retries are told apart):
    committed, aborted, or unknown (its commit failed in a way that leaves the end to the
    coordinator: it must then be seen whole or not at all)."""

    def __init__(self):
        self.next = 0
        self.committed: list[int] = []
        self.aborted: list[int] = []
        self.unknown: list[int] = []

    def attempt(self, cluster: SamsaCluster, p: Producer, txn_id: str, topic: str, commit: bool) -> tuple[Producer, bool]:
        """One transaction; returns the producer to go on with and whether it ended as asked.
        After a failure the transaction is aborted if the client says it must be, or else the
        producer is re-created with the same transactional.id (which ends what the old
        instance left open)."""
        txn, self.next = self.next, self.next + 1
        try:
            run_txn(p, topic, txn, commit)
            (self.committed if commit else self.aborted).append(txn)
            return p, True
        except KafkaException as e:
            err = e.args[0]
            print(f"transaction {txn} failed: {err}")
        if err.txn_requires_abort():
            try:
                p.abort_transaction(WAIT_S)
                self.aborted.append(txn)
                return p, not commit
            except KafkaException as again:
                print(f"abort of transaction {txn} failed: {again.args[0]}")
        # Never asked to commit, it can only end aborted.
        (self.unknown if commit else self.aborted).append(txn)
        return producer(cluster, txn_id), False

    def until_done(self, cluster: SamsaCluster, p: Producer, txn_id: str, topic: str, commit: bool) -> Producer:
        deadline = time.monotonic() + 2 * WAIT_S
        while True:
            assert time.monotonic() < deadline, "the producer never got going again"
            p, done = self.attempt(cluster, p, txn_id, topic, commit)
            if done:
                return p

    def check(self, seen: dict[int, list[bytes]]) -> None:
        counts: dict[int, int] = {}
        for vs in seen.values():
            for v in vs:
                txn = int(v.split(b"-")[0][1:])
                counts[txn] = counts.get(txn, 0) + 1
        whole = PARTITIONS * PER_PARTITION
        for txn in self.committed:
            assert counts.get(txn) == whole, f"committed transaction {txn}: {counts.get(txn, 0)} of {whole} records"
        for txn in self.aborted:
            assert txn not in counts, f"aborted transaction {txn} is visible"
        for txn in self.unknown:
            assert counts.get(txn, 0) in (0, whole), f"transaction {txn} seen in part: {counts[txn]} of {whole}"
        assert set(counts) <= set(self.committed + self.unknown), f"records of no transaction: {counts}"
        for partition, vs in seen.items():
            order = [int(v.split(b"-")[0][1:]) for v in vs]
            assert order == sorted(order), f"partition {partition}: transactions out of order"


def test_the_transaction_coordinator_killed(cluster, topic_name):
    topic, txn_id = topic_name(), topic_name("-txn")
    create_replicated(cluster, topic, PARTITIONS)
    txns = Outcomes()
    p = txns.until_done(cluster, producer(cluster, txn_id), txn_id, topic, True)

    # Between transactions.
    first = coordinator(cluster, TXN_STATE, txn_id, 1)
    cluster.nodes[first].kill()
    live = [k for k in cluster.ids() if k != first]
    await_led_by(cluster, [topic, TXN_STATE], live)
    assert coordinator(cluster, TXN_STATE, txn_id, live[0]) != first
    p = txns.until_done(cluster, p, txn_id, topic, True)
    p = txns.until_done(cluster, p, txn_id, topic, False)
    p = txns.until_done(cluster, p, txn_id, topic, True)
    cluster.nodes[first].start()
    cluster.await_metadata(cluster.ids(), "every broker back in every ISR", lambda m: set(m.brokers) == set(cluster.ids())
                           and all(len(q.isrs) == 3 for t in (topic, TXN_STATE) for q in m.topics[t].partitions.values()))

    # Right after the producer called commit: the end may or may not be decided by then.
    second = coordinator(cluster, TXN_STATE, txn_id, first)
    txn, txns.next = txns.next, txns.next + 1
    p.begin_transaction()
    write(p, topic, txn)
    outcome: dict = {}

    def commit():
        try:
            p.commit_transaction(WAIT_S)
            outcome["committed"] = True
        except KafkaException as e:
            outcome["error"] = e.args[0]
    committing = threading.Thread(target=commit)
    committing.start()
    cluster.nodes[second].kill()
    committing.join(2 * WAIT_S)
    assert not committing.is_alive(), "commit_transaction never returned"
    print(f"commit with its coordinator killed: {outcome}")
    (txns.committed if outcome.get("committed") else txns.unknown).append(txn)
    live = [k for k in cluster.ids() if k != second]
    await_led_by(cluster, [topic, TXN_STATE], live)
    if not outcome.get("committed"):
        p = producer(cluster, txn_id)
    p = txns.until_done(cluster, p, txn_id, topic, True)

    expect = len(txns.committed) * PARTITIONS * PER_PARTITION
    seen = committed_view(cluster, topic, expect)
    print(f"committed {txns.committed}, aborted {txns.aborted}, unknown {txns.unknown}")
    txns.check(seen)
    written = {v for t in range(txns.next) for vs in values(t).values() for v in vs}
    everything = ck_read(cluster.bootstrap, topic, PARTITIONS, "read_uncommitted", len(written))
    assert {r.value for r in everything} == written, "read_uncommitted is not every record written"
