"""API models of the object page's resources: stored cutouts and cross-matches."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class CutoutAlert(BaseModel):
    """One alert of the object with stored stamps."""

    candid: int
    candid_str: str = Field(description="the candid as text: JavaScript numbers lose candids' last digits (> 2**53)")
    mjd: float | None
    ra: float | None
    dec: float | None
    kinds: list[str] = Field(description="stamps stored: science, template, difference")
    refused: dict[str, str] = Field(default_factory=dict, description="stamps not kept, with the reason")


class CutoutAlerts(BaseModel):
    """``GET /objects/{id}/cutouts/alerts``: the object's alerts with stamps, oldest first."""

    object_id: str
    latest: int | None = Field(description="candid of the latest alert with stamps (the default of /cutouts)")
    latest_str: str | None = Field(default=None, description="the same candid as text (for JavaScript)")
    alerts: list[CutoutAlert]


class CatalogueMatchOut(BaseModel):
    catalogue: str
    name: str
    ra: float
    dec: float
    separation_arcsec: float
    label: str | None = None
    tns_name: str | None = None
    ztf_id: str | None = None


class LinkOut(BaseModel):
    service: str
    url: str


class Crossmatches(BaseModel):
    """``GET /objects/{id}/crossmatches``: what is known near the object, and where to look further."""

    object_id: str
    ra: float | None
    dec: float | None
    position_from: str = Field(description="alert, lake or catalogue: where the position comes from")
    candid: int | None = Field(default=None, description="the alert whose own cross-matches are shown")
    alert: dict[str, dict[str, Any] | None] = Field(
        default_factory=dict, description="the alert's own matches: ps1, gaia, solar_system (None: nothing near)"
    )
    radius_arcsec: float
    matches: list[CatalogueMatchOut]
    tns_name: str | None = None
    links: list[LinkOut]
