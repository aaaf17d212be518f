"""Crash safety and concurrent writers on both backends: SIGKILL at random points, two processes
enrolling at once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from faceprint import Gallery

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

# The child enrols descriptors one transaction at a time and prints a line only after each commit.
CHILD = r"""
import sys, os, time, hashlib, numpy as np
from faceprint.gallery import Gallery
from faceprint.gallery.store import NewSample
db, tag, n, shared = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def vec(name):
    return np.random.default_rng(list(hashlib.sha256(name.encode()).digest()[:8])).standard_normal(128).astype("f4")
with Gallery(db, model="dlib-resnet-v1", timeout=30) as g:
    print("ready", flush=True)
    while len(sys.argv) > 5 and not os.path.exists(sys.argv[5]):  # start line for concurrent writers
        time.sleep(0.01)
    for i in range(n):
        name = f"{tag}-{i}"
        g.add_embeddings([name], vec(name)[None])
        print("done", name, flush=True)
        if i < shared:  # the same photo (by content hash) offered by every writer
            g.store.add([NewSample(f"shared-{i}", vec(f"shared-{i}"), sha256=f"{i:064x}")])
"""

# The real path: photos through detection and embedding, committed one by one.
CHILD_ENROL = r"""
import sys
from pathlib import Path
from faceprint.gallery import Gallery
db, paths = sys.argv[1], sys.argv[2:]
with Gallery(db) as g:
    g.enrol([(Path(p).parent.name, p) for p in paths], batch_size=1,
            on_result=lambda r: print("done", r.status, r.source, flush=True))
"""


def vec(name: str) -> np.ndarray:
    import hashlib

    return np.random.default_rng(list(hashlib.sha256(name.encode()).digest()[:8])).standard_normal(128).astype("f4")


def spawn(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Each test on both backends: a SQLite file, or a fresh database on the test PostgreSQL."""
    if request.param == "postgres":
        return request.getfixturevalue("pg").new_database()
    return tmp_path / "g.db"


def stored(db: Path | str) -> dict[str, np.ndarray]:
    """name -> descriptor of every sample, after checking the file is sound."""
    with Gallery(db) as g:
        assert g.check() == "ok"
        samples = g.samples()
        ids, vecs = g.store.vectors()
        assert [s.id for s in samples] == ids.tolist()  # every sample has its descriptor
        return {s.person: v for s, v in zip(samples, vecs)}


def test_sigkill_at_random_points_loses_only_unreported(location: Path | str) -> None:
    db = location
    Gallery(db, model="dlib-resnet-v1").close()
    rng = random.Random(4)
    reported: list[str] = []
    for round_ in range(4):
        child = spawn(CHILD, str(db), f"r{round_}", "100000", "0")
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(rng.uniform(0.0, 0.4))  # anywhere: mid-transaction, between commits, mid-print
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        child.stdout.close()
        child.stderr.close()
        done = [ln.split()[1] for ln in out.splitlines() if ln.startswith("done ")]
        reported += done
        have = stored(db)
        assert set(reported) <= set(have)
        # at most the one sample committed in the instant between its COMMIT and its report
        extra = set(have) - set(reported)
        assert extra <= {f"r{round_}-{len(done)}"}, extra
        reported += sorted(extra)
        for name, v in have.items():
            np.testing.assert_array_equal(v, vec(name))
    assert len(reported) > 4  # the kills did land after real work


def test_sigkill_during_real_enrolment(location: Path | str, data_dir: Path) -> None:
    db = location
    photos = sorted((data_dir / "5-celebrity-faces" / "val").glob("*/*.jpg"))[:12]
    child = spawn(CHILD_ENROL, str(db), *map(str, photos))
    first = child.stdout.readline()
    assert first.startswith("done enrolled"), child.stderr.read()
    time.sleep(random.Random(1).uniform(0.0, 0.5))
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate()
    child.stdout.close()
    child.stderr.close()
    done = [ln.split()[2] for ln in (first + out).splitlines() if ln.startswith("done enrolled")]
    with Gallery(db) as g:
        assert g.check() == "ok"
        sources = [s.source for s in g.samples()]
    assert set(done) <= set(sources) and len(sources) - len(done) <= 1
    assert sources == [str(p) for p in photos[: len(sources)]]  # in order, no gaps
    with Gallery(db) as g:  # rerunning picks up where it stopped: what was stored is skipped
        assert all(r.status == "duplicate" for r in g.enrol([(p.parent.name, p) for p in photos[: len(sources)]]).results)


def test_two_writers_lose_nothing(location: Path | str, tmp_path: Path) -> None:
    db = location
    Gallery(db, model="dlib-resnet-v1").close()
    go = tmp_path / "go"
    children = [spawn(CHILD, str(db), tag, "150", "10", str(go)) for tag in ("a", "b")]
    for c in children:
        assert c.stdout.readline().strip() == "ready"
    go.touch()  # both start writing at the same moment
    outs = []
    for c in children:
        out, err = c.communicate(timeout=120)
        c.stdout.close()
        c.stderr.close()
        assert c.returncode == 0, err
        outs.append(out)
    have = stored(db)
    expected = {f"{t}-{i}" for t in "ab" for i in range(150)} | {f"shared-{i}" for i in range(10)}
    assert set(have) == expected  # both writers' samples, and each shared photo once
    assert sum(ln.startswith("done ") for o in outs for ln in o.splitlines()) == 300
