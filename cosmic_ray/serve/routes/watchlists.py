"""Watchlists: ``GET /watchlists`` (your own), ``POST /watchlists`` (astronomers, admins: JSON, CSV or a
MOC), ``GET``/``DELETE /watchlists/{id}``, ``POST /watchlists/{id}/regions`` (a MOC) and
``GET /watchlists/{id}/matches``.

Every route needs a signed-in caller, declared as a dependency, so an anonymous call is a 401 before
its body is read. A watchlist is seen only by its owner and admins: another user's is a 404 (its
existence is not given away).

``POST /watchlists`` reads its body by content type: ``application/json`` (``{name, entries: [{name,
ra, dec, radius_arcsec}]}``), ``text/csv`` (header ``name,ra,dec,radius``, radius in arcsec; the
watchlist's name in ``?name=``), or ``multipart/form-data`` with a ``name`` field and a ``moc`` file
(a MOC FITS file, as ``mocpy`` writes it).
"""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

import asyncio
import threading
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from sqlalchemy.engine import Engine
from starlette.datastructures import UploadFile

from cosmic_ray.serve.accounts import Principal
from cosmic_ray.serve.db import ConflictError, NotFoundError, StoreError
from cosmic_ray.serve.deps import AUTH_ERRORS, Ctx, CurrentUser, Writer
from cosmic_ray.serve.parsing import parse_json_body
from cosmic_ray.serve.schemas import ErrorResponse
from cosmic_ray.serve.watch_schemas import MatchOut, WatchlistIn, WatchlistOut
from cosmic_ray.serve.watchlists import MAX_MOC_BYTES, EntryIn, Watchlists, parse_csv, parse_moc_fits

router = APIRouter()

#: A row id in a path: a positive 64-bit integer (a larger one is a 422, not a database overflow).
RowId = Annotated[int, Path(ge=1, lt=2**63)]

_STORES: dict[int, Watchlists] = {}
_LOCK = threading.Lock()
_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse},
    409: {"model": ErrorResponse},
    413: {"model": ErrorResponse},
    415: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    **AUTH_ERRORS,
}


def _json_schema() -> dict:
    """WatchlistIn's schema, its entries referring to the API's own ``EntryModel`` component."""
    schema = WatchlistIn.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


_MULTIPART = {
    "schema": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "moc": {"type": "string", "format": "binary"}},
        "required": ["name", "moc"],
    }
}
_BODY_DOC = {
    "requestBody": {
        "content": {
            "application/json": {"schema": _json_schema()},
            "text/csv": {"schema": {"type": "string", "example": "name,ra,dec,radius\nM101,210.802,54.349,60\n"}},
            "multipart/form-data": _MULTIPART,
        },
        "required": True,
    }
}


def watchlists_of(engine: Engine) -> Watchlists:
    """One :class:`Watchlists` per engine in this process (it caches parsed MOCs)."""
    with _LOCK:
        store = _STORES.get(id(engine))
        if store is None or store.engine is not engine:
            store = _STORES[id(engine)] = Watchlists(engine)
        return store


def visible(store: Watchlists, watchlist_id: int, caller: Principal) -> None:
    """Raises: HTTPException: 404 when it does not exist or belongs to someone else (admins see all)."""
    owner = store.owner_of(watchlist_id)
    if owner is None or (owner != caller.username and caller.role != "admin"):
        raise HTTPException(status_code=404, detail=f"you have no watchlist {watchlist_id}")


@router.get("/watchlists", response_model=list[WatchlistOut], responses=AUTH_ERRORS)
async def list_watchlists(ctx: Ctx, caller: CurrentUser) -> list[dict]:
    """Your watchlists, oldest first."""
    return await asyncio.to_thread(watchlists_of(ctx.events.engine).list_for, caller.username)


async def _moc_upload(request: Request) -> tuple[str, bytes]:
    form = await request.form(max_files=1, max_fields=4, max_part_size=MAX_MOC_BYTES)
    name, upload = form.get("name"), form.get("moc")
    if not isinstance(name, str) or not isinstance(upload, UploadFile):
        raise HTTPException(status_code=422, detail="multipart upload needs a 'name' field and a 'moc' file")
    data = await upload.read(MAX_MOC_BYTES + 1)
    if len(data) > MAX_MOC_BYTES:
        raise HTTPException(status_code=413, detail=f"MOC file exceeds {MAX_MOC_BYTES} bytes")
    return name, data


