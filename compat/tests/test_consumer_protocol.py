"""KIP-848 consumer groups (`group.protocol=consumer`) with real clients: members of
librdkafka (confluent-kafka) and of the Java 4.4 client join and leave, each partition is
consumed by exactly one member, commits survive consumer and broker restarts, and live
members carry on across a broker restart, or the loss of their coordinator's broker, without
a rebalance. With `group.version` downgraded to 0 (`kafka-features`) the protocol is refused,
as Kafka refuses it, and `kafka-consumer-groups --describe` shows a consumer group as it does
against Kafka.
"""

from __future__ import annotations

import time

import pytest

from clients import ck_create_topic, wait_until
from conftest import EXTERNAL, REPO, SamsaBroker
from gates import BrokerLacksApi
from jvm import JavaError, JavaMember, run_java, run_tool
from test_groups import Member, consumed, produce, run_group, split_evenly

# The coordinator's session timeout for consumer-protocol members: short, so a killed member
# is noticed quickly.
CONSUMER_SESSION_MS = 6000


def broker_config(tmp_path):
    config = tmp_path / "samsa.toml"
    base = (REPO / "etc" / "samsa.toml").read_text()
    for old, new in [
        ("group_initial_rebalance_delay_ms = 3000", "group_initial_rebalance_delay_ms = 0"),
        ("group_consumer_session_timeout_ms = 45000",
         f"group_consumer_session_timeout_ms = {CONSUMER_SESSION_MS}"),
        ("group_consumer_heartbeat_interval_ms = 5000", "group_consumer_heartbeat_interval_ms = 500"),
    ]:
        assert old in base, old
        base = base.replace(old, new)
    config.write_text(base)
    return config


@pytest.fixture
def consumer_broker(tmp_path):
    """A samsa of the test's own serving consumer-protocol groups."""
    if EXTERNAL:
        pytest.skip("needs a broker process the suite owns (COMPAT_BOOTSTRAP is set)")
    b = SamsaBroker(tmp_path / "data", config=broker_config(tmp_path)).start()
    try:
        yield b
    finally:
        if b.alive():
            b.stop_clean()


def describe(bootstrap: str, group: str):
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.describe_consumer_groups([group])[group].result(timeout=30)


def test_confluent_consumer_protocol_splits_fails_over_and_grows(consumer_broker, topic_name, tmp_path):
    bootstrap = consumer_broker.bootstrap
    topic = topic_name()
    ck_create_topic(bootstrap, topic, 6)
    group, members, written = run_group("confluent-consumer", bootstrap, topic, tmp_path, 3, 6, 6_000)
    try:
        # ConsumerGroupDescribe: a consumer group, settled once every member has acknowledged.
        d = wait_until(lambda: (lambda d: str(d.state).endswith("STABLE") and d)(describe(bootstrap, group)),
                       "the group to be Stable")
        assert str(d.type).endswith("CONSUMER") and len(d.members) == 3, d

        victim, survivors = members[0], members[1:]
        assert victim.snapshot()[0], "the victim had partitions"
        victim.kill()  # no leave heartbeat: only the session timeout can tell the coordinator
        wait_until(lambda: sorted(p for m in survivors for p in m.snapshot()[0]) == list(range(6)),
                   "the survivors to take over every partition", timeout=CONSUMER_SESSION_MS / 1000 + 20)
        more = produce(bootstrap, topic, "after-kill", 1_000)
        wait_until(lambda: set(consumed(members)) >= written | more, "every record, old and new, consumed")

        newcomer = Member("confluent-consumer", bootstrap, group, topic, tmp_path, "newcomer")
        members.append(newcomer)
        wait_until(lambda: bool(newcomer.snapshot()[0]) and split_evenly(members[1:], 6),
                   "the newcomer to get partitions")
        # A member that closes leaves at once (epoch -1): the others take its partitions
        # well within the session timeout.
        leaving = members[1]
        left_at = time.monotonic()
        leaving.stop()
        rest = members[2:]
        wait_until(lambda: split_evenly(rest, 6), "the others to take the partitions of the one that left")
        assert time.monotonic() - left_at < CONSUMER_SESSION_MS / 1000, "leaving waited for the session timeout"
    finally:
        for m in members:
            m.stop()


