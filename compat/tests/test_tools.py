"""Kafka's own command-line tools (the kafka-tools jar of the compat/reference
release, run as bin/kafka-*.sh would run them) against the broker: topics,
console producer and consumer, configs, and, gated on what the broker
advertises, consumer groups, the default (idempotent) producer and config
changes; kafka-transactions on an open, then committed, transaction. Each test
asserts what the tools print."""

from __future__ import annotations

import re
import time

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
    # Described through DescribeTopicPartitions, as Kafka 4.4 is: the eligible leader
    # replicas are listed (empty while the ISR is whole), not "N/A" as from Metadata.
    assert [(p["Elr"], p["LastKnownElr"]) for p in parts] == [("", "")] * 3, parts

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


def test_tools_configs_group(bootstrap, topic_name):
    """kafka-configs --entity-type groups: a group's override set, described (with the
    broker's default as its synonym, as Kafka prints it) and deleted. (The values Kafka
    refuses and its words for them are compared by the differential suite.)"""
    group = topic_name() + "-g"
    configs = ["--bootstrap-server", bootstrap, "--entity-type", "groups", "--entity-name", group]
    out = run_tool("kafka-configs", *configs, "--alter", "--add-config", "share.auto.offset.reset=earliest").stdout
    assert out.strip() == f"Completed updating config for group {group}.", out
    expected = [f"Dynamic configs for group {group} are:",
                "  share.auto.offset.reset=earliest sensitive=false synonyms={DYNAMIC_GROUP_CONFIG:"
                "share.auto.offset.reset=earliest, DEFAULT_CONFIG:share.auto.offset.reset=latest}"]
    wait_until(lambda: run_tool("kafka-configs", *configs, "--describe").stdout.splitlines() == expected,
               "the override in kafka-configs --describe")
    run_tool("kafka-configs", *configs, "--alter", "--delete-config", "share.auto.offset.reset")
    wait_until(lambda: "share.auto.offset.reset" not in run_tool("kafka-configs", *configs, "--describe").stdout,
               "the override gone from kafka-configs --describe")


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

    run_tool("kafka-consumer-groups", *groups, "--group", group, "--topic", topic,
             "--reset-offsets", "--to-latest", "--execute")
    rows = group_rows(bootstrap, group)
    assert {(int(r["PARTITION"]), r["CURRENT-OFFSET"], r["LAG"]) for r in rows} == \
        {(p, str(end), "0") for p, end in ends.items()}, rows

    # Every record was written just now: an hour ago is before all of them.
    an_hour_ago = time.strftime("%Y-%m-%dT%H:%M:%S.000", time.gmtime(time.time() - 3600))
    out = run_tool("kafka-consumer-groups", *groups, "--group", group, "--topic", topic,
                   "--reset-offsets", "--to-datetime", an_hour_ago + "Z", "--execute").stdout
    assert re.search(rf"^{re.escape(group)}\s+{re.escape(topic)}\s+0\s+0\s*$", out, re.M), out
    rows = group_rows(bootstrap, group)
    assert {(int(r["PARTITION"]), r["CURRENT-OFFSET"]) for r in rows} == {(p, "0") for p in ends}, rows

    run_tool("kafka-consumer-groups", *groups, "--group", group, "--topic", f"{topic}:0", "--delete-offsets")
    rows = group_rows(bootstrap, group)
    assert {int(r["PARTITION"]) for r in rows if r["CURRENT-OFFSET"] != "-"} == {1}, rows

    run_tool("kafka-consumer-groups", *groups, "--group", group, "--delete")
    wait_until(lambda: group not in run_tool("kafka-consumer-groups", *groups, "--list").stdout.split(),
               f"{group} to leave kafka-consumer-groups --list")


