"""What the exactly-once tests share: reading a topic at an isolation level,
the broker's view of a group's committed offsets, a confluent-kafka
consume-transform-produce loop, a long-lived kafkajs session, and the gate for
brokers without idempotence or transactions.

Waits poll a condition until a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
import time
from typing import Callable, NamedTuple, Optional

import pytest

from clients import COMPAT_DIR, WAIT_S, ck_consumer, wait_until
from gates import BrokerLacksApi, advertised

JS_SESSION = COMPAT_DIR / "js" / "eos.js"

# InitProducerId; then AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit.
IDEMPOTENCE_APIS = frozenset({22})
TRANSACTION_APIS = frozenset({22, 24, 25, 26, 28})


class Out(NamedTuple):
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]


def gate_apis(request, bootstrap: str, apis: frozenset, what: str) -> None:
    """Call first: while the broker does not advertise all of apis, the test is a
    strict xfail that must fail with BrokerLacksApi (see gates.py)."""
    missing = sorted(apis - advertised(bootstrap))
    if missing:
        request.applymarker(pytest.mark.xfail(strict=True, raises=BrokerLacksApi,
                                              reason=f"{what} needs API keys {missing} (issue 4)"))


def ck_raise_lacking(err) -> None:
    """librdkafka's word for "no broker supports idempotence/transactions" becomes BrokerLacksApi."""
    from confluent_kafka import KafkaError
    if err is not None and err.code() == KafkaError._UNSUPPORTED_FEATURE:
        raise BrokerLacksApi(f"confluent-kafka: {err}")


def ck_read(bootstrap: str, topic: str, partitions: int, isolation: str, expect: int) -> list:
    """Every record of topic at isolation.level, read group-less from the beginning
    until at least expect records came and then every partition reported EOF
    (so records beyond expect are read too, and the caller's exact checks see them).

    With read_committed EOF comes at the last stable offset, which reaches the end
    only once the transaction markers are written: hence wait for expect first."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
    c = ck_consumer(bootstrap, **{"isolation.level": isolation})
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out, at_eof = [], set()
        deadline = time.monotonic() + WAIT_S
        while len(out) < expect or len(at_eof) < partitions:
            assert time.monotonic() < deadline, (
                f"{isolation} read of {topic}: {len(out)} records of {expect} expected, "
                f"EOF on partitions {sorted(at_eof)} of {partitions} after {WAIT_S:.0f}s")
            for m in c.consume(num_messages=5000, timeout=0.5):
                err = m.error()
                if err is None:
                    out.append(Out(m.partition(), m.offset(), m.key(), m.value()))
                    at_eof.discard(m.partition())
                elif err.code() == KafkaError._PARTITION_EOF:
                    if len(out) >= expect:
                        at_eof.add(m.partition())
                else:
                    raise AssertionError(f"{isolation} read of {topic}: {err}")
            if len(out) >= expect and len(at_eof) < partitions:
                # EOF events came before the count was reached: ask again from here.
                for p in set(range(partitions)) - at_eof:
                    if _ck_at_end(c, TopicPartition(topic, p)):
                        at_eof.add(p)
        return out
    finally:
        c.close()


def _ck_at_end(c, tp) -> bool:
    """The consumer's position on tp is at the partition's end (as this consumer's
    isolation level sees it: the last stable offset for read_committed)."""
    pos = c.position([tp])[0].offset
    _, high = c.get_watermark_offsets(tp, timeout=10, cached=False)
    return pos >= high


def by_partition(pairs) -> dict:
    """(partition, value) pairs -> {partition: [value, ...]} in the given order."""
    out = {}
    for p, v in pairs:
        out.setdefault(p, []).append(v)
    return out


class GroupOffsets:
    """The broker's committed offsets of one group, read by a consumer that never
    joins it. read_committed makes librdkafka ask with require_stable, so the
    broker answers only once no transaction holds pending offsets for the group:
    an answer then is the group's settled state."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int):
        from confluent_kafka import TopicPartition
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.c = ck_consumer(bootstrap, **{"group.id": group, "isolation.level": "read_committed"})

    def get(self) -> dict:
        """{partition: offset}, without partitions that have none committed."""
        return {tp.partition: tp.offset for tp in self.c.committed(self.tps, timeout=WAIT_S) if tp.offset >= 0}

    def await_equal(self, want: dict, what: str) -> None:
        got = {}

        def reached():
            got["now"] = self.get()
            return got["now"] == want
        try:
            wait_until(reached, what)
        except AssertionError as e:
            raise AssertionError(f"{e}: committed {got.get('now')}, want {want}") from None

    def close(self) -> None:
        self.c.close()


