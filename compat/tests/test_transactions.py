"""Transactions through real clients (issue 4).

- confluent-kafka consume-transform-produce: a read_committed consumer in a
  group feeds a transactional producer that writes transformed records and
  the consumer's offsets in one transaction, committing most batches and
  aborting some (then seeking back and redoing them). A read_committed reader
  of the output sees each input transformed exactly once, from committed
  transactions only and in order; a read_uncommitted reader sees the aborted
  attempts too; the group's offsets move on commit and never on abort.
- kafkajs: the same guarantees through transaction(), send, sendOffsets,
  commit and abort, read back by kafkajs consumers at both isolation levels.
- Zombie fencing: a second producer with the same transactional.id fences
  the first, whose next commit fails fatally; its open transaction is aborted.

While the broker lacks the transaction APIs these are strict xfails (gates.py).
"""

from clients import WAIT_S, ck_create_topic, ck_produce, ck_producer, make_records
from eos_clients import (TRANSACTION_APIS, GroupOffsets, JsSession, by_partition, ck_consume_transform_produce,
                         ck_raise_lacking, ck_read, gate_apis)

PARTITIONS = 2
INPUTS = 600
BATCH = 80
ABORTED_BATCHES = {0, 3, 6}   # the first before any commit, then some in between


def transform(value: bytes, txn: int) -> bytes:
    """Upper-cased, tagged with the transaction that wrote it, so a redo is told from the aborted try."""
    return value.upper() + f"|txn{txn}".encode()


def inputs(bootstrap: str, topic: str) -> list:
    """INPUTS records on PARTITIONS partitions, seq-numbered values, round-robin by hand."""
    ck_create_topic(bootstrap, topic, PARTITIONS)
    recs = [r._replace(partition=i % PARTITIONS, value=f"in-{i:05d}".encode(), headers=())
            for i, r in enumerate(make_records("txn", INPUTS, edge_cases=False))]
    return ck_produce(bootstrap, topic, recs)


def txn_producer(bootstrap: str, txn_id: str):
    return ck_producer(bootstrap, **{"transactional.id": txn_id, "enable.idempotence": True,
                                     "transaction.timeout.ms": 60000})


def init_transactions(p) -> None:
    from confluent_kafka import KafkaException
    try:
        p.init_transactions(WAIT_S)
    except KafkaException as e:
        ck_raise_lacking(e.args[0])
        raise


def test_confluent_consume_transform_produce(request, bootstrap, topic_name):
    gate_apis(request, bootstrap, TRANSACTION_APIS, "confluent-kafka transactions")
    src, dst, group = topic_name("-in"), topic_name("-out"), topic_name("-group")
    inputs(bootstrap, src)
    ck_create_topic(bootstrap, dst, PARTITIONS)

    producer = txn_producer(bootstrap, topic_name("-txn"))
    init_transactions(producer)
    run = ck_consume_transform_produce(bootstrap, producer, src, dst, group, PARTITIONS, INPUTS, BATCH,
                                       ABORTED_BATCHES, transform)
    committed, aborted = run.committed, run.aborted

    assert sorted(v for _, _, v in committed) == sorted(f"in-{i:05d}".encode() for i in range(INPUTS)), \
        "committed transactions did not transform each input exactly once"
    assert run.settled == {p: INPUTS // PARTITIONS for p in range(PARTITIONS)}, f"final group offsets {run.settled}"

    got = ck_read(bootstrap, dst, PARTITIONS, "read_committed", len(committed))
    want = by_partition((p, v) for p, v, _ in committed)
    assert by_partition((r.partition, r.value) for r in got) == want, "read_committed output differs from the committed transformations"
    every = ck_read(bootstrap, dst, PARTITIONS, "read_uncommitted", len(committed) + len(aborted))
    assert sorted(r.value for r in every) == sorted(v for _, v, _ in committed + aborted), \
        "read_uncommitted output is not the committed plus the aborted transformations"


def test_confluent_zombie_fenced(request, bootstrap, topic_name):
    from confluent_kafka import KafkaError, KafkaException
    gate_apis(request, bootstrap, TRANSACTION_APIS, "confluent-kafka transactions")
    topic, txn_id = topic_name(), topic_name("-txn")
    ck_create_topic(bootstrap, topic, 1)

    zombie = txn_producer(bootstrap, txn_id)
    init_transactions(zombie)
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie-open")
    assert zombie.flush(WAIT_S) == 0, "the zombie's record was not acknowledged"

    successor = txn_producer(bootstrap, txn_id)
    init_transactions(successor)      # bumps the epoch, aborting the zombie's open transaction
    successor.begin_transaction()
    successor.produce(topic, value=b"successor")
    successor.commit_transaction(WAIT_S)

    zombie.produce(topic, value=b"zombie-late")
    try:
        zombie.commit_transaction(WAIT_S)
        raise AssertionError("the fenced producer committed")
    except KafkaException as e:
        err = e.args[0]
    assert err.fatal(), f"the zombie's commit failed, but not fatally: {err}"
    assert err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH), \
        f"the zombie's commit failed with {err}, want a fencing error"

    got = ck_read(bootstrap, topic, 1, "read_committed", 1)
    assert [r.value for r in got] == [b"successor"], f"read_committed sees {got}"
    every = ck_read(bootstrap, topic, 1, "read_uncommitted", 2)
    assert [r.value for r in every] == [b"zombie-open", b"successor"], f"read_uncommitted sees {every}"


