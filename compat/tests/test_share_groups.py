"""Share groups (KIP-932) with Kafka 4.4's tools, the same tests against samsa and against
Kafka (`compat/run.sh --against-kafka`): kafka-share-groups --list, --describe (--state,
--members, the offsets view) and --delete on a group whose member is made with raw
ShareGroupHeartbeat requests (so the group side is tested on its own), and
kafka-console-share-consumer reading as a member of a share group."""

from __future__ import annotations

import os
import socket
import struct
import subprocess

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


def table(out: str) -> list[dict]:
    """The rows of a kafka-share-groups table, by column name."""
    lines = [l for l in out.splitlines() if l.strip()]
    header = lines[0].split()
    return [dict(zip(header, l.split())) for l in lines[1:]]


def test_share_groups_tool(bootstrap, topic_name):
    tool = ["kafka-share-groups", "--bootstrap-server", bootstrap]
    run_tool("kafka-features", "--bootstrap-server", bootstrap, "upgrade", "--feature", "share.version=2")
    topic, group = topic_name(), topic_name("-g")
    create_topic(bootstrap, topic, 2)
    member = "compat-member-1"
    error, epoch, _ = heartbeat(bootstrap, group, member, 0, [topic])
    assert error == 0, error

    def assigned():
        nonlocal epoch
        error, epoch, count = heartbeat(bootstrap, group, member, epoch, None)
        assert error == 0, error
        return count == 2
    wait_until(assigned, "the member to be assigned both partitions")

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
    topic, and reads the records produced after it joined (share.auto.offset.reset is
    latest); kafka-share-groups then shows it as the member and no lag left."""
    tool = ["kafka-share-groups", "--bootstrap-server", bootstrap]
    run_tool("kafka-features", "--bootstrap-server", bootstrap, "upgrade", "--feature", "share.version=2")
    topic, group = topic_name(), topic_name("-g")
    create_topic(bootstrap, topic, 3)
    env = dict(os.environ, KAFKA_TOOLS_JVM_OPTS=" ".join(JVM_OPTS))
    consumer = subprocess.Popen(
        [str(KAFKA_TOOLS), "kafka-console-share-consumer", "--bootstrap-server", bootstrap, "--topic", topic,
         "--group", group, "--max-messages", "30", "--timeout-ms", "60000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        def assigned():
            out = run_tool(*tool, "--describe", "--group", group, "--members", check=False).stdout
            rows = [r for r in table(out) if r.get("GROUP") == group] if "CONSUMER-ID" in out else []
            return len(rows) == 1 and rows[0]["ASSIGNMENT"] == f"{topic}:0,1,2"
        wait_until(assigned, "the console share consumer to be assigned the topic's partitions", timeout=60)
        values = [f"share-{i}" for i in range(30)]
        run_tool("kafka-console-producer", "--bootstrap-server", bootstrap, "--topic", topic,
                 input="".join(v + "\n" for v in values))
        out, err = consumer.communicate(timeout=90)
    finally:
        consumer.kill()
    assert sorted(out.split()) == sorted(values), (out[-2000:], err[-2000:])
    assert "Processed a total of 30 messages" in err, err[-2000:]
    offsets = table(run_tool(*tool, "--describe", "--group", group).stdout)
    assert all(r["LAG"] in ("0", "-") for r in offsets), offsets
    assert any(r["LAG"] == "0" for r in offsets), offsets
