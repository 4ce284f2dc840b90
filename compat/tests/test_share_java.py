"""Share groups (KIP-932) through the Java KafkaShareConsumer 4.4 (compat/java's
src/kafka4/java), the same assertions against samsa and against Kafka
(`compat/run.sh --against-kafka`): implicit and explicit acknowledgement (accept, release,
reject, commitSync's results, the delivery-count limit and the throttling of
redeliveries), three consumers on one partition and on three, a consumer killed with
records acquired, acknowledgements after the lock expired, and share.auto.offset.reset set
as a group config.

The tests share a broker of their own whose acquisition locks last LOCK_MS and whose
delivery-count limit is LIMIT, so that lock expiry and archiving take seconds: samsa with
those settings, or, with --against-kafka, a Kafka 4.4
started with them (group.share.record.lock.duration.ms is a static broker config, at
least 1000, and a group's own lock duration may not go below
group.share.min.record.lock.duration.ms, 15000 by default).

Reading starts at the end of the log when a share-partition is first read
(share.auto.offset.reset latest), so the driver produces markers until one is read
before it produces the test's records (see ShareScenarios.java)."""

from __future__ import annotations

import re
import signal
from collections import defaultdict

import pytest

from clients import wait_until
from conftest import EXTERNAL, REPO, SamsaBroker
from jvm import JavaError, JavaMember, of, one, run_java
from restartable_kafka import KafkaReference

LOCK_MS = 3000
LIMIT = 3
SAMSA_SETTINGS = {
    "group_share_record_lock_duration_ms": LOCK_MS,
    "group_share_delivery_count_limit": LIMIT,
    "group_share_heartbeat_interval_ms": 1000,
}
KAFKA_SETTINGS = {
    "group.share.record.lock.duration.ms": LOCK_MS,
    "group.share.min.record.lock.duration.ms": 1000,
    "group.share.delivery.count.limit": LIMIT,
    "group.share.heartbeat.interval.ms": 1000,
    "group.share.min.heartbeat.interval.ms": 1000,
}


@pytest.fixture(scope="module")
def share_broker(tmp_path_factory):
    """The module's broker, with short locks and a low delivery-count limit: samsa, or
    under --against-kafka (COMPAT_BOOTSTRAP set) a Kafka 4.4 of its own, since the shared
    one runs with Kafka's defaults."""
    if EXTERNAL:
        with KafkaReference(overrides=KAFKA_SETTINGS) as kafka:
            yield kafka.bootstrap
        return
    d = tmp_path_factory.mktemp("share-java")
    config = (REPO / "etc" / "samsa.toml").read_text()
    for key, value in SAMSA_SETTINGS.items():
        config, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", config)
        assert n == 1, key
    (d / "samsa.toml").write_text(config)
    b = SamsaBroker(d / "data", config=d / "samsa.toml").start()
    try:
        yield b.bootstrap
    finally:
        b.stop_clean()


def share(bootstrap: str, topic: str, group: str, **args) -> list[dict]:
    return run_java("kafka-4", "share-consume", bootstrap, topic=topic, group=group, **args)


def deliveries(events: list[dict], prefix: str = "r-") -> dict[str, list[tuple[int, str]]]:
    """Each record's deliveries, in order: (delivery count, acknowledgement given)."""
    out = defaultdict(list)
    for e in of(events, "share-record"):
        if e["k"].startswith(prefix):
            out[e["k"]].append((e["dc"], e["ack"]))
    return dict(out)


def keys(n: int) -> list[str]:
    return [f"r-{i}" for i in range(n)]


def commits_ok(events: list[dict]) -> None:
    commits = of(events, "commit")
    assert commits, "no commitSync"
    failed = [c for c in commits if any(v is not None for v in c["results"].values())]
    assert not failed, failed


def test_share_consumer_implicit_acknowledgement(share_broker, topic_name):
    """share.acknowledgement.mode=implicit: each record once, in log order; commitSync
    acknowledges what the last poll returned, without error."""
    ev = share(share_broker, topic_name(), topic_name("-g"), create=1, mode="implicit", produce=20, commit="true")
    # The lock duration the broker reported in ShareFetch.
    assert {e["ms"] for e in of(ev, "lock-timeout")} == {LOCK_MS}, of(ev, "lock-timeout")
    got = deliveries(ev)
    assert got == {k: [(1, "implicit")] for k in keys(20)}, got
    offsets = [e["o"] for e in of(ev, "share-record") if e["k"].startswith("r-")]
    assert offsets == sorted(offsets), offsets
    commits_ok(ev)


def test_share_consumer_explicit_acknowledgement(share_broker, topic_name):
    """ACCEPT is final; a RELEASEd record comes back with its delivery count one higher; a
    REJECTed one never comes back; one released at every delivery is delivered
    group.share.delivery.count.limit times, then archived. Neither comes back once final: a
    record produced after them is read, they are not. commitSync reports no error."""
    ev = share(share_broker, topic_name(), topic_name("-g"), create=1, mode="explicit", produce=5,
               plan="accept,release/accept,reject,accept,release", limit=LIMIT, commit="true", sentinel="true")
    assert deliveries(ev) == {
        "r-0": [(1, "ACCEPT")],
        "r-1": [(1, "RELEASE"), (2, "ACCEPT")],
        "r-2": [(1, "REJECT")],
        "r-3": [(1, "ACCEPT")],
        "r-4": [(n, "RELEASE") for n in range(1, LIMIT + 1)],
    }, deliveries(ev)
    assert deliveries(ev, "s-") == {"s-0": [(1, "ACCEPT")]}
    commits_ok(ev)


