"""The Java client (kafka-clients), unchanged, built against the newest 4.x and
the oldest 3.x release (compat/java): producer, assign+seek consumer,
AdminClient, and, gated on what the broker advertises, consumer groups,
idempotence, incrementalAlterConfigs and deleteRecords."""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import pytest

from gates import gate
from jvm import CLIENT_PROFILES, of, one, run_java

CODECS = ("gzip", "snappy", "lz4", "zstd")
RECORDS = 500


def rec(e: dict) -> tuple:
    return (e["p"], e["o"], e["ts"], e["k"], e["v"], tuple(tuple(h) for h in e["h"]))


def check_acks(produced: list[dict], count: int, partitions: int) -> None:
    """What the broker acknowledged: every record once, dense offsets from 0 in
    each partition, each key in one partition, more than one partition used."""
    assert len(produced) == count, f"{len(produced)} acknowledgements for {count} records"
    by_partition = defaultdict(list)
    key_partitions = defaultdict(set)
    for e in produced:
        assert 0 <= e["p"] < partitions, e
        by_partition[e["p"]].append(e["o"])
        if e["k"] is not None:
            key_partitions[e["k"]].add(e["p"])
    for p, offsets in by_partition.items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {p} offsets {sorted(offsets)}"
    assert len(by_partition) > 1, f"all records in partitions {sorted(by_partition)}"
    split = {k: ps for k, ps in key_partitions.items() if len(ps) > 1}
    assert not split, f"keys spread over several partitions: {split}"


def check_read(events: list[dict], want: list[tuple]) -> None:
    """The consumer read exactly want (any interleaving of partitions, each in
    offset order), every timestamp CreateTime, and stopped at the end offsets."""
    consumed = of(events, "consumed")
    got = [rec(e) for e in consumed]
    missing = Counter(want) - Counter(got)
    extra = Counter(got) - Counter(want)
    assert not missing and not extra, (f"{len(got)} read, {len(want)} wanted; missing {list(missing)[:3]}, "
                                       f"unexpected {list(extra)[:3]}")
    for p in {r[0] for r in got}:
        offsets = [r[1] for r in got if r[0] == p]
        assert offsets == sorted(offsets), f"partition {p} read out of order"
    assert {e["tstype"] for e in consumed} <= {"CreateTime"}, {e["tstype"] for e in consumed}
    for e in of(events, "partition"):
        assert e["position"] == e["end"], f"partition {e['p']}: stopped at {e['position']}, end {e['end']}"


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("profile", CLIENT_PROFILES)
def test_java_roundtrip(bootstrap, topic_name, profile, codec):
    """Keys, headers (none, repeated, null), null and empty values, explicit
    timestamps, with each compression, read back with assign + seekToBeginning."""
    topic = topic_name()
    ev = run_java(profile, "produce", bootstrap, topic=topic, partitions=3, codec=codec, count=RECORDS)
    produced = of(ev, "produced")
    check_acks(produced, RECORDS, 3)
    read = run_java(profile, "consume", bootstrap, topic=topic, expect=RECORDS)
    check_read(read, [rec(e) for e in produced])
    assert all(e["begin"] == 0 for e in of(read, "partition")), of(read, "partition")


@pytest.mark.parametrize("producer,consumer", [("kafka-3", "kafka-4"), ("kafka-4", "kafka-3")])
def test_java_cross_version_seek(bootstrap, topic_name, producer, consumer):
    """One client release's records read by the other, starting at explicit offsets (seek)."""
    topic = topic_name()
    produced = of(run_java(producer, "produce", bootstrap, topic=topic, partitions=3, codec="zstd", count=120),
                  "produced")
    check_acks(produced, 120, 3)
    start = {0: 2, 1: 5}  # partition 2 from the beginning
    read = run_java(consumer, "consume", bootstrap, topic=topic,
                    expect=sum(1 for e in produced if e["o"] >= start.get(e["p"], 0)),
                    **{"from": ",".join(f"{p}:{o}" for p, o in start.items())})
    check_read(read, [rec(e) for e in produced if e["o"] >= start.get(e["p"], 0)])


