"""Helpers shared by the benchmark scripts: data paths, peers venv, machine name, result files."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PEERS_PY = Path(os.environ.get("FACEPRINT_PEERS_VENV", Path.home() / ".cache" / "faceprint-peers" / "venv")) / "bin" / "python"


def data_root() -> Path:
    root = Path(os.environ.get("FACEPRINT_DATA") or REPO.parent / "shared" / "data")
    if not (root / "lfw").is_dir():
        sys.exit(f"face data not found at {root}: set FACEPRINT_DATA to the shared data folder")
    return root


def lfw_sample(n: int) -> list[Path]:
    """The first image of the first n people of LFW (sorted): a fixed, reproducible sample."""
    people = sorted((data_root() / "lfw" / "lfw-deepfunneled").iterdir())
    return [sorted(p.glob("*.jpg"))[0] for p in people[:n]]


def machine() -> str:
    """A short machine name for result files: CPU model and core count."""
    model = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = re.search(r"model name\s*:\s*(.+)", text).group(1)  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:40]
    return f"{slug}-{os.cpu_count()}cpu"


def peers_available() -> bool:
    if not PEERS_PY.exists():
        return False
    return subprocess.run([str(PEERS_PY), "-c", "import dlib, face_recognition"], capture_output=True).returncode == 0


def run_peer(*args: str) -> dict:
    """Run benchmarks/peers/worker.py in the peers venv and parse its JSON line."""
    out = subprocess.run(
        [str(PEERS_PY), str(REPO / "benchmarks" / "peers" / "worker.py"), *args],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{machine()}.json"
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table (pastes into issues and READMEs as is)."""
    fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


@contextlib.contextmanager
def postgres_database(name: str, settings: dict[str, str] | None = None) -> Iterator[tuple[str, list[int]]]:
    """A fresh database ``name`` on FACEPRINT_TEST_PG_URL's server, else on a PostgreSQL 16 +
    pgvector started here from the pgserver wheel: (its URL, the server's postmaster pid or []).
    ``settings`` (e.g. ``{"shared_buffers": "4GB"}``) go into the started server's configuration
    (ALTER SYSTEM, then a restart), as an admin would size a real one."""
    import tempfile
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    url = os.environ.get("FACEPRINT_TEST_PG_URL")
    server, pids = None, []
    if not url:
        import pgserver

        folder = Path(tempfile.mkdtemp(prefix="fp-pg-"))
        server = pgserver.get_server(folder, cleanup_mode="stop")
        if settings:
            with psycopg.connect(server.get_uri(), autocommit=True) as conn:
                for key, value in settings.items():
                    conn.execute(f"ALTER SYSTEM SET {key} = '{value}'")
            server.cleanup()  # the last handle: stops the server; the next get_server starts it again
            server = pgserver.get_server(folder, cleanup_mode="stop")
        url = server.get_uri()
        pid_file = folder / "postmaster.pid"
        pids = [int(pid_file.read_text().split()[0])] if pid_file.is_file() else []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(urlsplit(url)._replace(path="/" + name)), pids
    finally:
        if server is not None:
            server.cleanup()
            import shutil

            shutil.rmtree(folder, ignore_errors=True)  # the server's data: GBs after a 1M-face run


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its children (a PostgreSQL server's backends), MB."""
    import psutil

    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 1e6