@router.post("/watchlists", status_code=201, response_model=WatchlistOut, responses=_ERRORS, openapi_extra=_BODY_DOC)
async def create_watchlist(
    request: Request,
    ctx: Ctx,
    caller: Writer,
    name: str | None = Query(None, max_length=128, description="The watchlist's name (CSV uploads)."),
) -> dict:
    """A new watchlist of positions (JSON or CSV) or of one sky region (a MOC FITS file, multipart)."""
    store = watchlists_of(ctx.events.engine)
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        if kind == "application/json":
            body: WatchlistIn = parse_json_body(WatchlistIn, await request.body())
            entries = [EntryIn(e.name, e.ra, e.dec, e.radius_arcsec) for e in body.entries]
            return await asyncio.to_thread(store.create, caller.username, body.name, entries)
        if kind == "text/csv":
            if not name:
                raise HTTPException(status_code=422, detail="a CSV upload names its watchlist in ?name=")
            try:
                text = (await request.body()).decode("utf-8-sig")
            except UnicodeDecodeError:
                raise HTTPException(status_code=422, detail="the CSV is not UTF-8") from None
            entries = await asyncio.to_thread(parse_csv, text)
            return await asyncio.to_thread(store.create, caller.username, name, entries)
        if kind == "multipart/form-data":
            list_name, data = await _moc_upload(request)
            moc = await asyncio.to_thread(parse_moc_fits, data)
            created = await asyncio.to_thread(store.create, caller.username, list_name, [])
            return await asyncio.to_thread(store.add_region, created["id"], list_name, moc)
    except ConflictError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    except StoreError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    raise HTTPException(
        status_code=415, detail="send application/json, text/csv or multipart/form-data (name + moc file)"
    )


@router.get("/watchlists/{watchlist_id}", response_model=WatchlistOut, responses=_ERRORS)
async def get_watchlist(watchlist_id: RowId, ctx: Ctx, caller: CurrentUser) -> dict:
    store = watchlists_of(ctx.events.engine)
    await asyncio.to_thread(visible, store, watchlist_id, caller)
    try:
        return await asyncio.to_thread(store.get, watchlist_id)
    except NotFoundError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc


@router.post(
    "/watchlists/{watchlist_id}/regions",
    status_code=201,
    response_model=WatchlistOut,
    responses=_ERRORS,
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": _MULTIPART}}},
)
async def add_region(watchlist_id: RowId, request: Request, ctx: Ctx, caller: Writer) -> dict:
    """Add a sky region (multipart: ``name`` + a ``moc`` FITS file) to your watchlist."""
    store = watchlists_of(ctx.events.engine)
    await asyncio.to_thread(visible, store, watchlist_id, caller)
    region_name, data = await _moc_upload(request)
    try:
        moc = await asyncio.to_thread(parse_moc_fits, data)
        return await asyncio.to_thread(store.add_region, watchlist_id, region_name, moc)
    except NotFoundError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except StoreError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc


@router.delete("/watchlists/{watchlist_id}", status_code=204, responses=_ERRORS)
async def delete_watchlist(watchlist_id: RowId, ctx: Ctx, caller: Writer) -> Response:
    store = watchlists_of(ctx.events.engine)
    await asyncio.to_thread(visible, store, watchlist_id, caller)
    try:
        await asyncio.to_thread(store.delete, watchlist_id)
    except NotFoundError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    return Response(status_code=204)


@router.get("/watchlists/{watchlist_id}/matches", response_model=list[MatchOut], responses=_ERRORS)
async def watchlist_matches(
    watchlist_id: RowId, ctx: Ctx, caller: CurrentUser, limit: int = Query(100, ge=1, le=1000)
) -> list[dict]:
    """The alerts that fell in the watchlist, latest first."""
    store = watchlists_of(ctx.events.engine)
    await asyncio.to_thread(visible, store, watchlist_id, caller)
    return await asyncio.to_thread(store.matches, watchlist_id, limit)