def test_tools_console_property_spellings(request, bootstrap, topic_name):
    """The console tools as their docs show them: --property parse.key/parse.headers
    on the producer; --from-beginning --group --max-messages --property print.headers
    on the consumer, where a second run of the group reads on from its committed offsets."""
    gate(request, bootstrap, "groups")
    topic, group = topic_name(), topic_name("-g")
    create_topic(bootstrap, topic, 1)
    lines = "".join(f"trace:t{i},n:{i}\tk{i}\tv{i}\n" for i in range(12))
    run_tool("kafka-console-producer", "--bootstrap-server", bootstrap, "--topic", topic,
             "--property", "parse.key=true", "--property", "parse.headers=true", *NO_IDEMPOTENCE,
             input=lines)

    def read(n: int) -> list[str]:
        proc = run_tool("kafka-console-consumer", "--bootstrap-server", bootstrap, "--topic", topic,
                        "--group", group, "--from-beginning", "--max-messages", str(n), "--timeout-ms", "30000",
                        "--property", "print.key=true", "--property", "print.headers=true")
        assert f"Processed a total of {n} messages" in proc.stderr, proc.stderr[-3000:]
        return [line for line in proc.stdout.splitlines() if line.startswith("trace:")]

    want = [f"trace:t{i},n:{i}\tk{i}\tv{i}" for i in range(12)]
    assert read(5) == want[:5]
    # --from-beginning only applies to a group without committed offsets: this run goes on at 5.
    assert read(7) == want[5:]
    rows = group_rows(bootstrap, group)
    assert [(r["PARTITION"], r["CURRENT-OFFSET"], r["LOG-END-OFFSET"], r["LAG"]) for r in rows] == \
        [("0", "12", "12", "0")], rows


def test_tools_broker_api_versions(bootstrap):
    """kafka-broker-api-versions lists what the broker advertises in ApiVersions."""
    from gates import advertised
    # Asked afresh: the tool sees the broker as it is now, whatever an earlier test cached.
    advertised.cache_clear()
    out = run_tool("kafka-broker-api-versions", "--bootstrap-server", bootstrap).stdout
    assert re.search(rf"^{re.escape(bootstrap)} \(id: \d+ rack: null isFenced: false\) -> \($", out, re.M), out
    usable = {int(m[1]) for m in re.finditer(r"^\t\w+\((\d+)\): \d+( to \d+)? \[usable: \d+\],?$", out, re.M)}
    for name, key in (("Produce", 0), ("Fetch", 1), ("ListOffsets", 2), ("Metadata", 3), ("ApiVersions", 18)):
        assert re.search(rf"^\t{name}\({key}\): \d+ to \d+ \[usable: \d+\]", out, re.M), (name, out)
    # Every API the tool also knows is usable exactly when the broker advertises it.
    known = {int(m[1]) for m in re.finditer(r"^\t\w+\((\d+)\): ", out, re.M)}
    assert usable == advertised(bootstrap) & known, out


def test_tools_perf_tests(bootstrap, topic_name):
    """kafka-producer-perf-test and kafka-consumer-perf-test with a tiny count."""
    topic = topic_name()
    create_topic(bootstrap, topic, 2)
    n = 200
    out = run_tool("kafka-producer-perf-test", "--topic", topic, "--num-records", str(n), "--record-size", "100",
                   "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}",
                   "enable.idempotence=false", "acks=1").stdout
    assert re.search(rf"^{n} records sent, [\d.]+ records/sec .* ms avg latency", out, re.M), out
    assert sum(end_offsets(bootstrap, topic).values()) == n
    out = run_tool("kafka-consumer-perf-test", "--bootstrap-server", bootstrap, "--topic", topic,
                   "--messages", str(n), "--timeout", "60000").stdout
    lines = out.strip().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("start.time,"))
    row = dict(zip([c.strip() for c in lines[header].split(",")], [c.strip() for c in lines[header + 1].split(",")]))
    assert int(row["data.consumed.in.nMsg"]) == n, out


