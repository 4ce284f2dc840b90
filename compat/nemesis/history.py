"""What happened during one nemesis run: every write a client attempted and how it ended,
every record a consumer read, every fault and heal, every transaction's outcome.

As in Jepsen, the checker judges this history and the final reads only, never the broker's
own account of itself. Client threads append from librdkafka callbacks, so one lock guards
everything; times are seconds since the run started (monotonic clock).
"""

from __future__ import annotations

import bisect
import gzip
import json
import threading
import time
from collections import defaultdict
from pathlib import Path


class History:
    def __init__(self):
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        # (t, value, partition, offset): a delivery report without error.
        self.acks: list[tuple[float, str, int, int]] = []
        # (t, value, partition, error): a delivery report with an error (the write may still
        # have happened: a timed-out record is indeterminate, not failed).
        self.failures: list[tuple[float, str, int, str]] = []
        # (t, reader, partition, offset, value): a record a consumer read during the run.
        self.reads: list[tuple[float, str, int, int, str]] = []
        # Faults, heals, recoveries, producer incarnations, client errors: one dict each.
        self.events: list[dict] = []
        # One dict per transaction of the transactional producer (see txn_workload).
        self.txns: list[dict] = []
        # Per partition, the times of its acks in order: "first ack after t" by bisection.
        self._ack_times: dict[int, list[float]] = defaultdict(list)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def ack(self, value: str, partition: int, offset: int) -> None:
        with self.lock:
            t = self.now()
            self.acks.append((t, value, partition, offset))
            self._ack_times[partition].append(t)

    def fail(self, value: str, partition: int, error: str) -> None:
        with self.lock:
            self.failures.append((self.now(), value, partition, error))

    def read(self, reader: str, partition: int, offset: int, value: str) -> None:
        with self.lock:
            self.reads.append((self.now(), reader, partition, offset, value))

    def event(self, event: str, /, **fields) -> dict:
        with self.lock:
            e = {"t": round(self.now(), 3), "event": event, **fields}
            self.events.append(e)
            return e

    def txn(self, record: dict) -> None:
        with self.lock:
            self.txns.append(record)

    def first_ack_after(self, partition: int, t: float):
        """Time of the first acknowledged write to `partition` at or after `t`, or None."""
        with self.lock:
            times = self._ack_times[partition]
            i = bisect.bisect_left(times, t)
            return times[i] if i < len(times) else None

    def longest_gap(self, partition: int, t0: float, t1: float) -> float:
        """The longest stretch within [t0, t1] in which `partition` acknowledged nothing: how
        long a fault kept it from taking writes."""
        with self.lock:
            times = self._ack_times[partition]
            i, j = bisect.bisect_left(times, t0), bisect.bisect_right(times, t1)
            points = [t0] + times[i:j] + [times[j] if j < len(times) else t1]
            return max(b - a for a, b in zip(points, points[1:]))

    def ack_count(self) -> int:
        with self.lock:
            return len(self.acks)

    def dump(self, path: Path, **extra) -> None:
        """The whole history as one gzipped JSON document (zcat history.json.gz | jq)."""
        with self.lock:
            doc = {"acks": self.acks, "failures": self.failures, "reads": self.reads,
                   "events": self.events, "txns": self.txns, **extra}
            with gzip.open(path, "wt") as f:
                json.dump(doc, f, separators=(",", ":"))
