"""dlib's ResNet-29 descriptor in PyTorch (faceprint.models.dlib_resnet).

Bit-level equivalence with dlib is checked elsewhere from committed reference values; these tests
cover shapes, batching, input handling and a real-face sanity check on LFW.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faceprint._resources import package_file
from faceprint.errors import InvalidImageError, ModelError
from faceprint.models.dlib_resnet_torch import (
    DlibResNet,
    _zero_extend_add,
    dlib_resnet_descriptors,
    load_dlib_resnet,
)


@pytest.fixture(scope="module")
def model() -> DlibResNet:
    return load_dlib_resnet()


def _random_chips(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 150, 150, 3), dtype=np.uint8)


def _lfw_chip(data_dir: Path, person: str, index: int) -> np.ndarray:
    """Central 150x150 crop of a 250x250 deep-funneled LFW image (the face is roughly centred)."""
    path = data_dir / "lfw" / "lfw-deepfunneled" / person / f"{person}_{index:04d}.jpg"
    return np.asarray(Image.open(path).convert("RGB"))[50:200, 50:200].copy()


def test_model_structure(model: DlibResNet) -> None:
    assert not model.training
    params = list(model.parameters())
    assert all(p.requires_grad for p in params)  # trainable, for fine-tuning later
    # 5,614,592 stored minus 7,104 affine gamma/beta folded into 3,552 conv biases
    assert sum(p.numel() for p in params) == 5_607_488
    assert model.mean_rgb == tuple(float(np.float32(v)) for v in (122.782, 117.001, 104.298))


def test_output_shape(model: DlibResNet) -> None:
    chips = _random_chips(3)
    with torch.inference_mode():
        out = model(model.preprocess(chips))
    assert out.shape == (3, 128) and out.dtype == torch.float32
    desc = dlib_resnet_descriptors(model, chips)
    assert desc.shape == (3, 128) and desc.dtype == np.float32
    np.testing.assert_allclose(desc, out.numpy(), atol=1e-6)
    assert dlib_resnet_descriptors(model, chips[0]).shape == (1, 128)  # one chip without batch axis


def test_batch_equals_single(model: DlibResNet) -> None:
    chips = _random_chips(3, seed=1)
    batched = dlib_resnet_descriptors(model, chips, batch_size=32)
    chunked = dlib_resnet_descriptors(model, chips, batch_size=2)
    single = np.concatenate([dlib_resnet_descriptors(model, c[None]) for c in chips])
    np.testing.assert_allclose(batched, single, atol=1e-5, rtol=0)
    np.testing.assert_allclose(chunked, single, atol=1e-5, rtol=0)


def test_channels_last_matches_reference(model: DlibResNet) -> None:
    plain = load_dlib_resnet(channels_last=False)  # NCHW reference path
    assert plain.stem.weight.is_contiguous()
    assert model.stem.weight.is_contiguous(memory_format=torch.channels_last)
    chips = _random_chips(2, seed=2)
    np.testing.assert_allclose(
        dlib_resnet_descriptors(model, chips), dlib_resnet_descriptors(plain, chips), atol=1e-5, rtol=0
    )


def test_preprocess(model: DlibResNet) -> None:
    chips = np.zeros((2, 150, 150, 3), np.uint8)
    chips[1, 3, 4] = (255, 0, 10)
    x = model.preprocess(chips)
    assert x.shape == (2, 3, 150, 150) and x.dtype == torch.float32
    mean = np.float32(model.mean_rgb)
    expect = (np.float32([255, 0, 10]) - mean) / np.float32(256)  # (pixel - avg) / 256, RGB order
    np.testing.assert_array_equal(x[1, :, 3, 4].numpy(), expect)
    np.testing.assert_array_equal(x[0, :, 0, 0].numpy(), -mean / np.float32(256))
    gray = model.preprocess(np.full((150, 150), 7, np.uint8))  # gray is expanded to RGB
    assert gray.shape == (1, 3, 150, 150)
    with pytest.raises(InvalidImageError, match="uint8"):
        model.preprocess(chips.astype(np.float32))
    with pytest.raises(InvalidImageError, match="shape"):
        model.preprocess(np.zeros((1, 160, 160, 3), np.uint8))


def test_zero_extending_add() -> None:
    a = torch.ones(1, 2, 1, 1)
    b = torch.full((1, 1, 2, 2), 10.0)
    out = _zero_extend_add(a, b)
    assert out.shape == (1, 2, 2, 2)
    expect = torch.tensor([[[[11.0, 10.0], [10.0, 10.0]], [[1.0, 0.0], [0.0, 0.0]]]])
    assert torch.equal(out, expect)


def test_wrong_model_file_raises(tmp_path: Path) -> None:
    mmod = package_file("face_recognition_models", "models/mmod_human_face_detector.dat")
    with pytest.raises(ModelError, match="not dlib's face recognition ResNet"):
        load_dlib_resnet(mmod)
    with pytest.raises(ModelError):
        load_dlib_resnet(tmp_path / "missing.dat")


def test_mirrored_chip_close_not_equal(model: DlibResNet, data_dir: Path) -> None:
    chip = _lfw_chip(data_dir, "Colin_Powell", 1)
    desc = dlib_resnet_descriptors(model, np.stack([chip, chip[:, ::-1]]))
    dist = float(np.linalg.norm(desc[0] - desc[1]))
    assert 1e-3 < dist < 0.4  # same face: well under dlib's 0.6 threshold, but not identical


def test_real_faces_same_person_closer(model: DlibResNet, data_dir: Path) -> None:
    people = ["Colin_Powell", "Serena_Williams", "George_W_Bush"]
    chips = np.stack([_lfw_chip(data_dir, p, i) for p in people for i in (1, 2)])
    desc = dlib_resnet_descriptors(model, chips)
    norms = np.linalg.norm(desc, axis=1)
    assert np.all((norms > 1.0) & (norms < 2.0))  # raw fc output, not L2-normalised
    dist = np.linalg.norm(desc[:, None] - desc[None], axis=2)
    same = [dist[2 * k, 2 * k + 1] for k in range(len(people))]
    different = [dist[i, j] for i in range(6) for j in range(6) if i // 2 != j // 2]
    assert max(same) < min(different)
