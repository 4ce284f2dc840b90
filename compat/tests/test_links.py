"""Cluster links (issue 22, part 2): a destination samsa mirrors topics of a source cluster,
samsa or Apache Kafka 4.4, at the same offsets.

Each test starts its own brokers: a source, then a destination whose `[[link]]` points at
it. A producer writes to the source (plain, keyed, headed, timestamped records, and
committed and aborted transactions) while the link runs; the destination's partitions are
then read back and compared with the source's record by record and offset by offset, for
both isolation levels, with their log start and high watermarks. The samsa-to-samsa test
also restarts the destination mid-way, grows the source topic, refuses a produce to the
mirror, copies a consumer group's committed offsets, promotes the topic with
`samsa link promote` and resumes the group there.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                  AdminClient, ConfigResource, NewPartitions, NewTopic,
                                  ResourcePatternType, ResourceType)

from clients import WAIT_S, wait_until
from jvm import run_tool
from conftest import SamsaBroker, free_port
from marks import EXTERNAL

pytestmark = pytest.mark.skipif(EXTERNAL, reason="starts source and destination brokers of its own")

LINK = "east"


def destination(d: Path, source: str) -> SamsaBroker:
    config = d / "samsa.toml"
    config.write_text(
        f'[[link]]\nname = "{LINK}"\nbootstrap = "{source}"\ntopics = ["links-*"]\n'
        f'groups = ["links-*"]\nsync_interval_ms = 300\n')
    return SamsaBroker(d / "data", config=config).start()


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, topic: str, partitions: int, **configs) -> None:
    client = admin(bootstrap)   # kept: its futures fail once it is gone
    futures = client.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=configs)])
    futures[topic].result(timeout=WAIT_S)


def producer(bootstrap: str, **extra) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **extra})


def produce(bootstrap: str, topic: str, tag: str, count: int, partitions: int, flush_each=False):
    p = producer(bootstrap)
    errors = []
    for i in range(count):
        p.produce(topic, key=f"{tag}-k{i}".encode(), value=f"{tag}-v{i}".encode() * (1 + i % 7),
                  partition=i % partitions, timestamp=1_700_000_000_000 + i,
                  headers=[("tag", tag.encode()), ("i", str(i).encode())],
                  on_delivery=lambda err, _m: err and errors.append(err))
        if flush_each:
            p.flush(WAIT_S)
    assert p.flush(WAIT_S) == 0 and not errors, errors[:3]


def transactions(bootstrap: str, topic: str, partition: int) -> None:
    """One committed and one aborted transaction, both written to the log."""
    p = producer(bootstrap, **{"transactional.id": f"links-{topic}"})
    p.init_transactions(WAIT_S)
    for outcome in ("commit", "abort"):
        p.begin_transaction()
        for i in range(5):
            p.produce(topic, key=b"txn", value=f"{outcome}-{i}".encode(), partition=partition)
        assert p.flush(WAIT_S) == 0   # in the log before the abort marker
        if outcome == "commit":
            p.commit_transaction(WAIT_S)
        else:
            p.abort_transaction(WAIT_S)


def watermarks(bootstrap: str, topic: str, partitions: int) -> list:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "links-watermarks"})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(partitions)]
    finally:
        c.close()


def partition_count(bootstrap: str, topic: str) -> int:
    # All topics: asking for this one alone would create it (auto-creation) before the link.
    md = admin(bootstrap).list_topics(timeout=10).topics.get(topic)
    return 0 if md is None or md.error is not None else len(md.partitions)


def dump(bootstrap: str, topic: str, partitions: int, isolation: str) -> dict:
    """Every record of every partition up to its end: (offset, timestamp, key, value, headers)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "links-dump", "enable.auto.commit": False,
                  "enable.partition.eof": True, "isolation.level": isolation})
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out = {p: [] for p in range(partitions)}
        pending = set(range(partitions))
        wait_until(lambda: _drain(c, out, pending), f"{topic} read to its end on {bootstrap}")
        return out
    finally:
        c.close()


def _drain(c: Consumer, out: dict, pending: set) -> bool:
    for m in c.consume(num_messages=1000, timeout=0.2):
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                pending.discard(m.partition())
                continue
            raise AssertionError(m.error())
        out[m.partition()].append((m.offset(), m.timestamp(), m.key(), m.value(), m.headers()))
    return not pending


