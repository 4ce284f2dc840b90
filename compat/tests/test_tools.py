"""Kafka's own command-line tools (the kafka-tools jar of the compat/reference
release, run as bin/kafka-*.sh would run them) against the broker: topics,
console producer and consumer, configs, and, gated on what the broker
advertises, consumer groups, the default (idempotent) producer and config
changes. Each test asserts what the tools print."""

from __future__ import annotations

import re
import pytest

from clients import wait_until
from gates import BrokerLacksApi, gate
from jvm import JavaError, lacks_api, run_tool

# The console producer's line format: headers|key:value, "<NULL>" for a null key.
READER = ["--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
          "--reader-property", "parse.headers=true", "--reader-property", "headers.delimiter=|",
          "--reader-property", "headers.separator=,", "--reader-property", "headers.key.separator==",
          "--reader-property", "null.marker=<NULL>"]
# The console consumer's: Partition:P<TAB>Offset:O<TAB>h:v,h:v<TAB>key<TAB>value.
FORMATTER = ["--formatter-property", "print.key=true", "--formatter-property", "print.headers=true",
             "--formatter-property", "print.partition=true", "--formatter-property", "print.offset=true"]
NO_IDEMPOTENCE = ["--command-property", "enable.idempotence=false"]


def lines_in(n: int, tag: str) -> list[tuple]:
    """(headers, key, value) the console producer is fed; every seventh key null."""
    return [((("src", "console"), ("n", str(i))), None if i % 7 == 3 else f"key-{i % 5}", f"{tag} value {i} ü€")
            for i in range(n)]


def producer_input(records: list[tuple]) -> str:
    return "".join(",".join(f"{k}={v}" for k, v in h) + "|" + ("<NULL>" if key is None else key) + ":" + value + "\n"
                   for h, key, value in records)


def parse_consumed(stdout: str) -> list[tuple]:
    """[(partition, offset, headers, key, value)] from the console consumer's output."""
    out = []
    for line in stdout.splitlines():
        if not line.startswith("Partition:"):
            continue  # the tool's log4j errors also go to stdout; the caller checks the count
        m = re.fullmatch(r"Partition:(\d+)\tOffset:(\d+)\t([^\t]*)\t([^\t]*)\t(.*)", line)
        assert m, f"unexpected console consumer line {line!r}"
        hdrs = () if m[3] == "NO_HEADERS" else tuple(tuple(h.split(":", 1)) for h in m[3].split(","))
        out.append((int(m[1]), int(m[2]), hdrs, None if m[4] == "null" else m[4], m[5]))
    return out


def create_topic(bootstrap: str, topic: str, partitions: int, *extra: str) -> None:
    out = run_tool("kafka-topics", "--bootstrap-server", bootstrap, "--create", "--topic", topic,
                   "--partitions", str(partitions), "--replication-factor", "1", *extra).stdout
    # (Before it, a warning about '.' and '_' in names, which topic_name's test names have.)
    assert out.strip().splitlines()[-1] == f"Created topic {topic}.", out


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """kafka-get-offsets (GetOffsetShell): {partition: end offset}."""
    out = run_tool("kafka-get-offsets", "--bootstrap-server", bootstrap, "--topic", topic).stdout
    got = {}
    for line in out.splitlines():
        t, p, o = line.rsplit(":", 2)
        assert t == topic, line
        got[int(p)] = int(o)
    return got


def console_consume(bootstrap: str, topic: str, count: int, *where: str) -> list[tuple]:
    """The console consumer's records; it exits 0 even when it failed, so a short
    read is checked here (BrokerLacksApi when it says the broker lacks an API)."""
    proc = run_tool("kafka-console-consumer", "--bootstrap-server", bootstrap, "--topic", topic, *where,
                    "--max-messages", str(count), "--timeout-ms", "30000", *FORMATTER)
    got = parse_consumed(proc.stdout)
    if len(got) != count or f"Processed a total of {count} messages" not in proc.stderr:
        what = f"console consumer read {len(got)} of {count}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        raise (BrokerLacksApi if lacks_api(proc.stdout + proc.stderr) else JavaError)(what)
    return got


