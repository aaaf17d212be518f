"""FaceNet-family architectures: sizes, published layouts, loaders, download-on-first-use."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from faceprint import Embedder, WeightsNotFoundError, get_model_spec
from faceprint.align import OPENFACE_3PT_TEMPLATE, extract_openface_chip
from faceprint.errors import ModelError
from faceprint.models import WeightsSource
from faceprint.models.inception_resnet_v1 import InceptionResnetV1, load_inception_resnet_v1
from faceprint.models.openface import OpenFaceNN4Small2, keras_parameter_count, load_openface_csv

# fr_utils.WEIGHTS of the seeds (Keras-OpenFace): every layer that has a CSV file, in their order.
KERAS_LAYERS = [
    "conv1", "bn1", "conv2", "bn2", "conv3", "bn3",
    "inception_3a_1x1_conv", "inception_3a_1x1_bn", "inception_3a_pool_conv", "inception_3a_pool_bn",
    "inception_3a_5x5_conv1", "inception_3a_5x5_conv2", "inception_3a_5x5_bn1", "inception_3a_5x5_bn2",
    "inception_3a_3x3_conv1", "inception_3a_3x3_conv2", "inception_3a_3x3_bn1", "inception_3a_3x3_bn2",
    "inception_3b_3x3_conv1", "inception_3b_3x3_conv2", "inception_3b_3x3_bn1", "inception_3b_3x3_bn2",
    "inception_3b_5x5_conv1", "inception_3b_5x5_conv2", "inception_3b_5x5_bn1", "inception_3b_5x5_bn2",
    "inception_3b_pool_conv", "inception_3b_pool_bn", "inception_3b_1x1_conv", "inception_3b_1x1_bn",
    "inception_3c_3x3_conv1", "inception_3c_3x3_conv2", "inception_3c_3x3_bn1", "inception_3c_3x3_bn2",
    "inception_3c_5x5_conv1", "inception_3c_5x5_conv2", "inception_3c_5x5_bn1", "inception_3c_5x5_bn2",
    "inception_4a_3x3_conv1", "inception_4a_3x3_conv2", "inception_4a_3x3_bn1", "inception_4a_3x3_bn2",
    "inception_4a_5x5_conv1", "inception_4a_5x5_conv2", "inception_4a_5x5_bn1", "inception_4a_5x5_bn2",
    "inception_4a_pool_conv", "inception_4a_pool_bn", "inception_4a_1x1_conv", "inception_4a_1x1_bn",
    "inception_4e_3x3_conv1", "inception_4e_3x3_conv2", "inception_4e_3x3_bn1", "inception_4e_3x3_bn2",
    "inception_4e_5x5_conv1", "inception_4e_5x5_conv2", "inception_4e_5x5_bn1", "inception_4e_5x5_bn2",
    "inception_5a_3x3_conv1", "inception_5a_3x3_conv2", "inception_5a_3x3_bn1", "inception_5a_3x3_bn2",
    "inception_5a_pool_conv", "inception_5a_pool_bn", "inception_5a_1x1_conv", "inception_5a_1x1_bn",
    "inception_5b_3x3_conv1", "inception_5b_3x3_conv2", "inception_5b_3x3_bn1", "inception_5b_3x3_bn2",
    "inception_5b_pool_conv", "inception_5b_pool_bn", "inception_5b_1x1_conv", "inception_5b_1x1_bn",
    "dense_layer",
]  # fmt: skip


def _randomise_bn(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial running statistics so a loader that skips them is caught."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def test_nn4_small2_has_the_seeds_parameter_count() -> None:
    model = OpenFaceNN4Small2()
    assert keras_parameter_count(model) == 3_743_280  # "Total Params: 3743280" in the seeds
    assert list(model.keras_layers()) == sorted(KERAS_LAYERS, key=list(model.keras_layers()).index)
    assert set(model.keras_layers()) == set(KERAS_LAYERS)
    out = model.eval()(torch.rand(2, 3, 96, 96))
    assert out.shape == (2, 128) and torch.allclose(out.norm(dim=1), torch.ones(2))


def test_openface_loader_reads_the_per_layer_csv_export(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = OpenFaceNN4Small2()
    _randomise_bn(ref, 1)
    ref.eval()
    folder = tmp_path / "weights"
    folder.mkdir()

    # Written the way the seeds' files are laid out: conv weights flattened (out, in, kh, kw),
    # dense weight (128, 736), batch norms as _w/_b/_m/_v, dense as dense_w / dense_b.
    def write(stem: str, t: torch.Tensor) -> None:  # %.9g round-trips float32 exactly
        np.savetxt(
            folder / f"{stem}.csv", t.detach().numpy().reshape(t.shape[0], -1), delimiter=",", fmt="%.9g"
        )

    for name, module in ref.keras_layers().items():
        stem = "dense" if name == "dense_layer" else name
        write(f"{stem}_w", module.weight)
        write(f"{stem}_b", module.bias[None])
        if "bn" in name:
            write(f"{name}_m", module.running_mean[None])
            write(f"{name}_v", module.running_var[None])
    assert len(list(folder.iterdir())) == 2 * 75 + 2 * 37  # 38 convs + dense: w, b; 36 bns: w, b, m, v
    loaded = load_openface_csv(folder)
    x = torch.rand(3, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), ref(x), atol=1e-6, rtol=1e-5)
    (folder / "inception_4e_5x5_bn2_v.csv").unlink()
    with pytest.raises(ModelError, match="inception_4e_5x5_bn2_v.csv"):
        load_openface_csv(folder)
    with pytest.raises(WeightsNotFoundError, match="--weights PATH"):
        load_openface_csv(tmp_path / "nowhere")


def test_inception_resnet_v1_loads_a_facenet_pytorch_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = InceptionResnetV1()
    _randomise_bn(ref, 2)
    ref.eval()
    state = ref.state_dict()
    names = list(state)
    # facenet-pytorch's published key names and shapes (spot checks over the whole trunk)
    assert names[:5] == ["conv2d_1a.conv.weight", "conv2d_1a.bn.weight", "conv2d_1a.bn.bias",
                         "conv2d_1a.bn.running_mean", "conv2d_1a.bn.running_var"]  # fmt: skip
    expected = {
        "repeat_1.4.branch2.2.conv.weight": (32, 32, 3, 3),
        "mixed_6a.branch1.2.conv.weight": (256, 192, 3, 3),
        "repeat_2.9.branch1.1.conv.weight": (128, 128, 1, 7),
        "repeat_2.9.conv2d.bias": (896,),
        "mixed_7a.branch2.2.bn.running_var": (256,),
        "repeat_3.4.branch1.2.conv.weight": (192, 192, 3, 1),
        "block8.conv2d.weight": (1792, 384, 1, 1),
        "last_linear.weight": (512, 1792),
        "last_bn.running_mean": (512,),
    }
    assert {k: tuple(state[k].shape) for k in expected} == expected
    assert sum(p.numel() for p in ref.parameters()) == 23_482_624
    # the published files also hold the softmax head and (old torch) no num_batches_tracked
    published = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    published["logits.weight"] = torch.zeros(8631, 512)
    published["logits.bias"] = torch.zeros(8631)
    path = tmp_path / "20180402-114759-vggface2.pt"
    torch.save(published, path)
    loaded = load_inception_resnet_v1(path)
    x = torch.rand(2, 3, 160, 160)
    with torch.no_grad():
        out = loaded(x)
        torch.testing.assert_close(out, ref(x), atol=1e-5, rtol=1e-5)
    assert out.shape == (2, 512) and torch.allclose(out.norm(dim=1), torch.ones(2))
    del published["block8.conv2d.weight"]
    torch.save(published, path)
    with pytest.raises(ModelError, match="block8.conv2d.weight"):
        load_inception_resnet_v1(path)


def test_registry_entries_carry_published_sources_and_preprocessing() -> None:
    vgg = get_model_spec("facenet-inception-resnet-v1-vggface2")
    assert (
        vgg.weights.url
        == "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt"
    )
    assert vgg.weights.sha256 == "281cebca8662831adb987a874bdcb36e73f5b1c6dc5ee5878f305e985625d99b"
    casia = get_model_spec("facenet-inception-resnet-v1-casia-webface")
    assert casia.weights.sha256.startswith("7a67afdbbc99") and casia.weights.url.endswith("casia-webface.pt")
    assert (vgg.chip_size, vgg.embedding_size) == (160, 512)
    of = get_model_spec("openface-nn4-small2-v1")
    assert (of.chip_size, of.embedding_size, of.alignment) == (96, 128, "openface-3pt")
    chips = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
    net = of.build_untrained().eval()
    np.testing.assert_allclose(net.preprocess(chips).numpy(), chips.transpose(0, 3, 1, 2) / 255.0, atol=1e-6)
    assert Embedder(of, net=net).embed(chips).shape == (2, 128)


def test_download_checks_sha256_and_offline_fails_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEPRINT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FACEPRINT_OFFLINE", raising=False)
    payload = tmp_path / "served.bin"
    payload.write_bytes(b"weights" * 100)
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    good = WeightsSource(filename="w.bin", sha256=digest, licence="test", url=payload.as_uri())
    assert not good.available()
    path = good.resolve()
    assert path == good.cache_path() and path.read_bytes() == payload.read_bytes() and good.available()
    bad = WeightsSource(filename="x.bin", sha256="0" * 64, licence="test", url=payload.as_uri())
    with pytest.raises(ModelError, match="sha256"):
        bad.resolve()
    assert not bad.cache_path().exists() and not list(bad.cache_path().parent.glob("*.part"))
    unreachable = WeightsSource(
        filename="20180402-114759-vggface2.pt", sha256=digest, licence="t", url="http://127.0.0.1:9/x.pt"
    )
    with pytest.raises(WeightsNotFoundError, match=r"20180402-114759-vggface2\.pt.*--weights PATH"):
        unreachable.resolve()
    monkeypatch.setenv("FACEPRINT_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="FACEPRINT_OFFLINE"):
        get_model_spec("facenet-inception-resnet-v1-casia-webface").build()


def test_openface_alignment_puts_eyes_and_nose_on_the_template() -> None:
    img = np.zeros((200, 200, 3), np.uint8)
    # dlib 5-point order: right-eye outer, right-eye inner, left-eye outer, left-eye inner, nose base
    pts = np.array([[140.0, 80], [120, 80], [60, 80], [80, 80], [100, 130]])
    chip = extract_openface_chip(img, pts, size=96)
    back = chip.transform @ np.c_[OPENFACE_3PT_TEMPLATE * 96, np.ones(3)].T  # chip -> image
    np.testing.assert_allclose(back.T, pts[[2, 0, 4]], atol=1e-3)
    assert chip.pixels.shape == (96, 96, 3)
