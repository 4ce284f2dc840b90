"""A samsa cluster for the compat suite: three (or more) broker processes that are also the
controllers of the metadata quorum, with short heartbeats and sessions so that a failure is
noticed in seconds.

On loopback every node listens on 127.0.0.1 with ports of its own. With `netns=True` each
node runs in a network namespace of its own, reached from the test (in the root namespace)
over a veth pair: node k is 10.213.k.2, the root side of its link 10.213.k.1, and the root
namespace routes between the links (`subnet_base` b moves node k to 10.213.(b+k).2, so that
clusters running side by side do not share addresses). `isolate(k)` then cuts node k off from the other nodes
(blackhole routes to their subnets inside its namespace) while the test can still reach it,
which is how a broker partitioned from its cluster looks from a client.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Optional

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BrokerError, SamsaBroker, free_port

HEARTBEAT_MS = 250
SESSION_TIMEOUT_MS = 2000
SUBNET = "10.213"


def run(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise BrokerError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")


class SamsaCluster:
    def __init__(self, root: Path, size: int = 3, extra: str = "", netns: bool = False, subnet_base: int = 0,
                 tag: str = "s"):
        # `tag` keeps the namespace and veth names of clusters running side by side apart.
        self.root, self.size, self.netns, self.subnet_base = Path(root), size, netns, subnet_base
        self.tag = f"{tag}{os.getpid() % 100000}"
        self.namespaces: list[str] = []
        if netns:
            self._make_namespaces()
        hosts = {k: self.host(k) for k in self.ids()}
        kafka_ports = {k: free_port() for k in self.ids()}
        controller_ports = {k: free_port() for k in self.ids()}
        voters = ",".join(f"{k}@{hosts[k]}:{controller_ports[k]}" for k in self.ids())
        self.nodes: dict[int, SamsaBroker] = {}
        for k in self.ids():
            d = self.root / f"node{k}"
            d.mkdir(parents=True, exist_ok=True)
            config = d / "samsa.toml"
            config.write_text(
                f'node_id = {k}\ncontroller_quorum_voters = "{voters}"\n'
                f'controller_listen = "{hosts[k]}:{controller_ports[k]}"\nrack = "rack-{k}"\n'
                f"broker_heartbeat_interval_ms = {HEARTBEAT_MS}\n"
                f"broker_session_timeout_ms = {SESSION_TIMEOUT_MS}\n"
                "replica_lag_time_max_ms = 4000\nreplica_fetch_backoff_ms = 100\n"
                "group_initial_rebalance_delay_ms = 0\n"
                f"default_replication_factor = {min(size, 3)}\n"
                "offsets_topic_num_partitions = 6\ntransaction_state_num_partitions = 3\n"
                f"{extra}")
            prefix = ("ip", "netns", "exec", self.namespace(k)) if netns else ()
            self.nodes[k] = SamsaBroker(d / "data", config=config, port=kafka_ports[k], host=hosts[k], prefix=prefix)

    def ids(self) -> list[int]:
        return list(range(1, self.size + 1))

    def subnet(self, k: int) -> str:
        """The first three octets of node k's link."""
        return f"{SUBNET}.{self.subnet_base + k}"

    def host(self, k: int) -> str:
        return f"{self.subnet(k)}.2" if self.netns else "127.0.0.1"

    def namespace(self, k: int) -> str:
        return f"{self.tag}n{k}"

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes.values() if n.alive())

    def start(self) -> "SamsaCluster":
        for node in self.nodes.values():
            node.start()
        self.await_brokers(set(self.ids()), "every broker registered")
        return self

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.alive():
                node.stop()
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()

    def admin(self, via: Optional[int] = None) -> AdminClient:
        bootstrap = self.nodes[via].bootstrap if via else self.bootstrap
        return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000})

    def metadata(self, via: int, topic: Optional[str] = None):
        return self.admin(via).list_topics(topic=topic, timeout=5)

    def await_metadata(self, via: list[int], what: str, done: Callable, timeout: float = 30.0):
        """Polls Metadata of every node in `via` until `done(metadata)` holds for each."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                answers = [self.metadata(k) for k in via]
                if all(done(m) for m in answers):
                    return answers[0]
                last = answers[0]
            except Exception as e:  # a node may refuse connections right after a restart
                last = e
            if time.monotonic() > deadline:
                raise BrokerError(f"not {what} within {timeout:.0f}s; last: {describe(last)}")
            time.sleep(0.1)

    def await_brokers(self, brokers: set[int], what: str, via: Optional[list[int]] = None):
        via = via or [k for k in self.ids() if self.nodes[k].alive()]
        return self.await_metadata(via, what, lambda m: set(m.brokers) == brokers)

    def leaders(self, topic: str, via: int) -> dict[int, int]:
        """Partition -> leader, as node `via` sees it."""
        m = self.metadata(via, topic)
        return {p.id: p.leader for p in m.topics[topic].partitions.values()}

    def controller(self, via: int) -> int:
        return self.metadata(via).controller_id

    # Network namespaces.

    def _make_namespaces(self) -> None:
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write("1\n")
        for k in self.ids():
            ns, outer, inner = self.namespace(k), f"{self.tag}v{k}", f"{self.tag}p{k}"
            run("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            run("ip", "link", "set", inner, "netns", ns)
            run("ip", "addr", "add", f"{self.subnet(k)}.1/24", "dev", outer)
            run("ip", "link", "set", outer, "up")
            inside = ("ip", "netns", "exec", ns)
            run(*inside, "ip", "addr", "add", f"{self.subnet(k)}.2/24", "dev", inner)
            run(*inside, "ip", "link", "set", inner, "up")
            run(*inside, "ip", "link", "set", "lo", "up")
            run(*inside, "ip", "route", "add", "default", "via", f"{self.subnet(k)}.1")

    def isolate(self, k: int) -> None:
        """Cuts node k off from every other node; the test's own traffic still gets through."""
        for other in self.ids():
            if other != k:
                run("ip", "netns", "exec", self.namespace(k), "ip", "route", "add", "blackhole", f"{self.subnet(other)}.0/24")

    def heal(self, k: int) -> None:
        for other in self.ids():
            if other != k:
                run("ip", "netns", "exec", self.namespace(k), "ip", "route", "del", "blackhole", f"{self.subnet(other)}.0/24")


