"""Byte-rate quotas hold real clients to the rate (issue 20): a Java producer and consumer
(Kafka's perf tools) and a librdkafka (confluent-kafka) producer and consumer, each under
its own client-id quota, on a single broker and on a three-node cluster; the clients' own
throttle metrics (produce-throttle-time-max, fetch-throttle-time-max, librdkafka's
per-broker `throttle` statistics) show the throttle.

Kafka measures a rate over quota.window.num (11) windows of a second and counts a young
sensor as ten whole windows, so a client at full speed first sends about ten seconds' worth
at once; then Kafka's windows let it through a burst each time its oldest sample leaves
them (every 11-12 s), which samsa's pace (a token bucket beside the windows) does not. The
rate is therefore measured after a warm-up of WARMUP_S, as the slope of the bytes over
MEASURE_S: 20 s by default (the short form), 60 s for the long form the README describes
(`make quota-long`, held within 10 %). Run with --against-kafka, the same tests measure
Apache Kafka, whose bursts need the wider bands below."""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from cluster import SamsaCluster, create_replicated
from jvm import run_tool
from marks import EXTERNAL

RATE = 400_000  # bytes a second
VALUE = 1000  # bytes of each record's value
WARMUP_S = 12.0
MEASURE_S = float(os.environ.get("QUOTA_MEASURE_S", "20"))
# Within 10 % over a minute. Over the short form's 20 s samsa measured 0.95-1.00 (its pace
# leaves no burst to fall into the 20 s), so its band is 15 %. With Kafka's windows alone a
# librdkafka producer measured 0.91-1.34 over 20 s in eight runs (where in the burst cycle
# the 20 s fall decides: samsa before its pace), so against another
# broker the short form only shows the quota enforced (an unthrottled client is many times
# over it).
if MEASURE_S >= 60:
    BAND = (0.9, 1.1)
else:
    BAND = (0.6, 1.5) if EXTERNAL else (0.85, 1.15)
# Kafka 4.4 answers a fetch over the quota empty and throttles it as though it had been
# sent, so its consumers wait for windows the unsent fetch had filled: over a minute they
# get 0.75-0.82 of the quota. samsa sends that fetch with its records and throttles it as a
# produce, so its consumers are held as its producers are. Against another broker
# (--against-kafka) the long form holds Kafka's consumers to 0.7-1.1, which is what it
# measures.
CONSUMER_BAND = (0.7, 1.1) if EXTERNAL and MEASURE_S >= 60 else BAND


def set_rates(bootstrap: str, client_id: str) -> None:
    run_tool("kafka-configs", "--bootstrap-server", bootstrap, "--alter", "--add-config",
             f"producer_byte_rate={RATE},consumer_byte_rate={RATE}",
             "--entity-type", "clients", "--entity-name", client_id)


def steady_rate(events: list[tuple[float, int]], start: float) -> float:
    """Bytes a second of `events` (time, bytes) over [start + WARMUP_S, + MEASURE_S]: the
    slope of the cumulative bytes, fitted by least squares on a 100 ms grid. A count of the
    bytes between two instants would depend on where they fall in the burst cycle; the
    slope hardly does (Kafka's algorithm simulated: 0.95-1.01 of the quota over a minute,
    0.82-1.13 over 20 s, for any phase)."""
    begin = start + WARMUP_S
    grid = [begin + i / 10 for i in range(int(MEASURE_S * 10))]
    points, total, j = [], 0, 0
    for t in grid:
        while j < len(events) and events[j][0] <= t:
            total += events[j][1]
            j += 1
        points.append((t, total))
    mean_t = sum(t for t, _ in points) / len(points)
    mean_b = sum(b for _, b in points) / len(points)
    covariance = sum((t - mean_t) * (b - mean_b) for t, b in points)
    return covariance / sum((t - mean_t) ** 2 for t, _ in points)


def spread(begin: float, end: float, count: int) -> list[tuple[float, int]]:
    """A tool's report of `count` bytes over [begin, end], as events every 100 ms."""
    steps = max(1, int((end - begin) * 10))
    return [(begin + (k + 1) * (end - begin) / steps, count / steps) for k in range(steps)]


def assert_held(what: str, rate: float, band: tuple[float, float] = BAND) -> None:
    ratio = rate / RATE
    print(f"{what}: {rate:.0f} B/s against a quota of {RATE} B/s ({ratio:.3f}) over {MEASURE_S:.0f} s")
    assert band[0] <= ratio <= band[1], f"{what}: {ratio:.3f} of the quota"


class Throttles:
    """librdkafka's statistics: the largest per-broker throttle it reported."""

    def __init__(self):
        self.max_ms = 0

    def __call__(self, stats_json: str) -> None:
        stats = json.loads(stats_json)
        for broker in stats.get("brokers", {}).values():
            self.max_ms = max(self.max_ms, broker.get("throttle", {}).get("max", 0))