def wait_mirrored(source: str, dest: str, topic: str, partitions: int) -> list:
    want = watermarks(source, topic, partitions)
    wait_until(lambda: partition_count(dest, topic) == partitions and
               watermarks(dest, topic, partitions) == want,
               f"{topic} mirrored up to the source's {want}")
    return want


def assert_same_records(source: str, dest: str, topic: str, partitions: int) -> None:
    for isolation in ("read_uncommitted", "read_committed"):
        theirs = dump(source, topic, partitions, isolation)
        ours = dump(dest, topic, partitions, isolation)
        for p in range(partitions):
            assert ours[p] == theirs[p], (
                f"{topic}-{p} ({isolation}): the mirror holds {len(ours[p])} records, the source "
                f"{len(theirs[p])}; first difference at "
                f"{next((a, b) for a, b in zip(ours[p] + [None] * 9, theirs[p] + [None] * 9) if a != b)}")
    aborted = {r[3] for rs in dump(dest, topic, partitions, "read_uncommitted").values() for r in rs}
    committed = {r[3] for rs in dump(dest, topic, partitions, "read_committed").values() for r in rs}
    assert b"abort-0" in aborted and b"abort-0" not in committed and b"commit-0" in committed


def topic_configs(bootstrap: str, topic: str) -> dict:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    client = admin(bootstrap)
    entries = client.describe_configs([resource])[resource].result(timeout=WAIT_S)
    return {name: entry.value for name, entry in entries.items()}


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return [tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(partitions)],
                                                timeout=10)]
    finally:
        c.close()


def samsa_link(*args: str) -> subprocess.CompletedProcess:
    binary = SamsaBroker(Path("/nonexistent")).binary
    return subprocess.run([str(binary), "link", *args], capture_output=True, text=True, timeout=WAIT_S)


