"""Client telemetry (KIP-714) from real clients (samsa only: /metrics is samsa's).

With a subscription configured, samsa lists GetTelemetrySubscriptions and PushTelemetry;
the Java 4.4 client (enable.metrics.push is on by default) and librdkafka 2.x then push
their metrics, which must show on /metrics with the client's instance id, client id and
principal as labels while the client is connected. A raw client that misbehaves gets
Kafka's error codes and leaves the broker serving.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import REPO, SamsaBroker
from jvm import JVM_OPTS, KAFKA_TOOLS

SUBSCRIPTION = """
[[telemetry.subscription]]
name = "clients"
metrics = ["org.apache.kafka.producer.", "org.apache.kafka.consumer."]
interval_ms = 1000
"""


@pytest.fixture
def telemetry_broker(tmp_path):
    config = tmp_path / "samsa.toml"
    config.write_text((REPO / "etc" / "samsa.toml").read_text() + SUBSCRIPTION)
    b = SamsaBroker(tmp_path / "data", config=config).start()
    try:
        yield b
    finally:
        if b.alive():
            b.stop_clean()


def scrape(broker) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.metrics_port}/metrics", timeout=10) as r:
        return r.read().decode()


def await_series(broker, prefix: str, client_id: str, timeout: float = 60.0) -> list[str]:
    """The sample lines of metrics named `prefix...` pushed by `client_id`, once there are some."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = scrape(broker)
        found = [line for line in text.splitlines()
                 if line.startswith(prefix) and f'client_id="{client_id}"' in line]
        if found:
            return found
        time.sleep(0.25)
    pushed = sorted({line.split("{")[0] for line in text.splitlines() if line.startswith("org_")})
    raise AssertionError(f"no {prefix}* series from {client_id} within {timeout}s; pushed: {pushed[:20]}")


def labels(line: str) -> dict:
    return dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line.split("{", 1)[1].rsplit("}", 1)[0]))


