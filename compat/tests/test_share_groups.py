"""Share groups (KIP-932) with Kafka 4.4's tools, the same tests against samsa and against
Kafka (`compat/run.sh --against-kafka`): kafka-share-groups --list, --describe (--state,
--members, the offsets view), --delete, --reset-offsets and --delete-offsets on a group
whose member is made with raw ShareGroupHeartbeat requests (so the group side is tested on
its own), and kafka-console-share-consumer reading as a member of a share group (and from
where a reset put the group)."""

from __future__ import annotations

import itertools
import os
import socket
import struct
import subprocess
import threading

from clients import wait_until
from jvm import JVM_OPTS, KAFKA_TOOLS, run_tool
from test_tools import create_topic


def _uvarint(n: int) -> bytes:
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _compact(s: str | None) -> bytes:
    if s is None:
        return b"\x00"
    raw = s.encode()
    return _uvarint(len(raw) + 1) + raw


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7

    def compact(self) -> str | None:
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()


def request(bootstrap: str, api_key: int, version: int, body: bytes) -> _Reader:
    """One request of a flexible version, on a connection of its own, to the first broker of
    `bootstrap`; its response from past the header."""
    client = b"compat-share"
    header = struct.pack(">hhih", api_key, version, 7, len(client)) + client + b"\x00"
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        frame = header + body
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        data = b""
        while len(data) < size:
            data += s.recv(size - len(data))
    r = _Reader(data)
    r.take(4)  # correlation id
    r.uvarint()  # header tags
    return r


def find_coordinator(bootstrap: str, group: str) -> None:
    """FindCoordinator v4 for `group`, answer unread: Kafka creates `__consumer_offsets` on
    the first, as a client's lookup would, and a share heartbeat alone does not."""
    request(bootstrap, 10, 4, b"\x00" + _uvarint(2) + _compact(group) + b"\x00")


def heartbeat(bootstrap: str, group: str, member: str, epoch: int, topics: list[str] | None):
    """One ShareGroupHeartbeat v1: (error code, member epoch, assigned partition count or None)."""
    body = _compact(group) + _compact(member) + struct.pack(">i", epoch) + b"\x00"
    body += b"\x00" if topics is None else _uvarint(len(topics) + 1) + b"".join(_compact(t) for t in topics)
    body += b"\x00"
    r = request(bootstrap, 76, 1, body)
    _throttle, error = struct.unpack(">ih", r.take(6))
    r.compact()
    r.compact()
    member_epoch, _interval = struct.unpack(">ii", r.take(8))
    if r.take(1)[0] == 0xFF:
        return error, member_epoch, None
    count = 0
    for _ in range(r.uvarint() - 1):
        r.take(16)
        n = r.uvarint() - 1
        r.take(4 * n)
        r.uvarint()
        count += n
    return error, member_epoch, count


def join_until_assigned(bootstrap: str, group: str, member: str, topic: str, partitions: int) -> int:
    """`member` joins `group` subscribed to `topic` and heartbeats until it is assigned all
    `partitions` of it; its member epoch then. The join is repeated while the coordinator
    is not ready (Kafka loads `__consumer_offsets` after the session's first group request:
    NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or COORDINATOR_LOAD_IN_PROGRESS meanwhile)."""
    epoch = 0

    def joined():
        nonlocal epoch
        error, epoch, _ = heartbeat(bootstrap, group, member, 0, [topic])
        assert error in (0, 14, 15, 16), error
        if error:
            find_coordinator(bootstrap, group)
        return error == 0
    wait_until(joined, f"{member} to join {group}")

    def assigned():
        nonlocal epoch
        error, epoch, count = heartbeat(bootstrap, group, member, epoch, None)
        assert error == 0, error
        return count == partitions
    wait_until(assigned, f"the member to be assigned {partitions} partitions")
    return epoch


def table(out: str) -> list[dict]:
    """The rows of a kafka-share-groups table, by column name."""
    lines = [l for l in out.splitlines() if l.strip()]
    header = lines[0].split()
    return [dict(zip(header, l.split())) for l in lines[1:]]