def describe_topic(bootstrap: str, topic: str) -> tuple[dict, list[dict]]:
    """kafka-topics --describe: (the topic line's fields, one dict per partition line)."""
    out = run_tool("kafka-topics", "--bootstrap-server", bootstrap, "--describe", "--topic", topic).stdout
    # Fields are "Name: value", tab-separated; a trailing empty one ("LastKnownElr: ") loses its space to strip().
    rows = [{k: v.strip() for k, v in (f.split(":", 1) for f in line.strip().split("\t"))}
            for line in out.splitlines() if line.strip()]
    assert rows and rows[0]["Topic"] == topic and "PartitionCount" in rows[0], out
    return rows[0], rows[1:]


def test_tools_topics(bootstrap, topic_name):
    """kafka-topics --create/--list/--describe/--alter/--delete."""
    topic = topic_name()
    create_topic(bootstrap, topic, 3, "--config", "retention.ms=3600000")
    listed = run_tool("kafka-topics", "--bootstrap-server", bootstrap, "--list").stdout.split()
    assert topic in listed, listed
    head, parts = describe_topic(bootstrap, topic)
    assert (head["PartitionCount"], head["ReplicationFactor"]) == ("3", "1"), head
    assert "retention.ms=3600000" in head["Configs"].split(","), head
    assert head["TopicId"] and head["TopicId"] != "AAAAAAAAAAAAAAAAAAAAAA", head
    leader = parts[0]["Leader"]
    assert [(p["Partition"], p["Leader"], p["Replicas"], p["Isr"]) for p in parts] == \
        [(str(i), leader, leader, leader) for i in range(3)], parts

    run_tool("kafka-topics", "--bootstrap-server", bootstrap, "--alter", "--topic", topic, "--partitions", "5")
    assert describe_topic(bootstrap, topic)[0]["PartitionCount"] == "5"

    run_tool("kafka-topics", "--bootstrap-server", bootstrap, "--delete", "--topic", topic)
    wait_until(lambda: topic not in run_tool("kafka-topics", "--bootstrap-server", bootstrap, "--list").stdout.split(),
               f"{topic} to leave kafka-topics --list")


def test_tools_console_roundtrip(bootstrap, topic_name):
    """kafka-console-producer (keys, headers, null keys, lz4) and
    kafka-console-consumer per partition (--partition --offset: no group)."""
    topic = topic_name()
    create_topic(bootstrap, topic, 2)
    sent = lines_in(40, "console")
    run_tool("kafka-console-producer", "--bootstrap-server", bootstrap, "--topic", topic,
             "--compression-codec", "lz4", *READER, *NO_IDEMPOTENCE, input=producer_input(sent))
    ends = end_offsets(bootstrap, topic)
    assert sum(ends.values()) == len(sent) and set(ends) == {0, 1}, ends

    got = []
    for p, end in ends.items():
        if end:
            got += console_consume(bootstrap, topic, end, "--partition", str(p), "--offset", "earliest")
    for p in ends:
        assert [o for q, o, *_ in got if q == p] == list(range(ends[p])), f"partition {p} offsets"
    assert sorted((h, k, v) for _, _, h, k, v in got) == sorted(sent)
    key_partitions = {}
    for p, _, _, k, _ in got:
        if k is not None:
            assert key_partitions.setdefault(k, p) == p, f"key {k} in partitions {key_partitions[k]} and {p}"

    # From an explicit offset.
    p = max(ends, key=ends.get)
    tail = console_consume(bootstrap, topic, ends[p] - 2, "--partition", str(p), "--offset", "2")
    assert tail == [r for r in got if r[0] == p and r[1] >= 2]


def test_tools_console_producer_defaults(request, bootstrap, topic_name):
    """kafka-console-producer as shipped: idempotence on by default."""
    gate(request, bootstrap, "idempotence")
    topic = topic_name()
    create_topic(bootstrap, topic, 1)
    sent = lines_in(10, "defaults")
    run_tool("kafka-console-producer", "--bootstrap-server", bootstrap, "--topic", topic, *READER,
             input=producer_input(sent))
    got = console_consume(bootstrap, topic, len(sent), "--partition", "0", "--offset", "earliest")
    assert [(h, k, v) for _, _, h, k, v in got] == sent


