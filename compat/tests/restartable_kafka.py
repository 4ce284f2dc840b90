"""A reference Apache Kafka the tests can stop (SIGTERM or SIGKILL) and start
again on the same ports and data, as conftest's SamsaBroker does for samsa.

The restart tests run against it in --against-kafka mode: the shared
COMPAT_BOOTSTRAP broker is not ours to stop, and without a real Kafka going
through the same restart a restart test is never seen to pass.
"""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
from kafka_ref import (BROKER_MAIN, JVM_OPTS, KafkaReference, KafkaReferenceError, _die_with_parent,  # noqa: E402
                       _signal_group, _tail, probe)


class RestartableKafka:
    """start() formats and starts Kafka the first time and only starts it afterwards;
    stop() and kill() end the JVM but keep its data; close() removes everything."""

    def __init__(self):
        self.ref = KafkaReference()
        self.bootstrap = None

    def start(self) -> "RestartableKafka":
        ref = self.ref
        if ref.workdir is None:
            ref.start()
            self.bootstrap = ref.bootstrap
            return self
        if ref.alive():
            raise KafkaReferenceError("Kafka already running")
        ref._out = open(ref.workdir / "kafka.out", "ab")
        ref.proc = subprocess.Popen(
            ref._java_cmd(JVM_OPTS, BROKER_MAIN, str(ref.workdir / "server.properties")),
            cwd=ref.workdir, stdin=subprocess.DEVNULL, stdout=ref._out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + ref.start_timeout
        while True:
            if ref.proc.poll() is not None:
                raise KafkaReferenceError(f"Kafka exited with {ref.proc.returncode} on restart\n{_tail(ref.log_path)}")
            try:
                probe("127.0.0.1", ref.port, timeout=2.0, cluster_id=self._cluster_id())
                return self
            except (OSError, KafkaReferenceError, struct.error) as e:
                if time.monotonic() > deadline:
                    raise KafkaReferenceError(f"Kafka not back within {ref.start_timeout:.0f}s: {e!r}\n"
                                              f"{_tail(ref.log_path)}") from None
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.ref.alive()

    def _cluster_id(self) -> str:
        for line in (self.ref.workdir / "data" / "meta.properties").read_text().splitlines():
            if line.startswith("cluster.id="):
                return line.split("=", 1)[1]
        raise KafkaReferenceError("no cluster.id in meta.properties")

    def _end(self, sig: int) -> int:
        ref = self.ref
        proc, ref.proc = ref.proc, None
        if proc is None:
            raise KafkaReferenceError("Kafka not running")
        _signal_group(proc.pid, sig)
        try:
            code = proc.wait(ref.stop_timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            raise KafkaReferenceError(f"Kafka did not exit within {ref.stop_timeout:.0f}s of signal {sig}")
        ref._out.close()
        ref._out = None
        return code

    def stop(self) -> int:
        """SIGTERM: Kafka's controlled shutdown. Returns the JVM's exit code."""
        return self._end(signal.SIGTERM)

    def kill(self) -> int:
        return self._end(signal.SIGKILL)

    def close(self) -> None:
        self.ref.stop()
