"""faceprint: face recognition from a photo to a decision.

    >>> import faceprint
    >>> pipe = faceprint.FacePipeline()                 # MTCNN + dlib 5-point + dlib ResNet
    >>> pipe.verify("a.jpg", "b.jpg")                   # Verification(distance, threshold, same)
    >>> known = pipe.known_faces("people/")             # one photo or sub-folder per person
    >>> pipe.identify("group.jpg", known)               # [(Face, [Match(identity, distance)])]
"""

from .decide import KnownFaces, distances, identify_embeddings, paired_distances, verify_embeddings
from .detect import get_detector, list_detectors, register_detector
from .embed import Embedder
from .errors import (
    FaceprintError,
    GalleryError,
    ImageTooLargeError,
    InvalidImageError,
    ModelError,
    NoFaceError,
    UnknownNameError,
    WeightsNotFoundError,
)
from .imageio import load_image
from .models import ModelSpec, get_model_spec, list_models, register_model
from .pipeline import FacePipeline, select_face
from .types import Detection, Embedding, Face, FaceChip, Match, Verification

__version__ = "0.1.0"

__all__ = [
    "Detection",
    "Embedder",
    "Embedding",
    "Face",
    "FaceChip",
    "FacePipeline",
    "FaceprintError",
    "GalleryError",
    "ImageTooLargeError",
    "InvalidImageError",
    "KnownFaces",
    "Match",
    "ModelError",
    "ModelSpec",
    "NoFaceError",
    "UnknownNameError",
    "Verification",
    "WeightsNotFoundError",
    "distances",
    "get_detector",
    "get_model_spec",
    "identify_embeddings",
    "list_detectors",
    "list_models",
    "load_image",
    "paired_distances",
    "register_detector",
    "register_model",
    "select_face",
    "verify_embeddings",
]
