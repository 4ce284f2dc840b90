"""Runs Java: compat/java's client driver (against kafka-clients 3.0 or 4.x) and
Kafka's own command-line tools, on classpaths compat/install.sh resolved with Maven.

The driver prints JSON lines (compat/java/src/main/java/dev/samsa/compat/Json.java);
run_java returns them parsed. Sources are compiled here with javac, keyed by a
hash of the sources and the classpath, so a stale build can never run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from gates import BrokerLacksApi
from tool_server import SERVER_CLASS, SERVER_OPTS, ToolServer, ToolServerDied, ToolTimeout

COMPAT_DIR = Path(__file__).resolve().parent.parent
JAVA_DIR = COMPAT_DIR / "java"
CACHE = JAVA_DIR / ".cache"
SOURCES = JAVA_DIR / "src" / "main" / "java"
# Sources built only against some profiles: the KafkaShareConsumer exists from 4.0 on.
PROFILE_SOURCES = {"kafka-4": [JAVA_DIR / "src" / "kafka4" / "java"]}
# The tools profile builds only the tool server (tool_server.py), not the driver.
TOOLS_SOURCES = [JAVA_DIR / "src" / "tools" / "java"]
MAIN = "dev.samsa.compat.Main"

# Profiles of compat/java/pom.xml: the client releases the driver is built against.
CLIENT_PROFILES = ("kafka-3", "kafka-4")
JVM_OPTS = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"]
RUN_TIMEOUT_S = float(os.environ.get("COMPAT_JAVA_TIMEOUT_S", "180"))
UNSUPPORTED = "org.apache.kafka.common.errors.UnsupportedVersionException"


class JavaError(AssertionError):
    """The Java driver or a tool failed in a way other than a missing broker API."""


def classpath(profile: str) -> str:
    f = CACHE / f"classpath-{profile}.txt"
    if not f.is_file():
        raise JavaError(f"{f} missing: run compat/install.sh (it resolves the Java classpaths with Maven)")
    return f.read_text().strip()


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    exe = Path(home) / "bin" / "java" if home else shutil.which("java")
    if not exe:
        raise JavaError("java not found: run compat/install.sh")
    return str(exe)


def compiled(profile: str) -> Path:
    """Classes of the driver built against profile's kafka-clients, or for the tools
    profile the tool server's (cached by content)."""
    cp = classpath(profile)
    dirs = TOOLS_SOURCES if profile == "tools" else [SOURCES, *PROFILE_SOURCES.get(profile, [])]
    sources = sorted(f for d in dirs for f in d.rglob("*.java"))
    h = hashlib.sha256(cp.encode())
    for s in sources:
        h.update(s.read_bytes())
    out = CACHE / f"classes-{profile}"
    stamp = out / ".sha256"
    if stamp.is_file() and stamp.read_text() == h.hexdigest():
        return out
    tmp = Path(tempfile.mkdtemp(prefix=f"classes-{profile}.", dir=CACHE))
    javac = shutil.which("javac")
    if javac is None:
        raise JavaError("javac not found: run compat/install.sh")
    proc = subprocess.run([javac, "-nowarn", "-d", str(tmp), "-cp", cp, *map(str, sources)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise JavaError(f"javac against {profile} failed:\n{proc.stderr[-4000:]}")
    (tmp / ".sha256").write_text(h.hexdigest())
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def lacks_api(text: str) -> bool:
    """Does a client's error output say the broker lacks an API? The Java
    client's UnsupportedVersionException ("The node does not support FIND_COORDINATOR"),
    or kafka-configs' own wording ("The INCREMENTAL_ALTER_CONFIGS API is not supported by the cluster")."""
    return (UNSUPPORTED in text and "does not support" in text) or "API is not supported by the cluster" in text


def run_java(profile: str, scenario: str, bootstrap: str, **args) -> list[dict]:
    """Run one driver scenario; return its JSON events.

    Raises BrokerLacksApi when it failed on an API the broker does not offer,
    JavaError on any other failure."""
    cmd = [java(), *JVM_OPTS, "-cp", f"{compiled(profile)}{os.pathsep}{classpath(profile)}",
           MAIN, scenario, "--bootstrap", bootstrap]
    for k, v in args.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise JavaError(f"{profile} {scenario} still running after {RUN_TIMEOUT_S:.0f}s:\n"
                        f"{(e.stderr or b'')[-3000:]!r}") from None
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    errors = [e for e in events if e["ev"] == "error"]
    if errors:
        err = errors[0]
        what = f"{profile} {scenario}: {err['class']}: {err['message']}\n  " + "\n  ".join(err["chain"])
        if lacks_api("\n".join(err["chain"])):
            raise BrokerLacksApi(what)
        raise JavaError(f"{what}\nstderr:\n{proc.stderr[-3000:]}")
    if proc.returncode != 0 or not events or events[-1]["ev"] != "end":
        raise JavaError(f"{profile} {scenario} exited {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\n"
                        f"stderr:\n{proc.stderr[-3000:]}")
    assert events[0]["ev"] == "start", events[0]
    return events


def of(events: list[dict], ev: str) -> list[dict]:
    return [e for e in events if e["ev"] == ev]


def one(events: list[dict], ev: str) -> dict:
    found = of(events, ev)
    assert len(found) == 1, f"want one {ev!r} event, got {found}"
    return found[0]


# --- Kafka's command-line tools --------------------------------------------

# compat/kafka-tools: runs a tool by its usual name (kafka-topics, ...) on the
# `tools` classpath, as bin/NAME.sh would. The suite passes its own JVM options.
KAFKA_TOOLS = COMPAT_DIR / "kafka-tools"
# COMPAT_TOOLS_IN_PROCESS=0 starts a JVM per tool, as bin/*.sh do, to rule the server out.
IN_PROCESS = os.environ.get("COMPAT_TOOLS_IN_PROCESS", "1") != "0"
_server: ToolServer | None = None
_server_lock = threading.Lock()


def tool_server() -> ToolServer:
    global _server
    with _server_lock:
        if _server is None:
            cp = f"{compiled('tools')}{os.pathsep}{classpath('tools')}"
            log = Path(tempfile.gettempdir()) / f"samsa-tool-server-{os.getpid()}.log"
            _server = ToolServer(KAFKA_TOOLS, [java(), *SERVER_OPTS, "-cp", cp, SERVER_CLASS], log)
        return _server


def run_tool(tool: str, *args: str, input: str | None = None, timeout: float = RUN_TIMEOUT_S,
             check: bool = True) -> subprocess.CompletedProcess:
    """Run a Kafka tool by name through compat/kafka-tools (java -cp <jars> <main class>,
    as its bin/*.sh script would).

    With check, a non-zero exit raises BrokerLacksApi when the output says the
    broker lacks an API, JavaError otherwise. It runs in the suite's tool server when that
    is free (tool_server.py), in a JVM of its own otherwise."""
    proc = None
    if IN_PROCESS:
        try:
            proc = tool_server().run(tool, args, input, timeout)
        except ToolTimeout:
            raise JavaError(f"{tool} {' '.join(args)} still running after {timeout:.0f}s "
                            "(in the tool server, which was killed)") from None
        except ToolServerDied as e:
            raise JavaError(f"{tool} {' '.join(args)}: {e}") from None
    if proc is None:
        proc = run_tool_jvm(tool, *args, input=input, timeout=timeout)
    if check and proc.returncode != 0:
        what = (f"{tool} {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
                f"stderr:\n{proc.stderr[-3000:]}")
        if lacks_api(proc.stdout + proc.stderr):
            raise BrokerLacksApi(what)
        raise JavaError(what)
    return proc


def run_tool_jvm(tool: str, *args: str, input: str | None, timeout: float) -> subprocess.CompletedProcess:
    cmd = [str(KAFKA_TOOLS), tool, *args]
    env = dict(os.environ, KAFKA_TOOLS_JVM_OPTS=" ".join(JVM_OPTS))
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input, env=env,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise JavaError(f"{tool} {' '.join(args)} still running after {timeout:.0f}s:\n"
                        f"stdout: {(e.stdout or b'')[-2000:]!r}\nstderr: {(e.stderr or b'')[-2000:]!r}") from None


class JavaMember:
    """A long-running driver (`group-member` unless scenario says otherwise) whose JSON events
    are read as they come. Closing its stdin stops a group member cleanly (it leaves the group)."""

    def __init__(self, profile: str, bootstrap: str, scenario: str = "group-member", **args):
        import threading
        cmd = [java(), *JVM_OPTS, "-cp", f"{compiled(profile)}{os.pathsep}{classpath(profile)}",
               MAIN, scenario, "--bootstrap", bootstrap]
        for k, v in args.items():
            cmd += [f"--{k.replace('_', '-')}", str(v)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.events: list[dict] = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("{"):
                with self.lock:
                    self.events.append(json.loads(line))

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.events)

    def records(self) -> list[tuple[int, int]]:
        return [tuple(r) for e in self.snapshot() if e["ev"] == "records" for r in e["r"]]

    def memberships(self) -> list[dict]:
        """Each (epoch, partitions) the member reported, in order."""
        return [e for e in self.snapshot() if e["ev"] == "member"]

    def errors(self) -> list[dict]:
        return [e for e in self.snapshot() if e["ev"] == "error"]

    def stop(self, timeout: float = 30):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)
