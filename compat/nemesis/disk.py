"""Each replica's log as it lies on disk, read after the cluster has stopped: the third kind
of reader, beside the consumers during the run and the final read through the leader.

samsa keeps partition `p` of topic `t` in `<data_dir>/t-p/`, as segments named by their
20-digit base offset (`00000000000000000000.log`), each a run of Kafka RecordBatch v2
batches (crates/storage/src/batch.rs has the byte layout). Replicas are compared batch by
batch, not file by file: where one replica rolled a segment another may not have.

Records are decoded (uncompressed only: the workload sends compression.type=none) to get
each value with the producer id and epoch of its batch, which tells a duplicate inside one
idempotent session from one across an epoch bump.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import crc32c

HEADER = struct.Struct(">qiibIhiqqqhii")  # the 61-byte RecordBatch v2 header
CONTROL_BIT = 1 << 5
TRANSACTIONAL_BIT = 1 << 4
COMPRESSION_MASK = 0x07


@dataclass
class Record:
    offset: int
    value: Optional[str]  # None for a control record
    producer_id: int
    producer_epoch: int
    transactional: bool
    control: Optional[str] = None  # "commit" or "abort" for a transaction marker


@dataclass
class Replica:
    node: int
    partition: int
    batches: list[bytes] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # bad CRCs, torn tails, undecodable batches

    @property
    def log_end(self) -> int:
        if not self.batches:
            return 0
        base, _, _, _, _, _, last_delta, *_ = HEADER.unpack_from(self.batches[-1])
        return base + last_delta + 1


def read_replica(data_dir: Path, topic: str, partition: int, node: int) -> Replica:
    rep = Replica(node, partition)
    d = data_dir / f"{topic}-{partition}"
    if not d.is_dir():
        rep.problems.append(f"no directory {d}")
        return rep
    for seg in sorted(d.glob("*.log"), key=lambda f: int(f.stem)):
        data = seg.read_bytes()
        at = 0
        while at + 12 <= len(data):
            (length,) = struct.unpack_from(">i", data, at + 8)
            end = at + 12 + length
            if length < HEADER.size - 12 or end > len(data):
                rep.problems.append(f"{seg.name}: {len(data) - at} bytes at position {at} are not a whole batch")
                break
            batch = data[at:end]
            _read_batch(rep, seg.name, at, batch)
            rep.batches.append(batch)
            at = end
        else:
            if at != len(data):
                rep.problems.append(f"{seg.name}: {len(data) - at} stray bytes at the end")
    return rep


def _read_batch(rep: Replica, seg: str, at: int, batch: bytes) -> None:
    (base, _len, _epoch, magic, crc, attributes, _delta, _ts, _max_ts,
     pid, pepoch, _seq, count) = HEADER.unpack_from(batch)
    if magic != 2:
        rep.problems.append(f"{seg}@{at}: magic {magic}")
        return
    if crc32c.crc32c(batch[21:]) != crc:
        rep.problems.append(f"{seg}@{at}: batch at offset {base} fails its CRC")
        return
    if attributes & COMPRESSION_MASK:
        rep.problems.append(f"{seg}@{at}: batch at offset {base} is compressed; not decoded")
        return
    control = bool(attributes & CONTROL_BIT)
    txn = bool(attributes & TRANSACTIONAL_BIT)
    pos = HEADER.size
    for _ in range(count):
        length, pos = _varint(batch, pos)
        end = pos + length
        _attrs = batch[pos]
        p = pos + 1
        _ts_delta, p = _varint(batch, p)
        delta, p = _varint(batch, p)
        klen, p = _varint(batch, p)
        key = batch[p:p + klen] if klen >= 0 else None
        p += max(klen, 0)
        vlen, p = _varint(batch, p)
        value = batch[p:p + vlen] if vlen >= 0 else None
        if control:
            kind = struct.unpack_from(">h", key, 2)[0] if key and len(key) >= 4 else -1
            marker = {0: "abort", 1: "commit"}.get(kind, f"control-{kind}")
            rep.records.append(Record(base + delta, None, pid, pepoch, txn, marker))
        else:
            rep.records.append(Record(base + delta, value.decode(errors="replace") if value is not None else "",
                                      pid, pepoch, txn))
        pos = end


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint, as record fields are encoded."""
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    return (result >> 1) ^ -(result & 1), pos


def compare(replicas: list[Replica]) -> list[str]:
    """Where the replicas of one partition differ, batch by batch; [] if byte-identical."""
    out = []
    ref = replicas[0]
    for other in replicas[1:]:
        if len(other.batches) != len(ref.batches) or other.log_end != ref.log_end:
            out.append(f"partition {ref.partition}: node {ref.node} has {len(ref.batches)} batches to offset "
                       f"{ref.log_end}, node {other.node} {len(other.batches)} to {other.log_end}")
        for i, (a, b) in enumerate(zip(ref.batches, other.batches)):
            if a != b:
                base = HEADER.unpack_from(a)[0]
                out.append(f"partition {ref.partition}: batch {i} (offset {base}) differs between "
                           f"node {ref.node} and node {other.node}")
                break
    return out