def test_tools_configs_describe(bootstrap, topic_name):
    """kafka-configs --describe of a topic (its override) and of the broker (--all)."""
    topic = topic_name()
    create_topic(bootstrap, topic, 1, "--config", "retention.ms=3600000")
    out = run_tool("kafka-configs", "--bootstrap-server", bootstrap, "--describe",
                   "--entity-type", "topics", "--entity-name", topic).stdout
    assert out.splitlines()[0] == f"Dynamic configs for topic {topic} are:", out
    assert "  retention.ms=3600000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=3600000" in out, out

    broker = describe_topic(bootstrap, topic)[1][0]["Leader"]
    out = run_tool("kafka-configs", "--bootstrap-server", bootstrap, "--describe", "--all",
                   "--entity-type", "brokers", "--entity-name", broker).stdout
    assert out.splitlines()[0] == f"All configs for broker {broker} are:", out
    assert re.search(r"^  num\.partitions=\d+ sensitive=false synonyms=\{", out, re.M), out


def test_tools_configs_alter(request, bootstrap, topic_name):
    """kafka-configs --alter --add-config / --delete-config (IncrementalAlterConfigs)."""
    gate(request, bootstrap, "incremental-alter-configs")
    topic = topic_name()
    create_topic(bootstrap, topic, 1)
    describe = ["--bootstrap-server", bootstrap, "--entity-type", "topics", "--entity-name", topic]
    run_tool("kafka-configs", *describe, "--alter", "--add-config", "retention.ms=7200000")
    wait_until(lambda: "retention.ms=7200000" in run_tool("kafka-configs", *describe, "--describe").stdout,
               "retention.ms=7200000 in kafka-configs --describe")
    run_tool("kafka-configs", *describe, "--alter", "--delete-config", "retention.ms")
    wait_until(lambda: "retention.ms" not in run_tool("kafka-configs", *describe, "--describe").stdout,
               "retention.ms gone from kafka-configs --describe")


def group_rows(bootstrap: str, group: str) -> list[dict]:
    """kafka-consumer-groups --describe: one dict per partition row."""
    out = run_tool("kafka-consumer-groups", "--bootstrap-server", bootstrap, "--describe", "--group", group).stdout
    lines = [line.split() for line in out.splitlines() if line.strip()]
    header = next(i for i, cols in enumerate(lines) if cols[:2] == ["GROUP", "TOPIC"])
    return [dict(zip(lines[header], cols)) for cols in lines[header + 1:]]


def test_tools_consumer_groups(request, bootstrap, topic_name):
    """kafka-console-consumer --group, then kafka-consumer-groups --list,
    --describe, --reset-offsets, --delete-offsets and --delete."""
    gate(request, bootstrap, "groups")
    topic, group = topic_name(), topic_name("-g")
    create_topic(bootstrap, topic, 2)
    sent = lines_in(20, "group")
    run_tool("kafka-console-producer", "--bootstrap-server", bootstrap, "--topic", topic, *READER,
             *NO_IDEMPOTENCE, input=producer_input(sent))
    got = console_consume(bootstrap, topic, len(sent), "--group", group, "--from-beginning")
    assert sorted((h, k, v) for _, _, h, k, v in got) == sorted(sent)
    ends = end_offsets(bootstrap, topic)

    groups = ["--bootstrap-server", bootstrap]
    assert group in run_tool("kafka-consumer-groups", *groups, "--list").stdout.split()
    rows = group_rows(bootstrap, group)
    assert {(int(r["PARTITION"]), r["CURRENT-OFFSET"], r["LAG"]) for r in rows if r["TOPIC"] == topic} == \
        {(p, str(end), "0") for p, end in ends.items()}, rows

    run_tool("kafka-consumer-groups", *groups, "--group", group, "--topic", topic,
             "--reset-offsets", "--to-earliest", "--execute")
    rows = group_rows(bootstrap, group)
    assert {(int(r["PARTITION"]), r["CURRENT-OFFSET"], r["LAG"]) for r in rows} == \
        {(p, "0", str(end)) for p, end in ends.items()}, rows

    run_tool("kafka-consumer-groups", *groups, "--group", group, "--topic", f"{topic}:0", "--delete-offsets")
    rows = group_rows(bootstrap, group)
    assert {int(r["PARTITION"]) for r in rows if r["CURRENT-OFFSET"] != "-"} == {1}, rows

    run_tool("kafka-consumer-groups", *groups, "--group", group, "--delete")
    wait_until(lambda: group not in run_tool("kafka-consumer-groups", *groups, "--list").stdout.split(),
               f"{group} to leave kafka-consumer-groups --list")
