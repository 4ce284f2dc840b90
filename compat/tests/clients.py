"""Thin drivers for the real Kafka clients the compat suite runs.

Every client is reduced to the same few operations so tests can mix them:

    create_topic(bootstrap, topic, partitions)   via the client's admin API
    produce(bootstrap, topic, records, codec)     -> records with partition/offset
    consume(bootstrap, topic)                     -> every record in the topic

Records are `Rec` tuples; keys, values and header values are bytes.
Nothing here sleeps for a fixed time: waits poll a condition until a deadline.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple, Optional

COMPAT_DIR = Path(__file__).resolve().parent.parent
JS_DRIVER = COMPAT_DIR / "js" / "driver.js"

CODECS = ("gzip", "snappy", "lz4", "zstd")
CLIENTS = ("kcat", "confluent", "kafka-python", "kafkajs")

# One deadline for "the broker should have answered by now" waits.
WAIT_S = float(os.environ.get("COMPAT_WAIT_S", "60"))


class Rec(NamedTuple):
    partition: Optional[int]   # None before the producer learnt it
    offset: Optional[int]
    key: Optional[bytes]
    value: Optional[bytes]
    headers: tuple             # ((str, bytes), ...)
    timestamp: Optional[int]   # ms; None = set by the producer client (CreateTime = now)


@dataclass
class Dataset:
    """What a producer wrote: the records with the partition/offset the broker acknowledged."""
    producer: str
    codec: str
    topic: str
    partitions: int
    records: list              # [Rec], every field known except maybe timestamp
    ts_range: tuple            # (lo, hi) ms bounds for records whose timestamp is None


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_until(cond: Callable[[], object], what: str, timeout: float = WAIT_S, interval: float = 0.05):
    """Poll cond() until it returns a truthy value; return it, or fail after timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - report the last failure on timeout
            last_exc = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


# --------------------------------------------------------------------------
# Test data
# --------------------------------------------------------------------------

def make_records(tag: str, n: int, ts_base: Optional[int] = None, edge_cases: bool = True) -> list:
    """n small records with unique keys, two headers and explicit timestamps.

    With edge_cases, a few records have a null key, an empty value, a null
    value or no headers, so every client must keep those distinctions.
    Everything is printable ASCII without ':' in keys or newlines, so kcat
    can carry it as text.
    """
    if ts_base is None:
        ts_base = now_ms() - 600_000  # in the past, well inside retention and timestamp limits
    out = []
    for i in range(n):
        key = f"{tag}-k{i:05d}".encode()
        value = f"{tag}|{i}|".encode() + b"abcdefghij" * (i % 8)
        headers = (("seq", str(i).encode()), ("src", tag.encode()))
        if edge_cases:
            if i % 997 == 13:
                key = None
            if i % 991 == 17:
                value = b""
            if i % 983 == 19:
                value = None
            if i % 977 == 23:
                headers = ()
        out.append(Rec(None, None, key, value, headers, ts_base + i))
    return out


def assert_same_records(expected: Dataset, got: list, who: str) -> None:
    """Every acknowledged record is read back exactly once, at its acknowledged
    partition and offset, with key, value, headers and timestamp intact, and
    each partition comes back in offset order."""
    assert len(got) == len(expected.records), (
        f"{who}: read {len(got)} records from {expected.topic}, {expected.producer} "
        f"wrote {len(expected.records)}")
    # In order per partition: offsets strictly increase in the order the consumer saw them.
    last = {}
    for r in got:
        assert r.offset > last.get(r.partition, -1), (
            f"{who}: partition {r.partition} out of order: offset {r.offset} after {last[r.partition]}")
        last[r.partition] = r.offset
    want = {(r.partition, r.offset): r for r in expected.records}
    assert len(want) == len(expected.records), f"{expected.producer}: two records acknowledged at one offset"
    lo, hi = expected.ts_range
    bad = []
    for r in got:
        w = want.get((r.partition, r.offset))
        if w is None:
            bad.append(f"unexpected record at {r.partition}/{r.offset}: {r}")
        else:
            ts_ok = (r.timestamp == w.timestamp) if w.timestamp is not None else (lo <= r.timestamp <= hi)
            if (r.key, r.value, tuple(r.headers)) != (w.key, w.value, tuple(w.headers)) or not ts_ok:
                bad.append(f"at {r.partition}/{r.offset}: got {r}, want {w}")
        if len(bad) >= 5:
            break
    assert not bad, f"{who}: records differ from what {expected.producer} wrote:\n" + "\n".join(bad)
    # The broker kept send order: within a partition, offsets grow with send order.
    sent = {(r.partition, r.offset): i for i, r in enumerate(expected.records)}
    prev = {}
    for (p, o) in sorted(sent):
        assert sent[(p, o)] > prev.get(p, (-1,))[0], (
            f"{expected.producer}: partition {p} out of send order: record #{sent[(p, o)]} sent is at offset {o}, "
            f"after record #{prev[p][0]} sent later, at offset {prev[p][1]}")
        prev[p] = (sent[(p, o)], o)


