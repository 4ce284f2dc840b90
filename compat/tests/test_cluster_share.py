"""Share groups (KIP-932) on a three-node samsa cluster whose coordinators are killed
mid-run (issue 19).

Two franz-go share consumers (compat/go TestShareWorker, one process each) read a share group
of a one-partition topic with replication factor 3 while a confluent-kafka producer writes
to it; each accepts what it reads except that it releases a record ending in 3 on its first
delivery. Mid-run the test SIGKILLs one broker: in one case the share coordinator of the
group's share-partition (FindCoordinator key type 2, the leader of its `__share_group_state`
partition), the topic's leader elsewhere; in the other the group coordinator (FindCoordinator
key type 0), made the topic partition's leader too. The consumers carry on, and afterwards:
no record's accept was confirmed twice; none was delivered more often than
`group_share_delivery_count_limit`; every record the producer had acknowledged was accepted
(confirmed), archived, or acknowledged with an outcome the consumer could not know (the
connection died with the leader); and `kafka-share-groups --describe --offsets`, read from
the survivors, shows the share-partition with no lag left, so those last ones were taken.
Each case takes 12-25 s.

samsa only: the cluster fixture starts samsa nodes, not Kafka ones.
"""

from __future__ import annotations

import os
import struct
import subprocess
import threading
import time
from collections import defaultdict

import pytest
from confluent_kafka import Producer, TopicCollection
from confluent_kafka.admin import NewTopic

from clients import wait_until
from cluster import SamsaCluster
from jvm import run_tool
from marks import EXTERNAL
from test_go import GO_DIR, go_tests  # noqa: F401 (go_tests is a fixture)
from test_share_groups import _compact, _uvarint, request, table

pytestmark = pytest.mark.skipif(EXTERNAL, reason="starts a samsa cluster of its own")

DELIVERY_LIMIT = 5
LOCK_MS = 5000
RECORDS = 600


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = SamsaCluster(tmp_path_factory.mktemp("share-cluster"), extra=(
        f"group_share_record_lock_duration_ms = {LOCK_MS}\n"
        f"group_share_delivery_count_limit = {DELIVERY_LIMIT}\n"
        "group_share_heartbeat_interval_ms = 500\ngroup_share_session_timeout_ms = 6000\n")).start()
    try:
        yield c
    finally:
        c.stop()


def find_coordinator(bootstrap: str, key_type: int, key: str) -> int:
    """The node FindCoordinator v6 names for `key` of `key_type` (0 group, 2 share-partition)."""
    body = struct.pack(">b", key_type) + _uvarint(2) + _compact(key) + b"\x00"
    r = request(bootstrap, 10, 6, body)
    r.take(4)  # throttle
    assert r.uvarint() == 2, "one coordinator asked for"
    assert r.compact() == key
    node, = struct.unpack(">i", r.take(4))
    r.compact()  # host
    _port, error = struct.unpack(">ih", r.take(6))
    if error:
        raise AssertionError(f"FindCoordinator({key_type}, {key}): error {error}")
    return node


def await_coordinator(cluster: SamsaCluster, key_type: int, key: str) -> int:
    found = []

    def ask():
        try:
            found.append(find_coordinator(cluster.bootstrap, key_type, key))
            return True
        except (AssertionError, OSError):
            return False
    wait_until(ask, f"a coordinator for {key}", timeout=30)
    return found[-1]


