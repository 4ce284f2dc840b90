"""Kafka's command-line tools run in one long-lived JVM (compat/java/src/tools), one at a time.

A tool started as a JVM of its own spends about a second of CPU loading and compiling
classes before it does anything; the suite runs a few hundred tools. The server runs them
in-process instead, as Kafka's own tests do, with what a JVM's exit does (exit code, shutdown
hooks, nothing printed after the first exit) done by the server. When it is busy (tests run
tools side by side) or cannot start, the caller starts a JVM of its own as before.
"""

from __future__ import annotations

import atexit
import os
import re
import selectors
import struct
import subprocess
import threading
import time
from pathlib import Path

SERVER_CLASS = "dev.samsa.compat.tools.ToolServer"
# A long-lived JVM: full tiered compilation pays off, unlike in a tool's one-second life.
SERVER_OPTS = ["-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
               "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"]
TOOL_CASE = re.compile(r"^\s*([a-z-]+)\) echo (\S+) ;;$", re.M)


class ToolTimeout(Exception):
    """The tool was still running at its deadline; the server was killed with it."""


class ToolServerDied(Exception):
    """The server exited while a tool ran in it: what the tool did is unknown, so it is not
    run a second time."""


class ToolServer:
    def __init__(self, kafka_tools: Path, command: list[str], log: Path):
        # compat/kafka-tools stays the one list of tool names and main classes.
        self.classes = dict(TOOL_CASE.findall(kafka_tools.read_text()))
        self.command = command
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.busy = threading.Lock()
        atexit.register(self.close)

    def run(self, tool: str, args: tuple[str, ...], input: str | None,
            timeout: float) -> subprocess.CompletedProcess | None:
        """The tool's result, or None when the server is busy, does not know the tool, or had
        exited before taking it (then a JVM of its own runs it)."""
        main_class = self.classes.get(tool.removesuffix(".sh"))
        if main_class is None or not self.busy.acquire(blocking=False):
            return None
        try:
            if self.proc is None or self.proc.poll() is not None:
                with open(self.log, "ab") as log:
                    self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE,
                                                 stdout=subprocess.PIPE, stderr=log)
            request = [_string(main_class), struct.pack(">i", len(args)), *map(_string, args),
                       _bytes((input or "").encode())]
            try:
                self.proc.stdin.write(b"".join(request))
                self.proc.stdin.flush()
            except OSError:
                self._kill()  # it died before taking the tool: a JVM of its own runs it
                return None
            try:
                deadline = time.monotonic() + timeout
                code = struct.unpack(">i", self._read(4, deadline))[0]
                out = self._read(struct.unpack(">i", self._read(4, deadline))[0], deadline)
                err = self._read(struct.unpack(">i", self._read(4, deadline))[0], deadline)
            except ToolTimeout:
                self._kill()
                raise
            except (OSError, EOFError) as e:
                self._kill()
                raise ToolServerDied(f"the tool server exited running {tool} ({e}); its log: {self.log}") from None
            return subprocess.CompletedProcess([tool, *args], code, out.decode(errors="replace"),
                                               err.decode(errors="replace"))
        finally:
            self.busy.release()

    def _read(self, n: int, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        chunks, left = [], n
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while left:
                wait = deadline - time.monotonic()
                if wait <= 0 or not sel.select(wait):
                    raise ToolTimeout()
                chunk = os.read(fd, left)
                if not chunk:
                    raise EOFError("the tool server exited")
                chunks.append(chunk)
                left -= len(chunk)
        return b"".join(chunks)

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self._kill()


def _bytes(b: bytes) -> bytes:
    return struct.pack(">i", len(b)) + b


def _string(s: str) -> bytes:
    return _bytes(s.encode())
