"""Pydantic models of the watchlist and subscription routes (requests and answers)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cosmic_ray.serve.watchlists import MAX_ENTRIES, MAX_RADIUS_ARCSEC


class EntryModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    ra: float = Field(ge=0.0, lt=360.0, allow_inf_nan=False, description="ICRS right ascension, degrees.")
    dec: float = Field(ge=-90.0, le=90.0, allow_inf_nan=False, description="ICRS declination, degrees.")
    radius_arcsec: float = Field(gt=0.0, le=MAX_RADIUS_ARCSEC, allow_inf_nan=False)


class WatchlistIn(BaseModel):
    """``POST /watchlists`` as JSON (CSV: ``text/csv`` with ``?name=``; a MOC: multipart ``name`` + ``moc``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    entries: list[EntryModel] = Field(default_factory=list, max_length=MAX_ENTRIES)


class RegionOut(BaseModel):
    name: str
    sky_fraction: float


class WatchlistOut(BaseModel):
    id: int
    owner: str
    name: str
    created_at: str
    entries: list[EntryModel]
    regions: list[RegionOut]


class MatchOut(BaseModel):
    candid: int
    object_id: str
    target: str = Field(description="entry:<name> or region:<name>")
    ra: float
    dec: float
    separation_arcsec: float | None
    matched_at: str


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["class", "novel", "watchlist", "digest"]
    params: dict[str, Any] = Field(
        default_factory=dict,
        description='class: {"label", "min_probability"}; novel: {"min_score"}; watchlist: {"watchlist_id"}; '
        'digest: {"top"}',
    )
    url: str = Field(min_length=8, max_length=2000, description="The webhook (http or https; a public address).")


class SubscriptionOut(BaseModel):
    id: int
    owner: str
    kind: str
    params: dict[str, Any]
    url: str = Field(description="Masked: scheme://host/… (the URL itself is never shown back).")
    created_at: str
