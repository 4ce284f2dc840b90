"""The cluster under test, and everything the nemesis does to its processes and links.

It builds on compat/tests/cluster.py (three samsa processes, each controller and broker; in
network namespaces when `netns`, so one node can be cut off) and adds what a fault schedule
needs: SIGSTOP/SIGCONT, killing several nodes at once, the state the nemesis believes each
node is in, and a watcher that notices a process exiting without the nemesis killing it.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from confluent_kafka.admin import AdminClient

from cluster import SUBNET, SamsaCluster

# What the nemesis believes of a node. The process must be running in the first three.
UP, PAUSED, ISOLATED, KILLED, EXITED, STOPPED = "up", "paused", "isolated", "killed", "exited", "stopped"
RUNNING = (UP, PAUSED, ISOLATED)


def free_subnet_base() -> int:
    """A base b such that 10.213.(b+1..b+3) are on no link of this machine: the compat tests'
    clusters use 10.213.1-3, and other nemesis runs may be going on beside this one."""
    out = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    used = {int(octet) for octet in re.findall(rf"{re.escape(SUBNET)}\.(\d+)\.", out)}
    slots = list(range(10, 250, 10))
    start = os.getpid() % len(slots)
    for b in slots[start:] + slots[:start]:
        if not used & {b + 1, b + 2, b + 3}:
            return b
    raise RuntimeError(f"no free {SUBNET}.x subnet for the nemesis cluster")


class Nodes(SamsaCluster):
    def __init__(self, root: Path, netns: bool, log: logging.Logger, history):
        self.namespaces: list[str] = []
        try:
            super().__init__(root, netns=netns, subnet_base=free_subnet_base() if netns else 0)
        except BaseException:
            for ns in self.namespaces:  # those made before the failure
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            raise
        self.log, self.history = log, history
        self.lock = threading.Lock()
        self.state = {k: STOPPED for k in self.ids()}
        self.unexpected: list[dict] = []
        self.anomalies: list[dict] = []  # odd but not (by the checker's rules) wrong
        self._watching = threading.Event()
        self._watcher: Optional[threading.Thread] = None

    @property
    def every_bootstrap(self) -> str:
        """All three addresses, dead or alive: clients keep them for the whole run."""
        return ",".join(n.bootstrap for n in self.nodes.values())

    def admin(self, via: Optional[int] = None) -> AdminClient:
        bootstrap = self.nodes[via].bootstrap if via else self.bootstrap
        return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000, "logger": self.log})

    def start(self) -> "Nodes":
        with self.lock:
            for k in self.ids():
                self.state[k] = UP
        super().start()
        self._watching.set()
        self._watcher = threading.Thread(target=self._watch, name="exit-watcher", daemon=True)
        self._watcher.start()
        return self

    # The faults.

    def kill(self, *ks: int) -> None:
        """SIGKILL every node in `ks` at once, then reap them."""
        with self.lock:
            for k in ks:
                self.state[k] = KILLED
                os.kill(self.nodes[k].proc.pid, signal.SIGKILL)
        for k in ks:
            self.nodes[k].kill()

    def restart(self, k: int) -> None:
        """SIGTERM (a clean shutdown, which must exit 0) and start again."""
        with self.lock:
            self.state[k] = STOPPED
        code = self.nodes[k].stop()
        if code != 0:
            self._unexpected(k, code, "exit code on SIGTERM")
        self.revive(k)

    def revive(self, k: int) -> None:
        """Start a node that is down (killed, stopped, or gone by itself)."""
        self.nodes[k].start()
        with self.lock:
            self.state[k] = UP

    def pause(self, k: int) -> None:
        with self.lock:
            self.state[k] = PAUSED
            os.kill(self.nodes[k].proc.pid, signal.SIGSTOP)

    def resume(self, k: int) -> None:
        with self.lock:
            if self.nodes[k].alive():
                os.kill(self.nodes[k].proc.pid, signal.SIGCONT)
            if self.state[k] == PAUSED:
                self.state[k] = UP

    def isolate(self, k: int) -> None:
        with self.lock:
            self.state[k] = ISOLATED
        super().isolate(k)

    def heal(self, k: int) -> None:
        super().heal(k)
        with self.lock:
            if self.state[k] == ISOLATED:
                self.state[k] = UP

    def heal_all(self) -> list[int]:
        """Undoes whatever is in force: resumes, reconnects, starts dead nodes. Returns the
        nodes it had to touch."""
        touched = []
        for k in self.ids():
            s = self.state[k]
            if s == PAUSED:
                self.resume(k)
            elif s == ISOLATED:
                self.heal(k)
            elif s in (KILLED, EXITED, STOPPED):
                self.revive(k)
            else:
                continue
            touched.append(k)
        return touched

    # What the nemesis looks at.

    def up(self) -> list[int]:
        """Nodes that are running and answering (neither paused nor cut off)."""
        with self.lock:
            return [k for k in self.ids() if self.state[k] == UP]

    def poll_views(self, topic: str, done: Callable[[list[dict]], bool], timeout: float, every: float = 0.25,
                   on_view: Optional[Callable[[dict], None]] = None) -> tuple[bool, Optional[dict]]:
        """Polls Metadata of every up node until `done(views)` or the deadline; returns whether
        it held and the last view seen. `on_view` sees each view as it comes."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            views = []
            for k in self.up():
                try:
                    m = self.metadata(k, topic)
                except Exception:
                    views = None
                    break
                t = m.topics.get(topic)
                if t is None or t.error is not None:
                    self._missing_topic(k, topic, t)
                views.append({"via": k, "brokers": sorted(m.brokers), "controller": m.controller_id,
                              "partitions": {p.id: (p.leader, list(p.replicas), list(p.isrs))
                                             for p in t.partitions.values()} if t and t.error is None else None})
            if views:
                last = views[0]
                if on_view:
                    for v in views:
                        on_view(v)
                if done(views):
                    return True, last
            if time.monotonic() >= deadline:
                return False, last
            time.sleep(every)

    def _missing_topic(self, k: int, topic: str, t) -> None:
        """A running node answered Metadata without a topic that exists (seen on nodes just
        restarted): clients told so drop the topic's partitions for a while."""
        e = {"kind": "metadata-without-topic", "node": k, "t": round(self.history.now(), 3),
             "error": str(t.error) if t is not None else "topic absent", "starts": self.nodes[k].starts}
        self.anomalies.append(e)
        if len(self.anomalies) <= 50:
            self.history.event("anomaly", **e)

    # Unexpected exits and the end.

    def _unexpected(self, k: int, code, why: str) -> None:
        e = {"node": k, "code": code, "why": why, "tail": self.nodes[k].tail(30)}
        self.unexpected.append(e)
        self.history.event("unexpected-exit", node=k, code=code, why=why)

    def _watch(self) -> None:
        while self._watching.is_set():
            with self.lock:
                for k in self.ids():
                    proc = self.nodes[k].proc
                    if self.state[k] in RUNNING and proc is not None and proc.poll() is not None:
                        self.state[k] = EXITED
                        self._unexpected(k, proc.returncode, "exited without being killed")
            time.sleep(0.2)

    def stop_all(self) -> dict[int, Optional[int]]:
        """SIGTERM to every running node at once (so no leadership churns while they go), then
        reap; returns each exit code. A paused node is resumed first."""
        self._watching.clear()
        if self._watcher:
            self._watcher.join(5)
        codes: dict[int, Optional[int]] = {}
        with self.lock:
            running = [k for k in self.ids() if self.nodes[k].alive()]
            for k in running:
                os.kill(self.nodes[k].proc.pid, signal.SIGCONT)
                self.nodes[k].proc.send_signal(signal.SIGTERM)
                self.state[k] = STOPPED
        for k in running:
            codes[k] = self.nodes[k].stop()
        for k, code in codes.items():
            if code != 0:
                self._unexpected(k, code, "exit code on SIGTERM at the end")
        return codes

    def teardown(self) -> None:
        """Whatever happened: no process of ours left, no namespace left."""
        self._watching.clear()
        for node in self.nodes.values():
            if node.alive():
                try:
                    os.kill(node.proc.pid, signal.SIGCONT)
                    node.kill()
                except Exception:
                    pass
        self.stop()

    def panics(self) -> dict[int, list[str]]:
        """Lines of each node's log that say a thread panicked."""
        out = {}
        for k, node in self.nodes.items():
            if node.log_path.exists():
                lines = [l for l in node.log_path.read_text(errors="replace").splitlines() if "panicked" in l]
                if lines:
                    out[k] = lines[:20]
        return out
