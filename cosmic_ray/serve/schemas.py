"""Pydantic models at the API boundary (requests and responses of the FastAPI ingress)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

MAX_POINTS = 5000

#: Magnitudes (also limiting magnitudes) and their errors a point may carry, in a light curve or an alert.
MAG_MIN, MAG_MAX, MAGERR_MAX = -40.0, 60.0, 10.0

#: A class name: 1-64 printable ASCII characters but ``"`` and ``\\``. The event store ranks
#: ``/candidates`` through a JSON path built from the name: a quote or backslash would change the
#: path (an error or silently no match, by SQLite version), and SQLite matches no non-ASCII key.
CLASS_NAME_PATTERN = r"^[ !#-\[\]-~]{1,64}$"
CLASS_NAME_RULE = "1-64 printable ASCII characters, no double quote or backslash (e.g. SN Ia, SLSN-I)"


def _utc_in_range(when: datetime) -> datetime:
    """``when`` if it can be converted to UTC (``0001-01-01T00:00+14:00`` cannot: before year 1)."""
    if when.tzinfo is not None:
        try:
            when.astimezone(UTC)
        except OverflowError:
            raise ValueError("time out of range once converted to UTC (years 1 to 9999)") from None
    return when


#: A time a query may filter on: any ISO 8601 time that stays within years 1-9999 in UTC (else 422).
QueryTime = Annotated[datetime, AfterValidator(_utc_in_range)]


class PointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # allow_inf_nan=False: NaN and infinities are refused by pydantic-core itself (no Python call per point)
    mjd: float = Field(
        ge=0,
        le=200_000,
        allow_inf_nan=False,
        description="Modified Julian Date of the observation (0 to 200000, as for alerts).",
    )
    band: str = Field(min_length=1, max_length=16, description="g, r, i for ZTF; <survey>_<filter> otherwise.")
    mag: float = Field(
        ge=MAG_MIN, le=MAG_MAX, allow_inf_nan=False, description="AB magnitude (limiting magnitude when is_limit)."
    )
    magerr: float = Field(default=0.0, ge=0, le=MAGERR_MAX, allow_inf_nan=False)
    is_limit: bool = False


class LightCurveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object_id: str = Field(min_length=1, max_length=128)
    points: list[PointIn] = Field(min_length=1, max_length=MAX_POINTS)


class ContextIn(BaseModel):
    """What is known of a light curve's object besides its points (:mod:`cosmic_ray.core.context`); every
    field optional: a missing one is missing. ``ra``/``dec`` are never model features."""

    model_config = ConfigDict(extra="forbid")

    ra: float | None = Field(default=None, ge=0, lt=360, allow_inf_nan=False, description="Degrees (ICRS).")
    dec: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False, description="Degrees (ICRS).")
    gal_b: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False, description="Galactic latitude.")
    a_v: float | None = Field(default=None, ge=0, le=50, allow_inf_nan=False, description="Milky-Way A_V, mag.")
    host_mag: float | None = Field(
        default=None, ge=-10, le=40, allow_inf_nan=False, description="Host apparent r magnitude (AB)."
    )
    host_color: float | None = Field(default=None, ge=-10, le=10, allow_inf_nan=False, description="Host g - r.")
    host_offset_arcsec: float | None = Field(default=None, ge=0, le=3600, allow_inf_nan=False)
    nuclear_dist_arcsec: float | None = Field(default=None, ge=0, le=3600, allow_inf_nan=False)
    redshift: float | None = Field(default=None, ge=0, le=20, allow_inf_nan=False)


class PredictRequest(BaseModel):
    """Exactly one of ``alert`` (a ZTF alert as JSON: the Avro record, cutouts omitted) or ``lightcurve``;
    ``context`` only with a light curve (an alert carries its own)."""

    model_config = ConfigDict(extra="forbid")

    alert: dict[str, Any] | None = None
    lightcurve: LightCurveIn | None = None
    context: ContextIn | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequest:
        if (self.alert is None) == (self.lightcurve is None):
            raise ValueError("give exactly one of 'alert' or 'lightcurve'")
        if self.alert is not None and self.context is not None:
            raise ValueError("'context' goes with a 'lightcurve': an alert carries its own context")
        return self


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[PredictRequest] = Field(min_length=1)


class Neighbour(BaseModel):
    object_id: str
    label: str
    distance: float


class PredictResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    object_id: str
    class_: str = Field(serialization_alias="class", validation_alias="class", description="Predicted class.")
    probabilities: dict[str, float]
    open_set_score: float = Field(description="0..1; high means the object fits no known class.")
    novel: bool
    rare: bool
    neighbours: list[Neighbour]
    model_version: str
    latency_ms: float
    bands_used: list[str] = Field(
        default_factory=list, description="The light curve's bands the model read (those it was trained on)."
    )
    context: dict[str, float | None] | None = Field(
        default=None, description="The context fields the model was given (hidden ones null); null without context."
    )
    context_mode: str | None = Field(default=None, description="light_curve, alert_time or with_redshift.")


class BatchResponse(BaseModel):
    results: list[PredictResponse]
    model_version: str
    latency_ms: float


class ModelInfo(BaseModel):
    name: str
    version: str
    run_id: str
    classes: list[str]
    trained_at: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    last_reload_error: str | None = None
    registered_classes: list[str] = Field(
        default_factory=list, description="Classes added at runtime (in ``classes`` too)."
    )
    classes_version: int = 0
    replica: str | None = None


class Health(BaseModel):
    status: str
    model_version: str


class ErrorResponse(BaseModel):
    detail: Any


# ------------------------------------------------------------------ classes, alerts, similarity
class ClassIn(BaseModel):
    """A class registered at runtime from K support examples: light curves, object ids in the lake, or both."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=CLASS_NAME_PATTERN, description=CLASS_NAME_RULE)
    lightcurves: list[LightCurveIn] = Field(default_factory=list, max_length=1000)
    object_ids: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _some_support(self) -> ClassIn:
        if not self.lightcurves and not self.object_ids:
            raise ValueError("give at least one support light curve or lake object id")
        return self