def librdkafka_produce(bootstrap: str, topic: str, client_id: str, seconds: float):
    """Produces as fast as librdkafka lets it for `seconds`; (delivery events, start, throttles)."""
    throttles = Throttles()
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": client_id,
                         "linger.ms": 5, "statistics.interval.ms": 1000, "stats_cb": throttles})
    events: list[tuple[float, int]] = []

    def delivered(err, msg):
        # What is still queued at the end is purged; only deliveries count.
        if err is None:
            events.append((time.monotonic(), len(msg.value())))

    value = b"v" * VALUE
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        # Always a few megabytes queued, so the client is never idle, yet no backlog that
        # would outlive the test.
        if len(producer) < 3000:
            producer.produce(topic, value, on_delivery=delivered)
        else:
            producer.poll(0.01)
        producer.poll(0)
    producer.purge(in_queue=True, in_flight=False)
    producer.flush(60)
    return events, start, throttles


def librdkafka_consume(bootstrap: str, topic: str, client_id: str, seconds: float):
    throttles = Throttles()
    consumer = Consumer({"bootstrap.servers": bootstrap, "client.id": client_id,
                         "group.id": f"g-{client_id}", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "statistics.interval.ms": 1000,
                         "stats_cb": throttles})
    consumer.subscribe([topic])
    events: list[tuple[float, int]] = []
    start = None
    try:
        while start is None or time.monotonic() - start < seconds:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            now = time.monotonic()
            if start is None:
                start = now
            events.append((now, len(msg.value())))
    finally:
        consumer.close()
    return events, start, throttles


