"""The queue workload: idempotent acks=all producers and consumer-group members, each a
thread, all recording into the History.

Every value names its writer, the writer's incarnation (one confluent-kafka Producer
instance; a new one after a fatal error) and a sequence number, so the checker can tell
from a value alone who wrote it and in what order: "p0-i2-000000417". Records go to
partition `seq % partitions`, so every partition is written all the time and order can be
checked per partition.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from typing import Optional

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from history import History

VALUE = re.compile(r"^(p\d+)-i(\d+)-(\d+)$")
TXN_VALUE = re.compile(r"^(tx)-i(\d+)-t(\d+)-(\d+)$")


# NEMESIS_CLIENT_DEBUG=eos,msg,... (librdkafka debug contexts) puts the clients' debug logs in
# results/clients.log, for when a client, not the broker, is the question. The group members
# always log their group protocol (cgrp): a close that hangs is otherwise a mystery.
DEBUG = {"debug": os.environ["NEMESIS_CLIENT_DEBUG"]} if os.environ.get("NEMESIS_CLIENT_DEBUG") else {}
CONSUMER_DEBUG = DEBUG or {"debug": "cgrp"}


def value_of(writer: str, incarnation: int, seq: int) -> str:
    return f"{writer}-i{incarnation}-{seq:09d}"


def parse_value(v: str) -> Optional[tuple[str, int, int]]:
    """(writer, incarnation, seq) of an idempotent producer's value, else None."""
    m = VALUE.match(v)
    return (m.group(1), int(m.group(2)), int(m.group(3))) if m else None