def test_tools_delete_records(request, bootstrap, topic_name, tmp_path):
    """kafka-delete-records moves a partition's log start; kafka-get-offsets --time -2 shows it."""
    gate(request, bootstrap, "delete-records")
    topic = topic_name()
    create_topic(bootstrap, topic, 1)
    run_tool("kafka-console-producer", "--bootstrap-server", bootstrap, "--topic", topic, *NO_IDEMPOTENCE, input="".join(f"r{i}\n" for i in range(10)))
    spec = tmp_path / "delete.json"
    spec.write_text('{"version": 1, "partitions": [{"topic": "%s", "partition": 0, "offset": 4}]}' % topic)
    out = run_tool("kafka-delete-records", "--bootstrap-server", bootstrap, "--offset-json-file", str(spec)).stdout
    if lacks_api(out):  # it reports a per-partition error and still exits 0
        raise BrokerLacksApi(out)
    assert f"partition: {topic}-0\tlow_watermark: 4" in out, out
    out = run_tool("kafka-get-offsets", "--bootstrap-server", bootstrap, "--topic", topic, "--time", "-2").stdout
    assert out.split() == [f"{topic}:0:4"], out
    got = console_consume(bootstrap, topic, 6, "--partition", "0", "--offset", "earliest")
    assert [(o, v) for _, o, _, _, v in got] == [(i, f"r{i}") for i in range(4, 10)]


def test_tools_acls(acl_broker, topic_name):
    """kafka-acls --add, --list and --remove against a broker with an authorizer."""
    topic = topic_name()
    acls = ["--bootstrap-server", acl_broker]
    out = run_tool("kafka-acls", *acls, "--add", "--allow-principal", "User:alice",
                   "--operation", "Read", "--operation", "Describe", "--topic", topic).stdout
    assert f"Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name={topic}, patternType=LITERAL)`" in out, out
    listed = run_tool("kafka-acls", *acls, "--list", "--topic", topic).stdout
    for op in ("READ", "DESCRIBE"):
        assert f"(principal=User:alice, host=*, operation={op}, permissionType=ALLOW)" in listed, listed
    run_tool("kafka-acls", *acls, "--remove", "--allow-principal", "User:alice", "--operation", "Read",
             "--topic", topic, "--force")
    listed = run_tool("kafka-acls", *acls, "--list", "--topic", topic).stdout
    assert "operation=DESCRIBE, permissionType=ALLOW" in listed and "operation=READ" not in listed, listed


def test_tools_acls_without_authorizer(bootstrap):
    """kafka-acls on a broker without an authorizer: Kafka's own SecurityDisabledException."""
    proc = run_tool("kafka-acls", "--bootstrap-server", bootstrap, "--list", check=False)
    assert "SecurityDisabledException: No Authorizer is configured." in proc.stdout + proc.stderr, \
        proc.stdout[-2000:] + proc.stderr[-2000:]


def tool_table(stdout: str) -> list[dict]:
    """The rows of a kafka-transactions table: a header line, then tab-separated rows."""
    lines = [l for l in stdout.splitlines() if l.strip()]
    header = lines[0].split()
    return [dict(zip(header, l.split())) for l in lines[1:]]


def test_tools_transactions(bootstrap, topic_name):
    """kafka-transactions lists, describes and shows the producers of a transaction
    confluent-kafka holds open, then sees it committed."""
    from test_transactions import init_transactions, txn_producer
    topic, txn_id = topic_name(), topic_name("-txn")
    create_topic(bootstrap, topic, 1)
    producer = txn_producer(bootstrap, txn_id)
    init_transactions(producer)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, key=b"k", value=f"v{i}".encode(), partition=0)
    assert producer.flush(30) == 0
    tool = ["kafka-transactions", "--bootstrap-server", bootstrap]

    listed = [r for r in tool_table(run_tool(*tool, "list").stdout) if r["TransactionalId"] == txn_id]
    assert [r["TransactionState"] for r in listed] == ["Ongoing"], listed
    described = tool_table(run_tool(*tool, "describe", "--transactional-id", txn_id).stdout)
    assert [(r["TransactionState"], r["TopicPartitions"]) for r in described] == [("Ongoing", f"{topic}-0")]
    producer_id = described[0]["ProducerId"]
    producers = tool_table(run_tool(*tool, "describe-producers", "--topic", topic, "--partition", "0").stdout)
    assert [(p["ProducerId"], p["LastSequence"], p["CurrentTransactionStartOffset"]) for p in producers] \
        == [(producer_id, "2", "0")], producers

    producer.commit_transaction(30)
    wait_until(lambda: tool_table(run_tool(*tool, "describe", "--transactional-id", txn_id).stdout)[0]
               ["TransactionState"] == "CompleteCommit", "the transaction to be shown committed")
    producers = tool_table(run_tool(*tool, "describe-producers", "--topic", topic, "--partition", "0").stdout)
    assert [(p["ProducerId"], p["CurrentTransactionStartOffset"]) for p in producers] == [(producer_id, "None")], producers


