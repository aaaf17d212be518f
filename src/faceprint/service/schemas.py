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
    "SightingOut",
    "SightingsResponse",
    "StreamIn",
    "StreamOut",
    "StreamsResponse",
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
    quality: Optional[float] = Field(
        default=None,
        description="Face quality, 0-1: the predicted chance that this face is recognised correctly (size, "
        "sharpness, exposure, pose, detector confidence; faceprint.quality). Below the service's min_quality "
        "a face is not enrolled and not decided on.",
    )


class DetectResponse(BaseModel):
    face_num: int
    face_list: list[FaceInfo]


class Candidate(BaseModel):
    name: str
    distance: float


class IdentifiedFace(FaceInfo):
    name: Optional[str] = Field(
        description="Who this is: the nearest person within the threshold, null if unknown or too poor "
        "to decide."
    )
    unknown: bool = Field(
        description="Nobody enrolled is within the threshold (false when too poor to decide)."
    )
    too_poor: bool = Field(
        default=False,
        description="The face's quality is below min_quality: no decision is made (neither a name nor unknown).",
    )
    decision: str = Field(default="unknown", description="match, unknown or too_poor.")
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
    same: bool = Field(description="Same person (false when too poor to decide: see decision).")
    decision: str = Field(default="different", description="same, different or too_poor.")
    too_poor: bool = Field(
        default=False, description="The worse face's quality is below min_quality: no decision is made."
    )
    quality: Optional[float] = Field(default=None, description="The worse of the two faces' quality, 0-1.")
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


class SightingOut(BaseModel):
    person: str
    stream: str = Field(description="The video stream's name (faceprint watch --stream).")
    event: str = Field(description="recognised (identity decided) or left (the face is gone).")
    time: str = Field(description="When, ISO-8601 UTC (2024-05-01T12:00:00.250Z).")
    distance: Optional[float] = Field(description="Descriptor distance the decision rested on; null when unknown.")


class SightingsResponse(BaseModel):
    sightings: list[SightingOut] = Field(description="Newest first.")
    total: int = Field(description="Sightings that match in all (pages: ?offset=&limit=).")


class PersonDetail(PersonOut):
    faces: list[SampleOut]


class EnrolResponse(BaseModel):
    id: int = Field(description="The new face sample's id.")
    person_id: int
    person: str
    location: Location
    face_probability: float
    quality: Optional[float] = Field(default=None, description="The enrolled face's quality, 0-1.")


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


class StreamIn(BaseModel):
    source: str | int = Field(
        description="A video file on the server, a camera index (0), or an http(s)/rtsp(s) URL OpenCV can read."
    )
    name: Optional[str] = Field(default=None, min_length=1, max_length=100, description="A label (default: the source).")
    fps: Optional[float] = Field(default=None, gt=0, le=120, description="Process at most this many frames a second.")
    every: Optional[int] = Field(default=None, ge=1, le=100, description="Run the detector on one frame in N (default 5).")


class StreamOut(BaseModel):
    id: int
    name: str
    source: str = Field(description="The source, any password in a URL hidden.")
    live: bool = Field(description="A camera or URL (reopened with back-off when it drops), not a file.")
    status: str = Field(description="starting, running, reopening, ended (a file's end), failed, or stopped.")
    fps: float = Field(description="Frames processed a second, over the last few seconds.")
    fps_cap: Optional[float]
    every: int
    frames: int = Field(description="Frames processed.")
    faces: int = Field(description="Faces in view on the latest frame.")
    faces_seen: int = Field(description="Faces that appeared so far (one per track).")
    events: int
    reconnects: int
    skipped_frames: int
    error: Optional[str] = Field(description="The last error (why it failed, or why it is reopening).")
    width: int
    height: int
    started: float = Field(description="Unix time the stream was added.")
    ended: Optional[float] = Field(description="Unix time it ended, failed or was stopped.")
    preview_url: str


class StreamsResponse(BaseModel):
    streams: list[StreamOut]
    max_streams: int
    subscribers: int = Field(description="Clients following GET /v1/events.")
    events_dropped: int = Field(description="Events dropped for clients that read too slowly, since the start.")


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
        "quality": None if det.quality is None else round(float(det.quality), 4),
    }