class ClassInfo(BaseModel):
    name: str
    source: str = Field(description="'model' (trained) or 'registered' (added at runtime).")
    support_objects: list[str] = Field(default_factory=list)
    created_by: str | None = None
    created_at: str | None = None


class AlertRecord(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    candid: int
    object_id: str
    classified_at: str
    class_: str = Field(serialization_alias="class", validation_alias="class")
    probabilities: dict[str, float]
    open_set_score: float
    novel: bool
    rare: bool
    model_version: str


class SimilarResponse(BaseModel):
    object_id: str
    model_version: str
    neighbours: list[Neighbour]


# ------------------------------------------------------------------ accounts
class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024, repr=False)


class Me(BaseModel):
    username: str
    role: str


# ------------------------------------------------------------------ objects, the web pages
class PointOut(BaseModel):
    mjd: float
    band: str
    mag: float | None
    magerr: float | None
    is_limit: bool = Field(description="True: an upper limit (mag is the limiting magnitude).")
    # the light-curve download's fields (GET /objects/{id}/lightcurve); optional for other uses
    kind: str | None = Field(default=None, description="detection, upper_limit or forced (forced photometry).")
    flux: float | None = Field(default=None, description="Flux density in `flux_unit`; signed (difference photometry).")
    flux_err: float | None = None
    flux_unit: str | None = None
    mag_system: str | None = None
    time_scale: str | None = Field(default=None, description="Time scale of mjd (utc, tdb...).")
    source: str | None = Field(default=None, description="Where the point came from (ztf_alert, ztf_fp...).")
    candid: int | None = None


class ObjectLightCurve(BaseModel):
    object_id: str
    label: str | None = Field(default=None, description="Spectroscopic class where known.")
    sources: list[str]
    points: list[PointOut] = Field(description="Sorted by time.")
    units: dict[str, str] | None = Field(default=None, description="Units of the points' columns (mjd, mag, flux).")


class WebConfig(BaseModel):
    ray_dashboard_url: str
    mlflow_ui_url: str
    mlflow_ui_command: str
    apod_configured: bool


class ApodInfo(BaseModel):
    """NASA's Astronomy Picture of the Day; ``available`` false (with ``reason``) when it cannot be fetched."""

    available: bool
    reason: str | None = None
    title: str | None = None
    date: str | None = None
    explanation: str | None = None
    image_url: str | None = None
    page_url: str | None = None
    copyright: str | None = None


class ModelEvaluation(BaseModel):
    """Validation metrics of the training run behind a model version, and its figure names (MLflow)."""

    run_id: str
    metrics: dict[str, float]
    figures: list[str] = Field(description="PNG names under the run's figures/ artifacts.")
