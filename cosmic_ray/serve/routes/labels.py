"""Expert labels of an object: ``GET /objects/{id}/labels`` (readers), ``POST /objects/{id}/labels`` (writers).

An answer is a true class, "interesting" or "bogus", with an optional note; the store keeps who
answered and when. Usernames are shown to signed-in callers only (as ``/classes`` does).
"""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

import asyncio

from fastapi import APIRouter, HTTPException

from cosmic_ray.core.feedback import ExpertAnswer
from cosmic_ray.serve.db import StoreError
from cosmic_ray.serve.deps import AUTH_ERRORS, Caller, Ctx, Reader, Writer
from cosmic_ray.serve.feedback_schemas import LabelIn, LabelOut
from cosmic_ray.serve.labels import Labels
from cosmic_ray.serve.schemas import ErrorResponse

router = APIRouter()


def label_out(answer: ExpertAnswer, show_user: bool) -> LabelOut:
    d = answer.to_dict()
    return LabelOut.model_validate({**d, "user": d["user"] if show_user else None})


@router.get("/objects/{object_id}/labels", response_model=list[LabelOut], responses=AUTH_ERRORS)
async def labels(object_id: str, ctx: Ctx, _: Reader, caller: Caller) -> list[LabelOut]:
    """The experts' answers about the object, oldest first (empty when none)."""
    found = await asyncio.to_thread(Labels(ctx.events.engine).for_object, object_id)
    return [label_out(a, caller is not None) for a in found]


@router.post(
    "/objects/{object_id}/labels",
    status_code=201,
    response_model=LabelOut,
    responses={422: {"model": ErrorResponse}, **AUTH_ERRORS},
)
async def add_label(object_id: str, body: LabelIn, ctx: Ctx, principal: Writer) -> LabelOut:
    """Answer about an object: its true class (trained on by the next retrain), "interesting" (the anomaly
    ranking learns from it) or "bogus" (left out of training); a note of up to 2000 characters."""
    try:
        answer = await asyncio.to_thread(
            Labels(ctx.events.engine).add, object_id, body.kind, body.class_, body.note, principal.username
        )
    except StoreError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    return label_out(answer, True)
