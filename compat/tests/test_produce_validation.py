"""What a broker does with a produced batch beyond storing it, through librdkafka
(confluent-kafka): a topic's compression.type recompresses what producers send and
consumers read it back unchanged; a compacted topic refuses a record without a key, and
KIP-467 lets the client fail that record alone as INVALID_RECORD."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from jvm import of, run_java


def create(bootstrap: str, topic: str, config: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, 1, config=config)]).values():
        f.result(30)


def read(bootstrap: str, topic: str, count: int) -> list[tuple[bytes | None, bytes | None]]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < count and time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                assert m.error() is None, m.error()
                got.append((m.key(), m.value()))
    finally:
        c.close()
    return got


def test_a_zstd_topic_gives_back_what_each_codec_sent(bootstrap, topic_name):
    topic = topic_name()
    create(bootstrap, topic, {"compression.type": "zstd", "compression.zstd.level": "9"})
    admin = AdminClient({"bootstrap.servers": bootstrap})
    described = admin.describe_configs([ConfigResource("topic", topic)])
    configs = list(described.values())[0].result(30)
    assert configs["compression.type"].value == "zstd"
    assert configs["compression.zstd.level"].value == "9"

    sent = []
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                      "linger.ms": 50, "enable.idempotence": codec != "none"})
        errors = []
        for i in range(200):
            key, value = f"{codec}-{i}".encode(), (f"{codec}-value-{i} " * 8).encode()
            headers = [("h", str(i).encode())]
            p.produce(topic, key=key, value=value, headers=headers,
                      on_delivery=lambda err, msg: err and errors.append(err))
            sent.append((key, value))
        assert p.flush(30) == 0 and not errors, errors
    assert read(bootstrap, topic, len(sent)) == sent


def test_a_keyless_record_on_a_compacted_topic_fails_alone_as_invalid_record(bootstrap, topic_name):
    """librdkafka fails the whole batch with INVALID_RECORD; the Java client reads
    record_errors and fails only the named record as invalid, the rest as collateral."""
    topic = topic_name()
    outcomes = of(run_java("kafka-4", "produce-keyless", bootstrap, topic=topic, linger_ms=1000), "outcome")
    assert [o["i"] for o in outcomes] == [0, 1, 2]
    keyless = outcomes[1]
    assert keyless["class"] == "org.apache.kafka.common.InvalidRecordException", outcomes
    assert keyless["message"] == (
        "Compacted topic cannot accept message without key in topic partition " + topic + "-0"
    ), outcomes
    for other in (outcomes[0], outcomes[2]):
        assert other["class"] == "org.apache.kafka.common.KafkaException", outcomes
        assert "part of a batch which had one more more invalid records" in other["message"], outcomes

    # librdkafka: the batch fails, nothing of it is written; a batch with keys only goes through.
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 500, "retries": 0})
    results: dict[bytes, KafkaError | None] = {}
    for key, value in [(b"a", b"1"), (None, b"2")]:
        p.produce(topic, key=key, value=value, partition=0,
                  on_delivery=lambda err, msg: results.__setitem__(msg.value(), err))
    assert p.flush(30) == 0
    assert results[b"2"] is not None and results[b"2"].code() == KafkaError.INVALID_RECORD, results
    ok = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    ok.produce(topic, key=b"d", value=b"4")
    assert ok.flush(30) == 0
    assert read(bootstrap, topic, 1) == [(b"d", b"4")]