def start_tool(*args: str) -> subprocess.Popen:
    env = dict(os.environ, KAFKA_TOOLS_JVM_OPTS=" ".join(JVM_OPTS))
    return subprocess.Popen([str(KAFKA_TOOLS), *args], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_java_producer_and_consumer_metrics_appear(telemetry_broker, topic_name):
    b = telemetry_broker
    topic = topic_name()
    producer = start_tool("kafka-producer-perf-test", "--topic", topic, "--num-records", "10000000",
                          "--throughput", "200", "--record-size", "100", "--producer-props",
                          f"bootstrap.servers={b.bootstrap}", "client.id=telemetry-producer")
    consumer = start_tool("kafka-console-consumer", "--bootstrap-server", b.bootstrap, "--topic", topic,
                          "--group", f"{topic}-group", "--consumer-property", "client.id=telemetry-consumer",
                          "--from-beginning")
    try:
        produced = await_series(b, "org_apache_kafka_producer_record_queue_time_avg", "telemetry-producer")
        consumed = await_series(b, "org_apache_kafka_consumer_", "telemetry-consumer")
        # What the consumer says about itself (its group) labels one info series.
        info = await_series(b, "samsa_client_telemetry_info", "telemetry-consumer")
        assert any(labels(line).get("group_id") == f"{topic}-group" for line in info), info
    finally:
        stop(producer)
        stop(consumer)
    for line in produced + consumed:
        got = labels(line)
        assert got["principal"] == "User:ANONYMOUS", line
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", got["client_instance_id"]), line
    assert len({labels(line)["client_instance_id"] for line in produced}) == 1
    # Once the clients are gone (their connections closed), so are their series.
    deadline = time.monotonic() + 30
    while 'client_id="telemetry-producer"' in scrape(b):
        assert time.monotonic() < deadline, "the producer's series outlived it"
        time.sleep(0.25)


def test_librdkafka_metrics_appear(telemetry_broker, topic_name):
    from confluent_kafka import Producer
    b = telemetry_broker
    producer = Producer({"bootstrap.servers": b.bootstrap, "client.id": "telemetry-librdkafka"})
    topic = topic_name()
    deadline = time.monotonic() + 60
    found = []
    while not found and time.monotonic() < deadline:
        producer.produce(topic, b"x")
        producer.poll(0.2)
        text = scrape(b)
        found = [line for line in text.splitlines()
                 if line.startswith("org_apache_kafka_producer_") and 'client_id="telemetry-librdkafka"' in line]
    producer.flush(10)
    assert found, "librdkafka pushed nothing within 60s"
    assert labels(found[0])["principal"] == "User:ANONYMOUS"


# --- a raw client that misbehaves --------------------------------------------------------

def frame(api_key: int, version: int, correlation: int, body: bytes, flexible: bool = True) -> bytes:
    client_id = b"misbehaving"
    header = struct.pack(">hhih", api_key, version, correlation, len(client_id)) + client_id
    if flexible:
        header += b"\x00"  # no tagged fields
    msg = header + body
    return struct.pack(">i", len(msg)) + msg


def uvarint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


class Raw:
    def __init__(self, bootstrap: str):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=15)
        self.correlation = 0

    def call(self, api_key: int, body: bytes) -> bytes:
        self.correlation += 1
        self.sock.sendall(frame(api_key, 0, self.correlation, body))
        size = struct.unpack(">i", self.read(4))[0]
        response = self.read(size)
        assert struct.unpack(">i", response[:4])[0] == self.correlation
        return response[5:]  # correlation id, then the header's empty tagged fields

    def read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "the broker closed the connection"
            data += chunk
        return data

    def get_subscriptions(self, instance: bytes = bytes(16)) -> tuple[int, bytes, int]:
        """(error code, instance id, subscription id)."""
        r = self.call(71, instance + b"\x00")
        _throttle, error = struct.unpack(">ih", r[:6])
        return error, r[6:22], struct.unpack(">i", r[22:26])[0]

    def push(self, instance: bytes, subscription: int, compression: int, metrics: bytes,
             terminating: bool = False) -> int:
        body = (instance + struct.pack(">i?b", subscription, terminating, compression)
                + uvarint(len(metrics) + 1) + metrics + b"\x00")
        r = self.call(72, body)
        return struct.unpack(">h", r[4:6])[0]


def test_misbehaving_client_gets_kafka_codes(telemetry_broker):
    b = telemetry_broker
    raw = Raw(b.bootstrap)
    error, instance, sub = raw.get_subscriptions()
    assert error == 0 and instance != bytes(16)
    assert raw.push(instance, sub, 0, b"") == 0
    assert raw.push(instance, sub, 0, b"") == 89, "THROTTLING_QUOTA_EXCEEDED: too soon"
    assert raw.get_subscriptions(instance)[0] == 89, "asked again too soon"

    error, instance, sub = raw.get_subscriptions()
    assert raw.push(instance, sub ^ 1, 0, b"") == 117, "UNKNOWN_SUBSCRIPTION_ID"
    error, instance, sub = raw.get_subscriptions()
    assert raw.push(instance, sub, 5, b"") == 76, "UNSUPPORTED_COMPRESSION_TYPE"
    error, instance, sub = raw.get_subscriptions()
    assert raw.push(instance, sub, 0, b"\x0a" * 1_048_577) == 118, "TELEMETRY_TOO_LARGE"
    error, instance, sub = raw.get_subscriptions()
    assert raw.push(instance, sub, 0, b"\xff" * 64) == 87, "INVALID_RECORD: not OTLP"

    # Thousands of instances pushing as fast as they may: the broker keeps serving and its
    # memory stays bounded (instances are capped, series too).
    before = rss(b)
    for i in range(3000):
        error, instance, sub = raw.get_subscriptions(uuid.uuid4().bytes)
        assert error == 0
        assert raw.push(instance, sub, 0, b"") == 0
    assert raw.get_subscriptions()[0] == 0
    assert rss(b) - before < 64 << 20, f"resident memory grew from {before} to {rss(b)}"


def rss(broker) -> int:
    pid = broker.proc.pid
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")
