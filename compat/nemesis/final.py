"""The final reads, once every fault is healed and the writers have stopped: every partition
from offset 0 to its high watermark through the leaders (read_uncommitted: the log; and
read_committed in the transactional mode), then, after the cluster stopped, every replica
from its files (disk.py).
"""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, TopicPartition

from disk import Replica, read_replica


def read_all(bootstrap: str, topic: str, partitions: int, isolation: str, log, timeout: float):
    """[(partition, offset, value)] read from the start until each partition's position
    reaches the high watermark; and a list of what stayed short (empty when complete)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"nemesis-final-{isolation}",
                  "enable.auto.commit": False, "enable.partition.eof": True, "isolation.level": isolation,
                  "auto.offset.reset": "earliest", "logger": log})
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        highs = {tp.partition: c.get_watermark_offsets(tp, timeout=15)[1] for tp in tps}
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got: list[tuple[int, int, str]] = []
        eof: set[int] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append((m.partition(), m.offset(), m.value().decode()))
                eof.discard(m.partition())
            elif m is not None and m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
            if len(eof) == partitions and all(pos >= highs[p] for p, pos in positions(c, tps).items()):
                return got, []
        at = positions(c, tps)
        short = [f"{isolation}: partition {p} read to {at[p]} of high watermark {highs[p]}"
                 for p in range(partitions) if at[p] < highs[p] or p not in eof]
        return got, short or [f"{isolation}: no end of partition reported within {timeout:.0f}s"]
    finally:
        c.close()


def positions(c: Consumer, tps: list[TopicPartition]) -> dict[int, int]:
    return {tp.partition: tp.offset for tp in c.position(tps)}


def read_replicas(data_dirs: dict[int, Path], topic: str, partitions: int) -> dict[int, list[Replica]]:
    return {p: [read_replica(d, topic, p, k) for k, d in sorted(data_dirs.items())] for p in range(partitions)}