class Transformed(NamedTuple):
    """What a consume-transform-produce run wrote: (partition, output, input) in order."""
    committed: list
    aborted: list
    settled: dict   # the group's offsets after the last committed transaction
    transactions: int


def ck_consume_transform_produce(bootstrap: str, producer, src: str, dst: str, group: str, partitions: int,
                                 inputs: int, batch: int, aborted_batches: set,
                                 transform: Callable[[bytes, int], bytes]) -> Transformed:
    """A read_committed consumer in `group` feeds `producer`, which writes each input
    transformed to the same partition of `dst` and the consumer's offsets in one transaction:
    committed, or aborted for the transactions numbered in `aborted_batches` (then the
    consumer seeks back to the group's offsets and redoes them), until `inputs` inputs are
    done. The group's offsets are checked to move on commit and never on abort."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_committed",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "enable.partition.eof": False})
    observer = GroupOffsets(bootstrap, group, src, partitions)
    consumer.subscribe([src])
    committed, aborted, failed = [], [], []
    settled: dict = {}
    done, txn = 0, 0
    try:
        deadline = time.monotonic() + 2 * WAIT_S
        while done < inputs:
            assert time.monotonic() < deadline, f"consume-transform-produce: {done} of {inputs} done"
            msgs = consumer.consume(num_messages=batch, timeout=0.5)
            for m in msgs:
                assert m.error() is None, f"input consumer: {m.error()}"
            if not msgs:
                continue
            producer.begin_transaction()
            wrote = []
            for m in msgs:
                out = transform(m.value(), txn)
                producer.produce(dst, key=m.key(), value=out, partition=m.partition(),
                                 on_delivery=lambda err, _msg: err and failed.append(err))
                wrote.append((m.partition(), out, m.value()))
            positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
            producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), WAIT_S)
            if txn in aborted_batches:
                # abort_transaction purges what is still queued: flush so the aborted
                # records are in the log, where read_uncommitted must see them.
                assert producer.flush(WAIT_S) == 0, f"txn {txn}: records not acknowledged before the abort"
                assert not failed, f"txn {txn}: delivery errors {failed[:5]}"
                producer.abort_transaction(WAIT_S)
                aborted += wrote
                assert observer.get() == settled, f"txn {txn}: the group's offsets moved on abort"
                # Redo from the group's committed offsets, as an EOS application does.
                back = consumer.committed(consumer.assignment(), timeout=WAIT_S)
                for tp in back:
                    consumer.seek(TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)))
            else:
                producer.commit_transaction(WAIT_S)
                assert not failed, f"txn {txn}: delivery errors {failed[:5]}"
                committed += wrote
                done += len(wrote)
                settled = {**settled, **{tp.partition: tp.offset for tp in positions}}
                observer.await_equal(settled, f"txn {txn}: the group's offsets to reach the committed positions")
            txn += 1
    finally:
        consumer.close()
        observer.close()
    assert not aborted_batches - set(range(txn)), f"only {txn} transactions: some planned aborts never ran"
    return Transformed(committed, aborted, settled, txn)


class JsSession:
    """One `node compat/js/eos.js` process: call(op, **args) sends one request
    line and returns the answer's result, raising on an error answer."""

    def __init__(self, bootstrap: str):
        assert (COMPAT_DIR / "js" / "node_modules" / "kafkajs").is_dir(), "kafkajs not installed: run compat/install.sh"
        self.bootstrap = bootstrap
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(["node", str(JS_SESSION)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=dict(os.environ, COMPAT_WAIT_S=str(WAIT_S)))
        self._buf = b""

    def call(self, op: str, timeout: float = WAIT_S + 30, **args):
        self.proc.stdin.write(json.dumps({"op": op, "brokers": [self.bootstrap], **args}).encode() + b"\n")
        self.proc.stdin.flush()
        ans = json.loads(self._line(op, timeout))
        if not ans["ok"]:
            # kafkajs's word for "the broker lists no version of an API I need".
            cls = BrokerLacksApi if ans["error"].startswith("KafkaJSServerDoesNotSupportApiKey") else AssertionError
            raise cls(f"kafkajs {op}: {ans['error']}\n{ans.get('stack')}\n{self._stderr_tail()}")
        return ans["result"]

    def _line(self, op: str, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            assert left > 0, f"kafkajs {op}: no answer within {timeout:.0f}s\n{self._stderr_tail()}"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 20)
                assert chunk, f"kafkajs session exited ({self.proc.poll()}) during {op}\n{self._stderr_tail()}"
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-3000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