def test_samsa_to_samsa(tmp_path):
    source = SamsaBroker(tmp_path / "source" / "data").start()
    (tmp_path / "dest").mkdir()
    dest = destination(tmp_path / "dest", source.bootstrap)
    try:
        topic, partitions = "links-orders", 3
        create_topic(source.bootstrap, topic, partitions, **{"retention.ms": "123456789"})
        # One batch of ten records on partition 0, then the source's log start moved into it:
        # the mirror must start where the source's log does, inside that batch.
        p = producer(source.bootstrap)
        for i in range(10):
            p.produce(topic, value=f"first-{i}".encode(), partition=0)
        assert p.flush(WAIT_S) == 0
        source_admin = admin(source.bootstrap)
        deleted = source_admin.delete_records([TopicPartition(topic, 0, 4)])
        deleted[TopicPartition(topic, 0, 4)].result(timeout=WAIT_S)

        # A producer writes while the link runs and the destination restarts.
        writer = threading.Thread(target=produce, args=(source.bootstrap, topic, "live", 600, partitions, True))
        writer.start()
        wait_until(lambda: partition_count(dest.bootstrap, topic) == partitions
                   and watermarks(dest.bootstrap, topic, 1)[0][1] > 50, "the mirror under way")
        dest.restart()
        writer.join(WAIT_S)
        transactions(source.bootstrap, topic, 1)
        produce(source.bootstrap, topic, "after", 30, partitions)

        want = wait_mirrored(source.bootstrap, dest.bootstrap, topic, partitions)
        assert want[0][0] == 4, want
        assert_same_records(source.bootstrap, dest.bootstrap, topic, partitions)
        configs = topic_configs(dest.bootstrap, topic)
        assert configs["retention.ms"] == "123456789" and configs["samsa.link.name"] == LINK
        metrics = urllib.request.urlopen(f"http://{dest.host}:{dest.metrics_port}/metrics", timeout=10).read()
        assert f'samsa_link_partition_lag{{link="{LINK}",topic="{topic}",partition="0"}} 0'.encode() in metrics
        status = samsa_link("status", "--bootstrap", dest.bootstrap)
        assert status.returncode == 0 and topic in status.stdout and LINK in status.stdout, status

        # Partitions added at the source follow.
        source_admin.create_partitions([NewPartitions(topic, 4)])[topic].result(timeout=WAIT_S)
        wait_until(lambda: partition_count(dest.bootstrap, topic) == 4, "the new partition mirrored")

        # A mirror is read-only: refused at once, not retried.
        errors = []
        refused = producer(dest.bootstrap)
        refused.produce(topic, value=b"nope", partition=0, on_delivery=lambda err, _m: errors.append(err))
        refused.flush(WAIT_S)
        assert [e.code() for e in errors] == [KafkaError.INVALID_REQUEST], errors

        # A group's committed offsets follow; after promotion it resumes there.
        group = "links-group"
        c = Consumer({"bootstrap.servers": source.bootstrap, "group.id": group})
        at = [TopicPartition(topic, 0, 100), TopicPartition(topic, 1, 150), TopicPartition(topic, 2, 7)]
        c.commit(offsets=at, asynchronous=False)
        c.close()
        wait_until(lambda: committed(dest.bootstrap, group, topic, 3) == [100, 150, 7],
                   "the group's offsets copied")
        promoted = samsa_link("promote", "--bootstrap", dest.bootstrap, "--topic", topic)
        assert promoted.returncode == 0, promoted
        wait_until(lambda: "samsa.link.name" not in topic_configs(dest.bootstrap, topic)
                   or not topic_configs(dest.bootstrap, topic)["samsa.link.name"], "the mirror mark gone")
        ends = [end for _, end in watermarks(dest.bootstrap, topic, 2)]
        # An idempotent producer, given its producer id here: not one of the source's, whose
        # state came with the batches (partition 1 holds the source's transactional one).
        delivered = []
        writable = producer(dest.bootstrap, **{"enable.idempotence": True})
        for p in (0, 1):
            writable.produce(topic, value=b"after-promote", partition=p,
                             on_delivery=lambda err, m: delivered.append((err, m.partition(), m.offset())))
        assert writable.flush(WAIT_S) == 0
        assert sorted(delivered) == [(None, 0, ends[0]), (None, 1, ends[1])], delivered
        resumed = Consumer({"bootstrap.servers": dest.bootstrap, "group.id": group, "enable.auto.commit": False})
        resumed.subscribe([topic])
        first = {}

        def first_of_each():
            for m in resumed.consume(num_messages=500, timeout=0.5):
                if not m.error():
                    first.setdefault(m.partition(), m.offset())
            return all(p in first for p in range(3))
        wait_until(first_of_each, "the failed-over group consuming every partition")
        resumed.close()
        assert [first[p] for p in range(3)] == [100, 150, 7], first
        # The Java consumer checks a committed offset's leader epoch against the broker
        # (KIP-320) before it fetches from it; the offsets copied from the source must not
        # make it rewind on a destination whose own leader epochs moved (it restarted).
        held = dump(dest.bootstrap, topic, 3, "read_uncommitted")
        want = {p: [r[0] for r in held[p] if r[0] >= at[p].offset] for p in range(3)}
        out = run_tool("kafka-console-consumer", "--bootstrap-server", dest.bootstrap, "--topic", topic,
                       "--group", group, "--max-messages", str(sum(len(o) for o in want.values())),
                       "--timeout-ms", "30000", "--property", "print.partition=true",
                       "--property", "print.offset=true", "--property", "print.value=false", check=False)
        got = {p: [] for p in range(4)}
        for partition, offset in re.findall(r"Partition:(\d+)\s+Offset:(\d+)", out.stdout):
            got[int(partition)].append(int(offset))
        assert {p: got[p] for p in range(3)} == want and not got[3], (got, out.stderr[-2000:])
    finally:
        dest.stop_clean()
        source.stop_clean()


def secure_source(d: Path, user: str, password: str) -> tuple:
    """A source with a SASL_SSL listener (SCRAM-SHA-512) beside its plaintext one; returns
    the broker, that listener's address and the CA file."""
    from test_security import make_certs, scram_user_block
    d.mkdir()
    certs = make_certs(d)
    port = free_port()
    config = d / "samsa.toml"
    # The plaintext listener's clients (the test's) are ANONYMOUS; ACLs need an authorizer.
    config.write_text(
        f'authorizer = true\nsuper_users = ["User:ANONYMOUS", "User:{user}"]\n'
        f'[[listener]]\nname = "sasl_ssl"\naddress = "127.0.0.1:{port}"\nprotocol = "SASL_SSL"\n'
        f'advertised = "localhost:{port}"\n'
        f'[tls]\ncert_file = "{certs["cert"]}"\nkey_file = "{certs["key"]}"\n'
        f'[sasl]\nmechanisms = ["SCRAM-SHA-512"]\n{scram_user_block(user, "SCRAM-SHA-512", password)}')
    return SamsaBroker(d / "data", config=config).start(), f"localhost:{port}", certs["ca"]


