"""faceprint: face recognition from a photo to a decision.

    >>> import faceprint
    >>> pipe = faceprint.FacePipeline()                 # MTCNN + dlib 5-point + dlib ResNet
    >>> pipe.verify("a.jpg", "b.jpg")                   # Verification(distance, threshold, same)
    >>> known = pipe.known_faces("people/")             # one photo or sub-folder per person
    >>> pipe.identify("group.jpg", known)               # [(Face, [Match(identity, distance)])]
"""

from .cluster import ClusteredFaces, cluster_embeddings, cluster_images
from .decide import KnownFaces, distances, identify_embeddings, paired_distances, verify_embeddings
from .detect import get_detector, list_detectors, register_detector
from .embed import Embedder
from .errors import (
    FaceprintError,
    GalleryError,
    ImageTooLargeError,
    InvalidImageError,
    LowQualityError,
    ModelError,
    ModelMismatchError,
    NoFaceError,
    UnknownNameError,
    UnknownPersonError,
    VideoError,
    WeightsNotFoundError,
)
from .gallery import ExactIndex, Gallery, IVFIndex
from .imageio import load_image
from .models import ModelSpec, get_model_spec, list_models, register_model
from .pipeline import FacePipeline, select_face
from .plot import plot_distance_matrix, plot_embedding_map, plot_pair
from .types import Detection, Embedding, Face, FaceChip, Match, Verification
from .video import VideoRecognizer, VideoSource

__version__ = "0.1.0"

__all__ = [
    "ClusteredFaces",
    "Detection",
    "Embedder",
    "Embedding",
    "ExactIndex",
    "Face",
    "FaceChip",
    "FacePipeline",
    "FaceprintError",
    "Gallery",
    "GalleryError",
    "IVFIndex",
    "ImageTooLargeError",
    "InvalidImageError",
    "KNNFaceClassifier",
    "KnownFaces",
    "LowQualityError",
    "Match",
    "ModelError",
    "ModelMismatchError",
    "ModelSpec",
    "NoFaceError",
    "SVMFaceClassifier",
    "UnknownNameError",
    "UnknownPersonError",
    "Verification",
    "VideoError",
    "VideoRecognizer",
    "VideoSource",
    "WeightsNotFoundError",
    "cluster_embeddings",
    "cluster_images",
    "distances",
    "get_detector",
    "get_model_spec",
    "identify_embeddings",
    "list_detectors",
    "list_models",
    "load_classifier",
    "load_image",
    "paired_distances",
    "plot_distance_matrix",
    "plot_embedding_map",
    "plot_pair",
    "register_detector",
    "register_model",
    "save_classifier",
    "select_face",
    "verify_embeddings",
]

# scikit-learn takes a second to import: the classifiers load on first use, not with faceprint.
_LAZY = {name: "classify" for name in ("KNNFaceClassifier", "SVMFaceClassifier", "load_classifier", "save_classifier")}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