# --------------------------------------------------------------------------
# confluent-kafka (librdkafka, bundled new version)
# --------------------------------------------------------------------------

def ck_admin(bootstrap: str):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": bootstrap})


def ck_create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import NewTopic
    admin = ck_admin(bootstrap)
    futs = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                               operation_timeout=30, request_timeout=30)
    futs[topic].result(timeout=WAIT_S)
    wait_until(lambda: _ck_partition_count(admin, topic) == partitions,
               f"metadata to show {topic} with {partitions} partitions")


def _ck_partition_count(admin, topic: str) -> int:
    md = admin.list_topics(topic, timeout=10).topics.get(topic)
    if md is None or md.error is not None:
        return 0
    return len(md.partitions)


def ck_producer(bootstrap: str, codec: str = "none", **extra):
    from confluent_kafka import Producer
    conf = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        "compression.type": codec,
        "linger.ms": 20,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 200000,
    }
    conf.update(extra)
    return Producer(conf)


def ck_produce(bootstrap: str, topic: str, records: list, codec: str = "none") -> list:
    p = ck_producer(bootstrap, codec)
    acked = [None] * len(records)
    errors = []

    def on_delivery(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err))
            else:
                r = records[i]
                acked[i] = r._replace(partition=msg.partition(), offset=msg.offset())
        return cb

    for i, r in enumerate(records):
        kw = {"key": r.key, "value": r.value, "on_delivery": on_delivery(i)}
        if r.headers:
            kw["headers"] = list(r.headers)
        if r.timestamp is not None:
            kw["timestamp"] = r.timestamp
        if r.partition is not None:
            kw["partition"] = r.partition
        while True:
            try:
                p.produce(topic, **kw)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(WAIT_S)
    assert remaining == 0, f"confluent-kafka: {remaining} records not delivered within {WAIT_S}s"
    assert not errors, f"confluent-kafka: delivery errors: {errors[:5]}"
    return acked


def ck_consumer(bootstrap: str, **extra):
    """A consumer that never joins a group: assign() + explicit offsets, no commits.

    confluent-kafka insists on a group.id; it is only a label here. (librdkafka
    still looks the coordinator up in the background, see compat/README.md.)"""
    from confluent_kafka import Consumer
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": "samsa-compat-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
    }
    conf.update(extra)
    return Consumer(conf)


def _ck_rec(m) -> Rec:
    hdrs = tuple((k, v) for k, v in (m.headers() or []))
    return Rec(m.partition(), m.offset(), m.key(), m.value(), hdrs, m.timestamp()[1])


