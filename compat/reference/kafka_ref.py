#!/usr/bin/env python3
"""Apache Kafka reference broker for samsa's compat tests and benchmarks.

Runs a real single-node Kafka (KRaft, combined broker+controller) resolved
from Maven Central, so tests can ask real Kafka how it behaves.

Library use (pytest)::

    from kafka_ref import KafkaReference
    with KafkaReference() as kafka:
        client.connect(kafka.bootstrap)      # "127.0.0.1:PORT"

CLI::

    python3 compat/reference/kafka_ref.py ensure    # resolve jars only
    python3 compat/reference/kafka_ref.py version   # print pinned Kafka version
    python3 compat/reference/kafka_ref.py run [--port P] [--ready-file F] [--authorizer] [--ssl-keystore PEM]

The Kafka version is pinned only in pom.xml (property kafka.version).
Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
CACHE_DIR = HERE / ".cache"
LIB_DIR = CACHE_DIR / "lib"
STAMP = LIB_DIR / ".stamp"
LOCK = CACHE_DIR / ".lock"

BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
JVM_OPTS = ["-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true"]
TOOL_JVM_OPTS = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]


# What Kafka's own bin/kafka-server-start.sh runs the broker with (its KAFKA_HEAP_OPTS, then
# kafka-run-class.sh's KAFKA_JVM_PERFORMANCE_OPTS and the GC log `-loggc` asks for), for
# benchmarks: Kafka as its users run it. The tests keep the small heap above, which starts
# faster and leaves room for the clients beside it.
def server_jvm_opts(log_dir: Path) -> list[str]:
    return ["-Xmx1G", "-Xms1G",
            "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true",
            f"-Xlog:gc*:file={log_dir / 'kafkaServer-gc.log'}:time,tags:filecount=10,filesize=100M"]


DEFAULT_START_TIMEOUT = 120.0
DEFAULT_STOP_TIMEOUT = 30.0


class KafkaReferenceError(RuntimeError):
    """Jars could not be resolved, or the broker did not start or stop."""


class _PortTaken(KafkaReferenceError):
    """Another process bound a port we picked before Kafka did; retried with fresh ports."""


# --------------------------------------------------------------------------
# Version and jars
# --------------------------------------------------------------------------

def kafka_version() -> str:
    """The Kafka version pinned in pom.xml (property kafka.version)."""
    root = ET.parse(POM).getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    el = root.find("m:properties/m:kafka.version", ns)
    if el is None or not (el.text or "").strip():
        raise KafkaReferenceError(f"{POM}: no <kafka.version> property")
    return el.text.strip()


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def _cache_is_fresh() -> bool:
    try:
        lines = STAMP.read_text().splitlines()
    except OSError:
        return False
    if not lines or lines[0] != _pom_digest():
        return False
    jars = lines[1:]
    return bool(jars) and all((LIB_DIR / j).is_file() for j in jars)


def ensure_jars(verbose: bool = False) -> Path:
    """Make sure the Kafka runtime jars are in LIB_DIR; return LIB_DIR.

    Runs Maven only when the cache is missing or pom.xml changed since it
    was filled. Safe to call from several processes at once (file lock).
    Raises KafkaReferenceError with Maven's output if resolution fails.
    """
    if _cache_is_fresh():
        return LIB_DIR
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _cache_is_fresh():  # another process filled it meanwhile
            return LIB_DIR
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaReferenceError("mvn not found on PATH: install Maven 3.8+ to resolve Kafka")
        # Drop old jars so a version bump cannot leave two Kafkas on the classpath.
        shutil.rmtree(LIB_DIR, ignore_errors=True)
        cmd = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM), "package"]
        if verbose:
            print(f"kafka-ref: resolving Kafka {kafka_version()} with Maven ...", file=sys.stderr)
        proc = subprocess.run(cmd, cwd=HERE, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        expected = LIB_DIR / f"kafka_2.13-{kafka_version()}.jar"
        if proc.returncode != 0 or not expected.is_file():
            out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)  # Maven's colour codes
            tail = "\n".join(out.splitlines()[-40:])
            raise KafkaReferenceError(
                f"Maven could not resolve Kafka {kafka_version()} (exit {proc.returncode}): "
                f"{' '.join(cmd)}\n{tail}")
        jars = sorted(p.name for p in LIB_DIR.glob("*.jar"))
        tmp = STAMP.with_suffix(".tmp")
        tmp.write_text("\n".join([_pom_digest(), *jars]) + "\n")
        tmp.replace(STAMP)
    return LIB_DIR


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise KafkaReferenceError("java not found (need Java 17+): set JAVA_HOME or PATH")
    return java


# --------------------------------------------------------------------------
# Minimal Kafka wire client (readiness probe)
# --------------------------------------------------------------------------

API_METADATA = 3
API_API_VERSIONS = 18


def _request(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> bytes:
    """Send one request (header v1) and return the response body (header v0)."""
    client_id = b"kafka-ref-probe"
    header = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    resp = _recv_exact(sock, size)
    got = struct.unpack(">i", resp[:4])[0]
    if got != corr:
        raise KafkaReferenceError(f"correlation id mismatch: sent {corr}, got {got}")
    return resp[4:]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)


def api_versions(host: str, port: int, timeout: float = 5.0) -> tuple[int, dict[int, tuple[int, int]]]:
    """ApiVersions v0: return (error_code, {api_key: (min, max)})."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        body = _request(sock, API_API_VERSIONS, 0, 1, b"")
    err, count = struct.unpack(">hi", body[:6])
    ranges = {}
    for i in range(max(count, 0)):
        key, lo, hi = struct.unpack(">hhh", body[6 + 6 * i: 12 + 6 * i])
        ranges[key] = (lo, hi)
    return err, ranges