def test_secure_source(tmp_path):
    """The link reaches a source over SASL_SSL with SCRAM-SHA-512. Its password sits in a file
    that first holds a wrong one: the link logs why it is refused and keeps trying, and once
    the file is right it mirrors the topic record by record. With `acls = true` the source's
    ACLs on the mirror topic and the linked groups follow, removals too; others stay out."""
    source, endpoint, ca = secure_source(tmp_path / "source", "linker", "link-Secr3t")
    d = tmp_path / "dest"
    d.mkdir()
    password = d / "link.password"
    password.write_text("wrong\n")
    config = d / "samsa.toml"
    config.write_text(
        'authorizer = true\nsuper_users = ["User:ANONYMOUS"]\n'
        f'[[link]]\nname = "{LINK}"\nbootstrap = "{endpoint}"\ntopics = ["links-*"]\n'
        f'groups = ["links-*"]\nacls = true\nsync_interval_ms = 300\nbackoff_ms = 200\nsecurity_protocol = "SASL_SSL"\n'
        f'ssl_ca_file = "{ca}"\nsasl_mechanism = "SCRAM-SHA-512"\nsasl_username = "linker"\n'
        f'sasl_password_file = "{password}"\n')
    dest = SamsaBroker(d / "data", config=config).start()
    try:
        topic, partitions = "links-secure", 2
        create_topic(source.bootstrap, topic, partitions)
        produce(source.bootstrap, topic, "before", 100, partitions)
        wait_until(lambda: "SASL authentication to localhost" in dest.log_path.read_text(),
                   "the refused login logged")
        assert "Invalid user credentials" in dest.log_path.read_text()
        assert dest.alive() and partition_count(dest.bootstrap, topic) == 0
        password.write_text("link-Secr3t\n")
        transactions(source.bootstrap, topic, 1)
        produce(source.bootstrap, topic, "after", 100, partitions)
        wait_mirrored(source.bootstrap, dest.bootstrap, topic, partitions)
        assert_same_records(source.bootstrap, dest.bootstrap, topic, partitions)

        on_topic = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:bob",
                              "*", AclOperation.READ, AclPermissionType.ALLOW)
        on_groups = AclBinding(ResourceType.GROUP, "links-", ResourcePatternType.PREFIXED,
                               "User:bob", "*", AclOperation.READ, AclPermissionType.ALLOW)
        elsewhere = AclBinding(ResourceType.TOPIC, "not-mirrored", ResourcePatternType.LITERAL,
                               "User:bob", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
        # Made here by hand, then at the source too: never the link's to remove.
        by_hand = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:carol",
                             "*", AclOperation.READ, AclPermissionType.ALLOW)
        dest_admin = admin(dest.bootstrap)   # kept: its futures fail once it is gone
        for future in dest_admin.create_acls([by_hand]).values():
            future.result(timeout=WAIT_S)
        source_admin = admin(source.bootstrap)
        for future in source_admin.create_acls([on_topic, on_groups, elsewhere, by_hand]).values():
            future.result(timeout=WAIT_S)
        wait_until(lambda: acls(dest.bootstrap) == {str(on_topic), str(on_groups), str(by_hand)},
                   "the source's ACLs on the mirror topic and the linked groups copied")
        # What the link created is known after a restart too.
        dest.restart()
        deleted = source_admin.delete_acls([AclBindingFilter(
            ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, None, None,
            AclOperation.ANY, AclPermissionType.ANY)])
        for future in deleted.values():
            future.result(timeout=WAIT_S)
        wait_until(lambda: acls(dest.bootstrap) == {str(on_groups), str(by_hand)},
                   "the ACL the link copied and the source removed removed here")
    finally:
        dest.stop_clean()
        source.stop_clean()


def acls(bootstrap: str) -> set:
    """Every ACL binding the broker holds, each as confluent-kafka prints it."""
    match_any = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                 AclOperation.ANY, AclPermissionType.ANY)
    client = admin(bootstrap)
    return {str(b) for b in client.describe_acls(match_any).result(timeout=WAIT_S)}


