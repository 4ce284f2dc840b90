"""Streams groups (KIP-1071) with a real Kafka Streams 4.4 application: the word count of
compat/streams/WordCount.java with `group.protocol=streams`, two instances in one group.
The broker creates the repartition and changelog topics the topology needs, splits the
tasks between the instances, and the counts in the output topic come out exactly right;
when one instance stops, its tasks move to the other, which then counts on. With a broker
that keeps topology descriptions (KIP-1331), the application pushes its topology's and
`kafka-streams-groups --describe --topology` prints it.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from clients import Rec, ck_admin, ck_create_topic, ck_consume, ck_produce, wait_until
from conftest import EXTERNAL, configured_samsa
from jvm import CACHE, COMPAT_DIR, JVM_OPTS, JavaError, java, run_tool

SOURCE = COMPAT_DIR / "streams" / "WordCount.java"
PARTITIONS = 3
STREAMS_WAIT_S = 120


def compiled() -> Path:
    """WordCount built against Kafka Streams 4.4 (profile `streams`), cached by content."""
    cp_file = CACHE / "classpath-streams.txt"
    if not cp_file.is_file():
        raise JavaError(f"{cp_file} missing: run compat/install.sh")
    cp = cp_file.read_text().strip()
    h = hashlib.sha256(cp.encode() + SOURCE.read_bytes()).hexdigest()
    out = CACHE / "classes-streams"
    stamp = out / ".sha256"
    if stamp.is_file() and stamp.read_text() == h:
        return out
    tmp = Path(tempfile.mkdtemp(prefix="classes-streams.", dir=CACHE))
    proc = subprocess.run(["javac", "-nowarn", "-d", str(tmp), "-cp", cp, str(SOURCE)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise JavaError(f"javac WordCount failed:\n{proc.stderr[-4000:]}")
    (tmp / ".sha256").write_text(h)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


class Instance:
    """One WordCount process; its JSON events are collected as they come."""

    def __init__(self, bootstrap: str, app_id: str, source: str, sink: str, state_dir: Path):
        cp = f"{compiled()}{os.pathsep}{(CACHE / 'classpath-streams.txt').read_text().strip()}"
        self.proc = subprocess.Popen(
            [java(), *JVM_OPTS, "-cp", cp, "WordCount", bootstrap, app_id, source, sink, str(state_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: list[dict] = []
        self.stderr: collections.deque = collections.deque(maxlen=200)
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("{"):
                with self.lock:
                    self.events.append(json.loads(line))

    def _read_err(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def active(self) -> list[str]:
        with self.lock:
            tasks = [e for e in self.events if e["ev"] == "tasks"]
            errors = [e for e in self.events if e["ev"] == "error"]
        assert not errors, f"the application failed: {errors}\n{''.join(self.stderr)}"
        return tasks[-1]["active"] if tasks else []

    def state(self) -> str | None:
        with self.lock:
            states = [e["state"] for e in self.events if e["ev"] == "state"]
        return states[-1] if states else None

    def stop(self):
        """Closes the application cleanly: it leaves the group."""
        if self.proc.poll() is None:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
        self.proc.wait(timeout=60)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def counts(bootstrap: str, topic: str) -> dict[str, int]:
    """The last count of each word in the output topic."""
    last = {}
    for r in sorted(ck_consume(bootstrap, topic), key=lambda r: (r.partition, r.offset)):
        last[r.key.decode()] = int(r.value.decode())
    return last


def produce_lines(bootstrap: str, topic: str, lines: list[str]) -> collections.Counter:
    ck_produce(bootstrap, topic, [Rec(None, None, None, line.encode(), (), None) for line in lines])
    return collections.Counter(w for line in lines for w in line.split())


def test_word_count_two_instances_then_failover(bootstrap, topic_name, tmp_path):
    source, sink, app = topic_name("-in"), topic_name("-out"), topic_name("-app")
    ck_create_topic(bootstrap, source, PARTITIONS)
    ck_create_topic(bootstrap, sink, PARTITIONS)
    words = [f"w{i}" for i in range(40)]
    lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(i % 5 + 1)) for i in range(300)]
    expected = produce_lines(bootstrap, source, lines)

    a = Instance(bootstrap, app, source, sink, tmp_path / "a")
    b = Instance(bootstrap, app, source, sink, tmp_path / "b")
    try:
        # Two subtopologies (count before and after the repartition topic), one task per
        # partition each: 6 tasks, split between the two instances, none twice.
        def split():
            ta, tb = a.active(), b.active()
            return ta and tb and len(ta) + len(tb) == 2 * PARTITIONS and not set(ta) & set(tb) and (ta, tb)
        ta, tb = wait_until(split, "both instances to run tasks", timeout=STREAMS_WAIT_S)
        assert sorted(ta + tb) == sorted(f"{s}_{p}" for s in (0, 1) for p in range(PARTITIONS))

        # The broker created the internal topics with the partitions the topology needs.
        admin = ck_admin(bootstrap)
        internal = {t: len(m.partitions) for t, m in admin.list_topics(timeout=30).topics.items()
                    if t.startswith(app + "-")}
        assert internal == {f"{app}-counts-repartition": PARTITIONS,
                            f"{app}-counts-changelog": PARTITIONS}, internal

        wait_until(lambda: counts(bootstrap, sink) == dict(expected),
                   "the output topic to hold the exact counts", timeout=STREAMS_WAIT_S)

        # Kafka's kafka-streams-groups sees the group, its two members and all six tasks.
        listed = run_tool("kafka-streams-groups", "--bootstrap-server", bootstrap, "--list").stdout
        assert app in listed.split(), listed
        members = run_tool("kafka-streams-groups", "--bootstrap-server", bootstrap, "--describe",
                           "--group", app, "--members").stdout
        rows = [line for line in members.splitlines() if line.startswith(app + " ")]
        assert len(rows) == 2, members
        # The shared broker keeps no topology descriptions (Kafka's default): the tool says so.
        topology = run_tool("kafka-streams-groups", "--bootstrap-server", bootstrap, "--describe",
                            "--group", app, "--topology", check=False)
        assert topology.returncode == 1, topology
        assert f"No topology description is stored for streams group '{app}'" in topology.stdout, topology

        # One instance leaves: the other takes over every task and counts on from there.
        a.stop()
        wait_until(lambda: sorted(b.active()) == sorted(ta + tb),
                   "the remaining instance to take over every task", timeout=STREAMS_WAIT_S)
        more = produce_lines(bootstrap, source, [" ".join(words[:10])] * 5)
        wait_until(lambda: counts(bootstrap, sink) == dict(expected + more),
                   "the counts to take the new lines in", timeout=STREAMS_WAIT_S)
    finally:
        for i in (a, b):
            try:
                i.stop()
            except Exception:
                i.kill()


def test_word_count_keeps_its_tasks_across_a_broker_restart(own_broker, topic_name, tmp_path):
    """samsa writes the streams group to __consumer_offsets: restarted, it still has the
    group, so the running application keeps its member and tasks (no new assignment) and
    counts on exactly."""
    bootstrap = own_broker.bootstrap
    source, sink, app = topic_name("-in"), topic_name("-out"), topic_name("-app")
    ck_create_topic(bootstrap, source, PARTITIONS)
    ck_create_topic(bootstrap, sink, PARTITIONS)
    words = [f"w{i}" for i in range(20)]
    expected = produce_lines(bootstrap, source, [" ".join(words[i % 7:i % 7 + 3]) for i in range(100)])
    a = Instance(bootstrap, app, source, sink, tmp_path / "a")
    try:
        every = sorted(f"{s}_{p}" for s in (0, 1) for p in range(PARTITIONS))
        wait_until(lambda: sorted(a.active()) == every, "the instance to run every task",
                   timeout=STREAMS_WAIT_S)
        wait_until(lambda: counts(bootstrap, sink) == dict(expected),
                   "the output topic to hold the exact counts", timeout=STREAMS_WAIT_S)
        with a.lock:
            assignments_before = len([e for e in a.events if e["ev"] == "tasks"])

        own_broker.restart()
        more = produce_lines(bootstrap, source, [" ".join(words[:5])] * 4)
        wait_until(lambda: counts(bootstrap, sink) == dict(expected + more),
                   "the counts to take the new lines in after the restart", timeout=STREAMS_WAIT_S)
        assert sorted(a.active()) == every
        with a.lock:
            assignments_after = len([e for e in a.events if e["ev"] == "tasks"])
        assert assignments_after == assignments_before, "the tasks moved after the restart"
        assert a.state() == "RUNNING"
    finally:
        try:
            a.stop()
        except Exception:
            a.kill()


IN_MEMORY_PLUGIN = "org.apache.kafka.server.streams.InMemoryTopologyDescriptionPlugin"


@pytest.fixture(scope="module")
def description_broker(tmp_path_factory):
    """A broker that keeps the topology descriptions members push: samsa with its memory
    store, or (--against-kafka) a Kafka of this module's own with Kafka's in-memory plugin
    (the shared one runs Kafka's default, without a plugin)."""
    if EXTERNAL:
        import restartable_kafka  # noqa: F401  (puts compat/reference on sys.path)
        from kafka_ref import KafkaReference
        k = KafkaReference(overrides={"group.streams.topology.description.plugin.class": IN_MEMORY_PLUGIN})
        k.start()
        try:
            yield k.bootstrap
        finally:
            k.stop()
        return
    with configured_samsa(tmp_path_factory.mktemp("descriptions"),
                          'group_streams_topology_description_store = "memory"\n') as bootstrap:
        yield bootstrap


def test_word_count_pushes_its_topology_description(description_broker, topic_name, tmp_path):
    """Asked by its first heartbeat, the application pushes the description of its topology;
    Kafka's tool prints it: the source reading the input topic, the count's store, the sink
    writing the output topic."""
    bootstrap = description_broker
    source, sink, app = topic_name("-in"), topic_name("-out"), topic_name("-app")
    ck_create_topic(bootstrap, source, PARTITIONS)
    ck_create_topic(bootstrap, sink, PARTITIONS)
    a = Instance(bootstrap, app, source, sink, tmp_path / "a")
    try:
        every = sorted(f"{s}_{p}" for s in (0, 1) for p in range(PARTITIONS))
        wait_until(lambda: sorted(a.active()) == every, "the instance to run every task",
                   timeout=STREAMS_WAIT_S)

        def printed():
            out = run_tool("kafka-streams-groups", "--bootstrap-server", bootstrap, "--describe",
                           "--group", app, "--topology").stdout
            return "KSTREAM-SOURCE-" in out and out
        out = wait_until(printed, "kafka-streams-groups to print the topology", timeout=STREAMS_WAIT_S)
        for line in (f"Source: KSTREAM-SOURCE-0000000000 (topics: [{source}])",
                     f"Sink: counts-repartition-sink (topic: {app}-counts-repartition)",
                     f"Source: counts-repartition-source (topics: [{app}-counts-repartition])",
                     "Processor: KSTREAM-AGGREGATE-0000000004 (stores: [counts])",
                     f"Sink: KSTREAM-SINK-0000000010 (topic: {sink})"):
            assert line in out, f"{line!r} not in:\n{out}"
    finally:
        try:
            a.stop()
        except Exception:
            a.kill()