def test_confluent_consumer_protocol_resumes_at_commits_after_restarts(consumer_broker, topic_name, tmp_path):
    bootstrap = consumer_broker.bootstrap
    topic = topic_name()
    ck_create_topic(bootstrap, topic, 4)
    group, members, written = run_group("confluent-consumer", bootstrap, topic, tmp_path, 2, 4, 2_000)
    # Auto-commits every 200 ms: let the last ones land, then stop the consumers.
    time.sleep(1)
    for m in members:
        m.stop()
    consumer_broker.restart()
    more = produce(bootstrap, topic, "after-restart", 400)
    again = [Member("confluent-consumer", bootstrap, group, topic, tmp_path, f"again-{i}") for i in range(2)]
    try:
        wait_until(lambda: set(consumed(again)) >= more, "the records produced after the restart")
        # Resumed at the commits: nothing from before the stop is read again.
        assert not set(consumed(again)) & written, "records before the commit were read again"
    finally:
        for m in again:
            m.stop()


def test_java_consumer_protocol_commits_and_resumes(consumer_broker, topic_name):
    """The Java 4.4 client with group.protocol=consumer reads everything and commits; a
    second member of the group resumes from the commit and reads only what came after."""
    count = 300
    ev = run_java("kafka-4", "group-consume", consumer_broker.bootstrap, topic=topic_name(),
                  group=topic_name("-g"), count=count, group_protocol="consumer")
    committed = {e["phase"]: e for e in ev if e["ev"] == "committed"}
    assert committed[1]["count"] == count and committed[2]["count"] == 3, committed
    assert sum(committed[2]["offsets"].values()) == count + 3, committed


def test_with_group_version_0_consumer_protocol_clients_are_refused(consumer_broker, topic_name):
    """`kafka-features downgrade --feature group.version=0` turns the protocol off, as in
    Kafka: the Java client's group fails on UNSUPPORTED_VERSION; upgraded again, it works."""
    bootstrap = consumer_broker.bootstrap
    run_tool("kafka-features", "--bootstrap-server", bootstrap, "downgrade", "--feature", "group.version=0")
    with pytest.raises((BrokerLacksApi, JavaError), match="UnsupportedVersion|does not support"):
        run_java("kafka-4", "group-consume", bootstrap, topic=topic_name(),
                 group=topic_name("-g"), count=10, group_protocol="consumer")
    run_tool("kafka-features", "--bootstrap-server", bootstrap, "upgrade", "--feature", "group.version=1")
    ev = run_java("kafka-4", "group-consume", bootstrap, topic=topic_name("-again"),
                  group=topic_name("-g-again"), count=10, group_protocol="consumer")
    assert [e["count"] for e in ev if e["ev"] == "committed"] == [10, 3], ev


def java_members_split(members, partitions: int):
    """Each Java member reports a non-empty assignment, together every partition once."""
    seen = []
    for m in members:
        assert not m.errors(), m.errors()
        assert m.proc.poll() is None, f"a member exited with {m.proc.returncode}: {m.proc.stderr.read()[-2000:]}"
        reports = m.memberships()
        if not reports or not reports[-1]["partitions"]:
            return False
        seen.extend(reports[-1]["partitions"])
    return sorted(seen) == list(range(partitions))


def java_consumed(members):
    return [r for m in members for r in m.records()]


