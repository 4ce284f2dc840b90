"""A dynamic metadata quorum (KIP-853) with Kafka's own tool: a three-node samsa cluster grows
to four controllers with `kafka-metadata-quorum add-controller` (the new node started with
`controller_quorum_bootstrap_servers`, following as an observer first) and shrinks back with
`remove-controller` of the active controller itself, while an idempotent acks=all producer
writes throughout; every acknowledged record is read back at its offset.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from confluent_kafka import Producer

from cluster import HEARTBEAT_MS, SESSION_TIMEOUT_MS, SamsaCluster, create_replicated, read_back
from clients import wait_until
from conftest import SamsaBroker, free_port
from jvm import run_tool
from marks import EXTERNAL

pytestmark = pytest.mark.skipif(EXTERNAL, reason="starts a samsa cluster of its own")

CLUSTER_ID = "samsaDynamicQuorum0001"


def status(bootstrap: str) -> dict[str, str]:
    """kafka-metadata-quorum describe --status, as {field: value}."""
    out = run_tool("kafka-metadata-quorum", "--bootstrap-server", bootstrap, "describe", "--status").stdout
    pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def ids(field: str) -> list[int]:
    """The ids of a CurrentVoters or CurrentObservers value (a JSON-like list)."""
    return sorted(int(i) for i in re.findall(r'"id":\s*(\d+)', field))


def directory_id(node: SamsaBroker) -> str:
    text = (node.data_dir / "__cluster_metadata" / "meta.properties").read_text()
    return re.search(r"^directory\.id=(\S+)$", text, re.M).group(1)


def controller_port(node: SamsaBroker) -> int:
    return int(re.search(r'controller_listen = "[^:]+:(\d+)"', node.config.read_text()).group(1))


class Producing(threading.Thread):
    """acks=all, idempotent, until stopped: what was acknowledged, by partition and offset."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.acked: dict[tuple[int, int], bytes] = {}
        self.failed: list[str] = []
        self.stop = threading.Event()

    def run(self):
        p = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 5, "message.timeout.ms": 120000})

        def done(err, msg):
            if err:
                self.failed.append(str(err))
            else:
                self.acked[(msg.partition(), msg.offset())] = msg.value()

        n = 0
        while not self.stop.is_set():
            p.produce(self.topic, value=f"v{n}".encode(), key=str(n).encode(), on_delivery=done)
            n += 1
            p.poll(0.002)
        assert p.flush(120) == 0, "records still unacknowledged"


def test_grow_to_four_controllers_and_remove_the_active_one(tmp_path, topic_name):
    topic = topic_name()
    cluster = SamsaCluster(tmp_path / "cluster", extra=f'cluster_id = "{CLUSTER_ID}"\n').start()
    fourth = None
    producing = None
    try:
        create_replicated(cluster, topic)
        producing = Producing(cluster.bootstrap, topic)
        producing.start()
        wait_until(lambda: len(producing.acked) > 100, "records acknowledged before the change")

        # Controller 4 knows only one existing controller and follows the log as an observer.
        d = tmp_path / "node4"
        d.mkdir()
        port = free_port()
        config = d / "samsa.toml"
        config.write_text(
            f'node_id = 4\ncluster_id = "{CLUSTER_ID}"\n'
            f'controller_quorum_bootstrap_servers = "127.0.0.1:{controller_port(cluster.nodes[1])}"\n'
            f'controller_listen = "127.0.0.1:{port}"\n'
            f"broker_heartbeat_interval_ms = {HEARTBEAT_MS}\nbroker_session_timeout_ms = {SESSION_TIMEOUT_MS}\n"
            "replica_lag_time_max_ms = 4000\ndefault_replication_factor = 3\n")
        fourth = SamsaBroker(d / "data", config=config).start()
        bootstrap = cluster.bootstrap
        wait_until(lambda: ids(status(bootstrap)["CurrentObservers"]) == [4], "controller 4 observing")
        assert ids(status(bootstrap)["CurrentVoters"]) == [1, 2, 3]

        # add-controller reads the new controller's id, directory id and listener from its
        # properties, as for a Kafka controller.
        props = d / "controller.properties"
        props.write_text(
            "node.id=4\nprocess.roles=broker,controller\n"
            f"metadata.log.dir={d / 'data' / '__cluster_metadata'}\n"
            "controller.listener.names=CONTROLLER\nlistener.security.protocol.map=CONTROLLER:PLAINTEXT\n"
            f"listeners=CONTROLLER://127.0.0.1:{port}\n")

        # Retried: REQUEST_TIMED_OUT while it catches up, as Kafka answers then too.
        out = wait_until(lambda: run_tool("kafka-metadata-quorum", "--bootstrap-server", bootstrap,
                                          "--command-config", str(props), "add-controller").stdout,
                         "controller 4 added", timeout=60)
        assert f"Added controller 4 with directory id {directory_id(fourth)}" in out, out
        wait_until(lambda: ids(status(bootstrap)["CurrentVoters"]) == [1, 2, 3, 4], "four voters")
        assert ids(status(bootstrap)["CurrentObservers"]) == []

        # The active controller removes itself and resigns; the other three carry on.
        leader = int(status(bootstrap)["LeaderId"])
        node = fourth if leader == 4 else cluster.nodes[leader]
        out = run_tool("kafka-metadata-quorum", "--bootstrap-server", bootstrap, "remove-controller",
                       "--controller-id", str(leader), "--controller-directory-id", directory_id(node)).stdout
        assert f"Removed KRaft controller {leader} with directory id {directory_id(node)}" in out, out

        def shrunk():
            s = status(bootstrap)
            voters = ids(s["CurrentVoters"])
            return len(voters) == 3 and leader not in voters and int(s["LeaderId"]) in voters
        wait_until(shrunk, "three voters, led by one of them")
        time.sleep(1)  # records acknowledged under the new leader too
        count = len(producing.acked)
        wait_until(lambda: len(producing.acked) > count + 100, "records acknowledged after the change")
    finally:
        if producing:
            producing.stop.set()
            producing.join(150)
        if fourth:
            fourth.stop()
    try:
        assert not producing.failed, producing.failed[:5]
        got = read_back(cluster.bootstrap, topic)
        found = {(p, offset): value for p, records in got.items() for offset, value in records}
        lost = {k: v for k, v in producing.acked.items() if found.get(k) != v}
        assert not lost, f"{len(lost)} acknowledged records not read back at their offsets"
    finally:
        cluster.stop()