def _metadata(host: str, port: int, version: int,
              timeout: float = 5.0) -> tuple[list[tuple[int, str, int]], str | None]:
    """Metadata (non-flexible v1..v8, all topics): return ([(node_id, host, port)], cluster_id)."""
    body = struct.pack(">i", -1)  # topics = null: all, creates nothing
    if version >= 4:
        body += b"\x00"  # allow_auto_topic_creation
    if version >= 8:
        body += b"\x00\x00"  # include cluster/topic authorized operations
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        resp = _request(sock, API_METADATA, version, 2, body)
    off = 4 if version >= 3 else 0  # throttle_time_ms
    (n,) = struct.unpack_from(">i", resp, off)
    off += 4
    brokers = []
    for _ in range(n):
        node, hlen = struct.unpack_from(">ih", resp, off)
        off += 6
        bhost = resp[off:off + hlen].decode()
        off += hlen
        (bport, rlen) = struct.unpack_from(">ih", resp, off)
        off += 6 + max(rlen, 0)
        brokers.append((node, bhost, bport))
    cluster_id = None
    if version >= 2:
        (clen,) = struct.unpack_from(">h", resp, off)
        off += 2
        if clen >= 0:
            cluster_id = resp[off:off + clen].decode()
    return brokers, cluster_id


def probe(host: str, port: int, timeout: float = 5.0, cluster_id: str | None = None) -> None:
    """Raise unless the broker answers ApiVersions (error 0) and lists a broker in
    Metadata (of the given cluster id, so we never mistake another broker for ours)."""
    err, ranges = api_versions(host, port, timeout)
    if err != 0:
        raise KafkaReferenceError(f"ApiVersions error code {err}")
    lo, hi = ranges.get(API_METADATA, (0, 8))
    version = min(hi, 8)
    if version < max(lo, 2):
        return  # only flexible Metadata versions left; ApiVersions must do
    brokers, got = _metadata(host, port, version, timeout)
    if not brokers:
        raise KafkaReferenceError("Metadata lists no brokers yet")
    if cluster_id is not None and got != cluster_id:
        raise KafkaReferenceError(f"port {port} is another Kafka (cluster {got}, expected {cluster_id})")


# --------------------------------------------------------------------------
# The broker
# --------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL the JVM if the process that started it dies (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


