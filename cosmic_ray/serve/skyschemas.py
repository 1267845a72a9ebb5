"""Response models of the object table's routes (``GET /objects``, ``GET /objects/{id}``)."""

# No `from __future__ import annotations`: FastAPI reads these models' annotations.

from pydantic import BaseModel, ConfigDict, Field


class ObjectSummaryOut(BaseModel):
    """One object: position, detections, latest class, context."""

    model_config = ConfigDict(populate_by_name=True)

    object_id: str
    ra: float | None = Field(description="Degrees (ICRS): the mean position of the object's detections.")
    dec: float | None = Field(description="Degrees (ICRS).")
    healpix: int | None = Field(description="Nested HEALPix index at order 29 (nside 2**29) of (ra, dec).")
    n_points: int = Field(description="Points in the lake: detections, upper limits and forced photometry.")
    n_detections: int
    first_mjd: float | None = Field(description="MJD of the first detection.")
    last_mjd: float | None = Field(description="MJD of the last detection.")
    sources: list[str]
    class_: str | None = Field(alias="class", description="Latest class from the live path; null until classified.")
    probability: float | None = Field(description="Probability of the latest class.")
    probabilities: dict[str, float] | None
    open_set_score: float | None = Field(description="0..1, high = fits no known class.")
    rare: bool | None
    novel: bool | None
    model_version: str | None
    classified_at: str | None = Field(description="When the latest class was given (UTC, ISO 8601).")
    gal_b: float | None = Field(description="Galactic latitude, degrees.")
    host_mag: float | None = Field(description="Host galaxy apparent r magnitude (AB), where known.")
    host_color: float | None = Field(description="Host galaxy colour, where known.")
    redshift: float | None
    distance_arcsec: float | None = Field(default=None, description="Distance from the cone's centre (cone searches).")


class ObjectDetail(ObjectSummaryOut):
    """``GET /objects/{id}``: the summary, where it came from, and links to the object's data."""

    in_object_table: bool = Field(description="False: summarised from the lake now (not indexed yet).")
    links: dict[str, str] = Field(description="The light curve in each format, similar objects.")


class ConeQueryOut(BaseModel):
    ra: float
    dec: float
    radius: float = Field(description="Degrees.")


class ObjectPageOut(BaseModel):
    """A page of a cone search or listing: ``total`` matches, ``objects`` from ``offset`` on."""

    total: int
    offset: int
    limit: int
    next_offset: int | None = Field(description="Offset of the next page; null on the last page.")
    cone: ConeQueryOut | None = Field(default=None, description="The cone searched (null: a listing).")
    objects: list[ObjectSummaryOut] = Field(description="Cone: nearest first. Listing: newest last detection first.")
