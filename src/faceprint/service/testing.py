"""Run a real ``faceprint serve`` in a subprocess on a free loopback port (tests, benchmarks)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["EventReader", "free_port", "running_server"]


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


class EventReader:
    """``GET /v1/events`` read in a thread: every record kept (``records``), counted by kind
    (``counts``), and the server's drop notices summed (``dropped``). Connected (the server's
    first comment seen) when the constructor returns, so no event of a stream started after it is
    missed."""

    def __init__(self, base: str, key: str | None = None, *, timeout: float = 30.0) -> None:
        import httpx

        self.records: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}
        self.dropped = 0
        self.content_type = ""
        headers = {"X-API-Key": key} if key else {}
        self._client = httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(120, read=None))
        self._ready = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("GET /v1/events did not answer")

    def _read(self) -> None:
        import httpx

        try:
            with self._client.stream("GET", "/v1/events") as r:
                self._response = r
                self.content_type = r.headers.get("content-type", "")
                dropped_next = False
                for line in r.iter_lines():
                    if line.startswith(": connected"):
                        self._ready.set()
                    elif line == "event: dropped":
                        dropped_next = True
                    elif line.startswith("data: "):
                        record = json.loads(line[len("data: "):])
                        if dropped_next:
                            self.dropped += record["dropped"]
                            dropped_next = False
                        else:
                            self.records.append(record)
                            self.counts[record["kind"]] = self.counts.get(record["kind"], 0) + 1
        except (httpx.HTTPError, RuntimeError, OSError, AttributeError):
            pass  # closed by close()
        finally:
            self._ready.set()

    def of(self, stream_id: int) -> list[dict[str, Any]]:
        """The records of one stream, in order."""
        return [r for r in list(self.records) if r["stream"] == stream_id]

    def close(self) -> None:
        # Closing a socket does not wake a thread blocked reading it; shutting it down does.
        stream = self._response.extensions.get("network_stream") if self._response is not None else None
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(10)
        self._client.close()