def create_replicated(cluster: SamsaCluster, topic: str, partitions: int = 6) -> None:
    """A topic of `partitions` partitions, replication factor 3 and min.insync.replicas 2, led
    on every node."""
    admin = cluster.admin()  # kept alive until the creation is answered
    futures = admin.create_topics([NewTopic(topic, partitions, 3, config={"min.insync.replicas": "2"})])
    futures[topic].result(30)
    cluster.await_metadata(cluster.ids(), "the topic led everywhere", lambda m: topic in m.topics and all(
        p.leader > 0 and len(p.isrs) == 3 for p in m.topics[topic].partitions.values()))


def read_back(bootstrap: str, topic: str, partitions: int = 6) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of every partition, from the start to the high watermark."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "read-back-unused", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    at_end: set[int] = set()
    deadline = time.monotonic() + 120
    while len(at_end) < partitions and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(m.partition())
            continue
        got[m.partition()].append((m.offset(), m.value()))
    c.close()
    assert len(at_end) == partitions, f"read back only partitions {sorted(at_end)} to their end"
    return got


def describe(metadata) -> str:
    if metadata is None or isinstance(metadata, Exception):
        return repr(metadata)
    topics = {name: {p.id: (p.leader, p.replicas, p.isrs) for p in t.partitions.values()}
              for name, t in metadata.topics.items() if not name.startswith("__")}
    return f"brokers={sorted(metadata.brokers)} controller={metadata.controller_id} topics={topics}"
