"""The compat/go test binary, built once per session and started early.

Building it takes about half a minute of CPU on a fresh machine (an empty Go build cache).
The suite starts the build as soon as it knows a selected test needs it, in a thread of its
own, so that it overlaps the first tests (which mostly wait on brokers and clients) instead
of holding up the first Go test.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

GO_DIR = Path(__file__).resolve().parent.parent / "go"

_lock = threading.Lock()
_thread: threading.Thread | None = None
_result: dict = {}


def _build() -> None:
    go = shutil.which("go")
    if go is None:
        _result["error"] = "go not found: run compat/install.sh"
        return
    where = tempfile.mkdtemp(prefix="samsa-go-")
    atexit.register(shutil.rmtree, where, ignore_errors=True)
    binary = Path(where) / "compat.test"
    env = dict(os.environ, GOFLAGS="-mod=readonly")  # go.sum is the lock: never resolve anew here
    try:
        proc = subprocess.run([go, "test", "-c", "-o", str(binary), "."], cwd=GO_DIR, env=env,
                              capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        _result["error"] = f"go test -c in {GO_DIR} still running after 600 s"
        return
    if proc.returncode != 0:
        _result["error"] = f"go test -c in {GO_DIR} failed:\n{proc.stdout}\n{proc.stderr}"
    else:
        _result["binary"] = binary


def start() -> None:
    """Starts the build, once."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_build, name="go-build", daemon=True)
            _thread.start()


def binary() -> Path:
    """The built binary, waiting for the build (starting it if nothing did)."""
    start()
    _thread.join()
    assert "binary" in _result, _result.get("error")
    return _result["binary"]