class Worker:
    """One TestShareWorker process and what it wrote."""

    def __init__(self, binary, bootstrap: str, topic: str, group: str):
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            [str(binary), "-test.v", "-test.count=1", "-test.timeout=5m", "-test.run", "^TestShareWorker$"],
            cwd=GO_DIR, env=dict(os.environ, KAFKA_BOOTSTRAP=bootstrap, SHARE_TOPIC=topic, SHARE_GROUP=group),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def events(self) -> list[list[str]]:
        with self.lock:
            return [line.split(" ", 4) for line in self.lines if line[:2] in ("D ", "A ", "F ")]

    def stop(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.reader.join(10)


class Producing:
    """Writes PREFIX0, PREFIX1, ... with acks=all, idempotent, about 100 a second, in a
    thread, until `count` or until stopped."""

    def __init__(self, bootstrap: str, topic: str, prefix: str, count: int):
        self.acked: dict[int, str] = {}
        self.errors: list[str] = []
        self.done, self.stopping = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, args=(bootstrap, topic, prefix, count), daemon=True)
        self.thread.start()

    def _on_delivery(self, err, msg):
        if err is not None:
            self.errors.append(str(err))
        else:
            self.acked[msg.offset()] = msg.value().decode()

    def _run(self, bootstrap, topic, prefix, count):
        try:
            p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                          "linger.ms": 0, "message.timeout.ms": 60_000, "request.timeout.ms": 5000,
                          "topic.metadata.refresh.interval.ms": 1000})
            for i in range(count):
                if self.stopping.is_set():
                    break
                p.produce(topic, value=f"{prefix}{i}".encode(), on_delivery=self._on_delivery)
                p.poll(0)
                time.sleep(0.01)
            left = p.flush(60)
            if left:
                self.errors.append(f"{left} records unacknowledged after flush")
        except Exception as e:  # reported by the test
            self.errors.append(repr(e))
        finally:
            self.done.set()

    def stop(self) -> None:
        self.stopping.set()
        self.done.wait(60)


def confirmed(workers: list[Worker]) -> dict[int, int]:
    """Offset -> how many accepts of it were confirmed."""
    accepts: dict[int, int] = defaultdict(int)
    for w in workers:
        for e in w.events():
            if e[0] == "A":
                accepts[int(e[2])] += 1
    return accepts


def unconfirmed(workers: list[Worker]) -> set[int]:
    """Offsets whose acknowledgement failed at least once."""
    return {int(e[2]) for w in workers for e in w.events() if e[0] == "F"}


def deliveries(workers: list[Worker]) -> dict[int, list[int]]:
    """Offset -> the delivery counts it was delivered with."""
    out: dict[int, list[int]] = defaultdict(list)
    for w in workers:
        for e in w.events():
            if e[0] == "D":
                out[int(e[2])].append(int(e[4]))
    return out


def pick_victim(cluster: SamsaCluster, group: str, kill: str) -> tuple[int, list[int]]:
    """The broker to kill, and the replicas of the topic (its preferred leader first) that
    put the topic's leader where the case wants it: on the victim when the group coordinator
    is killed, elsewhere when the share coordinator is."""
    if kill == "group-coordinator":
        victim = await_coordinator(cluster, 0, group)
        return victim, [victim] + [k for k in cluster.ids() if k != victim]
    # One __share_group_state partition (samsa's default): every share-partition's
    # coordinator is its leader, whatever the topic id.
    victim = await_coordinator(cluster, 2, f"{group}:AAAAAAAAAAAAAAAAAAAAAA:0")
    return victim, [k for k in cluster.ids() if k != victim] + [victim]


