"""/v1/people: the gallery's people and their face samples (changes need the admin key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from ..inputs import image_body, read_inputs, require_image
from ..schemas import Deleted, EnrolResponse, PeopleResponse, PersonDetail, PersonIn, PersonOut, location
from ..security import require_admin, require_read
from .common import ERRORS, engine, infer

router = APIRouter(prefix="/v1/people", tags=["people"], responses=ERRORS)
read = [Depends(require_read)]
admin = [Depends(require_admin)]

# SQLite row ids: bounded so a huge number is a 422, not an overflow inside SQLite.
PersonId = Path(..., ge=1, le=2**63 - 1, description="The person's id (from GET /v1/people).")
FaceId = Path(..., ge=1, le=2**63 - 1, description="The face sample's id.")


@router.get("", response_model=PeopleResponse, dependencies=read)
async def list_people(
    request: Request,
    limit: int = Query(1000, ge=1, le=10_000, description="People per page."),
    offset: int = Query(0, ge=0, le=2**63 - 1, description="People to skip (by name order)."),
) -> dict[str, Any]:
    """People enrolled, by name, with their number of face samples: a page of ``limit`` from ``offset``."""
    people, total = await run_in_threadpool(engine(request).people, limit, offset)
    return {"people": [vars(p) for p in people], "total": total}


@router.post("", response_model=PersonOut, status_code=201, dependencies=admin)
async def create_person(request: Request, body: PersonIn) -> dict[str, Any]:
    """Add a person (no faces yet): answers 201 with their id."""
    return vars(await run_in_threadpool(engine(request).create_person, body.name))


@router.get("/{person_id}", response_model=PersonDetail, dependencies=read)
async def get_person(request: Request, person_id: int = PersonId) -> dict[str, Any]:
    """A person and their face samples (with a link to each enrolled photo)."""
    eng = engine(request)
    person, samples = await run_in_threadpool(eng.person, person_id)
    faces = [
        {
            "id": s.id,
            "location": location(s.box) if s.box else None,
            "quality": s.quality,
            "added": s.added,
            "image_url": f"/v1/people/{person.id}/faces/{s.id}/image" if s.source and eng.keeps(s.source) else None,
        }
        for s in samples
    ]
    return {**vars(person), "faces": faces}


@router.patch("/{person_id}", response_model=PersonOut, dependencies=admin)
async def rename_person(request: Request, body: PersonIn, person_id: int = PersonId) -> dict[str, Any]:
    """Rename a person (409 if the new name is taken)."""
    return vars(await run_in_threadpool(engine(request).rename_person, person_id, body.name))


@router.delete("/{person_id}", response_model=Deleted, dependencies=admin)
async def delete_person(request: Request, person_id: int = PersonId) -> dict[str, Any]:
    """Remove a person, their samples and their kept photos."""
    person, removed = await run_in_threadpool(engine(request).delete_person, person_id)
    return {"id": person.id, "samples_removed": removed}


@router.post(
    "/{person_id}/faces",
    response_model=EnrolResponse,
    status_code=201,
    dependencies=admin,
    openapi_extra=image_body({"image": "A photo of the person (its most central face is used)."}),
)
async def enrol_face(request: Request, person_id: int = PersonId) -> dict[str, Any]:
    """Enrol a face sample from a photo (409 duplicate_photo if this photo is enrolled already; 422
    low_quality if its face is below the quality floor, and nothing is stored)."""
    eng = engine(request)
    await run_in_threadpool(eng.person_name, person_id)  # 404 before any network time
    found, _ = await read_inputs(request, ("image",))
    [(upload, faces)] = await infer(request, "faces", [("image", require_image(found))])
    face = eng.central(faces, upload)
    sid = await run_in_threadpool(eng.enrol, person_id, upload, face)
    name = await run_in_threadpool(eng.person_name, person_id)
    det = face.detection
    return {"id": sid, "person_id": person_id, "person": name, "location": location(det.box),
            "face_probability": round(float(det.score), 4),
            "quality": None if det.quality is None else round(float(det.quality), 4)}


@router.get(
    "/{person_id}/faces/{face_id}/image",
    dependencies=read,
    response_class=FileResponse,
    responses={200: {"content": {"image/*": {}}, "description": "The enrolled photo."}},
)
async def face_photo(request: Request, person_id: int = PersonId, face_id: int = FaceId) -> FileResponse:
    """The photo a face sample was enrolled from."""
    path = await run_in_threadpool(engine(request).sample_photo, person_id, face_id)
    return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})


@router.delete("/{person_id}/faces/{face_id}", response_model=Deleted, dependencies=admin)
async def delete_face(request: Request, person_id: int = PersonId, face_id: int = FaceId) -> dict[str, Any]:
    """Remove one face sample (and its kept photo)."""
    await run_in_threadpool(engine(request).delete_sample, person_id, face_id)
    return {"id": face_id, "samples_removed": 1}