def test_kafkajs_transactions(request, bootstrap, topic_name):
    gate_apis(request, bootstrap, TRANSACTION_APIS, "kafkajs transactions")
    src, dst, group = topic_name("-in"), topic_name("-out"), topic_name("-group")
    recs = inputs(bootstrap, src)
    ck_create_topic(bootstrap, dst, PARTITIONS)
    observer = GroupOffsets(bootstrap, group, src, PARTITIONS)
    js = JsSession(bootstrap)
    committed, aborted = [], []
    settled = {}
    try:
        js.call("producer", idempotent=True, transactionalId=topic_name("-txn"))
        # Transaction t takes the next BATCH inputs; an aborted one is retried by the next.
        start, txn = 0, 0
        while start < len(recs):
            batch = recs[start:start + BATCH]
            end = "abort" if txn in ABORTED_BATCHES else "commit"
            wrote = [(r.partition, transform(r.value, txn)) for r in batch]
            offsets = dict(settled)
            for r in batch:
                offsets[r.partition] = r.offset + 1
            js.call("transaction", topic=dst, inputTopic=src, groupId=group, end=end,
                    messages=[{"partition": p, "key": r.key.decode(), "value": v.decode()}
                              for (p, v), r in zip(wrote, batch)],
                    offsets=[{"partition": p, "offset": o} for p, o in sorted(offsets.items())])
            if end == "abort":
                aborted += wrote
                assert observer.get() == settled, f"kafkajs txn {txn}: the group's offsets moved on abort"
            else:
                committed += wrote
                settled = offsets
                start += len(batch)
                observer.await_equal(settled, f"kafkajs txn {txn}: the group's offsets to follow the commit")
            txn += 1
        got = js.call("consume", topic=dst, readUncommitted=False, expect=len(committed))
        every = js.call("consume", topic=dst, readUncommitted=True, expect=len(committed) + len(aborted))
    finally:
        js.close()
        observer.close()
    assert settled == {p: INPUTS // PARTITIONS for p in range(PARTITIONS)}, f"final group offsets {settled}"
    want = by_partition(committed)
    assert by_partition((m["partition"], m["value"].encode()) for m in got) == want, \
        "kafkajs read_committed output differs from the committed transformations"
    assert sorted(m["value"].encode() for m in every) == sorted(v for _, v in committed + aborted), \
        "kafkajs read_uncommitted output is not the committed plus the aborted transformations"
    # The same through librdkafka, which reads to the end and so sees anything extra.
    again = ck_read(bootstrap, dst, PARTITIONS, "read_committed", len(committed))
    assert by_partition((r.partition, r.value) for r in again) == want, \
        "confluent-kafka read_committed of kafkajs's output differs from the committed transformations"
