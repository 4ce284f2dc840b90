"""Hostile input next to a real client (samsa only: it watches the broker's own log).

While a confluent-kafka producer and consumer move records, many connections send
random bytes, truncated frames, oversized length prefixes, lying array counts and
slow one-byte drips. The client must see no error and lose nothing, and the broker
must neither panic nor stop.
"""

import random
from collections import Counter
import socket
import threading
import time

from clients import WAIT_S, ck_consume, ck_create_topic, ck_produce, make_records

# Metadata v0 whose topic array claims 2^31-1 entries (an allocation bomb for a naive decoder).
LYING_ARRAY = bytes([0, 0, 0, 15, 0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF, 0])


def attack(bootstrap: str, seed: int, stop: threading.Event, sent: list) -> None:
    host, port = bootstrap.rsplit(":", 1)
    rng = random.Random(seed)
    kinds = ["random", "truncated", "oversized", "lying", "drip"]
    while not stop.is_set():
        kind = rng.choice(kinds)
        try:
            with socket.create_connection((host, int(port)), timeout=2) as s:
                if kind == "random":
                    s.sendall(rng.randbytes(rng.randrange(1, 400)))
                elif kind == "truncated":
                    s.sendall((500).to_bytes(4, "big") + rng.randbytes(rng.randrange(8, 100)))
                elif kind == "oversized":
                    s.sendall((0x7FFFFFFF).to_bytes(4, "big"))
                elif kind == "lying":
                    s.sendall(LYING_ARRAY)
                else:
                    for b in rng.randbytes(10):
                        if stop.is_set():
                            break
                        s.sendall(bytes([b]))
                        time.sleep(0.02)
                sent.append(kind)
        except OSError:
            pass  # the broker closing the connection on us is the expected outcome


def test_garbage_connections_do_not_disturb_a_real_client(own_broker, topic_name):
    b = own_broker
    topic = topic_name()
    ck_create_topic(b.bootstrap, topic, 3)
    stop = threading.Event()
    sent: list = []
    attackers = [threading.Thread(target=attack, args=(b.bootstrap, seed, stop, sent), daemon=True)
                 for seed in range(12)]
    for t in attackers:
        t.start()
    try:
        records = make_records("under-attack", 20000)
        acked = ck_produce(b.bootstrap, topic, records, "zstd")  # raises on any delivery error
        assert len(acked) == len(records)
        got = ck_consume(b.bootstrap, topic)
        assert Counter((r.key, r.value) for r in got) == Counter((r.key, r.value) for r in records)
    finally:
        stop.set()
        for t in attackers:
            t.join(WAIT_S)
    assert len(sent) > 100, f"only {len(sent)} hostile connections were made"
    assert set(sent) == {"random", "truncated", "oversized", "lying", "drip"}
    assert b.alive(), f"samsa died under hostile input:\n{b.tail()}"
    log = b.log_path.read_text(errors="replace")
    assert "panicked" not in log, "samsa panicked:\n" + "\n".join(l for l in log.splitlines() if "panicked" in l)
