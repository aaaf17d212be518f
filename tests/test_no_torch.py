"""Recognition without torch: every command but `train` runs with torch blocked from import, and
the core install does not pull torch in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
import uuid
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from faceprint.service.testing import running_server


@pytest.fixture(scope="module")
def no_torch_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment whose Python finds a `torch` that refuses to import (first on PYTHONPATH)."""
    shim = tmp_path_factory.mktemp("block-torch")
    (shim / "torch").mkdir()
    (shim / "torch" / "__init__.py").write_text('raise ImportError("torch is blocked for this test")\n')
    path = os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path}


def faceprint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from faceprint.cli import main; main()", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_torch_really_is_blocked(no_torch_env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-c", "import torch"], env=no_torch_env, capture_output=True, text=True)
    assert done.returncode != 0 and "blocked" in done.stderr


def test_cli_and_gallery_work_without_torch(no_torch_env: dict[str, str], data_dir: Path, tmp_path: Path) -> None:
    lfw = data_dir / "lfw" / "lfw-deepfunneled"
    a, b = lfw / "Tony_Blair" / "Tony_Blair_0001.jpg", lfw / "Tony_Blair" / "Tony_Blair_0002.jpg"
    other = lfw / "George_W_Bush" / "George_W_Bush_0001.jpg"

    done = faceprint(no_torch_env, "detect", str(data_dir / "misc" / "obama.jpg"), "--json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)[0]["faces"]) >= 1

    for detector in ("mmod", "haar"):
        done = faceprint(no_torch_env, "detect", str(a), "--detector", detector, "--json")
        assert done.returncode == 0 and len(json.loads(done.stdout)[0]["faces"]) == 1, done.stderr

    done = faceprint(no_torch_env, "verify", str(a), str(b), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["same"] is True
    done = faceprint(no_torch_env, "verify", str(a), str(other), "--json")
    assert json.loads(done.stdout)["same"] is False

    known = tmp_path / "known"
    known.mkdir()
    shutil.copy(b, known / "tony.jpg")
    shutil.copy(other, known / "george.jpg")
    done = faceprint(no_torch_env, "identify", "--known", str(known), str(a), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["faces"][0]["identity"] == "tony"

    db = tmp_path / "g.db"
    done = faceprint(no_torch_env, "gallery", "--db", str(db), "enrol", "--name", "tony", str(b))
    assert done.returncode == 0, done.stderr
    done = faceprint(no_torch_env, "gallery", "--db", str(db), "identify", str(a), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["faces"][0]["identity"] == "tony"

    done = faceprint(no_torch_env, "train", "--data", str(known), "--out", str(tmp_path / "run"))  # the one that needs torch
    assert done.returncode == 2 and "faceprint[train]" in done.stderr, done.stderr


def test_service_works_without_torch(no_torch_env: dict[str, str], data_dir: Path, tmp_path: Path) -> None:
    photo = (data_dir / "misc" / "obama.jpg").read_bytes()
    extra = {k: v for k, v in no_torch_env.items() if k == "PYTHONPATH"}
    with running_server(tmp_path / "svc.db", env=extra) as url:
        boundary = uuid.uuid4().hex
        body = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"o.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode() + photo + f"\r\n--{boundary}--\r\n".encode()
        req = urllib.request.Request(
            f"{url}/v1/detect", data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            assert resp.status == 200
            assert json.loads(resp.read())["face_num"] >= 1


def _requirement_closure(dist: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """Names of the installed distributions that ``dist`` (with ``extras``) pulls in, itself included."""
    seen: set[str] = set()
    todo = [(dist, extras)]
    while todo:
        name, ex = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            reqs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # an optional dependency that is not installed here: not pulled in either
        for raw in reqs:
            req = Requirement(raw)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (ex or {""})):
                todo.append((req.name, frozenset(req.extras)))
    return seen


def test_core_install_has_no_torch() -> None:
    core = _requirement_closure("faceprint")
    assert "torch" not in core, sorted(core)
    assert {"onnxruntime", "onnx", "numpy"} <= core
    assert "torch" in _requirement_closure("faceprint", frozenset({"train"}))
