"""The internal topics as Kafka's own tools read them: kafka-console-consumer with
OffsetsMessageFormatter and GroupMetadataMessageFormatter on __consumer_offsets, and
TransactionLogMessageFormatter on __transaction_state, after a consumer group joins,
commits and leaves and a transaction commits. The expected output is Kafka 4.4's for the
same client actions (this test passes with `compat/run.sh --against-kafka` too), with
what differs between runs (timestamps, member and producer ids, topic ids, the order of
a transaction's partitions, which follows a Java hash map) replaced by placeholders."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from clients import wait_until
from jvm import run_tool
from marks import EXTERNAL


# Kafka 4.4's output for the test's client actions, normalised (group G, transactional id T,
# topic TOPIC).
OFFSETS = [
    '{"key": {"data": {"group": "G", "partition": 0, "topic": "TOPIC"}, "type": 1}, "value": '
    '{"data": {"commitTimestamp": "<commitTimestamp>", "leaderEpoch": -1, "metadata": '
    '"meta\\u0000", "offset": 2, "topicId": "<id>"}, "version": 4}}',
    '{"key": {"data": {"group": "G", "partition": 1, "topic": "TOPIC"}, "type": 1}, "value": '
    '{"data": {"commitTimestamp": "<commitTimestamp>", "leaderEpoch": -1, "metadata": "", '
    '"offset": 3, "topicId": "<id>"}, "version": 4}}',
]

GROUPS = [
    '{"key": {"data": {"group": "G"}, "type": 2}, "value": {"data": '
    '{"currentStateTimestamp": "<currentStateTimestamp>", "generation": 0, "leader": null, '
    '"members": [], "protocol": null, "protocolType": ""}, "version": 3}}',
    '{"key": {"data": {"group": "G"}, "type": 2}, "value": {"data": '
    '{"currentStateTimestamp": "<currentStateTimestamp>", "generation": 1, "leader": '
    '"<member>", "members": [{"assignment": "<bytes>", "clientHost": "/127.0.0.1", '
    '"clientId": "formatter-client", "groupInstanceId": null, "memberId": "<member>", '
    '"rebalanceTimeout": 300000, "sessionTimeout": 45000, "subscription": "<bytes>"}], '
    '"protocol": "range", "protocolType": "consumer"}, "version": 3}}',
    '{"key": {"data": {"group": "G"}, "type": 2}, "value": {"data": '
    '{"currentStateTimestamp": "<currentStateTimestamp>", "generation": 2, "leader": null, '
    '"members": [], "protocol": null, "protocolType": "consumer"}, "version": 3}}',
]

TRANSACTIONS = [
    '{"key": {"data": {"transactionalId": "T"}, "type": 0}, "value": {"data": '
    '{"previousProducerId": "<previousProducerId>", "producerEpoch": 0, "producerId": '
    '"<producerId>", "transactionLastUpdateTimestampMs": '
    '"<transactionLastUpdateTimestampMs>", "transactionPartitions": null, '
    '"transactionStartTimestampMs": "<transactionStartTimestampMs>", "transactionStatus": '
    '"Empty", "transactionTimeoutMs": 60000}, "version": 1}}',
    '{"key": {"data": {"transactionalId": "T"}, "type": 0}, "value": {"data": '
    '{"previousProducerId": "<previousProducerId>", "producerEpoch": 0, "producerId": '
    '"<producerId>", "transactionLastUpdateTimestampMs": '
    '"<transactionLastUpdateTimestampMs>", "transactionPartitions": [{"partitionIds": [0], '
    '"topic": "TOPIC"}], "transactionStartTimestampMs": "<transactionStartTimestampMs>", '
    '"transactionStatus": "Ongoing", "transactionTimeoutMs": 60000}, "version": 1}}',
    '{"key": {"data": {"transactionalId": "T"}, "type": 0}, "value": {"data": '
    '{"previousProducerId": "<previousProducerId>", "producerEpoch": 0, "producerId": '
    '"<producerId>", "transactionLastUpdateTimestampMs": '
    '"<transactionLastUpdateTimestampMs>", "transactionPartitions": [{"partitionIds": [0], '
    '"topic": "TOPIC"}], "transactionStartTimestampMs": "<transactionStartTimestampMs>", '
    '"transactionStatus": "PrepareCommit", "transactionTimeoutMs": 60000}, "version": 1}}',
    '{"key": {"data": {"transactionalId": "T"}, "type": 0}, "value": {"data": '
    '{"previousProducerId": "<previousProducerId>", "producerEpoch": 0, "producerId": '
    '"<producerId>", "transactionLastUpdateTimestampMs": '
    '"<transactionLastUpdateTimestampMs>", "transactionPartitions": [], '
    '"transactionStartTimestampMs": "<transactionStartTimestampMs>", "transactionStatus": '
    '"CompleteCommit", "transactionTimeoutMs": 60000}, "version": 1}}',
]


def formatted(bootstrap: str, topic: str, formatter: str, mark: str) -> list[dict]:
    """The records of `topic` that mention `mark`, as the formatter prints them: JSON
    objects one after the other (with no separator in Kafka 4.4), until the tool times out
    and says so."""
    proc = run_tool("kafka-console-consumer", "--bootstrap-server", bootstrap, "--topic", topic,
                    "--from-beginning", "--timeout-ms", "8000",
                    "--formatter", f"org.apache.kafka.tools.consumer.{formatter}",
                    "--consumer-property", "exclude.internal.topics=false", check=False)
    decoder, out, at = json.JSONDecoder(), [], 0
    text = proc.stdout
    while (start := text.find('{"key"', at)) >= 0:
        record, at = decoder.raw_decode(text, start)
        if mark in json.dumps(record):
            out.append(record)
    return out


def normalised(records: list[dict]) -> list[str]:
    """Each record as sorted JSON, with run-specific values replaced."""
    out = []
    for record in records:
        text = json.dumps(record, sort_keys=True)
        for field in ("commitTimestamp", "currentStateTimestamp", "transactionLastUpdateTimestampMs",
                      "transactionStartTimestampMs", "producerId", "previousProducerId"):
            text = re.sub(rf'"{field}": -?\d+', f'"{field}": "<{field}>"', text)
        text = re.sub(r'"topicId": "[^"]+"', '"topicId": "<id>"', text)
        text = re.sub(r'"(memberId|leader)": "[^"]+"', r'"\1": "<member>"', text)
        text = re.sub(r'"(subscription|assignment)": "[^"]*"', r'"\1": "<bytes>"', text)
        out.append(text)
    return out


def sorted_partitions(records: list[dict]) -> list[dict]:
    for record in records:
        data = (record.get("value") or {}).get("data") or {}
        if data.get("transactionPartitions"):
            data["transactionPartitions"].sort(key=lambda p: p["topic"])
    return records


def drive(bootstrap: str, topic: str, replicas: int) -> None:
    """The client actions: a group joins, consumes, commits two offsets and leaves; a
    transaction commits."""
    common = {"bootstrap.servers": bootstrap}
    admin = AdminClient(common)
    for f in admin.create_topics([NewTopic(topic, 2, replicas)]).values():
        f.result()
    producer = Producer(common)
    for i in range(6):
        producer.produce(topic, key=f"k{i}", value=f"v{i}", partition=i % 2)
    producer.flush(30)

    consumer = Consumer({**common, "group.id": f"{topic}-group", "client.id": "formatter-client",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = []
    wait_until(lambda: (m := consumer.poll(0.5)) is not None and m.error() is None
               and got.append(m) is None and len(got) == 6, timeout=60, what="records consumed")
    # (librdkafka sends the metadata with its C string's terminating NUL.)
    consumer.commit(offsets=[TopicPartition(topic, 0, 2, "meta"), TopicPartition(topic, 1, 3)],
                    asynchronous=False)
    consumer.close()

    tx = Producer({**common, "transactional.id": f"{topic}-txn"})
    tx.init_transactions(30)
    tx.begin_transaction()
    tx.produce(topic, key="tk", value="tv", partition=0)
    tx.commit_transaction(30)


def check_printed(bootstrap: str, topic: str) -> None:
    group, txn_id = f"{topic}-group", f"{topic}-txn"

    def printed(topic_name: str, formatter: str, mark: str) -> list[str]:
        lines = normalised(sorted_partitions(formatted(bootstrap, topic_name, formatter, mark)))
        return [line.replace(group, "G").replace(txn_id, "T").replace(topic, "TOPIC") for line in lines]

    # Each tool reads until it has been idle for its timeout: the three wait side by side.
    with ThreadPoolExecutor(3) as pool:
        offsets = pool.submit(printed, "__consumer_offsets", "OffsetsMessageFormatter", group)
        groups = pool.submit(printed, "__consumer_offsets", "GroupMetadataMessageFormatter", group)
        txns = pool.submit(printed, "__transaction_state", "TransactionLogMessageFormatter", txn_id)
    assert offsets.result() == OFFSETS
    assert groups.result() == GROUPS
    assert txns.result() == TRANSACTIONS


def test_kafkas_formatters_print_the_internal_topics_as_for_kafka(bootstrap, topic_name):
    topic = topic_name()
    drive(bootstrap, topic, 1)
    check_printed(bootstrap, topic)


def java_partition(key: str, partitions: int) -> int:
    """Kafka's abs(key.hashCode()) % partitions: where a group or transactional id lives."""
    h = 0
    for c in key:  # the test's names are ASCII: one UTF-16 unit a character
        h = (31 * h + ord(c)) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % partitions


