"""The Go clients, unchanged: franz-go, sarama and kafka-go (compat/go). Each
writes keyed records with headers, with each compression, to a 4-partition
topic it creates itself; each of the three reads every partition back directly
(franz-go ConsumePartitions, sarama ConsumePartition, kafka-go Reader with
Partition) and must find exactly what the writer had acknowledged. Then each
reads its own records through its consumer group (franz-go kgo.ConsumerGroup,
sarama ConsumerGroup after its AsyncProducer, kafka-go Reader with GroupID),
and kadm sees the topic, the group and its offsets committed to the end."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

import go_build
from go_build import GO_DIR

CLIENTS = ("franz-go", "sarama", "kafka-go")


@pytest.fixture(scope="session")
def go_tests():
    """The compat/go test binary (go_build.py: built once, started as early as possible)."""
    return go_build.binary()


@pytest.mark.parametrize("writer", CLIENTS)
def test_go_clients(go_tests, bootstrap, writer):
    """WRITER's records, read by franz-go, sarama and kafka-go."""
    proc = subprocess.run([str(go_tests), "-test.v", "-test.count=1", "-test.timeout=5m",
                           "-test.run", f"^TestClients$/^{re.escape(writer)}$"],
                          cwd=GO_DIR, env=dict(os.environ, KAFKA_BOOTSTRAP=bootstrap),
                          capture_output=True, text=True, timeout=360, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"go test for {writer} failed:\n{out[-6000:]}"
    for reader in CLIENTS:
        assert f"--- PASS: TestClients/{writer}/{reader} " in out, f"{reader} did not read {writer}'s records:\n{out[-4000:]}"


def run_go(go_tests, bootstrap, pattern: str) -> str:
    proc = subprocess.run([str(go_tests), "-test.v", "-test.count=1", "-test.timeout=5m", "-test.run", pattern],
                          cwd=GO_DIR, env=dict(os.environ, KAFKA_BOOTSTRAP=bootstrap),
                          capture_output=True, text=True, timeout=360, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    return out if proc.returncode == 0 else f"exit {proc.returncode}\n{out}"


@pytest.mark.parametrize("client", CLIENTS)
def test_go_groups(go_tests, bootstrap, client):
    """CLIENT reads every record back through its consumer group, in order per partition."""
    out = run_go(go_tests, bootstrap, f"^TestGroups$/^{re.escape(client)}$")
    assert f"--- PASS: TestGroups/{client} " in out, f"{client} consumer group:\n{out[-6000:]}"


def test_go_franz_consumer_protocol(go_tests, bootstrap):
    """franz-go's KIP-848 consumers (ServerSideBalancer, the broker's `range` assignor): two
    members split the partitions, each record is read once, the group is listed as a
    `consumer` group, and the member that stays takes over when the other leaves."""
    out = run_go(go_tests, bootstrap, "^TestConsumerProtocol$")
    assert "--- PASS: TestConsumerProtocol " in out, f"franz-go consumer protocol:\n{out[-6000:]}"


@pytest.mark.parametrize("case", ("accept", "release", "reject", "two-consumers"))
def test_go_franz_share_consumer(go_tests, bootstrap, case):
    """franz-go's share consumer (kgo.ShareGroup, KIP-932): accepted records are read once
    with delivery count 1; a released one comes back with its count one higher until the
    delivery-count limit archives it; a rejected one never comes back; two members on one
    partition share its records without overlap. The share group then has no lag."""
    out = run_go(go_tests, bootstrap, f"^TestShareConsumer$/^{re.escape(case)}$")
    assert f"--- PASS: TestShareConsumer/{case} " in out, f"franz-go share consumer, {case}:\n{out[-6000:]}"