def ck_consume(bootstrap: str, topic: str, offsets: Optional[dict] = None, partitions: Optional[int] = None) -> list:
    """Read from offsets ({partition: offset}, default all from the beginning)
    up to the high watermark of each partition."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
    c = ck_consumer(bootstrap)
    try:
        if offsets is None:
            n = partitions or len(c.list_topics(topic, timeout=10).topics[topic].partitions)
            offsets = {p: OFFSET_BEGINNING for p in range(n)}
        c.assign([TopicPartition(topic, p, o) for p, o in offsets.items()])
        pending = set(offsets)
        out = []
        deadline = time.monotonic() + WAIT_S
        while pending:
            assert time.monotonic() < deadline, f"confluent-kafka: no EOF on partitions {pending} of {topic}"
            for m in c.consume(num_messages=5000, timeout=0.5):
                err = m.error()
                if err is None:
                    out.append(_ck_rec(m))
                    pending.add(m.partition())  # data after an EOF: not at the end after all
                elif err.code() == KafkaError._PARTITION_EOF:
                    pending.discard(m.partition())
                else:
                    raise AssertionError(f"confluent-kafka consume error: {err}")
        return out
    finally:
        c.close()


# --------------------------------------------------------------------------
# kafka-python
# --------------------------------------------------------------------------

def kp_create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="samsa-compat")
    try:
        admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}},
                            wait_for_metadata=True)
        md = admin.describe_topics([topic])
        assert len(md) == 1 and len(md[0]["partitions"]) == partitions, f"kafka-python: {topic} metadata: {md}"
    finally:
        admin.close()


def kp_produce(bootstrap: str, topic: str, records: list, codec: Optional[str] = None) -> list:
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False,
                      compression_type=codec, linger_ms=20, batch_size=256 * 1024,
                      max_request_size=8 * 1024 * 1024)
    try:
        futs = []
        for r in records:
            futs.append(p.send(topic, key=r.key, value=r.value, headers=list(r.headers),
                               timestamp_ms=r.timestamp, partition=r.partition))
        p.flush(timeout=WAIT_S)
        out = []
        for r, f in zip(records, futs):
            md = f.get(timeout=WAIT_S)
            out.append(r._replace(partition=md.partition, offset=md.offset))
        return out
    finally:
        p.close(timeout=10)


def kp_consume(bootstrap: str, topic: str, partitions: Optional[int] = None) -> list:
    """Group-less consumer: assign() + seek_to_beginning(), read up to end_offsets()."""
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
    try:
        if partitions is None:
            partitions = len(wait_until(lambda: c.partitions_for_topic(topic), f"kafka-python partitions of {topic}"))
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        out = []
        deadline = time.monotonic() + WAIT_S
        while any(c.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"kafka-python: did not reach the end of {topic}"
            for tp, msgs in c.poll(timeout_ms=500, max_records=5000).items():
                for m in msgs:
                    hdrs = tuple((k, v) for k, v in (m.headers or []))
                    out.append(Rec(m.partition, m.offset, m.key, m.value, hdrs, m.timestamp))
        return out
    finally:
        c.close()


# --------------------------------------------------------------------------
# kcat (Debian's, librdkafka 2.0)
# --------------------------------------------------------------------------

def kcat_bin() -> str:
    b = shutil.which("kcat") or shutil.which("kafkacat")
    assert b, "kcat not installed: run compat/install.sh"
    return b


def kcat(bootstrap: str, *args: str, input: Optional[bytes] = None, timeout: float = WAIT_S,
         check: bool = True) -> subprocess.CompletedProcess:
    cmd = [kcat_bin(), "-b", bootstrap, "-X", "socket.timeout.ms=10000", *args]
    p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
    if check:
        assert p.returncode == 0, (f"{' '.join(cmd)} exited {p.returncode}\n"
                                   f"stderr: {p.stderr.decode(errors='replace')[-2000:]}")
    return p


def kcat_produce_lines(bootstrap: str, topic: str, lines: list, partition: Optional[int] = None,
                       headers: tuple = (), codec: Optional[str] = None) -> None:
    """kcat -P -K: with one 'key:value' line per record and the same headers on each."""
    args = ["-P", "-t", topic, "-K:", "-X", "acks=all", "-X", "linger.ms=20",
            "-X", "batch.num.messages=10000"]
    if partition is not None:
        args += ["-p", str(partition)]
    if codec:
        args += ["-z", codec]
    for k, v in headers:
        args += ["-H", f"{k}={v}"]
    kcat(bootstrap, *args, input=b"".join(l + b"\n" for l in lines))


def kcat_json_records(stdout: bytes) -> list:
    out = []
    for line in stdout.decode().splitlines():
        if not line.strip():
            continue
        j = json.loads(line)
        h = j.get("headers") or []
        hdrs = tuple((h[i], h[i + 1].encode() if h[i + 1] is not None else None) for i in range(0, len(h), 2))
        key = j["key"].encode() if j["key"] is not None else None
        val = j["payload"].encode() if j["payload"] is not None else None
        out.append(Rec(j["partition"], j["offset"], key, val, hdrs, j["ts"]))
    return out


def kcat_consume(bootstrap: str, topic: str, offset: str = "beginning", partition: Optional[int] = None,
                 count: Optional[int] = None) -> list:
    args = ["-C", "-t", topic, "-o", offset, "-e", "-J", "-q"]
    if partition is not None:
        args += ["-p", str(partition)]
    if count is not None:
        args += ["-c", str(count)]
    return kcat_json_records(kcat(bootstrap, *args).stdout)


def kcat_metadata(bootstrap: str, topic: Optional[str] = None) -> dict:
    args = ["-L", "-J"] + (["-t", topic] if topic else [])
    return json.loads(kcat(bootstrap, *args).stdout)


# --------------------------------------------------------------------------
# kafkajs (Node, via compat/js/driver.js)
# --------------------------------------------------------------------------

def _b64(b: Optional[bytes]):
    return None if b is None else base64.b64encode(b).decode()


def _unb64(s) -> Optional[bytes]:
    return None if s is None else base64.b64decode(s)


class KafkajsError(AssertionError):
    pass


class KafkajsConsumeError(KafkajsError):
    """kafkajs could not consume at all (it only consumes through a consumer group)."""


def kafkajs(cmd: str, bootstrap: str, timeout: float = WAIT_S + 30, error=KafkajsError, **args) -> object:
    """Run one driver.js command; it reads a JSON request on stdin and writes a JSON answer."""
    assert JS_DRIVER.is_file(), f"{JS_DRIVER} missing"
    assert (COMPAT_DIR / "js" / "node_modules" / "kafkajs").is_dir(), "kafkajs not installed: run compat/install.sh"
    req = {"cmd": cmd, "brokers": [bootstrap], "timeoutMs": int(WAIT_S * 1000), **args}
    p = subprocess.run(["node", str(JS_DRIVER)], input=json.dumps(req).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        raise error(f"kafkajs {cmd} exited {p.returncode}: {p.stderr.decode(errors='replace')[-3000:]}")
    return json.loads(p.stdout)


def js_create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    kafkajs("create-topic", bootstrap, topic=topic, partitions=partitions)


def js_produce(bootstrap: str, topic: str, records: list, codec: Optional[str] = None) -> list:
    msgs = [{"key": _b64(r.key), "value": _b64(r.value),
             "headers": [[k, _b64(v)] for k, v in r.headers],
             "timestamp": None if r.timestamp is None else str(r.timestamp),
             "partition": r.partition} for r in records]
    res = kafkajs("produce", bootstrap, topic=topic, codec=codec, messages=msgs)
    return [r._replace(partition=a["partition"], offset=a["offset"]) for r, a in zip(records, res["acks"])]


def js_consume(bootstrap: str, topic: str) -> list:
    res = kafkajs("consume", bootstrap, topic=topic, error=KafkajsConsumeError)
    return [Rec(m["partition"], m["offset"], _unb64(m["key"]), _unb64(m["value"]),
                tuple((k, _unb64(v)) for k, v in m["headers"]), m["timestamp"]) for m in res["messages"]]


# --------------------------------------------------------------------------
# Uniform table
# --------------------------------------------------------------------------

def kcat_produce_dataset(bootstrap: str, topic: str, records: list, partitions: int, codec: str) -> list:
    """kcat reports no offsets and sets no timestamps, so it writes each
    partition's share with one `kcat -P -p N` run into a fresh topic: offsets
    are then 0..n-1 in input order, and timestamps are checked against the time
    window of the run. kcat's -H headers apply to a whole run, so every record
    carries (src, part) headers instead of per-record ones."""
    out = []
    for p in range(partitions):
        mine = [r for i, r in enumerate(records) if i % partitions == p]
        hdrs = (("src", b"kcat"), ("part", str(p).encode()))
        kcat_produce_lines(bootstrap, topic, [r.key + b":" + r.value for r in mine], partition=p,
                           headers=tuple((k, v.decode()) for k, v in hdrs), codec=codec)
        out += [r._replace(partition=p, offset=o, headers=hdrs, timestamp=None) for o, r in enumerate(mine)]
    return out


CREATE_TOPIC = {
    "kcat": ck_create_topic,  # kcat has no admin commands
    "confluent": ck_create_topic,
    "kafka-python": kp_create_topic,
    "kafkajs": js_create_topic,
}

CONSUME = {
    "kcat": lambda b, t: kcat_consume(b, t),
    "confluent": lambda b, t: ck_consume(b, t),
    "kafka-python": lambda b, t: kp_consume(b, t),
    "kafkajs": lambda b, t: js_consume(b, t),
}


def produce_dataset(bootstrap: str, producer: str, codec: str, topic: str, n: int, partitions: int) -> Dataset:
    CREATE_TOPIC[producer](bootstrap, topic, partitions)
    tag = f"{producer}.{codec}"
    lo = now_ms()
    if producer == "kcat":
        recs = make_records(tag, n, edge_cases=False)
        acked = kcat_produce_dataset(bootstrap, topic, recs, partitions, codec)
    else:
        recs = make_records(tag, n)
        acked = {"confluent": ck_produce, "kafka-python": kp_produce, "kafkajs": js_produce}[producer](
            bootstrap, topic, recs, codec)
    hi = now_ms()
    assert all(r is not None and r.offset is not None and r.offset >= 0 for r in acked), \
        f"{producer}: some records were not acknowledged with an offset"
    assert {r.partition for r in acked} == set(range(partitions)), \
        f"{producer}: records did not spread over all {partitions} partitions"
    return Dataset(producer, codec, topic, partitions, acked, (lo - 1000, hi + 1000))