def client_logger(path) -> logging.Logger:
    """librdkafka's own log lines (connection refused, epoch bumps, ...) go to a file of the
    run, not to the terminal, where they would bury the fault schedule."""
    log = logging.getLogger(f"nemesis-clients-{path}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    if not log.handlers:
        h = logging.FileHandler(path)
        h.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(message)s"))
        log.addHandler(h)
    return log


class IdempotentProducer(threading.Thread):
    """Writes `rate` records a second with enable.idempotence and acks=all until `stop`.

    A fatal error (librdkafka gives up on the idempotent session) ends an incarnation: its
    outstanding records are reported failed and a new Producer takes over under the next
    incarnation number, as an application would restart its producer."""

    MAX_QUEUED = 20_000

    def __init__(self, name: str, bootstrap: str, topic: str, partitions: int, rate: float,
                 history: History, stop: threading.Event, log: logging.Logger, message_timeout_ms: int):
        super().__init__(name=name, daemon=True)
        self.writer, self.bootstrap, self.topic, self.partitions = name, bootstrap, topic, partitions
        self.rate, self.history, self.stop, self.log = rate, history, stop, log
        self.message_timeout_ms = message_timeout_ms
        self.incarnation = 0
        self.seq = 0
        self.unresolved = 0  # records with no delivery report when the run ended
        self.fatal: Optional[KafkaError] = None
        self.crash: Optional[str] = None

    def _new_producer(self) -> Producer:
        return Producer({
            "bootstrap.servers": self.bootstrap, "client.id": f"{self.writer}-i{self.incarnation}",
            "acks": "all", "enable.idempotence": True, "compression.type": "none", "linger.ms": 5,
            "message.timeout.ms": self.message_timeout_ms, "request.timeout.ms": 5000,
            "retry.backoff.ms": 100, "reconnect.backoff.max.ms": 1000,
            "topic.metadata.refresh.interval.ms": 1000,
            "error_cb": self._on_error, "logger": self.log, **DEBUG})

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self.fatal = err

    def _on_delivery(self, err, msg) -> None:
        value = msg.value().decode()
        if err is None:
            self.history.ack(value, msg.partition(), msg.offset())
        else:
            self.history.fail(value, msg.partition(), f"{err.name()}: {err.str()}")

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.incarnation += 1
                self.fatal = None
                p = self._new_producer()
                self.history.event("producer-start", writer=self.writer, incarnation=self.incarnation)
                self._produce(p)
                if self.fatal is not None:
                    self.history.event("producer-fatal", writer=self.writer, incarnation=self.incarnation,
                                       error=f"{self.fatal.name()}: {self.fatal.str()}")
                    self._drain(p, 10)  # reports its outstanding records as failed
                    continue
                self._drain(p, self.message_timeout_ms / 1000 + 30)
        except Exception as e:  # the checker reports it; a dead writer must not pass silently
            self.crash = repr(e)
            self.history.event("client-crash", writer=self.writer, error=repr(e))

    def _produce(self, p: Producer) -> None:
        """Paced writes until stop or a fatal error."""
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self.stop.is_set() and self.fatal is None:
            now = time.monotonic()
            if now - next_at > 1.0:  # fell behind (queue full, slow poll): do not burst
                next_at = now
            while next_at <= now and len(p) < self.MAX_QUEUED and self.fatal is None:
                value = value_of(self.writer, self.incarnation, self.seq)
                try:
                    p.produce(self.topic, value=value.encode(), partition=self.seq % self.partitions,
                              on_delivery=self._on_delivery)
                except BufferError:
                    break
                except KafkaException as e:
                    if e.args[0].fatal():
                        self.fatal = e.args[0]
                        break
                    raise
                self.seq += 1
                next_at += interval
            p.poll(0.01)

    def _drain(self, p: Producer, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(p) > 0 and time.monotonic() < deadline:
            p.poll(0.1)
        self.unresolved += len(p)


class GroupConsumer(threading.Thread):
    """One member of the workload's consumer group, recording every record it reads.

    Reads are recorded under "<name>/g<generation>", the generation counting this member's
    assignments: within one, a partition must be read in offset order without skipping a
    record (Jepsen's poll-skip and nonmonotonic-poll); across them it may start over."""

    def __init__(self, name: str, bootstrap: str, topic: str, group: str, isolation: str,
                 history: History, stop: threading.Event, log: logging.Logger):
        super().__init__(name=name, daemon=True)
        self.reader, self.bootstrap, self.topic, self.group = name, bootstrap, topic, group
        self.isolation, self.history, self.stop, self.log = isolation, history, stop, log
        self.crash: Optional[str] = None
        self.highest: dict[int, int] = {}  # partition -> highest offset read
        self.generation = 0

    def _rebalanced(self, consumer, partitions) -> None:
        self.generation += 1
        self.history.event("rebalance", reader=self.reader, generation=self.generation,
                           partitions=[tp.partition for tp in partitions])

    def run(self) -> None:
        try:
            c = Consumer({
                "bootstrap.servers": self.bootstrap, "client.id": self.reader, "group.id": self.group,
                "auto.offset.reset": "earliest", "enable.auto.commit": True, "auto.commit.interval.ms": 1000,
                "session.timeout.ms": 10_000, "heartbeat.interval.ms": 1000,
                "isolation.level": self.isolation, "topic.metadata.refresh.interval.ms": 1000,
                "reconnect.backoff.max.ms": 1000, "logger": self.log, **CONSUMER_DEBUG})
            c.subscribe([self.topic], on_assign=self._rebalanced, on_revoke=self._rebalanced)
            while not self.stop.is_set():
                m = c.poll(0.2)
                if m is None or m.error():
                    continue  # transient errors while leaders move; the client carries on
                self.history.read(f"{self.reader}/g{self.generation}", m.partition(), m.offset(), m.value().decode())
                if m.offset() > self.highest.get(m.partition(), -1):
                    self.highest[m.partition()] = m.offset()
            self.history.event("consumer-closing", reader=self.reader)
            c.close()
            self.history.event("consumer-closed", reader=self.reader)
        except Exception as e:
            self.crash = repr(e)
            self.history.event("client-crash", reader=self.reader, error=repr(e))
