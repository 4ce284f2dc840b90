"""Online migration between the classic and the consumer protocol (KIP-848), with real
clients in one group: Java 4.4 consumers on `group.protocol=classic` and on `consumer`, and
librdkafka (confluent-kafka) classic members. A consumer-protocol member joining a classic
group with members turns it into a consumer group in place (online upgrade); classic members
joining a consumer group become its classic members; when the last consumer-protocol member
leaves, the group turns classic again (online downgrade). Through every change each
partition has one member, every record is read once (each Java member commits what it read
before it polls again) and commits are kept. The shared-broker tests run against Kafka 4.4 too
(`--against-kafka`).
"""

from __future__ import annotations

from clients import ck_create_topic, wait_until
from jvm import JavaMember
from test_consumer_protocol import consumer_broker, describe, java_consumed  # noqa: F401
from test_groups import Member, produce


def settled(java, others, partitions: int) -> bool:
    """Every member reports partitions, together each partition exactly once."""
    seen = []
    for m in java:
        assert not m.errors(), m.errors()
        assert m.proc.poll() is None, f"a Java member exited: {m.proc.stderr.read()[-2000:]}"
        reports = m.memberships()
        if not reports or not reports[-1]["partitions"]:
            return False
        seen.extend(reports[-1]["partitions"])
    for m in others:
        assert m.proc.poll() is None, f"{m.name} exited with {m.proc.returncode}"
        assigned, _ = m.snapshot()
        if not assigned:
            return False
        seen.extend(assigned)
    return sorted(seen) == list(range(partitions))


def all_consumed(java, others):
    return java_consumed(java) + [r for m in others for r in m.snapshot()[1]]


def group_type(bootstrap: str, group: str) -> str:
    return str(describe(bootstrap, group).type).rsplit(".", 1)[-1]


def read_once(java, written: set, what: str):
    """Every record written was read, none twice (the Java members commit synchronously)."""
    wait_until(lambda: set(java_consumed(java)) >= written, what, timeout=90)
    got = java_consumed(java)
    assert len(got) == len(set(got)), f"records read twice: {len(got) - len(set(got))}"


def test_java_classic_group_upgrades_online_when_a_consumer_member_joins(broker, topic_name):
    """Two classic Java members share a topic; a consumer-protocol member joins: the group
    becomes a consumer group keeping both classic members, the partitions are shared by all
    three (handed over only once given up), and when it leaves the group turns classic
    again and the classic members take its partitions back. Nothing is read twice or
    missed."""
    bootstrap = broker.bootstrap
    topic = topic_name()
    ck_create_topic(bootstrap, topic, 6)
    group = f"{topic}-group"
    classic = [JavaMember("kafka-4", bootstrap, topic=topic, group=group, group_protocol="classic")
               for _ in range(2)]
    modern = None
    try:
        wait_until(lambda: settled(classic, [], 6), "two classic members to share 6 partitions", timeout=90)
        assert group_type(bootstrap, group) == "CLASSIC"
        written = produce(bootstrap, topic, "classic", 300)
        read_once(classic, written, "the records before the upgrade")

        modern = JavaMember("kafka-4", bootstrap, topic=topic, group=group, group_protocol="consumer")
        members = classic + [modern]
        wait_until(lambda: group_type(bootstrap, group) == "CONSUMER", "the group to become a consumer group")
        wait_until(lambda: settled(members, [], 6), "three members of both protocols to share 6 partitions",
                   timeout=120)
        d = describe(bootstrap, group)
        assert len(d.members) == 3, d
        more = produce(bootstrap, topic, "mixed", 300)
        read_once(members, written | more, "the records after the upgrade")

        modern.stop()
        wait_until(lambda: group_type(bootstrap, group) == "CLASSIC", "the group to turn classic again")
        wait_until(lambda: settled(classic, [], 6), "the classic members to take every partition back",
                   timeout=120)
        last = produce(bootstrap, topic, "after-leave", 300)
        read_once(members, written | more | last, "the records after the consumer member left")
    finally:
        for m in classic + ([modern] if modern else []):
            m.stop()


