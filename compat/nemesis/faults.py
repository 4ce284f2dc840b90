"""The fault schedule and the nemesis that carries it out.

Kinds: SIGKILL the leader of a partition, the active controller, or the coordinator of the
workload's transactional id (its group, without transactions), or two nodes at once;
SIGSTOP a node past the broker session; cut a node off from the others (its clients still
reach it); SIGTERM and restart a node.

The schedule is drawn entirely up front from `random.Random(seed)`: kind, hold time, the
quiet gap before it, and the random picks it may need (a partition, an order of nodes). Which
node a pick lands on is decided when the fault happens ("the leader of partition 2" is
whoever leads it then), but the draws never depend on the run, so a seed always gives the
same schedule. Kinds are dealt from a shuffled deck, so every kind comes up once before any
comes up twice: a short run still sees each.

One fault at a time, healed before the next: at most two nodes are ever down, and the
cluster gets back to full strength (bounded wait) before the nemesis strikes again.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass

from nodes import Nodes
from test_cluster_transactions import partition_for  # Kafka's placement of group and txn ids

KINDS = ("kill-leader", "kill-controller", "kill-coordinator", "kill-two", "pause", "partition", "restart")
ROLES = ("leader", "controller", "coordinator", "any")
# A partition led by a broker the controller has fenced for this long is a stuck leader,
# not an election in flight.
STALE_LEADER_S = 2.0


@dataclass
class Plan:
    number: int
    kind: str
    partition: int   # the partition whose leader a role pick means
    order: list      # the nodes in a random order, for "any node" and "two nodes"
    role: str        # pause and partition: whom to hit
    hold: float      # seconds the fault lasts
    gap: float       # seconds of plain load before it


def schedule(seed: int, count: int, kinds: tuple, partitions: int, node_ids: list[int],
             pause: tuple[float, float], session_s: float) -> list[Plan]:
    rng = random.Random(seed)
    plans, deck = [], []
    for n in range(1, count + 1):
        if not deck:
            deck = list(kinds)
            rng.shuffle(deck)
        kind = deck.pop()
        order = list(node_ids)
        rng.shuffle(order)
        hold = {"kill-leader": rng.uniform(1, 5), "kill-controller": rng.uniform(1, 5),
                "kill-coordinator": rng.uniform(1, 5),
                "kill-two": rng.uniform(1, 4), "pause": rng.uniform(*pause),
                "partition": rng.uniform(session_s + 1, session_s + 5), "restart": 0.0}[kind]
        plans.append(Plan(n, kind, rng.randrange(partitions), order, rng.choice(ROLES),
                          round(hold, 2), round(rng.uniform(1, 3), 2)))
    return plans


class Nemesis:
    def __init__(self, nodes: Nodes, topic: str, history, say, coordinated: tuple[str, str]):
        """`coordinated`: (internal topic, key) of what the workload's coordinator serves: the
        transactional id in __transaction_state, or the group in __consumer_offsets."""
        self.nodes, self.topic, self.history, self.say = nodes, topic, history, say
        self.coordinated = coordinated
        self.stale_leaders: list[dict] = []

    def _target(self, plan: Plan, role: str, view: dict) -> tuple[int, str]:
        """The node `role` means in `view`; any up node when that role has no up holder."""
        up = self.nodes.up()
        if role == "leader" and view and view["partitions"]:
            k = view["partitions"][plan.partition][0]
            if k in up:
                return k, f"leader of partition {plan.partition}"
        elif role == "controller" and view:
            k = view["controller"]
            if k in up:
                return k, "active controller"
        elif role == "coordinator":
            k = self._coordinator(up)
            if k in up:
                internal, key = self.coordinated
                return k, f"coordinator of {key}"
        k = next(k for k in plan.order if k in up)
        return k, "a node"

    def _coordinator(self, up: list[int]) -> int:
        """The leader of the coordinated key's partition of its internal topic."""
        internal, key = self.coordinated
        for k in up:
            try:
                t = self.nodes.metadata(k, internal).topics.get(internal)
            except Exception:
                continue
            if t is not None and t.error is None and t.partitions:
                return t.partitions[partition_for(key, len(t.partitions))].leader
        return -1

    def inject(self, plan: Plan) -> dict:
        _, view = self.nodes.poll_views(self.topic, lambda vs: True, timeout=10)
        kind = plan.kind
        role = {"kill-leader": "leader", "kill-controller": "controller",
                "kill-coordinator": "coordinator"}.get(kind, plan.role)
        if kind == "kill-two":
            victims = [k for k in plan.order if k in self.nodes.up()][:2]
            what = f"SIGKILL nodes {victims[0]} and {victims[1]} at once"
        else:
            k, who = self._target(plan, role, view)
            victims = [k]
            what = {"kill-leader": f"SIGKILL node {k} ({who})", "kill-controller": f"SIGKILL node {k} ({who})",
                    "kill-coordinator": f"SIGKILL node {k} ({who})",
                    "pause": f"SIGSTOP node {k} ({who}) for {plan.hold:.1f}s",
                    "partition": f"cut node {k} ({who}) off from the others for {plan.hold:.1f}s",
                    "restart": f"SIGTERM and restart node {k} ({who})"}[kind]
        parts = view["partitions"] if view and view["partitions"] else {}
        led = sorted(p for p, (leader, _, _) in parts.items() if leader in victims)
        fault = self.history.event("fault", number=plan.number, fault=kind, victims=victims, led=led, what=what,
                                   view_before=view, plan=asdict(plan))
        self.say(f"fault {plan.number} {kind}: {what}")
        if kind.startswith("kill-"):
            self.nodes.kill(*victims)
        elif kind == "pause":
            self.nodes.pause(victims[0])
        elif kind == "partition":
            self.nodes.isolate(victims[0])
        elif kind == "restart":
            self.nodes.restart(victims[0])
        else:
            raise ValueError(kind)
        return fault

    def hold(self, plan: Plan, fault: dict) -> None:
        """Lets the fault last `plan.hold` seconds, watching Metadata meanwhile: how long the
        survivors take to move leadership off the victims, and whether any partition stays
        led by a broker the controller has fenced (no longer among the brokers)."""
        victims = set(fault["victims"])
        since: dict[tuple[int, int], float] = {}  # (node asked, partition) -> first seen stale
        reported: set[int] = set()
        start = time.monotonic()
        moved = []

        def look(view: dict) -> None:
            parts = view["partitions"]
            if parts is None:
                return
            now = time.monotonic()
            for p, (leader, _, isr) in parts.items():
                key = (view["via"], p)
                if leader > 0 and leader not in view["brokers"]:
                    since.setdefault(key, now)
                    if now - since[key] >= STALE_LEADER_S and p not in reported:
                        reported.add(p)
                        e = {"fault": plan.number, "partition": p, "leader": leader, "view": view,
                             "for_s": round(now - since[key], 2)}
                        self.stale_leaders.append(e)
                        self.history.event("stale-leader", **e)
                        self.say(f"  partition {p} led by fenced broker {leader} for {e['for_s']}s "
                                 f"(brokers {view['brokers']}, via node {view['via']})")
                else:
                    since.pop(key, None)
            if fault["led"] and not moved and all(parts[p][0] not in victims for p in fault["led"]):
                moved.append(round(now - start, 2))

        if plan.hold > 0:
            self.nodes.poll_views(self.topic, lambda vs: False, timeout=plan.hold, on_view=look)
        fault["failover_s"] = moved[0] if moved else None

    def heal(self, fault: dict) -> float:
        """Undoes the fault; returns the history time the heal began."""
        t = self.history.now()
        kind, victims = fault["fault"], fault["victims"]
        if kind.startswith("kill-"):
            for k in victims:
                self.nodes.revive(k)
            what = f"restarted node{'s' if len(victims) > 1 else ''} {', '.join(map(str, victims))}"
        elif kind == "pause":
            self.nodes.resume(victims[0])
            what = f"SIGCONT node {victims[0]}"
        elif kind == "partition":
            self.nodes.heal(victims[0])
            what = f"reconnected node {victims[0]}"
        else:
            what = "nothing to heal"
        self.history.event("heal", number=fault["number"], what=what)
        self.say(f"heal {fault['number']}: {what}")
        return t