def test_java_consumer_protocol_members_carry_on_across_a_broker_restart(consumer_broker, topic_name):
    """The group's state is in __consumer_offsets: after a restart the coordinator knows its
    members, which carry on with the same epochs and partitions (no rebalance), and read
    every record once."""
    bootstrap = consumer_broker.bootstrap
    topic = topic_name()
    ck_create_topic(bootstrap, topic, 4)
    group = f"{topic}-group"
    members = [JavaMember("kafka-4", bootstrap, topic=topic, group=group, group_protocol="consumer")
               for _ in range(2)]
    try:
        wait_until(lambda: java_members_split(members, 4), "two Java members to share 4 partitions", timeout=90)
        written = produce(bootstrap, topic, "before", 400)
        wait_until(lambda: set(java_consumed(members)) >= written, "the records before the restart")
        # Settled: every member at the group's epoch, reported.
        d = wait_until(lambda: (lambda d: str(d.state).endswith("STABLE") and d)(describe(bootstrap, group)),
                       "the group to be Stable")
        before = [m.memberships()[-1] for m in members]
        reports = [len(m.memberships()) for m in members]
        def by_member(d):
            return sorted((m.member_id, sorted(tp.partition for tp in m.assignment.topic_partitions))
                          for m in d.members)
        described = by_member(d)

        consumer_broker.restart()
        # The restarted coordinator describes the group as it was.
        d = wait_until(lambda: (lambda d: str(d.state).endswith("STABLE") and d)(describe(bootstrap, group)),
                       "the restarted coordinator to describe the group")
        assert by_member(d) == described, (described, d)
        more = produce(bootstrap, topic, "after", 400)
        wait_until(lambda: set(java_consumed(members)) >= written | more, "the records after the restart")
        got = java_consumed(members)
        assert len(got) == len(set(got)) == len(written | more), "records read twice"
        for m, was, n in zip(members, before, reports):
            assert m.memberships()[-1] == was, (was, m.memberships()[n - 1:])
            assert len(m.memberships()) == n, f"a rebalance: {m.memberships()[n - 1:]}"
    finally:
        for m in members:
            m.stop()


def test_java_consumer_protocol_group_carries_on_when_its_coordinator_dies(tmp_path, topic_name):
    """Three nodes; the broker coordinating the group is killed while two Java members
    consume. Another broker loads the group from its replica of __consumer_offsets and the
    members carry on at their epochs, with their partitions: every record read once."""
    if EXTERNAL:
        pytest.skip("needs broker processes the suite owns (COMPAT_BOOTSTRAP is set)")
    from cluster import SamsaCluster, create_replicated
    from test_failover import group_coordinator
    cluster = SamsaCluster(tmp_path / "cluster", extra=(
        f"group_consumer_session_timeout_ms = {CONSUMER_SESSION_MS}\n"
        "group_consumer_heartbeat_interval_ms = 500\n")).start()
    members = []
    try:
        topic = topic_name()
        create_replicated(cluster, topic, 4)
        group = f"{topic}-group"
        members = [JavaMember("kafka-4", cluster.bootstrap, topic=topic, group=group,
                              group_protocol="consumer") for _ in range(2)]
        wait_until(lambda: java_members_split(members, 4), "two Java members to share 4 partitions", timeout=90)
        written = produce(cluster.bootstrap, topic, "before", 400)
        wait_until(lambda: set(java_consumed(members)) >= written, "the records before the failure")
        before = [m.memberships()[-1] for m in members]
        reports = [len(m.memberships()) for m in members]

        victim = group_coordinator(cluster, group)
        cluster.nodes[victim].kill()
        wait_until(lambda: group_coordinator(cluster, group) != victim, "another coordinator", timeout=60)
        more = produce(cluster.bootstrap, topic, "after", 400)
        wait_until(lambda: set(java_consumed(members)) >= written | more, "the records after the failure",
                   timeout=90)
        got = java_consumed(members)
        assert len(got) == len(set(got)), "records read twice"
        for m, was, n in zip(members, before, reports):
            assert m.memberships()[-1] == was, (was, m.memberships()[n - 1:])
            assert len(m.memberships()) == n, f"a rebalance: {m.memberships()[n - 1:]}"
    finally:
        for m in members:
            m.stop()
        cluster.stop()


