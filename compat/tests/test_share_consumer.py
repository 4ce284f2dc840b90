"""Share groups (KIP-932) with Kafka's own tools: kafka-console-share-consumer joins a share
group, is assigned the topic's partition, and reads what is produced once it has started
(share.auto.offset.reset is latest by default), each record once; and, with the group's
share.auto.offset.reset set to earliest by kafka-configs, what was produced before.

Against samsa the test has a broker of its own."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from conftest import EXTERNAL, SamsaBroker
from jvm import JVM_OPTS, KAFKA_TOOLS, run_tool


@pytest.fixture
def share_bootstrap(tmp_path, bootstrap):
    if EXTERNAL:
        yield bootstrap
        return
    b = SamsaBroker(tmp_path / "data").start()
    try:
        yield b.bootstrap
    finally:
        if b.alive():
            b.stop_clean()


def test_console_share_consumer_reads_each_record_once(share_bootstrap, topic_name):
    topic = topic_name()
    run_tool("kafka-topics", "--bootstrap-server", share_bootstrap, "--create", "--topic", topic,
             "--partitions", "1")
    env = dict(os.environ, KAFKA_TOOLS_JVM_OPTS=" ".join(JVM_OPTS))
    consumer = subprocess.Popen(
        [str(KAFKA_TOOLS), "kafka-console-share-consumer", "--bootstrap-server", share_bootstrap,
         "--topic", topic, "--group", topic + "-share", "--max-messages", "3", "--timeout-ms", "60000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL)
    try:
        # Produce until the consumer, once its group has assigned it the partition, has read 3.
        deadline = time.monotonic() + 90
        sent = 0
        while consumer.poll() is None and time.monotonic() < deadline:
            run_tool("kafka-console-producer", "--bootstrap-server", share_bootstrap, "--topic", topic,
                     input=f"r{sent}\n")
            sent += 1
            time.sleep(0.5)
        out, err = consumer.communicate(timeout=60)
    finally:
        if consumer.poll() is None:
            consumer.kill()
    got = out.split()
    assert "Processed a total of 3 messages" in err, err[-3000:]
    assert len(got) == 3 and len(set(got)) == 3 and all(r.startswith("r") for r in got), (got, err[-2000:])
    # In the order produced: consecutive records of the log.
    numbers = [int(r[1:]) for r in got]
    assert numbers == list(range(numbers[0], numbers[0] + 3)), numbers


def test_console_share_consumer_reads_from_earliest_when_the_group_says_so(share_bootstrap, topic_name):
    topic = topic_name()
    group = topic + "-share"
    run_tool("kafka-topics", "--bootstrap-server", share_bootstrap, "--create", "--topic", topic,
             "--partitions", "1")
    run_tool("kafka-console-producer", "--bootstrap-server", share_bootstrap, "--topic", topic,
             input="".join(f"r{i}\n" for i in range(3)))
    run_tool("kafka-configs", "--bootstrap-server", share_bootstrap, "--entity-type", "groups",
             "--entity-name", group, "--alter", "--add-config", "share.auto.offset.reset=earliest")
    out = run_tool("kafka-console-share-consumer", "--bootstrap-server", share_bootstrap, "--topic", topic,
                   "--group", group, "--max-messages", "3", "--timeout-ms", "30000", timeout=90)
    assert out.stdout.split() == ["r0", "r1", "r2"], (out.stdout, out.stderr[-2000:])
