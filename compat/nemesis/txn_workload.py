"""The transactional half of the workload: one transactional producer running small
transactions that it commits or aborts at random, so read_committed consumers have aborted
and committed data to tell apart while coordinators and leaders die.

Each transaction's values are "tx-i<incarnation>-t<txn>-<k>". Its outcome, as the client
knows it: committed (commit_transaction returned), aborted (abort_transaction returned, or
commit was never asked for before the producer failed: nothing can commit it then), or
unknown (commit was asked for and failed: the coordinator may finish it either way, and the
checker then wants it whole or not at all).
"""

from __future__ import annotations

import bisect
import logging
import random
import threading
from typing import Optional

from confluent_kafka import KafkaException, Producer

from history import History

TXN_TIMEOUT_S = 30
COMMIT_ATTEMPTS = 3


class TransactionalProducer(threading.Thread):
    def __init__(self, txn_id: str, bootstrap: str, topic: str, partitions: int, seed: int,
                 history: History, stop: threading.Event, log: logging.Logger, commit_ratio: float = 0.6):
        super().__init__(name="tx", daemon=True)
        self.txn_id, self.bootstrap, self.topic, self.partitions = txn_id, bootstrap, topic, partitions
        self.rng = random.Random(seed)
        self.history, self.stop, self.log, self.commit_ratio = history, stop, log, commit_ratio
        self.incarnation = 0
        self.next_txn = 0
        self.commit_times: list[float] = []
        self.crash: Optional[str] = None

    def committed_after(self, t: float) -> Optional[float]:
        i = bisect.bisect_left(self.commit_times, t)
        return self.commit_times[i] if i < len(self.commit_times) else None

    def _new_producer(self) -> Optional[Producer]:
        self.incarnation += 1
        p = Producer({
            "bootstrap.servers": self.bootstrap, "client.id": f"tx-i{self.incarnation}",
            "transactional.id": self.txn_id, "acks": "all", "compression.type": "none", "linger.ms": 5,
            "transaction.timeout.ms": TXN_TIMEOUT_S * 1000, "message.timeout.ms": TXN_TIMEOUT_S * 1000,
            "request.timeout.ms": 5000, "retry.backoff.ms": 100, "reconnect.backoff.max.ms": 1000,
            "topic.metadata.refresh.interval.ms": 1000, "logger": self.log})
        try:
            p.init_transactions(TXN_TIMEOUT_S)
        except KafkaException as e:
            self.history.event("txn-init-failed", incarnation=self.incarnation, error=str(e.args[0]))
            return None
        self.history.event("producer-start", writer="tx", incarnation=self.incarnation)
        return p

    def run(self) -> None:
        try:
            p = None
            while not self.stop.is_set():
                if p is None:
                    p = self._new_producer()
                    if p is None:
                        self.stop.wait(0.5)  # back off before the next InitProducerId
                        continue
                if not self._one(p):
                    p = None
                self.stop.wait(self.rng.uniform(0.02, 0.1))
        except Exception as e:
            self.crash = repr(e)
            self.history.event("client-crash", writer="tx", error=repr(e))

    def _one(self, p: Producer) -> bool:
        """One transaction; returns whether the producer can go on."""
        n, self.next_txn = self.next_txn, self.next_txn + 1
        commit = self.rng.random() < self.commit_ratio
        size = self.rng.randint(1, 4)
        rec = {"incarnation": self.incarnation, "txn": n, "commit": commit, "outcome": None,
               "values": [], "errors": [], "t_begin": round(self.history.now(), 3)}
        for k in range(size):
            rec["values"].append([f"tx-i{self.incarnation}-t{n}-{k}", self.rng.randrange(self.partitions), None])
        asked_commit = False

        def delivered(i):
            def cb(err, msg):
                if err is None:
                    rec["values"][i][2] = msg.offset()
                else:
                    rec["errors"].append(f"delivery: {err.name()}")
            return cb

        try:
            p.begin_transaction()
            for i, (value, partition, _) in enumerate(rec["values"]):
                p.produce(self.topic, value=value.encode(), partition=partition, on_delivery=delivered(i))
            left = p.flush(TXN_TIMEOUT_S)
            if left or rec["errors"]:
                rec["errors"].append(f"{left} records unacknowledged")
                p.abort_transaction(TXN_TIMEOUT_S)
                return self._end(rec, "aborted")
            if not commit:
                p.abort_transaction(TXN_TIMEOUT_S)
                return self._end(rec, "aborted")
            asked_commit = True
            for attempt in range(COMMIT_ATTEMPTS):
                try:
                    p.commit_transaction(TXN_TIMEOUT_S)
                    self.commit_times.append(self.history.now())
                    return self._end(rec, "committed")
                except KafkaException as e:
                    err = e.args[0]
                    rec["errors"].append(f"commit: {err}")
                    if not err.retriable() or attempt == COMMIT_ATTEMPTS - 1:
                        raise
            raise AssertionError("unreachable")
        except KafkaException as e:
            err = e.args[0]
            rec["errors"].append(str(err))
            if err.txn_requires_abort():
                try:
                    p.abort_transaction(TXN_TIMEOUT_S)
                    return self._end(rec, "aborted")
                except KafkaException as again:
                    rec["errors"].append(f"abort: {again.args[0]}")
            # The producer is done for; a new one with the same transactional.id fences it
            # and ends what it left open.
            self._end(rec, "unknown" if asked_commit else "aborted")
            return False

    def _end(self, rec: dict, outcome: str) -> bool:
        rec["outcome"] = outcome
        rec["t_end"] = round(self.history.now(), 3)
        self.history.txn(rec)
        if rec["errors"]:
            self.history.event("txn-error", incarnation=rec["incarnation"], txn=rec["txn"], outcome=outcome,
                               errors=rec["errors"][:5])
        return True