@pytest.mark.skipif(EXTERNAL, reason="starts a samsa cluster of its own")
def test_the_records_replicate_and_a_new_coordinator_reads_them(cluster, topic_name):
    topic = topic_name()
    drive(cluster.bootstrap, topic, 3)
    check_printed(cluster.bootstrap, topic)

    # The group's coordinator stops: the next leader of its partition loads it from the
    # replicated records, and the tools print the same from there.
    offsets_partition = java_partition(f"{topic}-group", 6)
    leader = cluster.leaders("__consumer_offsets", via=1)[offsets_partition]
    cluster.nodes[leader].stop()
    rest = cluster.bootstrap
    consumer = Consumer({"bootstrap.servers": rest, "group.id": f"{topic}-group"})
    try:
        wanted = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        def loaded():
            found = [(p.offset, p.metadata) for p in consumer.committed(wanted, 10)]
            return found if all(offset >= 0 for offset, _ in found) else None
        committed = wait_until(loaded, what="offsets from the new coordinator", timeout=60)
        assert committed == [(2, "meta"), (3, None)]
    finally:
        consumer.close()
    check_printed(rest, topic)
    # The transactional id is known there too: its producer is given the next epoch.
    tx = Producer({"bootstrap.servers": rest, "transactional.id": f"{topic}-txn"})
    tx.init_transactions(60)