@pytest.mark.parametrize("partitions", [1, 3])
def test_share_consumers_in_one_group(share_broker, topic_name, partitions):
    """Three consumers of one share group: on one partition all three are assigned it,
    on three Kafka's simple assignor gives each its own; either way every record is
    delivered once, to one consumer, and acknowledged. Each fetch acquires at most 5
    records (record_limit) and each consumer holds them a while, so that on one partition
    the consumers read it side by side."""
    ev = share(share_broker, topic_name(), topic_name("-g"), create=partitions, consumers=3, mode="explicit",
               produce=60, sentinel="true", max_poll_records=5, acquire_mode="record_limit", process_ms=50)
    want = [[0], [0], [0]] if partitions == 1 else [[0], [1], [2]]
    assert one(ev, "assignment")["members"] == want
    got = deliveries(ev)
    assert got == {k: [(1, "ACCEPT")] for k in keys(60)}, got
    by_offset = defaultdict(list)
    for e in of(ev, "share-record"):
        by_offset[(e["p"], e["o"])].append(e["c"])
    assert all(len(c) == 1 for c in by_offset.values()), {k: c for k, c in by_offset.items() if len(c) > 1}
    readers = {e["c"] for e in of(ev, "share-record") if e["k"].startswith("r-")}
    assert len(readers) > 1, f"one consumer read every record: {readers}"


def test_share_consumer_killed_with_records_acquired(share_broker, topic_name):
    """A consumer SIGKILLed while it holds records: once their acquisition lock expires they
    go to another consumer of the group, delivery count 2."""
    topic, group = topic_name(), topic_name("-g")
    holder = JavaMember("kafka-4", share_broker, scenario="share-consume", topic=topic, group=group, create=1,
                        mode="explicit", produce=5, hold="true")
    try:
        wait_until(lambda: of(holder.snapshot(), "held") or holder.proc.poll() is not None,
                   "the consumer to hold the records", timeout=90)
        assert of(holder.snapshot(), "held"), (holder.snapshot(), holder.proc.stderr.read()[-3000:])
        held = deliveries(holder.snapshot())
        holder.proc.send_signal(signal.SIGKILL)
        holder.proc.wait(10)
    finally:
        if holder.proc.poll() is None:
            holder.proc.kill()
            holder.proc.wait()
    assert held == {k: [(1, "HOLD")] for k in keys(5)}, held
    ev = share(share_broker, topic, group, mode="explicit", expect=5)
    assert deliveries(ev) == {k: [(2, "ACCEPT")] for k in keys(5)}, deliveries(ev)
    held_offsets = sorted(e["o"] for e in of(holder.snapshot(), "share-record") if e["k"].startswith("r-"))
    assert sorted(e["o"] for e in of(ev, "share-record") if e["k"].startswith("r-")) == held_offsets


def test_share_redeliveries_are_throttled(share_broker, topic_name):
    """Ten records in one batch, released at every delivery: Kafka 4.4 hands the batch out
    whole while redeliveries are few, and a record on its last delivery alone (here, with a
    limit of 3, the third deliveries one poll each), then archives them all."""
    ev = share(share_broker, topic_name(), topic_name("-g"), create=1, mode="explicit", produce=10,
               plan=",".join(["release"] * 10), limit=LIMIT, commit="true", sentinel="true")
    polls, current = [], []
    for e in ev:
        if e["ev"] == "share-record" and e["k"].startswith("r-"):
            current.append((int(e["k"][2:]), e["dc"]))
        elif e["ev"] == "commit" and current:
            polls.append(current)
            current = []
    want = [[(i, 1) for i in range(10)], [(i, 2) for i in range(10)]] + [[(i, 3)] for i in range(10)]
    assert polls == want, polls
    assert deliveries(ev, "s-") == {"s-0": [(1, "ACCEPT")]}


def test_share_consumer_acknowledging_after_the_lock_expired(share_broker, topic_name):
    """A record accepted only after its acquisition lock expired: commitSync reports
    InvalidRecordStateException and the record comes back, one delivery later, until the
    expiry at the delivery-count limit archives it; the late acknowledgement of an archived
    record then succeeds (Kafka skips acknowledgements before the share-partition's start
    offset)."""
    ev = share(share_broker, topic_name(), topic_name("-g"), create=1, mode="explicit", produce=1, plan="late",
               late_ms=LOCK_MS + 500, limit=LIMIT, commit="true", sentinel="true")
    assert deliveries(ev) == {"r-0": [(n, "LATE") for n in range(1, LIMIT + 1)]}, deliveries(ev)
    assert deliveries(ev, "s-") == {"s-0": [(1, "ACCEPT")]}
    invalid = "org.apache.kafka.common.errors.InvalidRecordStateException"
    # One commitSync per poll that returned records: the markers', one per delivery of r-0,
    # the sentinel's.
    results = [c["results"] for c in of(ev, "commit")]
    assert results[-LIMIT - 1:] == [{"0": invalid}] * (LIMIT - 1) + [{"0": None}] * 2, results


def test_share_auto_offset_reset_earliest(share_broker, topic_name):
    """share.auto.offset.reset=earliest, set on the GROUP config resource with
    incrementalAlterConfigs before the group first reads: records produced before any
    consumer joined are delivered."""
    try:
        ev = share(share_broker, topic_name(), topic_name("-g"), create=1, mode="implicit", pre_produce=5,
                   earliest="true")
    except JavaError as e:
        # Until samsa has GROUP config resources (issue 19's group-configs part); any other
        # failure, and once they are there any failure at all, fails the test.
        if not EXTERNAL and "resource type 32 is not supported" in str(e):
            pytest.xfail("samsa has no GROUP config resources yet")
        raise
    assert one(ev, "group-config")["share.auto.offset.reset"] == "earliest"
    assert deliveries(ev) == {k: [(1, "implicit")] for k in keys(5)}, deliveries(ev)