def quorum_replication(bootstrap: str) -> list[dict]:
    """kafka-metadata-quorum describe --replication: one dict per voter or observer row."""
    out = run_tool("kafka-metadata-quorum", "--bootstrap-server", bootstrap, "describe", "--replication").stdout
    lines = [line.split("\t") for line in out.splitlines() if line.strip()]
    header = [h.strip() for h in lines[0]]
    return [dict(zip(header, (v.strip() for v in row))) for row in lines[1:]]


def test_tools_metadata_quorum(bootstrap):
    """kafka-metadata-quorum describe --status and --replication: one voter, the leader."""
    out = run_tool("kafka-metadata-quorum", "--bootstrap-server", bootstrap, "describe", "--status").stdout
    status = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    status = {k.strip(): v.strip() for k, v in status.items()}
    assert int(status["HighWatermark"]) > 0 and int(status["LeaderEpoch"]) > 0, out
    assert (status["MaxFollowerLag"], status["CurrentObservers"]) == ("0", "[]"), out
    [voter] = quorum_replication(bootstrap)
    assert (voter["NodeId"], voter["Status"]) == (status["LeaderId"], "Leader"), voter
    assert int(voter["LogEndOffset"]) >= int(status["HighWatermark"]) and voter["Lag"] == "0", voter


KAFKA_44_FEATURES = {"metadata.version", "kraft.version", "transaction.version", "group.version",
                     "eligible.leader.replicas.version", "share.version", "streams.version"}


def describe_features(bootstrap):
    """kafka-features describe: {feature: {column: value}}."""
    out = run_tool("kafka-features", "--bootstrap-server", bootstrap, "describe").stdout
    rows = [dict(re.findall(r"(\w+): (\S+)", line)) for line in out.splitlines() if line.startswith("Feature:")]
    return {row["Feature"]: row for row in rows}


def test_tools_features(bootstrap):
    """kafka-features lists Kafka 4.4's features with every finalized level inside its supported
    range, and refuses what Kafka refuses, in Kafka's words (KIP-584)."""
    rows = describe_features(bootstrap)
    assert set(rows) == KAFKA_44_FEATURES, rows
    mv = rows["metadata.version"]
    assert (mv["SupportedMinVersion"], mv["SupportedMaxVersion"], mv["FinalizedVersionLevel"]) == \
        ("3.3-IV3", "4.4-IV2", "4.4-IV2"), mv
    for name, row in rows.items():
        if name != "metadata.version":
            level = int(row["FinalizedVersionLevel"])
            assert int(row["SupportedMinVersion"]) <= level <= int(row["SupportedMaxVersion"]), row
    tool = ["kafka-features", "--bootstrap-server", bootstrap]
    down = run_tool(*tool, "downgrade", "--metadata", "4.3", check=False)
    assert down.returncode != 0 and "Unsupported metadata.version downgrade from 33 to" in down.stdout, down
    unknown = run_tool(*tool, "upgrade", "--feature", "no.such.version=1", check=False)
    assert unknown.returncode != 0 and "does not support this feature." in unknown.stdout, unknown
    dry = run_tool(*tool, "disable", "--feature", "streams.version", "--dry-run")
    assert "streams.version can be disabled." in dry.stdout, dry