def test_classic_members_join_a_consumer_group(broker, topic_name, tmp_path):
    """A consumer-protocol Java member first; a classic Java member and a classic librdkafka
    member join the consumer group as classic members (not INCONSISTENT_GROUP_PROTOCOL);
    the three share the partitions and every record is read once. When the consumer member
    leaves, the group turns classic with the two others, which share every partition."""
    bootstrap = broker.bootstrap
    topic = topic_name()
    ck_create_topic(bootstrap, topic, 6)
    group = f"{topic}-group"
    modern = JavaMember("kafka-4", bootstrap, topic=topic, group=group, group_protocol="consumer")
    java, others = [modern], []
    try:
        wait_until(lambda: settled(java, [], 6), "the consumer member to own every partition", timeout=90)
        written = produce(bootstrap, topic, "consumer", 200)
        wait_until(lambda: set(java_consumed(java)) >= written, "the records before the others join")

        java.append(JavaMember("kafka-4", bootstrap, topic=topic, group=group, group_protocol="classic"))
        others.append(Member("confluent", bootstrap, group, topic, tmp_path, "confluent-classic"))
        wait_until(lambda: settled(java, others, 6), "three members of both protocols to share 6 partitions",
                   timeout=120)
        assert group_type(bootstrap, group) == "CONSUMER"
        assert len(describe(bootstrap, group).members) == 3
        more = produce(bootstrap, topic, "mixed", 300)
        wait_until(lambda: set(all_consumed(java, others)) >= written | more, "every record", timeout=90)
        got = java_consumed(java)
        assert len(got) == len(set(got)), "the Java members read records twice"

        modern.stop()
        rest = java[1:]
        wait_until(lambda: group_type(bootstrap, group) == "CLASSIC", "the group to turn classic again")
        wait_until(lambda: settled(rest, others, 6), "the classic members to share every partition",
                   timeout=120)
        last = produce(bootstrap, topic, "classic-again", 300)
        wait_until(lambda: set(all_consumed(rest, others)) >= last, "the records after the downgrade",
                   timeout=90)
        got = java_consumed(java)
        assert len(got) == len(set(got)), "the Java members read records twice"
    finally:
        for m in java:
            m.stop()
        for m in others:
            m.stop()


def test_a_mixed_group_carries_on_across_a_broker_restart(consumer_broker, topic_name):  # noqa: F811
    """The classic members' protocol metadata is kept in the consumer group's records: after
    a restart the coordinator still answers their heartbeats and commits, and the group
    keeps reading every record once."""
    bootstrap = consumer_broker.bootstrap
    topic = topic_name()
    ck_create_topic(bootstrap, topic, 4)
    group = f"{topic}-group"
    classic = JavaMember("kafka-4", bootstrap, topic=topic, group=group, group_protocol="classic")
    members = [classic]
    try:
        wait_until(lambda: settled(members, [], 4), "the classic member to own every partition", timeout=90)
        members.append(JavaMember("kafka-4", bootstrap, topic=topic, group=group, group_protocol="consumer"))
        wait_until(lambda: settled(members, [], 4), "both members to share the partitions", timeout=120)
        written = produce(bootstrap, topic, "before", 200)
        read_once(members, written, "the records before the restart")

        consumer_broker.restart()
        d = wait_until(lambda: (lambda d: len(d.members) == 2 and d)(describe(bootstrap, group)),
                       "the restarted coordinator to know both members")
        assert str(d.type).endswith("CONSUMER"), d
        more = produce(bootstrap, topic, "after", 200)
        read_once(members, written | more, "the records after the restart")
        wait_until(lambda: settled(members, [], 4), "both members still sharing the partitions")
    finally:
        for m in members:
            m.stop()