def test_share_groups_tool(bootstrap, topic_name):
    tool = ["kafka-share-groups", "--bootstrap-server", bootstrap]
    topic, group = topic_name(), topic_name("-g")
    create_topic(bootstrap, topic, 2)
    member = "compat-member-1"
    join_until_assigned(bootstrap, group, member, topic, 2)

    assert group in run_tool(*tool, "--list").stdout.split()
    state = table(run_tool(*tool, "--describe", "--group", group, "--state").stdout)
    assert [(r["GROUP"], r["STATE"], r["#MEMBERS"]) for r in state] == [(group, "Stable", "1")], state
    members = table(run_tool(*tool, "--describe", "--group", group, "--members").stdout)
    assert [(r["GROUP"], r["CONSUMER-ID"], r["CLIENT-ID"], r["#PARTITIONS"], r["ASSIGNMENT"]) for r in members] == \
        [(group, member, "compat-share", "2", f"{topic}:0,1")], members
    offsets = table(run_tool(*tool, "--describe", "--group", group).stdout)
    # Nothing was fetched: the start offset is not known yet ("-"), nor the lag.
    assert sorted((r["TOPIC"], r["PARTITION"], r["START-OFFSET"], r["LAG"]) for r in offsets) == \
        [(topic, "0", "-", "-"), (topic, "1", "-", "-")], offsets

    deleted = run_tool(*tool, "--delete", "--group", group, check=False)
    assert f"Share group '{group}' is not EMPTY." in deleted.stdout + deleted.stderr, deleted
    error, _, _ = heartbeat(bootstrap, group, member, -1, None)
    assert error == 0, error
    out = run_tool(*tool, "--delete", "--group", group).stdout
    assert f"Deletion of requested share groups ('{group}') was successful." in out, out
    wait_until(lambda: group not in run_tool(*tool, "--list").stdout.split(), f"{group} to leave --list")


