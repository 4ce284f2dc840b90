"""One nemesis run: start the cluster and the workload, carry out the fault schedule, heal,
read everything back, stop the cluster, check, and write the results.

Every wait polls a condition against a deadline; the only fixed durations are the ones the
schedule asks for (a fault's hold, the quiet gap before it), which are the experiment.
"""

from __future__ import annotations

import gc
import json
import shutil
import threading
import time
from dataclasses import asdict
from pathlib import Path

from checker import check
from cluster import SESSION_TIMEOUT_MS, create_replicated
from faults import Nemesis, schedule
from final import read_all, read_replicas
from history import History
from nodes import EXITED, Nodes
from txn_workload import TransactionalProducer
from workload import GroupConsumer, IdempotentProducer, client_logger

TOPIC = "nemesis"
GROUP = "nemesis-group"
TXN_ID = "nemesis-tx"
PARTITIONS = 3
PRODUCERS = 2
CONSUMERS = 2
SESSION_S = SESSION_TIMEOUT_MS / 1000


class Run:
    def __init__(self, opts, root: Path, say):
        self.o, self.root, self.say = opts, root, say
        self.results = root / "results"
        self.results.mkdir(parents=True, exist_ok=True)
        self.history = History()
        self.log = client_logger(self.results / "clients.log")
        self.produce_stop, self.consume_stop = threading.Event(), threading.Event()
        self.heals: list[dict] = []
        self.observed = {k: [] for k in ("recovery_timeouts", "no_progress", "client_crashes",
                                         "incomplete_final_reads", "group_stalled")}

    def execute(self) -> dict:
        self.nodes = Nodes(self.root / "cluster", netns=not self.o.loopback, log=self.log, history=self.history)
        try:
            return self._execute()
        except BaseException as e:  # keep what was recorded: it is what explains the failure
            self.history.event("run-error", error=repr(e))
            self.history.dump(self.results / "history.json.gz", error=repr(e), unexpected_exits=self.nodes.unexpected,
                              anomalies=self.nodes.anomalies)
            raise
        finally:
            self.produce_stop.set()
            self.consume_stop.set()
            self.nodes.teardown()

    def _execute(self) -> dict:
        o, nodes, h = self.o, self.nodes, self.history
        nodes.start()
        create_replicated(nodes, TOPIC, PARTITIONS)
        self.say(f"cluster up ({'network namespaces' if not o.loopback else 'loopback'}), topic {TOPIC}: "
                 f"{PARTITIONS} partitions, RF 3, min.insync.replicas 2")
        self._start_workload()
        if not self._await_progress(0.0, 60)[0]:
            raise RuntimeError("the workload made no progress on a healthy cluster within 60s")
        self.say(f"workload running: {PRODUCERS} idempotent producers at {o.rate:g}/s each"
                 f"{', 1 transactional producer' if o.txn else ''}, {CONSUMERS} group consumers "
                 f"({'read_committed' if o.txn else 'read_uncommitted'})")

        kinds = tuple(k for k in o.kinds if not (o.loopback and k == "partition"))
        plans = schedule(o.seed, o.faults, kinds, PARTITIONS, nodes.ids(), o.pause, SESSION_S)
        coordinated = ("__transaction_state", TXN_ID) if o.txn else ("__consumer_offsets", GROUP)
        nemesis = Nemesis(nodes, TOPIC, h, self.say, coordinated)
        started = time.monotonic()
        # An AdminClient's futures complete on a librdkafka thread; a garbage collection
        # starting there that frees a client calls rd_kafka_destroy() from librdkafka's own
        # thread, and librdkafka aborts the process. Collect only here, between faults.
        gc.disable()
        for plan in plans:
            gc.collect()
            if o.duration and time.monotonic() - started > o.duration:
                self.say(f"fault phase reached --duration {o.duration:g}s after {plan.number - 1} faults")
                break
            self._revive_exited()
            self.produce_stop.wait(plan.gap)  # plain load between faults: part of the schedule
            fault = nemesis.inject(plan)
            nemesis.hold(plan, fault)
            healed_at = nemesis.heal(fault)
            if not self._after_heal(fault, healed_at):
                break
        return self._finish(plans, nemesis)

    def _start_workload(self) -> None:
        o, b, h = self.o, self.nodes.every_bootstrap, self.history
        self.producers = [IdempotentProducer(f"p{i}", b, TOPIC, PARTITIONS, o.rate, h, self.produce_stop, self.log,
                                             o.message_timeout_ms) for i in range(PRODUCERS)]
        self.txp = (TransactionalProducer(TXN_ID, b, TOPIC, PARTITIONS, o.seed, h, self.produce_stop, self.log)
                    if o.txn else None)
        iso = "read_committed" if o.txn else "read_uncommitted"
        self.consumers = [GroupConsumer(f"c{i}", b, TOPIC, GROUP, iso, h, self.consume_stop, self.log)
                          for i in range(CONSUMERS)]
        for t in self.producers + self.consumers + ([self.txp] if self.txp else []):
            t.start()

    def _revive_exited(self) -> None:
        for k in self.nodes.ids():
            if self.nodes.state[k] == EXITED:
                self.say(f"node {k} exited by itself: starting it again")
                self.nodes.revive(k)

    def _recovered(self, timeout: float) -> tuple[bool, float, object]:
        """Every node back, registered, and in the ISR of every partition, as each node sees it."""
        ids = set(self.nodes.ids())
        start = time.monotonic()
        deadline = start + timeout
        last = None

        def done(views):
            return len(views) == len(ids) and all(
                set(v["brokers"]) == ids and v["partitions"] is not None
                and all(leader in ids and set(isr) == ids for leader, _, isr in v["partitions"].values())
                for v in views)

        while time.monotonic() < deadline:
            self._revive_exited()
            ok, last = self.nodes.poll_views(TOPIC, done, timeout=min(5.0, deadline - time.monotonic()))
            if ok:
                return True, time.monotonic() - start, last
        return False, time.monotonic() - start, last

    def _await_progress(self, since: float, timeout: float) -> tuple[bool, dict, object]:
        """Waits for an acknowledged write to every partition (and, with transactions, a
        commit) at or after history time `since`; returns the first ack time per partition."""
        deadline = time.monotonic() + timeout
        while True:
            firsts = {p: self.history.first_ack_after(p, since) for p in range(PARTITIONS)}
            committed = self.txp.committed_after(since) if self.txp else True
            if all(t is not None for t in firsts.values()) and committed is not None:
                return True, firsts, committed
            if time.monotonic() >= deadline:
                return False, firsts, committed
            time.sleep(0.05)

    def _after_heal(self, fault: dict, healed_at: float) -> bool:
        ok, took, last = self._recovered(self.o.recovery_timeout)
        if not ok:
            e = {"fault": fault["number"], "fault_kind": fault["fault"], "after_s": round(took, 1), "last_view": last}
            self.observed["recovery_timeouts"].append(e)
            self.history.event("recovery-timeout", **e)
            self.say(f"  NOT RECOVERED within {self.o.recovery_timeout:g}s; last view: {last}")
            return False
        progressed, firsts, committed = self._await_progress(healed_at, self.o.progress_timeout)
        acked = [t - healed_at for t in firsts.values() if t is not None]
        gaps = [self.history.longest_gap(p, fault["t"], healed_at + took) for p in range(PARTITIONS)]
        heal = {"fault": fault["number"], "fault_kind": fault["fault"], "recovered_s": round(took, 2),
                "failover_s": fault.get("failover_s"), "longest_ack_gap_s": round(max(gaps), 3),
                "first_ack_s": round(min(acked), 3) if acked else None,
                "every_partition_ack_s": round(max(acked), 3) if progressed else None}
        self.heals.append(heal)
        self.history.event("recovered", **heal)
        if not progressed:
            e = {"fault": fault["number"], "fault_kind": fault["fault"], "partitions_without_ack":
                 [p for p, t in firsts.items() if t is None], "txn_commit": committed is not None}
            self.observed["no_progress"].append(e)
            self.say(f"  NO PROGRESS within {self.o.progress_timeout:g}s of the heal: {e}")
            return False
        self.say(f"  recovered in {took:.1f}s; first ack {heal['first_ack_s']:.2f}s after the heal, every "
                 f"partition {heal['every_partition_ack_s']:.2f}s; longest stretch without acks "
                 f"{heal['longest_ack_gap_s']:.1f}s"
                 + (f"; partitions {fault['led']} led elsewhere {fault['failover_s']:.1f}s into the fault"
                    if fault.get("failover_s") is not None else ""))
        return True

    def _finish(self, plans, nemesis: Nemesis) -> dict:
        o, nodes, h = self.o, self.nodes, self.history
        touched = nodes.heal_all()
        self.say(f"final: healed {touched or 'nothing'}; stopping the writers")
        self.produce_stop.set()
        for t in self.producers + ([self.txp] if self.txp else []):
            t.join(o.message_timeout_ms / 1000 + 60)
        ok, took, last = self._recovered(o.recovery_timeout)
        if not ok:
            self.observed["recovery_timeouts"].append({"fault": "final", "after_s": round(took, 1), "last_view": last})
            self.say(f"final: NOT RECOVERED within {o.recovery_timeout:g}s; last view: {last}")
        final = {}
        final["uncommitted"], short = read_all(nodes.every_bootstrap, TOPIC, PARTITIONS, "read_uncommitted", self.log, 120)
        self.observed["incomplete_final_reads"] += short
        if o.txn:
            final["committed"], short = read_all(nodes.every_bootstrap, TOPIC, PARTITIONS, "read_committed", self.log, 120)
            self.observed["incomplete_final_reads"] += short
        self.say(f"final: read {len(final['uncommitted'])} records back"
                 + (f", {len(final['committed'])} read_committed" if o.txn else ""))
        self._await_group(final["committed"] if o.txn else final["uncommitted"])
        self.say("final: the group consumers have read to the end")
        self.consume_stop.set()
        for t in self.consumers:
            t.join(30)
            if t.is_alive():
                self.nodes.anomalies.append({"kind": "consumer-close-hung", "reader": t.name, "after_s": 30})
                self.say(f"final: group consumer {t.name} has not closed within 30s")
        for t in self.producers + self.consumers + ([self.txp] if self.txp else []):
            if t.crash or (t.is_alive() and t not in self.consumers):
                self.observed["client_crashes"].append({"client": t.name, "error": t.crash or "still running"})
        codes = nodes.stop_all()
        self.say(f"final: group consumers stopped, cluster stopped (exit codes {codes}); checking")
        replicas = read_replicas({k: n.data_dir for k, n in nodes.nodes.items()}, TOPIC, PARTITIONS)
        run = {"panics": nodes.panics(), "unexpected_exits": nodes.unexpected, "anomalies": nodes.anomalies,
               "stale_leaders": nemesis.stale_leaders, "heals": self.heals, **self.observed}
        report = check(h, final, replicas, run, o.txn)
        report.update(seed=o.seed, mode="txn" if o.txn else "plain", faults_planned=len(plans),
                      faults_done=len(self.heals), exit_codes=codes, heals=self.heals,
                      unresolved_writes=sum(p.unresolved for p in self.producers),
                      incarnations={p.name: p.incarnation for p in self.producers})
        h.dump(self.results / "history.json.gz", plan=[asdict(p) for p in plans], final=final, report=report)
        (self.results / "report.json").write_text(json.dumps(report, indent=1, default=str))
        if report["violations"] == 0 and not o.keep:
            for n in nodes.nodes.values():
                shutil.rmtree(n.data_dir, ignore_errors=True)
        return report

    def _await_group(self, log: list) -> None:
        """The group consumers reach the last record a reader at their isolation can see."""
        ends = {}
        for p, off, _ in log:
            ends[p] = max(ends.get(p, -1), off)
        deadline = time.monotonic() + 60
        highest: dict = {}
        while time.monotonic() < deadline:
            highest = {p: max((c.highest.get(p, -1) for c in self.consumers), default=-1) for p in ends}
            if all(highest[p] >= end for p, end in ends.items()):
                return
            time.sleep(0.1)
        e = {"ends": ends, "highest_read": highest}
        self.observed["group_stalled"].append(e)
        self.say(f"final: the group consumers did not reach the end within 60s: {e}")
