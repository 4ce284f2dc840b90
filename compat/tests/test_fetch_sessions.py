"""Incremental fetch sessions (KIP-227) under the Java consumer (samsa only: the proof is
samsa's metrics). The consumer opens a session with its first fetch of a topic of many
partitions and then sends incremental fetches; it must read every record, and the broker
must have served most of its fetches incrementally, with no session errors."""

from __future__ import annotations

import pytest

from jvm import CLIENT_PROFILES, of, run_java
from test_java import check_read, rec
from test_metrics import samples, scrape

PARTITIONS = 48
RECORDS = 3000


def fetch_counts(text: str) -> tuple[float, float, float]:
    """(Fetch requests, incremental fetches, fetch-session error codes) served so far."""
    fetches = sum(v for k, v in samples(text, "samsa_kafka_requests_total").items() if 'api="Fetch"' in k)
    incremental = samples(text, "samsa_incremental_fetches_total").get("", 0)
    errors = sum(v for k, v in samples(text, "samsa_kafka_request_errors_total").items()
                 if 'api="Fetch"' in k and "FETCH_SESSION" in k)
    return fetches, incremental, errors


@pytest.mark.parametrize("profile", CLIENT_PROFILES)
def test_java_consumer_reads_everything_through_incremental_fetches(own_broker, topic_name, profile):
    b = own_broker
    topic = topic_name()
    produced = of(run_java(profile, "produce", b.bootstrap, topic=topic, partitions=PARTITIONS,
                           codec="lz4", count=RECORDS), "produced")
    assert len(produced) == RECORDS
    assert len({e["p"] for e in produced}) > PARTITIONS // 2, "records spread over the partitions"
    fetches_before, incremental_before, _ = fetch_counts(scrape(b))

    # Small answers (a batch each, KIP-74), so reading takes many fetches of the session.
    read = run_java(profile, "consume", b.bootstrap, topic=topic, expect=RECORDS, fetch_max_bytes=1024)
    check_read(read, [rec(e) for e in produced])

    fetches, incremental, errors = fetch_counts(scrape(b))
    fetches -= fetches_before
    incremental -= incremental_before
    assert errors == 0, "the consumer's session never failed"
    # One full fetch opens the session (and one may close it); the rest go incrementally.
    assert fetches > 10, f"{fetches} fetches: too few to show anything"
    assert incremental >= fetches / 2, (fetches, incremental)
