"""Wire shapes of the HTTP API (pydantic models: they also write the OpenAPI schema).

These shapes are a contract other tools rely on; change them only by adding fields.
Coordinates are pixels of the uploaded image after its EXIF orientation is applied.
"""

from __future__ import annotations

import hashlib
from typing import Any, Optional

from pydantic import BaseModel, Field

from ..pose import head_pose
from ..types import Detection

__all__ = [
    "Angle",
    "Candidate",
    "DetectResponse",
    "EmbedResponse",
    "EnrolResponse",
    "ErrorResponse",
    "FaceInfo",
    "Health",
    "IdentifyResponse",
    "Location",
    "PersonDetail",
    "PersonIn",
    "PersonOut",
    "PeopleResponse",
    "SampleOut",
    "VerifyResponse",
    "face_info",
    "location",
]


class Location(BaseModel):
    left: float
    top: float
    width: float
    height: float


class Angle(BaseModel):
    """Head pose in degrees (faceprint.pose): yaw > 0 nose to the image's right, pitch > 0 looking up,
    roll > 0 head leaning clockwise."""

    yaw: float
    pitch: float
    roll: float


class FaceInfo(BaseModel):
    face_token: str = Field(description="Stable id of this face in this image (hash of the image and the box).")
    location: Location
    landmarks: Optional[list[list[float]]] = Field(
        description="5 (x, y) points: image-left eye, image-right eye, nose tip, mouth corners; null when "
        "the detector gives none."
    )
    angle: Optional[Angle] = Field(description="Head pose estimated from the landmarks; null without landmarks.")
    face_probability: float


class DetectResponse(BaseModel):
    face_num: int
    face_list: list[FaceInfo]


class Candidate(BaseModel):
    name: str
    distance: float


class IdentifiedFace(FaceInfo):
    name: Optional[str] = Field(description="Who this is: the nearest person within the threshold, null if unknown.")
    unknown: bool
    distance: Optional[float] = Field(description="Distance to the nearest enrolled person; null for an empty gallery.")
    candidates: list[Candidate] = Field(description="Nearest people first, up to top_k, whatever the threshold.")


class IdentifyResponse(BaseModel):
    face_num: int
    threshold: float
    face_list: list[IdentifiedFace]


class EmbeddedFace(FaceInfo):
    embedding: list[float]


class EmbedResponse(BaseModel):
    model: str
    metric: str
    face_num: int
    face_list: list[EmbeddedFace]


class VerifyResponse(BaseModel):
    distance: float
    threshold: float
    same: bool
    location: Location = Field(description="The face of `image` that was compared (its most central one).")
    person: Optional[PersonOut] = Field(default=None, description="The person compared against, if one was given.")


class PersonIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class PersonOut(BaseModel):
    id: int
    name: str
    samples: int = 0


class PeopleResponse(BaseModel):
    people: list[PersonOut]
    total: int = Field(description="Number of people in the gallery (pages: ?offset=&limit=).")


class SampleOut(BaseModel):
    id: int
    location: Optional[Location]
    quality: Optional[float]
    added: float
    image_url: Optional[str] = Field(description="GET it for the enrolled photo; null when none is kept.")


class PersonDetail(PersonOut):
    faces: list[SampleOut]


class EnrolResponse(BaseModel):
    id: int = Field(description="The new face sample's id.")
    person_id: int
    person: str
    location: Location
    face_probability: float


class Deleted(BaseModel):
    id: int
    deleted: bool = True
    samples_removed: int = 0


class Health(BaseModel):
    status: str
    version: str
    model: str
    detector: str
    threshold: float
    people: int
    samples: int


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_image, no_face, person_not_found.")
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


VerifyResponse.model_rebuild()


def location(box: tuple[float, ...] | list[float]) -> dict[str, float]:
    """(left, top, right, bottom) -> the wire's {left, top, width, height}, to 0.1 px."""
    left, top, right, bottom = (float(v) for v in box)
    return {"left": round(left, 1), "top": round(top, 1), "width": round(right - left, 1), "height": round(bottom - top, 1)}


def face_info(det: Detection, image_sha256: str) -> dict[str, Any]:
    """The detect entry of one face (FaceInfo)."""
    token = hashlib.sha256(f"{image_sha256}:{[round(v, 1) for v in det.box]}".encode()).hexdigest()[:32]
    angle = None
    landmarks = None
    if det.landmarks is not None:
        yaw, pitch, roll = head_pose(det.landmarks)
        angle = {"yaw": round(yaw, 1), "pitch": round(pitch, 1), "roll": round(roll, 1)}
        landmarks = [[round(float(x), 1), round(float(y), 1)] for x, y in det.landmarks]
    return {
        "face_token": token,
        "location": location(det.box),
        "landmarks": landmarks,
        "angle": angle,
        "face_probability": round(float(det.score), 4),
    }
