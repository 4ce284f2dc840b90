"""Fixtures: a real samsa broker process (or an external broker via COMPAT_BOOTSTRAP).

SAMSA_BIN        broker binary (default: target/debug/samsa in the repo root)
SAMSA_CONFIG     config file (default: etc/samsa.toml in the repo root)
COMPAT_BOOTSTRAP host:port of a running broker (e.g. Apache Kafka from
                 compat/reference/kafka_ref.py) to run the client tests against
                 instead of samsa; tests that must stop/kill the broker skip.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import deque
from pathlib import Path

import pytest

import go_build
from clients import CLIENTS, CODECS, produce_dataset

REPO = Path(__file__).resolve().parents[2]


# confluent-kafka completes an AdminClient's futures on a librdkafka thread. A garbage
# collection that happens to start there and frees a client caught in a reference cycle
# calls rd_kafka_destroy() from librdkafka's own thread, which librdkafka answers with
# abort(): the whole pytest process dies (confluent-kafka-python PRs 2129 and 2131, which
# disable the collector in its own tests). So cycles are collected only here, between tests,
# in pytest's own thread.
def pytest_configure(config):
    gc.disable()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    yield
    gc.collect()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    # The Go test binary builds while the first tests run, if a selected test needs it.
    if any("go_tests" in item.fixturenames for item in items):
        go_build.start()

EXTERNAL = os.environ.get("COMPAT_BOOTSTRAP") or None
READY_TIMEOUT_S = float(os.environ.get("SAMSA_READY_TIMEOUT_S", "30"))
STOP_TIMEOUT_S = float(os.environ.get("SAMSA_STOP_TIMEOUT_S", "30"))
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LISTENING = re.compile(r"listening on (\S+):(\d+)")


# free_port() looks below Linux's default ephemeral range (32768-60999): a port bind(0)
# hands out lies in it, where the kernel may give it to an outgoing connection (a starting
# cluster node dialling its peers) before the process it was picked for binds it. The
# protocol tests and the metadata quorum tests pick the same way (crates/test-ports), from a
# different start.
_PICKED_PORTS = range(20000, 32768)
_next_port = itertools.count(os.getpid() * 7919)


def free_port() -> int:
    for _ in _PICKED_PORTS:
        port = _PICKED_PORTS[next(_next_port) % len(_PICKED_PORTS)]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise BrokerError("no free loopback port below the ephemeral range")


class BrokerError(AssertionError):
    pass


class SamsaBroker:
    """One samsa process on a fixed loopback port and data dir.

    start() waits for the 'samsa ready ... listening on' log line; stop() sends
    SIGTERM and returns the exit code; kill() sends SIGKILL; restart() starts a
    new process on the same port and data dir. stderr is kept in log_path.
    """

    def __init__(self, data_dir: Path, binary: Path | None = None, config: Path | None = None,
                 port: int | None = None, host: str = "127.0.0.1", prefix: tuple = ()):
        self.binary = Path(binary or os.environ.get("SAMSA_BIN") or REPO / "target" / "debug" / "samsa")
        self.config = Path(config or os.environ.get("SAMSA_CONFIG") or REPO / "etc" / "samsa.toml")
        self.data_dir = Path(data_dir)
        # `prefix` runs the broker through another command, e.g. `ip netns exec NS`.
        self.host, self.prefix = host, list(prefix)
        self.port = port or free_port()
        self.metrics_port = free_port()
        self.log_path = self.data_dir.parent / f"samsa-{self.host}-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._lines: deque = deque(maxlen=200)
        self._reader: threading.Thread | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 40) -> str:
        return "\n".join(list(self._lines)[-n:])

    def start(self) -> "SamsaBroker":
        if self.alive():
            raise BrokerError("samsa already running")
        if not self.binary.is_file():
            raise BrokerError(f"samsa binary {self.binary} not found: cargo build --bin samsa, or set SAMSA_BIN")
        if not self.config.is_file():
            raise BrokerError(f"samsa config {self.config} not found (set SAMSA_CONFIG)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.prefix + [str(self.binary), "--config", str(self.config),
                             "--listen", self.bootstrap, "--data-dir", str(self.data_dir),
                             "--metrics-listen", f"{self.host}:{self.metrics_port}"]
        env = dict(os.environ, NO_COLOR="1")
        self.starts += 1
        ready = threading.Event()
        self._lines.append(f"--- start #{self.starts}: {' '.join(cmd)}")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        proc, lines, log_path = self.proc, self._lines, self.log_path
        want_port = self.port

        def read():
            with open(log_path, "ab") as log:
                for raw in proc.stderr:
                    log.write(raw)
                    log.flush()
                    line = ANSI.sub("", raw.decode(errors="replace")).rstrip("\n")
                    lines.append(line)
                    m = LISTENING.search(line)
                    if "samsa ready" in line and m and int(m.group(2)) == want_port:
                        ready.set()

        self._reader = threading.Thread(target=read, name=f"samsa-stderr-{self.port}", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready.wait(0.05):
            if proc.poll() is not None:
                self._reader.join(5)
                raise BrokerError(f"samsa exited with code {proc.returncode} before it was ready:\n{self.tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerError(f"samsa not ready within {READY_TIMEOUT_S:.0f}s "
                                  f"(no 'samsa ready ... listening on {self.bootstrap}' line):\n{self.tail()}")
        return self

    def _finish(self, sig: int, timeout: float) -> int:
        proc = self.proc
        if proc is None:
            raise BrokerError("samsa not started")
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise BrokerError(f"samsa did not exit within {timeout:.0f}s of signal {sig}:\n{self.tail()}")
        if self._reader is not None:
            self._reader.join(5)
        self.proc = None
        return code

    def stop(self) -> int:
        """SIGTERM; return the exit code (samsa should flush and exit 0)."""
        return self._finish(signal.SIGTERM, STOP_TIMEOUT_S)

    def kill(self) -> int:
        """SIGKILL: no chance to flush."""
        return self._finish(signal.SIGKILL, 10)

    def restart(self) -> "SamsaBroker":
        if self.alive():
            code = self.stop()
            if code != 0:
                raise BrokerError(f"samsa exited with {code} on SIGTERM:\n{self.tail()}")
        return self.start()

    def stop_clean(self) -> None:
        """Stop for good, asserting the SIGTERM exit code is 0."""
        if self.proc is None:
            return
        if self.proc.poll() is not None:
            code = self.proc.returncode
            self.proc = None
            raise BrokerError(f"samsa had already exited with code {code}:\n{self.tail()}")
        code = self.stop()
        if code != 0:
            raise BrokerError(f"samsa exited with code {code} on SIGTERM, want 0:\n{self.tail()}")


class ExternalBroker:
    """A broker someone else runs (COMPAT_BOOTSTRAP); cannot be stopped from here."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap

    def alive(self) -> bool:
        return True

    def stop_clean(self) -> None:
        pass


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """The broker all client tests share: samsa on a free port, or COMPAT_BOOTSTRAP."""
    if EXTERNAL:
        yield ExternalBroker(EXTERNAL)
        return
    b = SamsaBroker(tmp_path_factory.mktemp("samsa") / "data").start()
    try:
        yield b
    finally:
        b.stop_clean()


