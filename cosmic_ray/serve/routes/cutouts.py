"""An object's alert stamps (readers): ``GET /objects/{id}/cutouts`` and ``GET /objects/{id}/cutouts/alerts``.

``/cutouts`` answers one PNG of the alert's three stamps side by side (science, template,
difference), ``kind=`` one of them alone, ``format=fits`` the stored FITS file of one stamp.
The alert is ``candid=`` or, by default, the object's latest alert with stamps. The stamps are
the ones ZTF ingest kept beside the lake (:mod:`cosmic_ray.ingest.cutouts`); the route is bounded
like the other expensive reads (:mod:`cosmic_ray.serve.limits`).
"""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response

from cosmic_ray.core.config import Settings
from cosmic_ray.ingest.cutouts import CutoutStore, StoredAlert
from cosmic_ray.serve.deps import AUTH_ERRORS, Ctx, Reader
from cosmic_ray.serve.limits import BUSY, bounded
from cosmic_ray.serve.object_schemas import CutoutAlert, CutoutAlerts
from cosmic_ray.serve.schemas import ErrorResponse
from cosmic_ray.serve.stamp_png import StampError, render_png
from cosmic_ray.sources.bounded import DecompressionLimitError
from cosmic_ray.sources.ztf_stamps import KINDS

router = APIRouter()
CutoutSlot = Annotated[None, Depends(bounded("cutouts"))]
Kind = Literal["science", "template", "difference"]
Format = Literal["png", "fits"]
_CACHE = "private, max-age=3600"  # an alert's stamps never change


def _not_found(settings: Settings, object_id: str, candid: int | None, alerts: list[StoredAlert]) -> HTTPException:
    if not alerts:
        why = (
            f"object {object_id!r} has no stored cutouts: its ZTF alerts were not ingested here, or their stamps "
            f"were pruned ({settings.cutout_retention_days:g} days, COSMIC_RAY_CUTOUT_RETENTION_DAYS)"
        )
    else:
        stored = [a.candid for a in alerts if a.stamps][-10:]
        why = f"object {object_id!r} has no stored cutouts of alert candid={candid}; alerts with stamps: {stored}"
    return HTTPException(status_code=404, detail=why)


def _answer(settings: Settings, object_id: str, candid: int | None, kind: str | None, fmt: str) -> Response:
    store = CutoutStore(settings.lake_dir)
    alert = store.alert(object_id, candid)
    if alert is None or not alert.stamps:
        raise _not_found(settings, object_id, candid, store.alerts(object_id))
    kinds = [kind] if kind else [k for k in KINDS if k in alert.stamps]
    missing = [k for k in kinds if k not in alert.stamps]
    if missing:
        reason = alert.refused.get(missing[0], "the packet carried none")
        raise HTTPException(
            status_code=404, detail=f"alert {alert.candid} of {object_id!r} has no {missing[0]} stamp: {reason}"
        )
    try:
        stamps = {k: store.read_fits(alert.stamps[k]) for k in kinds}
    except FileNotFoundError:
        raise _not_found(settings, object_id, candid, []) from None
    except (OSError, DecompressionLimitError) as exc:  # over the size bound, or corrupt: refused, said why
        raise HTTPException(status_code=404, detail=f"alert {alert.candid} of {object_id!r}: {exc}") from exc
    headers = {"Cache-Control": _CACHE, "X-Candid": str(alert.candid)}
    if fmt == "fits":
        name = f"{object_id}_{alert.candid}_{kinds[0]}.fits"
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return Response(stamps[kinds[0]], media_type="application/fits", headers=headers)
    try:
        png = render_png(stamps, labels=len(stamps) > 1)  # one stamp: its kind is in the request
    except StampError as exc:
        raise HTTPException(status_code=404, detail=f"alert {alert.candid} of {object_id!r}: {exc}") from exc
    return Response(png, media_type="image/png", headers=headers)


@router.get(
    "/objects/{object_id}/cutouts",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}, "application/fits": {}}, "description": "the picture or the FITS file"},
        404: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        **AUTH_ERRORS,
        **BUSY,
    },
)
async def cutouts(
    object_id: str,
    ctx: Ctx,
    _: Reader,
    __: CutoutSlot,
    candid: int | None = Query(None, description="the alert; default: the object's latest alert with stamps"),
    kind: Kind | None = Query(None, description="one stamp; default: the three side by side"),
    fmt: Format = Query("png", alias="format", description="png (a picture) or fits (the stored stamp; needs kind)"),
) -> Response:
    """An alert's stamps: a PNG of science, template and difference side by side, one stamp, or its FITS file."""
    if fmt == "fits" and kind is None:
        raise HTTPException(
            status_code=422, detail="format=fits answers one stamp: give kind=science|template|difference"
        )
    return await asyncio.to_thread(_answer, ctx.settings, object_id, candid, kind, fmt)


@router.get(
    "/objects/{object_id}/cutouts/alerts",
    response_model=CutoutAlerts,
    responses={404: {"model": ErrorResponse}, **AUTH_ERRORS},
)
async def cutout_alerts(object_id: str, ctx: Ctx, _: Reader) -> CutoutAlerts:
    """The object's alerts whose stamps are stored, oldest first, and the latest one (the default of /cutouts)."""
    alerts = await asyncio.to_thread(CutoutStore(ctx.settings.lake_dir).alerts, object_id)
    if not alerts:
        raise _not_found(ctx.settings, object_id, None, [])
    with_stamps = [a for a in alerts if a.stamps]
    return CutoutAlerts(
        object_id=object_id,
        latest=with_stamps[-1].candid if with_stamps else None,
        latest_str=str(with_stamps[-1].candid) if with_stamps else None,
        alerts=[
            CutoutAlert(
                candid=a.candid,
                candid_str=str(a.candid),
                mjd=a.mjd,
                ra=a.ra,
                dec=a.dec,
                kinds=list(a.stamps),
                refused=a.refused,
            )
            for a in alerts
        ],
    )
