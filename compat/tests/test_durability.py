"""Durability across broker restarts (samsa only: these stop and kill the broker).

- SIGTERM: the broker exits 0, and after a restart on the same data dir every
  record is still there, and new records continue the offsets.
- SIGKILL in the middle of an acks=all stream: after a restart every record
  the producer saw acknowledged is at its acknowledged offset, intact.
- SIGTERM in the middle of an acks=all stream (graceful shutdown under load):
  the broker exits 0, and likewise no acknowledged record is lost.
"""

import time

import pytest

from clients import (WAIT_S, Dataset, Rec, assert_same_records, ck_consume, ck_create_topic, ck_produce,
                     ck_producer, kcat_consume, kp_consume, kp_produce, make_records, now_ms)


def dataset(name, topic, partitions, acked):
    return Dataset(name, "", topic, partitions, acked, (0, 0))


def test_sigterm_restart_keeps_everything(own_broker, topic_name):
    b = own_broker
    t1, t2 = topic_name("-ck"), topic_name("-kp")
    ck_create_topic(b.bootstrap, t1, 4)
    ck_create_topic(b.bootstrap, t2, 2)
    ds1 = dataset("confluent", t1, 4, ck_produce(b.bootstrap, t1, make_records("term-ck", 5000), "zstd"))
    ds2 = dataset("kafka-python", t2, 2, kp_produce(b.bootstrap, t2, make_records("term-kp", 2000), "gzip"))

    code = b.stop()
    assert code == 0, f"samsa exited {code} on SIGTERM, want 0:\n{b.tail()}"
    b.start()

    assert_same_records(ds1, ck_consume(b.bootstrap, t1), "confluent after restart")
    assert_same_records(ds2, kp_consume(b.bootstrap, t2), "kafka-python after restart")
    assert_same_records(ds2, kcat_consume(b.bootstrap, t2), "kcat after restart")

    # The log goes on where it stopped.
    more = ck_produce(b.bootstrap, t1, make_records("term-more", 400, ts_base=now_ms()), "lz4")
    high = {}
    for r in ds1.records:
        high[r.partition] = max(high.get(r.partition, -1), r.offset)
    first_new = {}
    for r in more:
        first_new.setdefault(r.partition, r.offset)
    for p, o in first_new.items():
        assert o == high[p] + 1, f"partition {p}: first offset after restart {o}, want {high[p] + 1}"
    ds1.records += more
    assert_same_records(ds1, ck_consume(b.bootstrap, t1), "confluent after restart and more writes")

    code = b.stop()
    assert code == 0, f"samsa exited {code} on the second SIGTERM:\n{b.tail()}"
    b.start()
    assert_same_records(ds1, ck_consume(b.bootstrap, t1), "confluent after a second restart")


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_stop_under_load_keeps_acknowledged_records(own_broker, topic_name, how):
    b = own_broker
    topic = topic_name()
    partitions = 3
    ck_create_topic(b.bootstrap, topic, partitions)

    acked = {}       # (partition, offset) -> Rec
    sent_recs = []   # by seq
    failed = []

    def on_delivery(err, msg):
        if err is not None:
            failed.append(err)
            return
        # Delivery reports carry no headers: take the record as it was sent.
        r = sent_recs[int(msg.key().split(b"-k")[1])]
        acked[(msg.partition(), msg.offset())] = r._replace(partition=msg.partition(), offset=msg.offset())

    # Small batches so many produce requests are in flight when the broker dies.
    p = ck_producer(b.bootstrap, "none", **{"linger.ms": 2, "batch.num.messages": 200,
                                           "message.timeout.ms": 20000, "retry.backoff.ms": 100})
    ts0 = now_ms()
    kill_after_acked = 5000
    sent = 0
    in_flight_at_kill = None
    acked_at_kill = None
    deadline = time.monotonic() + WAIT_S
    while in_flight_at_kill is None or sent < acked_at_kill + in_flight_at_kill + 2000:
        assert time.monotonic() < deadline, f"only {len(acked)} records acknowledged in {WAIT_S}s"
        for _ in range(100):
            r = Rec(None, None, f"kill-k{sent:06d}".encode(), f"kill|{sent}|".encode() + b"z" * (sent % 40),
                    (("seq", str(sent).encode()),), ts0 + sent)
            sent_recs.append(r)
            p.produce(topic, key=r.key, value=r.value, headers=list(r.headers), timestamp=r.timestamp,
                      on_delivery=on_delivery)
            sent += 1
        p.poll(0.01 if len(p) > 20000 else 0)  # keep a bounded backlog in flight
        if in_flight_at_kill is None and len(acked) >= kill_after_acked:
            in_flight_at_kill = len(p)
            acked_at_kill = len(acked)
            if how == "sigkill":
                code = b.kill()
                assert code == -9, f"samsa exit status after SIGKILL: {code}"
            else:
                code = b.stop()
                assert code == 0, f"samsa exited {code} on SIGTERM under load, want 0:\n{b.tail()}"
    assert in_flight_at_kill, "the broker was killed with nothing in flight: not mid-stream"

    b.start()
    remaining = p.flush(WAIT_S)   # retries drain into the restarted broker, or time out
    assert remaining == 0, f"{remaining} records still queued after {WAIT_S}s"
    print(f"sent {sent}, acknowledged {len(acked)} ({acked_at_kill} before the kill), "
          f"failed {len(failed)}, in flight at kill {in_flight_at_kill}")

    assert len(acked) > acked_at_kill, "nothing written after the restart was acknowledged"

    got = ck_consume(b.bootstrap, topic)
    by_pos = {(r.partition, r.offset): r for r in got}
    assert len(by_pos) == len(got), "a record was read twice"
    for part in range(partitions):
        offs = sorted(o for (pp, o) in by_pos if pp == part)
        assert offs == list(range(len(offs))), f"partition {part}: offsets have holes after the crash"
    missing = [acked[k] for k in sorted(acked) if by_pos.get(k) != acked[k]]
    assert not missing, (f"{len(missing)} of {len(acked)} acknowledged records lost or changed after {how}, "
                         f"e.g. {missing[:3]} (found there: {[by_pos.get(m[:2]) for m in missing[:3]]})")
    assert len(got) >= len(acked)
