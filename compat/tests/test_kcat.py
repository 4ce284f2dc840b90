"""kcat from Debian (librdkafka 2.0: an older client that parses strictly):
metadata, keyed produce with headers, and consuming from beginning, an
absolute offset, a relative offset, a timestamp and the end."""

import subprocess
import time

import pytest

from clients import (WAIT_S, Rec, ck_create_topic, ck_produce, kcat, kcat_bin, kcat_consume,
                     kcat_json_records, kcat_metadata, kcat_produce_lines, wait_until)

LINES = [b"k1:v1", b"k2:hello world, with spaces", b":empty key", b"k4:", b"no key at all",
         b"k6:v6", b"k7:v7"]
HEADERS = (("a", "1"), ("trace", "abc-123"), ("empty", ""))


def expected_from_lines(lines, headers, partition=0, first_offset=0):
    out = []
    for i, line in enumerate(lines):
        key, sep, value = line.partition(b":")
        if not sep:  # no delimiter: the whole line is the value, the key is null
            key, value = None, line
        out.append(Rec(partition, first_offset + i, key, value,
                       tuple((k, v.encode()) for k, v in headers), None))
    return out


def strip_ts(recs):
    return [r._replace(timestamp=None) for r in recs]


@pytest.fixture
def filled_topic(bootstrap, topic_name):
    """One partition holding LINES (written by kcat -P -K: -H ...)."""
    topic = topic_name()
    ck_create_topic(bootstrap, topic, 1)
    t0 = int(time.time() * 1000)
    kcat_produce_lines(bootstrap, topic, LINES, partition=0, headers=HEADERS)
    t1 = int(time.time() * 1000)
    return topic, (t0 - 1000, t1 + 1000)


def test_metadata_list(bootstrap, topic_name):
    topic = topic_name()
    ck_create_topic(bootstrap, topic, 3)

    md = kcat_metadata(bootstrap)
    brokers = {b["id"]: b["name"] for b in md["brokers"]}
    assert brokers, f"no brokers in metadata: {md}"
    for name in brokers.values():
        host, _, port = name.rpartition(":")
        assert host and port.isdigit(), f"broker name {name!r} is not host:port"
    assert md["originating_broker"]["id"] in brokers
    assert md.get("controllerid") in brokers, f"controller {md.get('controllerid')} not among {brokers}"
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics, f"{topic} missing from all-topics metadata: {sorted(topics)}"

    def check(t):
        assert "error" not in t, t
        parts = sorted(t["partitions"], key=lambda p: p["partition"])
        assert [p["partition"] for p in parts] == [0, 1, 2]
        for p in parts:
            assert p["leader"] in brokers, p
            assert p["leader"] in [r["id"] for r in p["replicas"]], p
            assert p["leader"] in [r["id"] for r in p["isrs"]], p
    check(topics[topic])

    one = kcat_metadata(bootstrap, topic)
    assert [t["topic"] for t in one["topics"]] == [topic]
    check(one["topics"][0])

    text = kcat(bootstrap, "-L", "-t", topic).stdout.decode()
    assert f'topic "{topic}" with 3 partitions:' in text, text
    for p in range(3):
        assert f"partition {p}, leader " in text, text


def test_produce_keys_headers_consume_beginning(bootstrap, filled_topic):
    topic, (lo, hi) = filled_topic
    got = kcat_consume(bootstrap, topic, "beginning")
    assert strip_ts(got) == expected_from_lines(LINES, HEADERS)
    assert all(lo <= r.timestamp <= hi for r in got), [r.timestamp for r in got]


def test_consume_from_absolute_offset(bootstrap, filled_topic):
    topic, _ = filled_topic
    want = expected_from_lines(LINES, HEADERS)
    assert strip_ts(kcat_consume(bootstrap, topic, "3")) == want[3:]
    assert strip_ts(kcat_consume(bootstrap, topic, "0", count=2)) == want[:2]
    assert strip_ts(kcat_consume(bootstrap, topic, str(len(LINES) - 1))) == want[-1:]


def test_consume_from_relative_offset(bootstrap, filled_topic):
    topic, _ = filled_topic
    want = expected_from_lines(LINES, HEADERS)
    assert strip_ts(kcat_consume(bootstrap, topic, "-2")) == want[-2:]


def test_consume_from_timestamp(bootstrap, topic_name):
    """-o s@TS asks ListOffsets for the first record with timestamp >= TS."""
    topic = topic_name()
    ck_create_topic(bootstrap, topic, 1)
    base = int(time.time() * 1000) - 100_000
    recs = [Rec(0, None, f"k{i}".encode(), f"v{i}".encode(), (), base + 1000 * i) for i in range(6)]
    ck_produce(bootstrap, topic, recs)
    got = kcat_consume(bootstrap, topic, f"s@{base + 2500}")
    assert [(r.offset, r.key, r.timestamp) for r in got] == [(i, f"k{i}".encode(), base + 1000 * i) for i in range(3, 6)]
    assert kcat_consume(bootstrap, topic, f"s@{base + 9000}") == []


def test_consume_from_end(bootstrap, filled_topic):
    topic, _ = filled_topic
    # At the end, -e exits at once with nothing.
    assert kcat_consume(bootstrap, topic, "end") == []

    # A consumer waiting at the end sees exactly what is produced afterwards.
    proc = subprocess.Popen([kcat_bin(), "-b", bootstrap, "-C", "-t", topic, "-o", "end", "-c", "2", "-J"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        marker = f"Reached end of topic {topic} [0] at offset {len(LINES)}".encode()
        seen = b""
        deadline = time.monotonic() + WAIT_S
        while marker not in seen:  # kcat says so on stderr once it sits at the end
            assert time.monotonic() < deadline and proc.poll() is None, f"kcat never reached the end: {seen!r}"
            seen += proc.stderr.readline()
        more = [b"late1:after end", b"late2:after end too"]
        kcat_produce_lines(bootstrap, topic, more, partition=0, headers=(("late", "yes"),))
        out, _ = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert strip_ts(kcat_json_records(out)) == expected_from_lines(more, (("late", "yes"),), first_offset=len(LINES))


def test_consume_one_partition(bootstrap, topic_name):
    topic = topic_name()
    ck_create_topic(bootstrap, topic, 3)
    for p in range(3):
        kcat_produce_lines(bootstrap, topic, [f"p{p}k{i}:p{p}v{i}".encode() for i in range(p + 2)], partition=p)
    for p in range(3):
        got = kcat_consume(bootstrap, topic, "beginning", partition=p)
        assert [(r.partition, r.offset, r.key, r.value) for r in got] == \
            [(p, i, f"p{p}k{i}".encode(), f"p{p}v{i}".encode()) for i in range(p + 2)]
    everything = kcat_consume(bootstrap, topic, "beginning")
    assert sorted((r.partition, r.offset) for r in everything) == [(p, i) for p in range(3) for i in range(p + 2)]


def test_produce_auto_creates_topic(bootstrap, topic_name):
    """Producing to an unknown topic creates it (auto_create_topics = true)."""
    topic = topic_name()
    kcat_produce_lines(bootstrap, topic, [b"auto:created"])
    md = wait_until(lambda: kcat_metadata(bootstrap, topic)["topics"][0].get("partitions"),
                    f"{topic} to appear in metadata")
    assert len(md) >= 1
    got = kcat_consume(bootstrap, topic, "beginning")
    assert [(r.key, r.value) for r in got] == [(b"auto", b"created")]