def test_source_truncation_stops_the_mirror(tmp_path):
    """A source whose log no longer holds what the mirror has (here the topic deleted and
    recreated shorter) stops that partition's mirror, loudly, with the mirror kept as it was."""
    source = SamsaBroker(tmp_path / "source" / "data").start()
    (tmp_path / "dest").mkdir()
    dest = destination(tmp_path / "dest", source.bootstrap)
    try:
        topic = "links-truncated"
        create_topic(source.bootstrap, topic, 1)
        produce(source.bootstrap, topic, "first", 100, 1)
        wait_mirrored(source.bootstrap, dest.bootstrap, topic, 1)
        client = admin(source.bootstrap)
        client.delete_topics([topic])[topic].result(timeout=WAIT_S)
        wait_until(lambda: partition_count(source.bootstrap, topic) == 0, "the source topic deleted")
        create_topic(source.bootstrap, topic, 1)
        produce(source.bootstrap, topic, "second", 10, 1)
        state = f'samsa_link_partition_state{{link="{LINK}",topic="{topic}",partition="0"}} 2'
        metrics = f"http://{dest.host}:{dest.metrics_port}/metrics"
        wait_until(lambda: state.encode() in urllib.request.urlopen(metrics, timeout=10).read(),
                   "the partition's mirror stopped")
        assert "MIRROR STOPPED" in dest.log_path.read_text()
        assert watermarks(dest.bootstrap, topic, 1) == [(0, 100)]
        assert [r[3] for r in dump(dest.bootstrap, topic, 1, "read_uncommitted")[0]][:1] == [b"first-v0"]
    finally:
        dest.stop_clean()
        source.stop_clean()


def test_kafka_to_samsa(tmp_path):
    from restartable_kafka import RestartableKafka
    kafka = RestartableKafka().start()
    try:
        topic, partitions = "links-kafka", 2
        create_topic(kafka.bootstrap, topic, partitions, **{"cleanup.policy": "delete", "retention.ms": "987654321"})
        produce(kafka.bootstrap, topic, "before", 200, partitions)
        dest = destination(tmp_path, kafka.bootstrap)
        try:
            writer = threading.Thread(target=produce, args=(kafka.bootstrap, topic, "live", 300, partitions))
            writer.start()
            transactions(kafka.bootstrap, topic, 0)
            writer.join(WAIT_S)
            wait_mirrored(kafka.bootstrap, dest.bootstrap, topic, partitions)
            assert_same_records(kafka.bootstrap, dest.bootstrap, topic, partitions)
            assert topic_configs(dest.bootstrap, topic)["retention.ms"] == "987654321"
            group = "links-kafka-group"
            c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group})
            c.commit(offsets=[TopicPartition(topic, 0, 42), TopicPartition(topic, 1, 17)], asynchronous=False)
            c.close()
            wait_until(lambda: committed(dest.bootstrap, group, topic, 2) == [42, 17],
                       "the group's offsets copied from Kafka")
        finally:
            dest.stop_clean()
    finally:
        kafka.close()


LONG = bool(os.environ.get("LINKS_LONG"))


@pytest.mark.skipif(not LONG, reason="the long form: LINKS_LONG=1 (make links-long)")
def test_source_restart_and_destination_kill(tmp_path):
    """The link carries on through a source restart and a destination killed without a
    clean shutdown, with no record lost or repeated, while a producer writes throughout."""
    source = SamsaBroker(tmp_path / "source" / "data").start()
    (tmp_path / "dest").mkdir()
    dest = destination(tmp_path / "dest", source.bootstrap)
    try:
        topic, partitions = "links-long", 4
        create_topic(source.bootstrap, topic, partitions)
        produce(source.bootstrap, topic, "before", 2000, partitions)
        wait_until(lambda: partition_count(dest.bootstrap, topic) == partitions
                   and sum(h for _, h in watermarks(dest.bootstrap, topic, partitions)) > 0,
                   "the mirror under way")
        source.restart()
        produce(source.bootstrap, topic, "after-source-restart", 2000, partitions)
        wait_until(lambda: sum(h for _, h in watermarks(dest.bootstrap, topic, partitions)) > 2000,
                   "the mirror past the source's restart")
        dest.kill()
        produce(source.bootstrap, topic, "while-dest-down", 2000, partitions)
        dest.start()
        transactions(source.bootstrap, topic, 2)
        produce(source.bootstrap, topic, "after-dest-kill", 2000, partitions)
        wait_mirrored(source.bootstrap, dest.bootstrap, topic, partitions)
        assert_same_records(source.bootstrap, dest.bootstrap, topic, partitions)
    finally:
        if dest.alive():
            dest.stop_clean()
        if source.alive():
            source.stop_clean()