@pytest.mark.parametrize("profile", CLIENT_PROFILES)
def test_java_default_producer(request, bootstrap, topic_name, profile):
    """The producer with its default settings, idempotence included (on by default
    since 3.0, KIP-679). kafka-clients 3.0.0 asks for it but never turns it on
    (KAFKA-13598, fixed in 3.0.1), so only newer releases need InitProducerId."""
    if profile != "kafka-3":
        gate(request, bootstrap, "idempotence")
    topic = topic_name()
    produced = of(run_java(profile, "produce", bootstrap, topic=topic, partitions=2, codec="lz4", count=50,
                           idempotence="default"), "produced")
    check_acks(produced, 50, 2)
    check_read(run_java(profile, "consume", bootstrap, topic=topic, expect=50), [rec(e) for e in produced])


@pytest.mark.parametrize("profile", CLIENT_PROFILES)
def test_java_admin_topics(bootstrap, topic_name, profile):
    ev = run_java(profile, "topics", bootstrap, topic=topic_name())
    assert one(ev, "validated")["listed"] is False, "validateOnly created the topic"
    assert one(ev, "create-again")["error"].endswith(".TopicExistsException")
    assert one(ev, "listed")["present"] is True
    d = one(ev, "described")
    assert d["internal"] is False
    leader = d["partitions"][0]["leader"]
    assert d["partitions"] == [{"p": p, "leader": leader, "replicas": [leader], "isr": [leader]} for p in (0, 1)]
    grown = one(ev, "grown")
    assert grown["ok"] and [p["p"] for p in grown["partitions"]] == [0, 1, 2, 3], grown
    shrink = one(ev, "shrink")
    assert shrink["error"].endswith(".InvalidPartitionsException") and shrink["partitions"] == 4, shrink
    assert one(ev, "deleted")["gone"] is True
    assert one(ev, "delete-again")["error"].endswith(".UnknownTopicOrPartitionException")


@pytest.mark.parametrize("profile", CLIENT_PROFILES)
def test_java_describe_cluster(bootstrap, profile):
    c = one(run_java(profile, "cluster", bootstrap), "cluster")
    host, _, port = bootstrap.rpartition(":")
    assert c["id"], c
    assert [(n["host"], n["port"]) for n in c["nodes"]] == [(host, int(port))], c
    assert c["controller"] == c["nodes"][0]["id"], c


@pytest.mark.parametrize("profile", CLIENT_PROFILES)
def test_java_describe_configs(bootstrap, topic_name, profile):
    ev = run_java(profile, "configs", bootstrap, topic=topic_name())
    topic = one(ev, "topic-config")["entries"]
    assert topic["retention.ms"][:2] == ["123456789", "DYNAMIC_TOPIC_CONFIG"], topic["retention.ms"]
    assert topic["max.message.bytes"][:2] == ["500000", "DYNAMIC_TOPIC_CONFIG"], topic["max.message.bytes"]
    assert topic["cleanup.policy"][0] == "delete", topic["cleanup.policy"]
    assert topic["cleanup.policy"][1] != "DYNAMIC_TOPIC_CONFIG", topic["cleanup.policy"]
    assert one(ev, "missing-topic-config")["error"].endswith(".UnknownTopicOrPartitionException")
    broker = one(ev, "broker-config")["entries"]
    assert broker["num.partitions"][0].isdigit(), broker.get("num.partitions")


@pytest.mark.parametrize("profile", CLIENT_PROFILES)
def test_java_list_offsets(bootstrap, topic_name, profile):
    """Earliest, latest, max timestamp and by timestamp (in single-record and
    multi-record batches, timestamps not monotonic), via AdminClient and consumer."""
    ts0 = int(time.time() * 1000) - 3_600_000
    ev = run_java(profile, "list-offsets", bootstrap, topic=topic_name(), ts0=ts0)
    got = {(e["spec"], e["p"]): (e["offset"], e["ts"]) for e in of(ev, "admin-offset")}
    assert got[("earliest", 0)][0] == 0 and got[("earliest", 1)][0] == 0, got
    assert got[("latest", 0)][0] == 10 and got[("latest", 1)][0] == 0, got
    assert got[("max-timestamp", 0)] == (6, ts0 + 100_000), got
    assert got[("max-timestamp", 1)][0] == -1, got
    assert got[("ts+0", 0)] == (0, ts0), got
    assert got[("ts+3500", 0)] == (4, ts0 + 4000), got
    assert got[("ts+50000", 0)] == (6, ts0 + 100_000), got
    assert got[("ts-future", 0)][0] == -1, got
    for spec in ("ts+0", "ts+3500", "ts-future"):
        assert got[(spec, 1)][0] == -1, got
    cons = {e["p"]: e for e in of(ev, "consumer-offset")}
    assert (cons[0]["begin"], cons[0]["end"], cons[0]["ts+3500"]) == (0, 10, [4, ts0 + 4000]), cons[0]
    assert (cons[1]["begin"], cons[1]["end"], cons[1]["ts+3500"]) == (0, 0, None), cons[1]