def test_kafka_consumer_groups_describes_a_consumer_group(broker, topic_name):
    """`kafka-consumer-groups --describe` of a consumer-protocol group: the columns Kafka's
    tool prints against Kafka 4.4, a row per partition with its member, and the group's
    state, assignor and members (runs against Kafka too, with --against-kafka)."""
    bootstrap = broker.bootstrap
    topic = topic_name()
    ck_create_topic(bootstrap, topic, 2)
    group = f"{topic}-group"
    member = JavaMember("kafka-4", bootstrap, topic=topic, group=group, group_protocol="consumer")
    try:
        wait_until(lambda: java_members_split([member], 2), "the member to own both partitions", timeout=90)
        written = produce(bootstrap, topic, "g", 20)
        wait_until(lambda: set(member.records()) >= written, "the records read and committed")

        def table(*extra):
            out = run_tool("kafka-consumer-groups", "--bootstrap-server", bootstrap, "--describe",
                           "--group", group, *extra).stdout
            rows = [line.split() for line in out.splitlines() if line.strip()]
            return rows[0], rows[1:]

        header, rows = table()
        assert header == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                          "CONSUMER-ID", "HOST", "CLIENT-ID"], header
        assert sorted(r[2] for r in rows) == ["0", "1"], rows
        assert all(r[0] == group and r[1] == topic and r[5] == "0" and r[6] != "-" for r in rows), rows
        header, rows = table("--state")
        assert header == ["GROUP", "COORDINATOR", "(ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"], header
        assert rows[0][3:] == ["uniform", "Stable", "1"], rows
        header, rows = table("--members", "--verbose")
        assert header == ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "CURRENT-EPOCH",
                          "CURRENT-ASSIGNMENT", "TARGET-EPOCH", "TARGET-ASSIGNMENT"], header
        assert rows[0][4] == "2" and rows[0][5] == rows[0][7], rows
    finally:
        member.stop()


def test_an_empty_group_changes_protocol_both_ways_and_keeps_its_offsets(consumer_broker, topic_name, tmp_path):
    """Offline migration: the Java client and librdkafka take turns on one group id, classic
    then consumer protocol and back; each empty group becomes the other kind, and every
    member resumes at the commits of the one before (nothing read twice, nothing skipped),
    across a broker restart too."""
    bootstrap = consumer_broker.bootstrap
    topic = topic_name()
    ck_create_topic(bootstrap, topic, 2)
    group = f"{topic}-group"
    turns = [("java", "classic"), ("java", "consumer"), ("confluent", "classic"),
             ("confluent-consumer", "consumer"), ("java", "classic")]
    seen = set()
    for i, (client, protocol) in enumerate(turns):
        if i == 3:
            consumer_broker.restart()
        written = produce(bootstrap, topic, f"turn-{i}", 50)
        if client == "java":
            member = JavaMember("kafka-4", bootstrap, topic=topic, group=group, group_protocol=protocol)
            read = member.records
        else:
            member = Member(client, bootstrap, group, topic, tmp_path, f"turn-{i}")
            read = lambda m=member: m.snapshot()[1]
        try:
            wait_until(lambda: set(read()) >= written, f"turn {i} ({client}, {protocol}) to read its records",
                       timeout=90)
            time.sleep(0.5)  # the last commits; then nothing more may arrive
            got = list(read())
            assert not set(got) & seen, f"turn {i} read records an earlier member had committed"
            assert len(got) == len(set(got)) and set(got) == written, (i, len(got))
            seen |= written
            if protocol == "consumer":
                d = describe(bootstrap, group)
                assert str(d.type).endswith("CONSUMER"), d
        finally:
            member.stop()