@pytest.mark.skipif(not LONG, reason="the long form: LINKS_LONG=1 (make links-long)")
def test_leadership_moves_on_a_destination_cluster(tmp_path):
    """On a three-node destination the mirror partitions are replicated like any other, and
    when the broker leading one stops, the new leader mirrors it from where it is."""
    from cluster import SamsaCluster
    source = SamsaBroker(tmp_path / "source" / "data").start()
    link = (f'[[link]]\nname = "{LINK}"\nbootstrap = "{source.bootstrap}"\n'
            'topics = ["links-*"]\nsync_interval_ms = 300\n')
    dest = SamsaCluster(tmp_path / "dest", extra=link).start()
    try:
        topic, partitions = "links-moved", 3
        create_topic(source.bootstrap, topic, partitions)
        produce(source.bootstrap, topic, "before", 1500, partitions)
        wait_mirrored(source.bootstrap, dest.bootstrap, topic, partitions)
        leader = dest.leaders(topic, via=1)[0]
        dest.nodes[leader].stop()
        rest = [k for k in dest.ids() if k != leader]
        dest.await_metadata(rest, "partition 0 led elsewhere",
                            lambda m: m.topics[topic].partitions[0].leader not in (leader, -1))
        transactions(source.bootstrap, topic, 0)
        produce(source.bootstrap, topic, "after", 1500, partitions)
        wait_mirrored(source.bootstrap, dest.bootstrap, topic, partitions)
        assert_same_records(source.bootstrap, dest.bootstrap, topic, partitions)
        dest.nodes[leader].start()
    finally:
        dest.stop()
        source.stop_clean()


@pytest.mark.skipif(not LONG, reason="the long form: LINKS_LONG=1 (make links-long)")
def test_network_partition_between_source_and_destination(tmp_path):
    """Source and destination, one node each, in network namespaces of their own; the routes
    between them are cut (blackhole routes in both namespaces) while a producer writes at the
    source, then restored: the mirror waits, then catches up to the
    source offset by offset."""
    from cluster import SamsaCluster, run
    source = SamsaCluster(tmp_path / "source", size=1, netns=True, subnet_base=60, tag="ls").start()
    src = source.nodes[1]
    link = (f'[[link]]\nname = "{LINK}"\nbootstrap = "{src.bootstrap}"\ntopics = ["links-*"]\n'
            'sync_interval_ms = 300\nbackoff_ms = 200\n')
    dest = None
    try:
        dest = SamsaCluster(tmp_path / "dest", size=1, netns=True, subnet_base=61, tag="ld",
                            extra=link).start()
        dst = dest.nodes[1]
        topic, partitions = "links-partitioned", 3
        create_topic(src.bootstrap, topic, partitions)
        produce(src.bootstrap, topic, "before", 300, partitions)
        wait_mirrored(src.bootstrap, dst.bootstrap, topic, partitions)

        # Both ways: a fetch the source was holding must not answer across the cut either.
        cuts = [(("ip", "netns", "exec", dest.namespace(1), "ip", "route"), source.subnet(1)),
                (("ip", "netns", "exec", source.namespace(1), "ip", "route"), dest.subnet(1))]
        writer = threading.Thread(target=produce, args=(src.bootstrap, topic, "during", 3000, partitions, True),
                                  daemon=True)
        for route, subnet in cuts:
            run(*route, "add", "blackhole", f"{subnet}.0/24")
        try:
            writer.start()
            wait_until(lambda: sum(h for _, h in watermarks(src.bootstrap, topic, partitions)) >= 1500,
                       "the source written to during the partition")
            stalled = watermarks(dst.bootstrap, topic, partitions)
            assert sum(h for _, h in stalled) == 300, stalled
        finally:
            for route, subnet in cuts:
                run(*route, "del", "blackhole", f"{subnet}.0/24")
        writer.join(WAIT_S * 4)
        assert not writer.is_alive()
        transactions(src.bootstrap, topic, 2)
        produce(src.bootstrap, topic, "after", 300, partitions)
        wait_mirrored(src.bootstrap, dst.bootstrap, topic, partitions)
        assert_same_records(src.bootstrap, dst.bootstrap, topic, partitions)
    finally:
        if dest is not None:
            dest.stop()
        source.stop()
