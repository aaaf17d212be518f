"""Run a real ``faceprint serve`` in a subprocess on a free loopback port (tests, benchmarks)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["free_port", "running_server"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(
    db: Path | str, env: Mapping[str, str] | None = None, *, log: Path | None = None, startup_timeout: float = 180.0,
    nice: int = 0,
) -> Iterator[str]:
    """Start ``faceprint serve --db db`` and yield its base URL once /healthz answers; stop it after.

    db: a SQLite file or a postgresql:// URL. env: extra ``FACEPRINT_*`` settings. The server's output
    goes to ``log`` (default: beside a SQLite db, else a temporary file).
    """
    port = free_port()
    if log is None:
        log = db.with_name(db.name + ".log") if isinstance(db, Path) else Path(tempfile.mkstemp(suffix=".log")[1])
    cmd = [sys.executable, "-c", "from faceprint.cli import main; main()", "serve", "--db", str(db),
           "--port", str(port), "--log-level", "warning"]
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"faceprint serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"faceprint serve did not answer within {startup_timeout:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
