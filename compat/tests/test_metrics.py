"""The metrics endpoint under real client traffic (samsa only: it is samsa's endpoint).

Scraped after a confluent-kafka producer and consumer ran; the text must pass
Prometheus' own checker (promtool, from Debian's prometheus package) and its
numbers must match the traffic.
"""

import re
import subprocess
import urllib.request

from clients import ck_consume, ck_create_topic, ck_produce, make_records


def scrape(broker, path="/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.metrics_port}{path}", timeout=10) as r:
        assert r.status == 200
        return r.read().decode()


def samples(text: str, name: str) -> dict:
    """{labels-string: value} of every sample of metric `name`."""
    found = {}
    for line in text.splitlines():
        m = re.match(rf"{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if m:
            found[m.group(1) or ""] = float(m.group(2))
    return found


def test_metrics_pass_promtool_and_match_the_traffic(own_broker, topic_name):
    b = own_broker
    topic = topic_name()
    ck_create_topic(b.bootstrap, topic, 4)
    records = make_records("metrics", 5000)
    acked = ck_produce(b.bootstrap, topic, records, "lz4")
    assert len(acked) == len(records)
    consumed = ck_consume(b.bootstrap, topic)
    assert len(consumed) == len(records)

    assert scrape(b, "/health").strip() == "ok"
    text = scrape(b)
    check = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True)
    assert check.returncode == 0, f"promtool: {check.stdout.decode()}{check.stderr.decode()}"

    label = f'{{topic="{topic}"}}'
    assert samples(text, "samsa_topic_records_in_total").get(label) == len(records)
    assert samples(text, "samsa_topic_records_out_total").get(label, 0) >= len(records)
    ends = {k: v for k, v in samples(text, "samsa_partition_log_end_offset").items() if f'topic="{topic}"' in k}
    assert len(ends) == 4 and sum(ends.values()) == len(records), ends
    produce_requests = sum(v for k, v in samples(text, "samsa_kafka_requests_total").items() if 'api="Produce"' in k)
    assert produce_requests >= 1
    assert samples(text, "samsa_connections_accepted_total")[""] >= 2
    assert samples(text, "process_resident_memory_bytes")[""] > 0