@pytest.mark.parametrize("profile", CLIENT_PROFILES)
def test_java_incremental_alter_configs(request, bootstrap, topic_name, profile):
    gate(request, bootstrap, "incremental-alter-configs")
    ev = run_java(profile, "alter-configs", bootstrap, topic=topic_name())
    assert one(ev, "after-set")["retention.ms"] == "7200000"
    after = one(ev, "after-delete")
    assert after["retention.ms"] != "7200000" and after["source"] != "DYNAMIC_TOPIC_CONFIG", after


@pytest.mark.parametrize("profile", CLIENT_PROFILES)
def test_java_delete_records(request, bootstrap, topic_name, profile):
    gate(request, bootstrap, "delete-records")
    ev = run_java(profile, "delete-records", bootstrap, topic=topic_name())
    d = one(ev, "deleted")
    assert (d["low-watermark"], d["earliest"]) == (4, 4), d
    assert [e["o"] for e in of(ev, "consumed")] == list(range(4, 10))
    assert one(ev, "read-after-delete")["position"] == 10


@pytest.mark.parametrize("profile", CLIENT_PROFILES)
def test_java_group_subscribe_commit(request, bootstrap, topic_name, profile):
    """subscribe() in a group reads everything and commits; a second member of
    the group resumes from the commit and reads only what came after."""
    gate(request, bootstrap, "groups")
    count = 300
    ev = run_java(profile, "group-consume", bootstrap, topic=topic_name(), group=topic_name("-g"), count=count)
    produced = of(ev, "produced")
    phase2 = next(i for i, e in enumerate(ev) if e["ev"] == "phase" and e["n"] == 2)
    first = [rec(e) for e in of(ev[:phase2], "consumed")]
    second = [rec(e) for e in of(ev[phase2:], "consumed")]
    want_first = [rec(e) for e in produced[:count]]
    want_second = [rec(e) for e in produced[count:]]
    assert Counter(first) == Counter(want_first), f"first member read {len(first)} of {count}"
    assert Counter(second) == Counter(want_second), f"second member read {second}, want {want_second}"
    ends = defaultdict(int)
    for e in produced:
        ends[str(e["p"])] = max(ends[str(e["p"])], e["o"] + 1)
    committed = {e["phase"]: e for e in of(ev, "committed")}
    assert committed[2]["offsets"] == dict(ends), committed[2]
    assert committed[1]["count"] == count and committed[2]["count"] == 3, committed


@pytest.mark.parametrize("profile", CLIENT_PROFILES)
def test_java_group_admin(request, bootstrap, topic_name, profile):
    """list, describe, list/alter/delete offsets of, and delete a consumer group."""
    gate(request, bootstrap, "groups")
    group = topic_name("-g")
    ev = run_java(profile, "group-admin", bootstrap, topic=topic_name(), group=group)
    assert one(ev, "consumed-total")["count"] == 10
    active = one(ev, "described-active")["group"]
    assert active["id"] == group and active["members"] == [[0, 1]] and not active["simple"], active
    assert one(ev, "listed")["present"] is True
    assert one(ev, "described-empty")["group"]["members"] == []
    assert one(ev, "offsets")["offsets"] == {"0": 5, "1": 5}
    assert one(ev, "offsets-altered")["offsets"] == {"0": 2, "1": 5}
    assert one(ev, "offsets-deleted")["offsets"] == {"0": 2}
    assert one(ev, "group-deleted")["gone"] is True


@pytest.mark.parametrize("profile", CLIENT_PROFILES)
def test_java_acl_admin(acl_broker, topic_name, profile):
    """AdminClient createAcls (literal and prefixed, ALLOW and DENY), describeAcls, deleteAcls."""
    topic = topic_name()
    ev = run_java(profile, "acls", acl_broker, topic=topic)
    want = sorted([f"GROUP:PREFIXED:{topic}-:User:mallory:READ:DENY", f"TOPIC:LITERAL:{topic}:User:alice:READ:ALLOW"])
    # The broker is shared by both client versions: look only at this test's bindings.
    mine = lambda event: [b for b in one(ev, event)["bindings"] if topic in b]
    assert mine("described") == want
    assert one(ev, "deleted")["count"] == 1
    assert mine("after-delete") == [want[0]]
