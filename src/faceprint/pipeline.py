"""The facade: image -> detections -> aligned chips -> embeddings -> decisions.

Stages never import each other; this module composes them. Everything is batched underneath:
the single-image calls are thin wrappers over the batch ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from . import align
from .decide import KnownFaces, identify_embeddings, quality_floor, verify_embeddings
from .detect import Detector, detector_weights, get_detector, list_detectors
from .embed import make_embedder
from .errors import FaceprintError, InvalidImageError, LowQualityError, NoFaceError
from .imageio import DEFAULT_MAX_PIXELS, ImageSource, describe_source, load_image
from .models import DEFAULT_MODEL, ModelSpec, get_model_spec
from .quality import DEFAULT_MIN_QUALITY, EMBEDDED_VERSION, assess, norm_member, reassess
from .shape_predictor import ShapePredictor
from .types import Detection, Embedding, Face, FaceChip, Match, Verification

__all__ = ["FacePipeline", "IMAGE_SUFFIXES", "select_face"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

Selection = Literal["center", "largest", "best"]


def select_face(detections: Sequence[Detection], image_shape: tuple[int, ...], rule: Selection = "center") -> int:
    """Index of the one face to use when an image must stand for one person.

    center: nearest the image centre (what LFW intends); largest: biggest box; best: top score.
    """
    if not detections:
        raise NoFaceError("no face to select")
    if rule == "best":
        return int(np.argmax([d.score for d in detections]))
    if rule == "largest":
        return int(np.argmax([d.width * d.height for d in detections]))
    cy, cx = image_shape[0] / 2.0, image_shape[1] / 2.0
    return int(np.argmin([(d.center[0] - cx) ** 2 + (d.center[1] - cy) ** 2 for d in detections]))


class FacePipeline:
    """Detection, alignment and embedding with one model's preprocessing contract.

    detector: registered detector name ("mtcnn", "yunet", "mmod", "haar", ...) or an instance;
        None: the model's own (``ModelSpec.detector``, the one its threshold was calibrated with)
        with the rotation search ("<name>-upright"): photos where it finds no face are searched
        again turned by 90, 180 and 270 degrees, so sideways photos work and upright ones cost
        nothing more (benchmarks/bench_rotation.py).
    model: registered embedding model name or spec; weights: explicit weights file.
    landmarks: "detector" aligns on the detector's own 5 points (MTCNN's eye centres, nose and
        mouth corners mapped through dlib's mean face); "sp5" runs dlib's 5-point shape predictor
        inside each box. Detectors without points (MMOD, Haar) always use "sp5". On LFW (10 folds,
        MTCNN, flip) "detector" scores 99.22% against 99.00% for "sp5": the predictor was trained
        on dlib's boxes, not MTCNN's.
    threads: CPU threads of the networks (detector and embedder); max_pixels: image size guard.
    flip: mirror test-time augmentation (mean of the chip's and its mirror's descriptors): twice
        the network time for +0.3 points of LFW accuracy with dlib's ResNet. None: the model's own
        choice (``ModelSpec.flip``: on for single models, off for the default fusion).
    jitter: also average over this many perturbed copies of each chip (dlib's ``num_jitters``);
        each costs one more network pass per face.
    accept_licence: names of non-commercial licences accepted for opt-in models (``arcface-mbf``).
    min_quality: the quality floor (:mod:`faceprint.quality`): enrolment refuses faces below it
        (:class:`LowQualityError`) and verify/identify answer "too poor to decide" for them.
        None: ``quality.DEFAULT_MIN_QUALITY``; 0 turns the floor off.
    """

    def __init__(
        self,
        detector: str | Detector | None = None,
        model: str | ModelSpec = DEFAULT_MODEL,
        *,
        weights: str | Path | None = None,
        landmarks: Literal["sp5", "detector"] = "detector",
        threads: int | None = None,
        flip: bool | None = None,
        jitter: int = 0,
        batch_size: int = 32,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        accept_licence: str | Iterable[str] | None = None,
        min_quality: float | None = None,
    ) -> None:
        if landmarks not in ("sp5", "detector"):
            raise ValueError(f"landmarks must be 'detector' or 'sp5', got {landmarks!r}")
        min_quality = DEFAULT_MIN_QUALITY if min_quality is None else float(min_quality)
        if not 0.0 <= min_quality <= 1.0:
            raise ValueError(f"min_quality must be between 0 and 1, got {min_quality}")
        self.min_quality = min_quality
        spec = model if isinstance(model, ModelSpec) else get_model_spec(model)
        # the search for turned photos runs only where the detector finds nothing, so the model's
        # detector keeps its calibration on every photo where it finds a face
        detector = f"{spec.detector}-upright" if detector is None else detector
        flip = spec.flip if flip is None else flip
        if isinstance(detector, str):
            base = detector.removesuffix("-upright")
            opt_in = any(w.terms for w in detector_weights(base)) if base in list_detectors() else False
            # only detectors under non-commercial terms take (and check) accepted licences
            kwargs: dict[str, object] = {"accept_licence": accept_licence} if opt_in else {}
            detector = get_detector(detector, threads=threads, **kwargs)
        self.detector = detector
        self.embedder = make_embedder(
            spec, weights=weights, threads=threads, batch_size=batch_size, flip=flip, jitter=jitter,
            accept_licence=accept_licence,
        )
        self.spec = self.embedder.spec
        self.landmarks = landmarks
        self.max_pixels = max_pixels
        self._sp: ShapePredictor | None = None
        self.skipped: list[tuple[str, str]] = []  # (file, reason) passed over by the last enrolment

    def settings(self) -> dict[str, object]:
        """Everything that changes the descriptors (cache keys, reports)."""
        det = self.detector
        det_params = {
            k: v
            for k, v in sorted(vars(getattr(det, "inner", det)).items())  # an UprightSearch: its detector's
            if not k.startswith("_") and _plain(v)
        }
        search = {  # an UprightSearch's own settings: when and where turns are searched
            k: v
            for k, v in sorted(vars(det).items())
            if hasattr(det, "inner") and k != "name" and not k.startswith("_") and _plain(v)
        }
        return {
            "detector": det.name,
            "detector_params": det_params,
            **({"search": search} if search else {}),
            "model": self.spec.name,
            "weights": str(self.embedder.weights or ""),
            "landmarks": self.landmarks,
            "flip": self.embedder.flip,
            "jitter": self.embedder.jitter,
            "chip": [self.spec.chip_size, self.spec.padding],
            # with the descriptor's length among the cues, cached qualities follow a refit
            **({"quality": EMBEDDED_VERSION} if norm_member(self.embedder.member_specs) is not None else {}),
        }

    # -- stages -----------------------------------------------------------------------------------
    def load(self, source: ImageSource) -> np.ndarray:
        return load_image(source, max_pixels=self.max_pixels)

    @property
    def shape_predictor(self) -> ShapePredictor:
        if self._sp is None:
            self._sp = ShapePredictor.load()
        return self._sp

    def align(self, image: np.ndarray, detections: Sequence[Detection]) -> list[FaceChip]:
        """One chip per detection, in the embedding model's expected geometry (a fused model's
        first member's)."""
        return self._align_for(self.embedder.member_specs[0], image, detections)

    def member_chips(self, image: np.ndarray, detections: Sequence[Detection]) -> list[list[FaceChip]]:
        """The chips of each member model (one for plain models), each in its own geometry."""
        return [self._align_for(spec, image, detections) for spec in self.embedder.member_specs]

    def embed(self, image: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
        """(N, D) float32 descriptors of the faces at ``detections`` in one (H, W, 3) image."""
        return self.embedder.embed_members(self.member_chips(image, detections))

    def _align_for(self, spec: ModelSpec, image: np.ndarray, detections: Sequence[Detection]) -> list[FaceChip]:
        size, padding = spec.chip_size, spec.padding
        chips = []
        for det in detections:
            if spec.alignment == "arcface-112":
                chips.append(align.extract_arcface_chip(image, self._five_points(image, det), size=size))
                continue
            points = self._dlib_points(image, det)
            if spec.alignment == "openface-3pt":
                chips.append(align.extract_openface_chip(image, points, size=size))
            else:
                chips.append(align.extract_dlib_chip(image, points, size=size, padding=padding))
        return chips

    def _dlib_points(self, image: np.ndarray, det: Detection) -> np.ndarray:
        """dlib 5-point landmarks (5, 2) for one detection."""
        if self.landmarks == "detector" and det.landmarks is not None:
            return align.mtcnn_to_dlib5(det.landmarks)
        return self.shape_predictor.predict(image, align.dlib_rect(det)).astype(np.float64)

    def _five_points(self, image: np.ndarray, det: Detection) -> np.ndarray:
        """MTCNN-order points (5, 2) for one detection: the detector's, else from dlib's 5 points."""
        if self.landmarks == "detector" and det.landmarks is not None:
            return np.asarray(det.landmarks, dtype=np.float64)
        return align.dlib5_to_mtcnn(self.shape_predictor.predict(image, align.dlib_rect(det)).astype(np.float64))

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """The faces of each (H, W, 3) uint8 image, each detection with its ``quality`` measured."""
        images = list(images)
        return [assess(image, dets) for image, dets in zip(images, self.detector.detect_batch(images))]

    # -- batched path ---------------------------------------------------------------------------
    def faces_batch(self, images: Sequence[np.ndarray], keep_chips: bool = False) -> list[list[Face]]:
        """All faces of each (H, W, 3) uint8 image: detections (with quality), chips and descriptors.

        Chips of all images go through the network together, so batching pays off across images.
        """
        per_image = self.detect_batch(images)
        members: list[list[FaceChip]] = [[] for _ in self.embedder.member_specs]
        owners: list[tuple[int, Detection]] = []
        for i, (image, dets) in enumerate(zip(images, per_image)):
            for chips, more in zip(members, self.member_chips(image, dets)):
                chips.extend(more)
            owners.extend((i, det) for det in dets)
        chips = members[0]
        vectors, norms = self.embedder.embed_with_norms(members)
        k = norm_member(self.embedder.member_specs)
        if k is not None:  # the descriptor's length says more of the face's quality than the pixels
            owners = [(i, reassess(images[i], [det], norms[j : j + 1, k])[0]) for j, (i, det) in enumerate(owners)]
        out: list[list[Face]] = [[] for _ in images]
        for (i, det), chip, vec in zip(owners, chips, vectors):
            emb = Embedding(vector=vec, model_id=self.spec.name)
            out[i].append(Face(detection=det, embedding=emb, chip=chip if keep_chips else None))
        return out

    def faces(self, source: ImageSource, keep_chips: bool = False) -> list[Face]:
        """All faces in one image (empty list when there is none)."""
        return self.faces_batch([self.load(source)], keep_chips=keep_chips)[0]

    def face(self, source: ImageSource, select: Selection = "center") -> Face:
        """The one face that stands for the image; NoFaceError when there is none."""
        image = self.load(source)
        faces = self.faces_batch([image])[0]
        if not faces:
            raise NoFaceError(
                f"no face found in {describe_source(source)}; use a photo where the face is visible "
                "and at least ~40 px wide, or try another detector (--detector mmod)"
            )
        return faces[select_face([f.detection for f in faces], image.shape, select)]

    # -- decisions ------------------------------------------------------------------------------
    def verify(self, a: ImageSource, b: ImageSource, threshold: float | None = None) -> Verification:
        """1:1: are the (central) faces of two images the same person? "Too poor to decide"
        (``too_poor``) when the worse face's quality is below ``min_quality``."""
        fa, fb = self.face(a), self.face(b)
        thr = self.spec.threshold if threshold is None else threshold
        quality = min(_quality(fa), _quality(fb))
        return verify_embeddings(
            fa.embedding.vector, fb.embedding.vector, thr, self.spec.metric,
            quality=quality, min_quality=self.min_quality,
        )

    def known_faces(self, root: str | Path, on_error: str = "raise") -> KnownFaces:
        """Enrol a folder: one sub-folder per person, or one photo per person named after them."""
        return self.known_faces_from_files(iter_known_dir(root), on_error=on_error)

    def known_faces_from_files(
        self, items: Iterable[tuple[str, str | Path]], on_error: str = "raise"
    ) -> KnownFaces:
        """Enrol (person, photo) pairs; a photo with several faces gives its most central one.

        A face below ``min_quality`` is refused (:class:`LowQualityError`). on_error="skip" passes
        over unreadable, faceless or too poor files instead of raising; their paths are kept in
        ``self.skipped`` with the reason.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        pairs: list[tuple[str, np.ndarray]] = []
        sources: list[str] = []
        self.skipped = []
        items = list(items)
        for start in range(0, len(items), 32):  # photos go through the networks 32 at a time
            loaded: list[tuple[str, Path, np.ndarray]] = []
            for name, path in items[start : start + 32]:
                try:
                    loaded.append((name, Path(path), self.load(path)))
                except InvalidImageError as exc:
                    if on_error == "raise":
                        raise
                    self.skipped.append((str(path), str(exc)))
            batch = self.faces_batch([image for _, _, image in loaded])
            for (name, path, image), faces in zip(loaded, batch):
                if not faces:
                    exc = NoFaceError(f"no face found in {path}; use a photo where the face is visible")
                    if on_error == "raise":
                        raise exc
                    self.skipped.append((str(path), str(exc)))
                    continue
                k = select_face([f.detection for f in faces], image.shape, "center")
                if _quality(faces[k]) < self.min_quality:
                    low = LowQualityError.of(_quality(faces[k]), self.min_quality, str(path))
                    if on_error == "raise":
                        raise low
                    self.skipped.append((str(path), str(low)))
                    continue
                pairs.append((name, faces[k].embedding.vector))
                sources.append(str(path))
        known = KnownFaces.from_pairs(pairs, model_id=self.spec.name)
        return KnownFaces(known.names, known.vectors, tuple(sources), self.spec.name)

    def identify(
        self, source: ImageSource, known: KnownFaces, threshold: float | None = None, top_k: int = 1
    ) -> list[tuple[Face, list[Match]]]:
        """1:K for every face in the image: ranked matches, the first None when unknown (or
        ``too_poor`` when the face's quality is below ``min_quality``)."""
        if known.model_id and known.model_id != self.spec.name:
            raise FaceprintError(
                f"known faces were made with model {known.model_id!r}, this pipeline uses "
                f"{self.spec.name!r}: re-enrol them with the same model"
            )
        faces = self.faces(source)
        thr = self.spec.threshold if threshold is None else threshold
        vectors = np.stack([f.embedding.vector for f in faces]) if faces else np.zeros((0, 1), np.float32)
        ranked = identify_embeddings(vectors, known, thr, self.spec.metric, top_k=top_k)
        ranked = [quality_floor(r, _quality(f), self.min_quality) for f, r in zip(faces, ranked)]
        return list(zip(faces, ranked))


def _quality(face: Face) -> float:
    """A face's quality; one made outside the pipeline (no quality measured) passes every floor."""
    q = face.detection.quality
    return 1.0 if q is None else float(q)


def _plain(value: object) -> bool:
    """True for JSON-able settings values (numbers, strings, and tuples/lists of them)."""
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return isinstance(value, (bool, int, float, str)) or value is None


def iter_known_dir(root: str | Path) -> Iterable[tuple[str, Path]]:
    """(person, image path) pairs from a folder of photos named after people or of sub-folders."""
    root = Path(root)
    if not root.is_dir():
        raise FaceprintError(f"{root} is not a folder of known faces: give a folder of photos")
    for entry in sorted(root.iterdir()):
        if entry.is_dir():
            for path in sorted(entry.iterdir()):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    yield entry.name, path
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            yield entry.stem, entry