def test_console_share_consumer_reads_as_a_share_group_member(bootstrap, topic_name):
    """kafka-console-share-consumer joins a share group, is assigned every partition of the
    topic, and reads the records produced once it is reading (share.auto.offset.reset is
    latest); kafka-share-groups then shows it as the member and no lag left.

    Being assigned is not yet reading: with `latest`, a share-partition's start offset is
    fixed by the leader at the member's first ShareFetch, in Kafka as here, so records
    produced between the assignment and that fetch are rightly skipped. So probe records
    are produced, one at a time, until the consumer prints one; the 30 records after that
    must all be read."""
    tool = ["kafka-share-groups", "--bootstrap-server", bootstrap]
    topic, group = topic_name(), topic_name("-g")
    create_topic(bootstrap, topic, 1)
    env = dict(os.environ, KAFKA_TOOLS_JVM_OPTS=" ".join(JVM_OPTS))
    consumer = subprocess.Popen(
        [str(KAFKA_TOOLS), "kafka-console-share-consumer", "--bootstrap-server", bootstrap, "--topic", topic,
         "--group", group, "--timeout-ms", "60000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.strip() for line in consumer.stdout), daemon=True)
    reader.start()
    probes = itertools.count()

    def produce(*values: str) -> None:
        run_tool("kafka-console-producer", "--bootstrap-server", bootstrap, "--topic", topic,
                 input="".join(v + "\n" for v in values))

    try:
        def assigned():
            out = run_tool(*tool, "--describe", "--group", group, "--members", check=False).stdout
            rows = [r for r in table(out) if r.get("GROUP") == group] if "CONSUMER-ID" in out else []
            return len(rows) == 1 and rows[0]["ASSIGNMENT"] == f"{topic}:0"
        wait_until(assigned, "the console share consumer to be assigned the topic's partition", timeout=60)

        def reading():
            if any(line.startswith("probe-") for line in lines):
                return True
            produce(f"probe-{next(probes)}")
            return False
        wait_until(reading, "the console share consumer to print a probe record", timeout=60, interval=0.2)
        values = [f"share-{i}" for i in range(30)]
        produce(*values)
        wait_until(lambda: set(values) <= set(lines), "the console share consumer to print the 30 records",
                   timeout=60)
        # SIGTERM: the consumer acknowledges what it printed, closes, and prints its count.
        consumer.terminate()
        _, err = consumer.communicate(timeout=60)
    finally:
        consumer.kill()
    reader.join(timeout=10)
    assert sorted(line for line in lines if not line.startswith("probe-")) == sorted(values), (lines, err[-2000:])
    assert len(lines) == len(set(lines)), lines
    assert f"Processed a total of {len(lines)} messages" in err, err[-2000:]

    def no_lag():
        offsets = table(run_tool(*tool, "--describe", "--group", group).stdout)
        return [r["LAG"] for r in offsets] == ["0"] and offsets
    wait_until(no_lag, "kafka-share-groups --describe to show no lag", timeout=30)


def _empty_share_group(bootstrap: str, group: str, topic: str, partitions: int) -> None:
    """A share group whose share-partitions of `topic` are initialized, then left empty: a
    member joins (raw ShareGroupHeartbeat), is assigned every partition, and leaves."""
    member = "compat-offsets-member"
    join_until_assigned(bootstrap, group, member, topic, partitions)
    error, _, _ = heartbeat(bootstrap, group, member, -1, None)
    assert error == 0, error


def _start_offsets(out: str, topic: str) -> dict[int, str]:
    """{partition: START-OFFSET (or NEW-OFFSET)} of `topic` in a kafka-share-groups table."""
    out = out.replace("NEW-OFFSET", "START-OFFSET")
    return {int(r["PARTITION"]): r["START-OFFSET"] for r in table(out) if r.get("TOPIC") == topic}


# The long form (SHARE_OFFSETS_LONG=1, `make share-offsets-long`) also runs every other reset
# specification and the refusals; each run of a tool starts a JVM, so the short form keeps few.
LONG = bool(os.environ.get("SHARE_OFFSETS_LONG"))


def test_share_groups_reset_and_delete_offsets(bootstrap, topic_name):
    """kafka-share-groups on an empty share group: --reset-offsets (AlterShareGroupOffsets)
    --dry-run plans, --execute sets the share-partition's start offset (--to-offset; the long
    form also --to-earliest, --to-latest, --to-datetime, --to-current and an offset past the
    end, which the tool brings back to the end), as --describe then shows with the lag;
    --delete-offsets (DeleteShareGroupOffsets) forgets it; a reset sets it again and
    kafka-console-share-consumer reads from there."""
    tool = ["kafka-share-groups", "--bootstrap-server", bootstrap]
    topic, group = topic_name(), topic_name("-g")
    create_topic(bootstrap, topic, 1)
    run_tool("kafka-console-producer", "--bootstrap-server", bootstrap, "--topic", topic,
             input="".join(f"r-{i}\n" for i in range(10)))
    _empty_share_group(bootstrap, group, topic, 1)
    reset = [*tool, "--reset-offsets", "--group", group, "--topic", topic]

    out = run_tool(*reset, "--to-offset", "3", "--dry-run").stdout
    assert _start_offsets(out, topic) == {0: "3"}, out
    specs = [(["--to-offset", "4"], "4")]
    if LONG:
        described = run_tool(*tool, "--describe", "--group", group).stdout
        assert _start_offsets(described, topic) == {0: "-"}, described
        specs = [(["--to-offset", "12"], "10"), (["--to-earliest"], "0"), (["--to-latest"], "10"),
                 (["--to-datetime", "2000-01-01T00:00:00.000"], "0"), (["--to-current"], "0"), *specs]
    for spec, expected in specs:
        out = run_tool(*reset, *spec, "--execute").stdout
        assert _start_offsets(out, topic) == {0: expected}, (spec, out)
    described = table(run_tool(*tool, "--describe", "--group", group).stdout)
    assert [(r["TOPIC"], r["PARTITION"], r["START-OFFSET"], r["LAG"]) for r in described] == \
        [(topic, "0", "4", "6")], described

    out = run_tool(*tool, "--delete-offsets", "--group", group, "--topic", topic).stdout
    assert table(out) == [{"TOPIC": topic, "STATUS": "Successful"}], out
    described = run_tool(*tool, "--describe", "--group", group).stdout
    assert f"Share group '{group}' has no offset information." in described, described
    if LONG:
        out = run_tool(*tool, "--delete-offsets", "--group", group, "--topic", topic).stdout
        assert table(out) == [{"TOPIC": topic, "STATUS": "Error:"}], out
        assert "There is no offset information to delete." in out, out

    run_tool(*reset, "--to-offset", "7", "--execute")
    read = run_tool("kafka-console-share-consumer", "--bootstrap-server", bootstrap, "--topic", topic,
                    "--group", group, "--max-messages", "3", "--timeout-ms", "30000")
    assert read.stdout.split() == ["r-7", "r-8", "r-9"], (read.stdout, read.stderr[-2000:])