OWNER_FILE = "owner.pids"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_workdirs() -> None:
    """Remove temp dirs left by runs that were SIGKILLed (owner and JVM both dead)."""
    for d in Path(tempfile.gettempdir()).glob("kafka-ref-*"):
        try:
            pids = [int(x) for x in (d / OWNER_FILE).read_text().split()]
        except (OSError, ValueError):
            continue  # not ours, or still being set up
        if pids and not any(_pid_alive(p) for p in pids):
            shutil.rmtree(d, ignore_errors=True)


def _tail(path: Path, lines: int = 40) -> str:
    """The ERROR/Caused-by lines (root causes hide above long stack traces), then the tail."""
    try:
        data = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"({path.name}: not written)"
    errors = [l for l in data if " ERROR " in l or l.startswith("Caused by:")][:10]
    head = ("--- errors in %s ---\n%s\n" % (path.name, "\n".join(errors))) if errors else ""
    return head + f"--- last {min(lines, len(data))} lines of {path.name} ---\n" + "\n".join(data[-lines:])


LOG4J2_PROPERTIES = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
"""


class KafkaReference:
    """A throwaway single-node Kafka (KRaft) on loopback; use as a context manager.

    Attributes once started: ``bootstrap`` ("127.0.0.1:P"), ``port``,
    ``controller_port``, ``workdir`` (temp dir holding server.properties,
    kafka.log and the data), ``log_path``, ``pid``.

    ``overrides`` adds or replaces server.properties entries.
    ``die_with_parent`` (default True) kills the JVM if the thread that
    started it exits, so a killed test run cannot leave Kafka behind; set it
    False if you start the broker from a short-lived thread.
    """

    def __init__(self, port: int | None = None, controller_port: int | None = None,
                 overrides: dict[str, object] | None = None,
                 start_timeout: float = DEFAULT_START_TIMEOUT,
                 stop_timeout: float = DEFAULT_STOP_TIMEOUT,
                 die_with_parent: bool = True,
                 sasl_users: dict[str, str] | None = None,
                 server_jvm: bool = False,
                 ssl_keystore: str | None = None):
        self.port = port
        # A PEM file holding the key (unencrypted PKCS#8) then the certificate chain: an SSL
        # listener on a free port beside the plaintext one (the bench's TLS figure).
        self.ssl_keystore = ssl_keystore
        self.ssl_port: int | None = None
        self.ssl_bootstrap: str | None = None
        self.server_jvm = server_jvm
        self.sasl_users = dict(sasl_users or {})
        self.sasl_port: int | None = None
        self.sasl_bootstrap: str | None = None
        self.controller_port = controller_port
        self.overrides = dict(overrides or {})
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.die_with_parent = die_with_parent
        self.workdir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self._out = None
        self.bootstrap: str | None = None

    # -- context manager ---------------------------------------------------
    def __enter__(self) -> "KafkaReference":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def log_path(self) -> Path | None:
        return self.workdir / "kafka.log" if self.workdir else None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def properties(self) -> dict[str, object]:
        props: dict[str, object] = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": 1,
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
        }
        if self.sasl_users:
            props["listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}"
            props["advertised.listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}"
            props["listener.security.protocol.map"] += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
            props["sasl.enabled.mechanisms"] = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
            users = " ".join(f'user_{u}="{p}"' for u, p in self.sasl_users.items())
            props["listener.name.sasl_plaintext.plain.sasl.jaas.config"] = (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};")
            for m in ("scram-sha-256", "scram-sha-512"):
                props[f"listener.name.sasl_plaintext.{m}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;")
        if self.ssl_keystore:
            props["listeners"] += f",SSL://127.0.0.1:{self.ssl_port}"
            props["advertised.listeners"] += f",SSL://127.0.0.1:{self.ssl_port}"
            props["listener.security.protocol.map"] += ",SSL:SSL"
            props["listener.name.ssl.ssl.keystore.type"] = "PEM"
            props["listener.name.ssl.ssl.keystore.location"] = self.ssl_keystore
        props.update(self.overrides)
        return props

    def _write_config(self) -> Path:
        assert self.workdir is not None
        cfg = self.workdir / "server.properties"
        cfg.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        (self.workdir / "log4j2.properties").write_text(
            LOG4J2_PROPERTIES.format(log=self.workdir / "kafka.log"))
        return cfg

    def _java_cmd(self, opts: list[str], main: str, *args: str) -> list[str]:
        assert self.workdir is not None
        return [_java(), *opts,
                f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.workdir}",
                "-cp", f"{LIB_DIR}/*", main, *args]

    def start(self) -> "KafkaReference":
        if self.proc is not None:
            raise KafkaReferenceError("already started")
        ensure_jars(verbose=True)
        sweep_stale_workdirs()
        fixed = (self.port, self.controller_port)
        attempts = 3 if not any(fixed) else 1  # retry port races only for ports we picked
        for attempt in range(1, attempts + 1):
            self.port, self.controller_port = fixed
            self.workdir = Path(tempfile.mkdtemp(prefix="kafka-ref-"))
            try:
                self._start()
                return self
            except _PortTaken:
                self.stop()
                if attempt == attempts:
                    raise
            except BaseException:
                self.stop()
                raise
        return self

    def _start(self) -> None:
        assert self.workdir is not None
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        if self.sasl_users:
            self.sasl_port = free_port()
            while self.sasl_port in (self.port, self.controller_port):
                self.sasl_port = free_port()
        if self.ssl_keystore:
            self.ssl_port = free_port()
            while self.ssl_port in (self.port, self.controller_port, self.sasl_port):
                self.ssl_port = free_port()
        cfg = self._write_config()

        # Like Kafka's Uuid.randomUuid: an id starting with '-' would be read as an option by
        # kafka-storage (about one start in 64 failed that way), so draw again.
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        fmt = self._java_cmd(TOOL_JVM_OPTS, STORAGE_TOOL, "format", "-t", cluster_id,
                             "-c", str(cfg), "--standalone",
                             *(arg for u, p in self.sasl_users.items()
                               for m in ("SCRAM-SHA-256", "SCRAM-SHA-512")
                               for arg in ("--add-scram", f"{m}=[name={u},password={p}]")))
        res = subprocess.run(fmt, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=self.start_timeout)
        if res.returncode != 0:
            raise KafkaReferenceError(
                f"kafka storage format failed (exit {res.returncode}): {' '.join(fmt)}\n{res.stdout}")

        out_path = self.workdir / "kafka.out"
        self._out = open(out_path, "wb")
        self.proc = subprocess.Popen(
            self._java_cmd(server_jvm_opts(self.workdir) if self.server_jvm else JVM_OPTS,
                           BROKER_MAIN, str(cfg)),
            cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=self._out,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent if self.die_with_parent else None)
        (self.workdir / OWNER_FILE).write_text(f"{os.getpid()} {self.proc.pid}\n")

        deadline = time.monotonic() + self.start_timeout
        last_err: Exception | None = None
        while True:
            if self.proc.poll() is not None:
                log = _tail(self.log_path)
                cls = _PortTaken if "Address already in use" in log else KafkaReferenceError
                raise cls(f"Kafka exited with code {self.proc.returncode} during startup\n"
                          f"{log}\n{_tail(out_path, 20)}")
            try:
                probe("127.0.0.1", self.port, timeout=2.0, cluster_id=cluster_id)
                break
            except (OSError, KafkaReferenceError, struct.error) as e:
                last_err = e
            if time.monotonic() > deadline:
                raise KafkaReferenceError(
                    f"Kafka not ready on 127.0.0.1:{self.port} after {self.start_timeout:.0f}s "
                    f"(last probe error: {last_err!r})\n{_tail(self.log_path)}\n{_tail(out_path, 20)}")
            time.sleep(0.1)
        self.bootstrap = f"127.0.0.1:{self.port}"
        if self.sasl_port:
            self.sasl_bootstrap = f"127.0.0.1:{self.sasl_port}"
        if self.ssl_port:
            self.ssl_bootstrap = f"127.0.0.1:{self.ssl_port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM Kafka, wait, SIGKILL if needed; remove the temp dir. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
            else:
                _signal_group(proc.pid, signal.SIGKILL)  # stray children, if any
        if self._out is not None:
            self._out.close()
            self._out = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self.bootstrap = None


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

class _Stop(Exception):
    pass


# ACLs enforced, as samsa's `authorizer = true`; PLAINTEXT clients (User:ANONYMOUS, the
# controller and inter-broker traffic too) are super users, so they may still do everything.
AUTHORIZER_OVERRIDES: dict[str, object] = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:ANONYMOUS;User:admin",
    "allow.everyone.if.no.acl.found": "false",
}


# Users of the SASL_PLAINTEXT listener `--authorizer` adds: PLAIN (JAAS) and SCRAM-SHA-256/512
# (added when formatting), the same passwords as the differential samsa's.
SASL_USERS: dict[str, str] = {"admin": "admin-pw", "alice": "alice-pw"}


def _run(args: argparse.Namespace) -> int:
    ready = Path(args.ready_file) if args.ready_file else None
    if ready is not None:
        ready.unlink(missing_ok=True)  # never leave a stale address to be read

    def on_signal(signum, frame):
        raise _Stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    overrides = dict(AUTHORIZER_OVERRIDES) if args.authorizer else {}
    for item in args.override:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"kafka-ref: --override wants KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        overrides[key] = value
    kafka = KafkaReference(port=args.port,
                           overrides=overrides or None,
                           sasl_users=SASL_USERS if args.authorizer else None,
                           server_jvm=args.server_jvm,
                           ssl_keystore=args.ssl_keystore)
    try:
        kafka.start()
        if ready is not None:
            tmp = ready.with_name(ready.name + ".tmp")
            tmp.write_text(kafka.bootstrap + "\n" + (kafka.sasl_bootstrap or "") + "\n"
                           + (kafka.ssl_bootstrap or "") + "\n")
            tmp.replace(ready)  # atomic: readers see all of it or nothing
        print(f"kafka-ref ready on {kafka.bootstrap}", flush=True)
        while True:
            assert kafka.proc is not None
            try:
                code = kafka.proc.wait(1.0)
            except subprocess.TimeoutExpired:
                continue
            print(f"kafka-ref: Kafka exited unexpectedly with code {code}\n{_tail(kafka.log_path)}",
                  file=sys.stderr)
            return 1
    except _Stop:
        return 0
    except KafkaReferenceError as e:
        print(f"kafka-ref: {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        kafka.stop()
        if ready is not None:
            ready.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="kafka_ref.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("ensure", help="resolve the Kafka jars with Maven (only if missing or stale)")
    sub.add_parser("version", help="print the pinned Kafka version")
    run = sub.add_parser("run", help="run Kafka in the foreground until SIGTERM/SIGINT")
    run.add_argument("--port", type=int, default=None, help="broker port (default: a free one)")
    run.add_argument("--ready-file", default=None,
                     help="write the bootstrap address here once ready (removed on exit)")
    run.add_argument("--authorizer", action="store_true",
                     help="enforce ACLs (StandardAuthorizer); ANONYMOUS and admin are super users")
    run.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                     help="add or replace a server.properties entry (repeatable)")
    run.add_argument("--server-jvm", action="store_true",
                     help="the JVM settings of Kafka's kafka-server-start.sh (1 GiB heap, G1) "
                          "instead of the tests' small heap")
    run.add_argument("--ssl-keystore", default=None, metavar="PEM",
                     help="add an SSL listener on a free port with this key and certificate "
                          "chain (one PEM file, key unencrypted); its address is the ready "
                          "file's third line")
    args = ap.parse_args(argv)

    if args.cmd == "version":
        print(kafka_version())
        return 0
    if args.cmd == "ensure":
        try:
            lib = ensure_jars(verbose=True)
        except KafkaReferenceError as e:
            print(f"kafka-ref: {e}", file=sys.stderr)
            return 1
        print(f"kafka-ref: Kafka {kafka_version()} jars in {lib}")
        return 0
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