@pytest.fixture
def bootstrap(broker):
    assert broker.alive(), f"samsa died:\n{broker.tail()}"
    return broker.bootstrap


@pytest.fixture
def own_broker(tmp_path):
    """A samsa of the test's own, free to stop, kill and restart."""
    if EXTERNAL:
        pytest.skip("needs a broker process the suite owns (COMPAT_BOOTSTRAP is set)")
    b = SamsaBroker(tmp_path / "data").start()
    try:
        yield b
    finally:
        if b.alive():
            b.stop_clean()


@pytest.fixture
def cluster(tmp_path):
    """A three-node samsa cluster of the test's own (see cluster.py)."""
    from cluster import SamsaCluster   # cluster.py imports this module
    c = SamsaCluster(tmp_path / "cluster").start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory):
    """A samsa with `authorizer = true` whose plaintext (ANONYMOUS) clients are super users,
    for ACL administration through clients and tools; one per test module."""
    if EXTERNAL:
        pytest.skip("needs a samsa the suite configures (COMPAT_BOOTSTRAP is set)")
    with configured_samsa(tmp_path_factory.mktemp("acls"),
                          'authorizer = true\nsuper_users = ["User:ANONYMOUS"]\n') as bootstrap:
        yield bootstrap


@contextlib.contextmanager
def configured_samsa(d: Path, config_text: str):
    """A samsa of its own in `d` on `config_text` (samsa.toml lines); yields its bootstrap."""
    config = d / "samsa.toml"
    config.write_text(config_text)
    b = SamsaBroker(d / "data", config=config).start()
    try:
        yield b.bootstrap
    finally:
        b.stop_clean()


@pytest.fixture
def topic_name(request):
    """A fresh topic name per call, readable in broker logs."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:80]

    def make(suffix: str = "") -> str:
        return f"{base}{suffix}-{uuid.uuid4().hex[:8]}"
    return make


DATASET_RECORDS = int(os.environ.get("COMPAT_RECORDS", "10000"))
DATASET_PARTITIONS = 4


@pytest.fixture(scope="session")
def datasets(broker):
    """datasets(producer, codec) -> Dataset: DATASET_RECORDS keyed records written
    once per session by that client with that codec into a fresh 4-partition
    topic (created with the producer's own admin API), shared by the
    round-trip and cross-client tests."""
    cache = {}

    def get(producer: str, codec: str):
        assert producer in CLIENTS and codec in CODECS
        if (producer, codec) not in cache:
            topic = f"ds-{producer}-{codec}-{uuid.uuid4().hex[:8]}"
            try:
                cache[(producer, codec)] = produce_dataset(broker.bootstrap, producer, codec, topic,
                                                           DATASET_RECORDS, DATASET_PARTITIONS)
            except BaseException as e:
                cache[(producer, codec)] = e
        got = cache[(producer, codec)]
        if isinstance(got, BaseException):
            raise AssertionError(f"{producer} could not write the {codec} dataset: {got}") from got
        return got
    return get