def run_share_failover(cluster: SamsaCluster, go_tests, topic: str, kill: str) -> None:  # noqa: F811
    group = topic + "-g"
    victim, replicas = pick_victim(cluster, group, kill)
    admin = cluster.admin()
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[replicas],
                                  config={"min.insync.replicas": "2"})])[topic].result(30)
    cluster.await_metadata(cluster.ids(), "the topic led by its preferred replica", lambda m: topic in m.topics
                           and m.topics[topic].partitions[0].leader == replicas[0]
                           and len(m.topics[topic].partitions[0].isrs) == 3)
    # Kafka writes a topic id in URL-safe base64; confluent-kafka's str() in the standard one.
    topic_id = str(admin.describe_topics(TopicCollection([topic]))[topic].result(10).topic_id)
    topic_id = topic_id.replace("+", "-").replace("/", "_")
    share_coordinator = await_coordinator(cluster, 2, f"{group}:{topic_id}:0")
    if kill == "share-coordinator":
        assert share_coordinator == victim, (share_coordinator, victim)

    workers = [Worker(go_tests, cluster.bootstrap, topic, group) for _ in range(2)]
    at_kill = [1 << 30] * len(workers)

    def story(o: int) -> str:
        """Every line about offset o, by worker and line number, and where the kill fell."""
        return "; ".join(f"w{i}#{n}{'(after kill)' if n >= at_kill[i] else ''}: {line}"
                         for i, w in enumerate(workers) for n, line in enumerate(list(w.lines))
                         if line.split(" ")[2:3] == [str(o)])
    warm = producing = None
    try:
        # share.auto.offset.reset is latest: warm-up records until one is read fix the
        # share-partition's start before the records checked.
        warm = Producing(cluster.bootstrap, topic, "warm", 100_000)
        wait_until(lambda: any(e[0] == "D" for w in workers for e in w.events()), "a warm-up record read", timeout=60)
        warm.stop()
        assert not warm.errors, warm.errors
        if kill == "group-coordinator":
            assert await_coordinator(cluster, 0, group) == victim
        producing = Producing(cluster.bootstrap, topic, "r", RECORDS)
        wait_until(lambda: len(confirmed(workers)) >= RECORDS // 4, "a quarter of the records accepted", timeout=60)
        cluster.nodes[victim].kill()
        at_kill = [len(w.lines) for w in workers]
        survivors = ",".join(cluster.nodes[k].bootstrap for k in cluster.ids() if k != victim)
        assert producing.done.wait(90), "the producer did not finish"
        assert not producing.errors, producing.errors
        produced = {o: v for o, v in producing.acked.items() if v.startswith("r")}
        assert len(produced) == RECORDS

        def unsettled() -> list[int]:
            """Records neither accepted, archived, nor acknowledged with an unknown outcome
            (the acknowledgement failed, maybe after the broker took it: its connection
            died with the leader); the lag below tells whether the broker took those."""
            accepted, counts, failed = confirmed(workers), deliveries(workers), unconfirmed(workers)
            return [o for o in produced if not accepted.get(o) and len(counts.get(o, ())) < DELIVERY_LIMIT
                    and o not in failed]
        try:
            wait_until(lambda: not unsettled(), "every record accepted, archived or acknowledged", timeout=60)
        except AssertionError as e:
            left = unsettled()
            shown = run_tool("kafka-share-groups", "--bootstrap-server", survivors, "--describe", "--group", group,
                             "--offsets", check=False).stdout
            raise AssertionError(f"{e}: {len(left)} left, first {left[:10]}; "
                                 + "; ".join(story(o) for o in left[:3]) + f"\nkafka-share-groups:\n{shown}") from None

        # The share state read after the kill, from the survivors, while the consumers still
        # read: nothing left to deliver.
        def no_lag():
            out = run_tool("kafka-share-groups", "--bootstrap-server", survivors, "--describe", "--group", group,
                           "--offsets", check=False).stdout
            rows = [r for r in table(out) if r.get("TOPIC") == topic] if "LAG" in out else []
            return len(rows) == 1 and rows[0]["LAG"] == "0" and rows[0]["START-OFFSET"] != "-"
        wait_until(no_lag, "kafka-share-groups to show no lag", timeout=30)
    finally:
        for p in (warm, producing):
            if p is not None:
                p.stop()
        for w in workers:
            w.stop()
        if not cluster.nodes[victim].alive():  # whole again for the next case
            cluster.nodes[victim].start()
            cluster.await_brokers(set(cluster.ids()), "the killed broker back")

    accepted, counts = confirmed(workers), deliveries(workers)
    failed = sum(1 for w in workers for e in w.events() if e[0] == "F")
    print(f"{kill} {victim} killed: {sum(map(len, counts.values()))} deliveries of {len(counts)} offsets, "
          f"{sum(accepted.values())} accepts confirmed, {failed} failed, most deliveries of one record "
          f"{max(map(max, counts.values()))}, per worker {[sum(e[0] == 'D' for e in w.events()) for w in workers]}")
    twice = {o: n for o, n in accepted.items() if n > 1}
    assert not twice, f"accepts confirmed more than once: {twice}\n" + "\n".join(story(o) for o in twice)
    over = {o: c for o, c in counts.items() if max(c) > DELIVERY_LIMIT or len(c) > DELIVERY_LIMIT}
    assert not over, f"delivered more often than the limit: {over}"


def test_share_group_survives_its_share_coordinators_death(cluster, go_tests, topic_name):  # noqa: F811
    run_share_failover(cluster, go_tests, topic_name(), "share-coordinator")


def test_share_group_survives_its_group_coordinator_and_leaders_death(cluster, go_tests, topic_name):  # noqa: F811
    run_share_failover(cluster, go_tests, topic_name(), "group-coordinator")
