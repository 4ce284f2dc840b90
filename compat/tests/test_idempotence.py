"""Idempotent producers through real clients (issue 4).

- confluent-kafka with enable.idempotence writes RECORDS sequence-numbered
  records to a multi-partition topic while the broker is stopped (SIGTERM) or
  killed (SIGKILL) and started again part-way through. The producer retries
  what was in flight; every delivery report succeeds, and a reader finds each
  record exactly once, at its reported offset, in send order per partition.
  Against samsa the test restarts its own samsa (own_broker); with
  --against-kafka it restarts a reference Kafka of its own (the shared one is
  not ours to stop), so the test is seen to pass against Kafka too.
- kafkajs with idempotent: true writes records once each, in order.

While the broker lacks InitProducerId these are strict xfails (gates.py).
"""

import pytest

from clients import WAIT_S, ck_create_topic, ck_producer
from eos_clients import IDEMPOTENCE_APIS, JsSession, by_partition, ck_raise_lacking, ck_read, gate_apis
from marks import EXTERNAL
from restartable_kafka import RestartableKafka

RECORDS = 50_000
PARTITIONS = 4
RESTART_AFTER = 15_000       # acknowledged records before the broker goes down
WHILE_DOWN = 5_000           # records handed to the producer while it is down
BACKLOG = 2_000              # queued and in-flight records the loop lets the producer have


@pytest.fixture(scope="module")
def reference_kafka():
    k = RestartableKafka().start()
    try:
        yield k
    finally:
        k.close()


@pytest.fixture
def restartable(request):
    """A broker this test may stop, kill and start: its own samsa, or (with
    --against-kafka) a reference Kafka of this module's own."""
    if EXTERNAL:
        return request.getfixturevalue("reference_kafka")
    return request.getfixturevalue("own_broker")


def seq_of(value: bytes) -> int:
    return int(value.split(b"|")[1])


def assert_exactly_once_in_order(got: list, reported: dict, total: int, who: str) -> None:
    """got: records read back; reported: {(partition, offset): seq} from the producer's acks."""
    seqs = sorted(seq_of(r.value) for r in got)
    dupes = len(seqs) - len(set(seqs))
    assert seqs == list(range(total)), (
        f"{who}: read {len(got)} records for {total} sent: {dupes} duplicated, "
        f"{len(set(range(total)) - set(seqs))} missing")
    read = {(r.partition, r.offset): seq_of(r.value) for r in got}
    assert read == reported, f"{who}: records are not at the offsets the producer was told"
    for p, values in by_partition((r.partition, seq_of(r.value)) for r in got).items():
        bad = [(a, b) for a, b in zip(values, values[1:]) if b <= a]
        assert not bad, f"{who}: partition {p} is out of send order, e.g. seq {bad[0][1]} after {bad[0][0]}"


def produce_across_restart(b, topic: str, how: str) -> dict:
    """Produce RECORDS idempotently, taking the broker down after RESTART_AFTER acks
    and up again WHILE_DOWN records later; return {(partition, offset): seq} acked."""
    reported, failed, fatal = {}, [], []

    def on_delivery(err, msg):
        if err is not None:
            failed.append(err)
        else:
            reported[(msg.partition(), msg.offset())] = seq_of(msg.value())

    def on_error(err):
        if err.fatal():
            fatal.append(err)

    # Small batches and linger so several requests per partition are in flight when the
    # broker goes; a message timeout well past a restart so retries, not timeouts, decide.
    p = ck_producer(b.bootstrap, **{"enable.idempotence": True, "linger.ms": 5, "batch.num.messages": 500,
                                    "message.timeout.ms": int(3 * WAIT_S * 1000), "retry.backoff.ms": 50,
                                    "error_cb": on_error})
    went_down_at = None
    for i in range(RECORDS):
        while True:
            try:
                p.produce(topic, key=f"key-{i % 101}".encode(), value=f"idem|{i}|".encode() + b"x" * (i % 50),
                          on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        down = went_down_at is not None and i <= went_down_at[0] + WHILE_DOWN
        p.poll(0.01 if len(p) > BACKLOG and not down else 0)   # so the restart comes mid-stream
        assert not fatal, f"fatal producer error after {i} records: {fatal[0]}"
        # Only with records queued or in flight, so there is something to retry: a fast
        # broker can have acknowledged everything at the moment the count is reached,
        # and the next record sent is then still in the queue.
        if went_down_at is None and len(reported) >= RESTART_AFTER and len(p) > 0:
            went_down_at = (i, len(p))
            if how == "sigkill":
                b.kill()
            else:
                b.stop()
        elif went_down_at is not None and i == went_down_at[0] + WHILE_DOWN:
            b.start()
    assert went_down_at is not None, f"only {len(reported)} records acknowledged before the end: no restart"
    remaining = p.flush(3 * WAIT_S)
    assert not fatal, f"fatal producer error: {fatal[0]}"
    assert remaining == 0, f"{remaining} records not delivered after the restart"
    assert not failed, f"{len(failed)} delivery reports failed, e.g. {failed[:3]}"
    print(f"{how}: {went_down_at[1]} records queued or in flight when the broker went down "
          f"after record {went_down_at[0]}")
    return reported


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_confluent_idempotent_across_restart(request, restartable, topic_name, how):
    from confluent_kafka import KafkaException
    b = restartable
    gate_apis(request, b.bootstrap, IDEMPOTENCE_APIS, "the idempotent producer")
    topic = topic_name()
    ck_create_topic(b.bootstrap, topic, PARTITIONS)
    try:
        reported = produce_across_restart(b, topic, how)
    except KafkaException as e:        # produce() raises once the producer has failed fatally
        ck_raise_lacking(e.args[0])
        raise
    assert len(reported) == RECORDS, f"{len(reported)} distinct offsets acknowledged for {RECORDS} records"
    got = ck_read(b.bootstrap, topic, PARTITIONS, "read_uncommitted", RECORDS)
    assert_exactly_once_in_order(got, reported, RECORDS, f"after {how}")


def test_kafkajs_idempotent(request, bootstrap, topic_name):
    gate_apis(request, bootstrap, IDEMPOTENCE_APIS, "kafkajs's idempotent producer")
    topic, total, chunk = topic_name(), 5000, 500
    ck_create_topic(bootstrap, topic, PARTITIONS)
    js = JsSession(bootstrap)
    reported = {}
    try:
        js.call("producer", idempotent=True)
        for start in range(0, total, chunk):
            msgs = [{"partition": i % PARTITIONS, "key": f"key-{i}", "value": f"js|{i}|"}
                    for i in range(start, start + chunk)]
            acks = js.call("send", topic=topic, messages=msgs)
            assert sorted(a["partition"] for a in acks) == list(range(PARTITIONS)), f"acks {acks}"
            assert all(a["errorCode"] == 0 for a in acks), f"acks {acks}"
            base = {a["partition"]: a["baseOffset"] for a in acks}
            # One send is one batch per partition in message order: the offsets follow.
            for p in range(PARTITIONS):
                mine = [i for i in range(start, start + chunk) if i % PARTITIONS == p]
                reported.update({(p, base[p] + k): i for k, i in enumerate(mine)})
    finally:
        js.close()
    got = ck_read(bootstrap, topic, PARTITIONS, "read_uncommitted", total)
    assert_exactly_once_in_order(got, reported, total, "kafkajs idempotent")
