"""ListOffsets through each client's own API: earliest, latest and by timestamp."""

import pytest

from clients import Rec, ck_consumer, ck_create_topic, ck_produce, kafkajs, now_ms

PARTITIONS = 3
PER_PARTITION = [5, 0, 12]   # one partition stays empty


@pytest.fixture
def topic_with_times(bootstrap, topic_name):
    """Partition p holds PER_PARTITION[p] records with timestamps base + 1000*i."""
    topic = topic_name()
    ck_create_topic(bootstrap, topic, PARTITIONS)
    base = now_ms() - 300_000
    recs = [Rec(p, None, f"p{p}-{i}".encode(), b"v", (), base + 1000 * i)
            for p in range(PARTITIONS) for i in range(PER_PARTITION[p])]
    acked = ck_produce(bootstrap, topic, recs)
    assert sorted((r.partition, r.offset) for r in acked) == \
        [(p, i) for p in range(PARTITIONS) for i in range(PER_PARTITION[p])]
    return topic, base


def by_time_want(base, ts):
    """First offset with timestamp >= ts, or the end offset when there is none."""
    out = {}
    for p, n in enumerate(PER_PARTITION):
        firsts = [i for i in range(n) if base + 1000 * i >= ts]
        out[p] = firsts[0] if firsts else None
    return out


def test_confluent_watermarks_and_times(bootstrap, topic_with_times):
    from confluent_kafka import TopicPartition
    topic, base = topic_with_times
    c = ck_consumer(bootstrap)
    try:
        for p in range(PARTITIONS):
            assert c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False) == (0, PER_PARTITION[p])
        ts = base + 3500
        got = c.offsets_for_times([TopicPartition(topic, p, ts) for p in range(PARTITIONS)], timeout=10)
        want = by_time_want(base, ts)
        for tp in got:
            assert tp.error is None, tp
            assert tp.offset == (want[tp.partition] if want[tp.partition] is not None else -1), (tp, want)
    finally:
        c.close()


def test_kafka_python_offsets(bootstrap, topic_with_times):
    from kafka import KafkaConsumer, TopicPartition
    topic, base = topic_with_times
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        assert c.beginning_offsets(tps) == {tp: 0 for tp in tps}
        assert c.end_offsets(tps) == {tp: PER_PARTITION[tp.partition] for tp in tps}
        ts = base + 3500
        got = c.offsets_for_times({tp: ts for tp in tps})
        want = by_time_want(base, ts)
        for tp in tps:
            if want[tp.partition] is None:
                assert got[tp] is None, (tp, got[tp])
            else:
                assert (got[tp].offset, got[tp].timestamp) == (want[tp.partition], base + 1000 * want[tp.partition])
    finally:
        c.close()


def test_kafkajs_fetch_topic_offsets(bootstrap, topic_with_times):
    topic, base = topic_with_times
    got = kafkajs("offsets", bootstrap, topic=topic)
    assert sorted((o["partition"], o["low"], o["high"], o["offset"]) for o in got) == \
        [(p, "0", str(n), str(n)) for p, n in enumerate(PER_PARTITION)]
    ts = base + 3500
    got = kafkajs("offsets", bootstrap, topic=topic, timestamp=ts)
    want = by_time_want(base, ts)
    # kafkajs answers the end offset where no record is that recent.
    assert sorted((o["partition"], o["offset"]) for o in got) == \
        [(p, str(want[p] if want[p] is not None else PER_PARTITION[p])) for p in range(PARTITIONS)]