def fill(bootstrap: str, topic: str, seconds: float) -> None:
    """More records than a consumer at the quota reads in `seconds`, by an unthrottled producer."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    value = b"f" * VALUE
    for _ in range(int(RATE * (seconds + 2 * WARMUP_S) * 1.2 / VALUE)):
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0


INTERVAL = re.compile(r"^(\d+) records sent, ([\d.]+) records/sec")


def java_produce(bootstrap: str, topic: str, client_id: str, seconds: float):
    """kafka-producer-perf-test for about `seconds`; (per-interval events, start, throttle max)."""
    records = int(RATE * (seconds + 2 * WARMUP_S) / VALUE)
    out = run_tool("kafka-producer-perf-test", "--topic", topic, "--num-records", str(records),
                   "--record-size", str(VALUE), "--throughput", "-1", "--print-metrics",
                   "--producer-props", f"bootstrap.servers={bootstrap}", f"client.id={client_id}",
                   timeout=seconds * 4 + 120).stdout
    # Each interval line covers its records over records/rate seconds, back to back.
    events, t = [], 0.0
    for line in out.splitlines():
        m = INTERVAL.match(line)
        if m and "ms 50th" not in line:
            count, per_s = int(m[1]), float(m[2])
            took = count / per_s if per_s else 0.0
            events += spread(t, t + took, count * VALUE)
            t += took
    return events, 0.0, metric(out, "producer-metrics:produce-throttle-time-max")


def java_consume(bootstrap: str, topic: str, client_id: str, seconds: float):
    props = f"/tmp/quota-consumer-{client_id}.properties"
    with open(props, "w") as f:
        f.write(f"client.id={client_id}\n")
    count = int(RATE * (seconds + 2 * WARMUP_S) / VALUE)
    out = run_tool("kafka-consumer-perf-test", "--bootstrap-server", bootstrap, "--topic", topic,
                   "--messages", str(count), "--consumer.config", props, "--show-detailed-stats",
                   "--reporting-interval", "1000", "--print-metrics", "--timeout", "60000",
                   timeout=seconds * 4 + 120).stdout
    # Detailed lines: time, ..., data.consumed.in.nMsg (so far), ... as the header names them.
    events, first, last_msgs, column = [], None, 0, None
    for line in out.splitlines():
        cols = [c.strip() for c in line.split(",")]
        if cols[0] == "time":
            column = cols.index("data.consumed.in.nMsg")
            continue
        if column is None or len(cols) <= column or not re.match(r"^\d{4}-\d\d-\d\d", cols[0]):
            continue
        try:
            msgs = int(cols[column])
        except ValueError:
            continue
        t = time.mktime(time.strptime(cols[0][:19], "%Y-%m-%d %H:%M:%S")) + int(cols[0][20:23]) / 1000
        if first is None:
            first = t - 1.0
        events += spread(t - 1.0, t, (msgs - last_msgs) * VALUE)
        last_msgs = msgs
    return events, first, metric(out, "consumer-fetch-manager-metrics:fetch-throttle-time-max")


def metric(out: str, name: str) -> float:
    """A metric --print-metrics printed (the first client-id's)."""
    for line in out.splitlines():
        if line.startswith(name + ":"):
            return float(line.rsplit(":", 1)[1])
    raise AssertionError(f"{name} not printed:\n{out[-2000:]}")


def check_producer(bootstrap: str, topic: str, client: str) -> None:
    client_id = f"{client}-producer-{uuid.uuid4().hex[:6]}"
    set_rates(bootstrap, client_id)
    produce = librdkafka_produce if client == "librdkafka" else java_produce
    events, start, throttles = produce(bootstrap, topic, client_id, WARMUP_S + MEASURE_S)
    assert_held(f"{client} producer", steady_rate(events, start))
    throttle_max = throttles.max_ms if isinstance(throttles, Throttles) else throttles
    assert throttle_max > 0, "the producer's own metrics show no throttle"


def check_consumer(bootstrap: str, topic: str, client: str) -> None:
    """`topic` holds more than the consumer may read meanwhile (see `fill`)."""
    client_id = f"{client}-consumer-{uuid.uuid4().hex[:6]}"
    set_rates(bootstrap, client_id)
    consume = librdkafka_consume if client == "librdkafka" else java_consume
    events, start, throttles = consume(bootstrap, topic, client_id, WARMUP_S + MEASURE_S)
    assert_held(f"{client} consumer", steady_rate(events, start), CONSUMER_BAND)
    throttle_max = throttles.max_ms if isinstance(throttles, Throttles) else throttles
    assert throttle_max > 0, "the consumer's own metrics show no throttle"


def create(bootstrap: str, topic: str) -> None:
    run_tool("kafka-topics", "--bootstrap-server", bootstrap, "--create", "--topic", topic,
             "--partitions", "1")


def together(*calls) -> None:
    """Runs `calls` side by side, each in a thread; raises the first failure in the test's
    own thread once all are done."""
    failed: list[BaseException] = []

    def running(call) -> None:
        try:
            call()
        except BaseException as e:
            failed.append(e)

    threads = [threading.Thread(target=running, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise failed[0]


def check_both(bootstrap: str, topics: tuple[str, str], client: str) -> None:
    """`client`'s producer and consumer, each under its own client-id quota, measured side
    by side on topics of their own (the consumer's filled first): the quotas are per client
    id, so neither holds the other back, and the pair takes half the time."""
    produce_topic, consume_topic = topics
    fill(bootstrap, consume_topic, WARMUP_S + MEASURE_S)
    together(lambda: check_producer(bootstrap, produce_topic, client),
             lambda: check_consumer(bootstrap, consume_topic, client))


CLIENTS = ["java", "librdkafka"]


def test_byte_rates_held(bootstrap, topic_name):
    """Each client's producer and consumer at once, every client-id under its own quota: the
    four are measured side by side, as the quotas are independent."""
    topics = {client: (topic_name(), topic_name()) for client in CLIENTS}
    for pair in topics.values():
        for topic in pair:
            create(bootstrap, topic)
    together(*(lambda c=client: check_both(bootstrap, topics[c], c) for client in CLIENTS))


@pytest.fixture(scope="module")
def quota_cluster(tmp_path_factory):
    if EXTERNAL:
        pytest.skip("starts a samsa cluster of its own")
    c = SamsaCluster(tmp_path_factory.mktemp("quota-cluster")).start()
    yield c
    c.stop()


# The short form in `make test` measures one client on the cluster (the enforcement there
# is the single node's, on each partition's leader, with quotas from the metadata); the
# long form both.
CLUSTER_CLIENTS = CLIENTS if MEASURE_S >= 60 else ["librdkafka"]


@pytest.mark.parametrize("client", CLUSTER_CLIENTS)
def test_byte_rates_held_on_a_cluster(quota_cluster, topic_name, client):
    """Replicated partitions: their leader holds the client to the rate, whichever node the
    client bootstraps from; the quota reached every node through the metadata."""
    topics = topic_name(), topic_name()
    for topic in topics:
        create_replicated(quota_cluster, topic, 1)
    check_both(quota_cluster.bootstrap, topics, client)


def test_throttled_clients_do_not_slow_others(bootstrap, topic_name):
    """While a producer is held to its quota, an unthrottled one on the same broker is not."""
    topic = topic_name()
    create(bootstrap, topic)
    throttled_id = f"held-{uuid.uuid4().hex[:6]}"
    set_rates(bootstrap, throttled_id)
    held = threading.Thread(target=librdkafka_produce, args=(bootstrap, topic, throttled_id, 15))
    held.start()
    try:
        throttles = Throttles()
        free = Producer({"bootstrap.servers": bootstrap, "client.id": f"free-{throttled_id}",
                         "statistics.interval.ms": 1000, "stats_cb": throttles})
        for _ in range(20_000):
            while True:
                try:
                    free.produce(topic, b"x" * VALUE)
                    break
                except BufferError:
                    free.poll(0.05)
            free.poll(0)
        # Twenty megabytes, far over what the held producer may send meanwhile, unthrottled.
        assert free.flush(60) == 0
        assert throttles.max_ms == 0
    finally:
        held.join()
