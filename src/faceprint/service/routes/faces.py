"""POST /v1/detect, /v1/embed, /v1/identify, /v1/verify: questions about the faces in a photo."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from ..errors import ApiError
from ..inputs import image_body, read_inputs, require_image
from ..schemas import DetectResponse, EmbedResponse, IdentifyResponse, VerifyResponse, face_info, location
from ..security import require_read
from .common import ERRORS, engine, infer

router = APIRouter(prefix="/v1", tags=["faces"], dependencies=[Depends(require_read)], responses=ERRORS)

_PHOTO = {"image": "The photo."}
ThresholdQ = Query(None, gt=0, le=4, description="Distance threshold (default: from far, else the gallery's, else the model's).")
FarQ = Query(None, gt=0, lt=0.5, description="Decide at this false-accept rate through the model's calibration (identify: for the gallery's size).")


@router.post("/detect", response_model=DetectResponse, openapi_extra=image_body(_PHOTO))
async def detect(request: Request) -> dict[str, Any]:
    """Every face: box, 5 landmarks, head pose (yaw, pitch, roll) and detector confidence."""
    found, _ = await read_inputs(request, ("image",))
    [(upload, detections)] = await infer(request, "detect", [("image", require_image(found))])
    return {"face_num": len(detections), "face_list": [face_info(d, upload.sha256) for d in detections]}


@router.post("/embed", response_model=EmbedResponse, openapi_extra=image_body(_PHOTO))
async def embed(request: Request) -> dict[str, Any]:
    """Every face with its descriptor (the gallery model's; compare them with its metric)."""
    found, _ = await read_inputs(request, ("image",))
    [(upload, faces)] = await infer(request, "faces", [("image", require_image(found))])
    spec = engine(request).pipeline.spec
    entries = [
        {**face_info(f.detection, upload.sha256), "embedding": [round(float(v), 6) for v in f.embedding.vector]}
        for f in faces
    ]
    return {"model": spec.name, "metric": spec.metric, "face_num": len(entries), "face_list": entries}


@router.post("/identify", response_model=IdentifyResponse, openapi_extra=image_body(_PHOTO))
async def identify(
    request: Request,
    top_k: Optional[int] = Query(None, ge=1, le=100, description="Candidates per face (default 3)."),
    threshold: Optional[float] = ThresholdQ,
    far: Optional[float] = FarQ,
) -> dict[str, Any]:
    """Who is in the photo: one entry per face, with ranked candidates and an explicit unknown (or
    too_poor: the face's quality is below min_quality, so no decision is made)."""
    eng = engine(request)
    found, _ = await read_inputs(request, ("image",))
    [(upload, faces)] = await infer(request, "faces", [("image", require_image(found))])
    k = top_k or eng.settings.top_k
    dim = eng.pipeline.spec.embedding_size
    vectors = np.stack([f.embedding.vector for f in faces]) if faces else np.zeros((0, dim), np.float32)
    qualities = [f.detection.quality for f in faces]
    thr, decided = await run_in_threadpool(eng.identify, vectors, k, threshold, far, qualities)
    entries = []
    for face, (decision, candidates) in zip(faces, decided):
        entries.append(
            {
                **face_info(face.detection, upload.sha256),
                "name": decision.identity,
                "unknown": decision.decision == "unknown",
                "too_poor": decision.too_poor,
                "decision": decision.decision,
                "distance": round(decision.distance, 6) if candidates else None,
                "candidates": [{"name": m.identity, "distance": round(m.distance, 6)} for m in candidates],
            }
        )
    return {"face_num": len(entries), "threshold": thr, "face_list": entries}


@router.post(
    "/verify",
    response_model=VerifyResponse,
    openapi_extra=image_body(
        {"image": "The photo to check.", "image2": "A second photo (or give a person)."},
        {"person_id": ("integer", "Compare with this enrolled person instead of image2."),
         "person": ("string", "Compare with the enrolled person of this name instead of image2.")},
    ),
)
async def verify(
    request: Request, threshold: Optional[float] = ThresholdQ, far: Optional[float] = FarQ
) -> dict[str, Any]:
    """1:1: is the (most central) face of `image` the same person as in `image2`, or as an enrolled person?"""
    eng = engine(request)
    found, values = await read_inputs(request, ("image", "image2"), ("person_id", "person"))
    first = require_image(found)
    if "image2" in found:
        (ua, fa), (ub, fb) = await infer(request, "faces", [("image", first), ("image2", found["image2"])])
        a, b = eng.central(fa, ua), eng.central(fb, ub, "image2")
        worse = _worse(a, b)
        result = await run_in_threadpool(
            eng.verify, a.embedding.vector, b.embedding.vector, threshold, far, worse
        )
        return {**_verdict(result), "location": location(a.detection.box)}
    person_id = await _person_id(request, values)
    [(ua, fa)] = await infer(request, "faces", [("image", first)])
    a = eng.central(fa, ua)
    result, person = await run_in_threadpool(
        eng.verify_person, a.embedding.vector, person_id, threshold, far, a.detection.quality
    )
    return {**_verdict(result), "location": location(a.detection.box), "person": vars(person)}


def _worse(*faces: Any) -> Optional[float]:
    known = [f.detection.quality for f in faces if f.detection.quality is not None]
    return min(known) if known else None


def _verdict(v: Any) -> dict[str, Any]:
    quality = None if v.quality is None else round(float(v.quality), 4)
    return {"distance": round(v.distance, 6), "threshold": v.threshold, "same": bool(v.same),
            "decision": v.decision, "too_poor": bool(v.too_poor), "quality": quality}


async def _person_id(request: Request, values: dict[str, Any]) -> int:
    if "person_id" in values:
        raw = values["person_id"]
        if isinstance(raw, bool) or not str(raw).strip().isdigit() or int(str(raw).strip()) >= 2**63:
            raise ApiError(422, "invalid_request", f"person_id must be a positive integer, got {raw!r}")
        return int(str(raw).strip())
    if "person" in values:
        wanted = str(values["person"])
        pid = await run_in_threadpool(engine(request).person_id, wanted)
        if pid is not None:
            return pid
        raise ApiError(404, "person_not_found", f"no person named {wanted!r}; GET /v1/people lists who is enrolled")
    raise ApiError(400, "missing_image", "verify needs a second photo (image2) or a person (person_id or person)")
