"""Per-object context: what is known about an object besides its light curve.

One row per object: where it is (position, Galactic latitude, Milky-Way extinction), its host
galaxy (apparent magnitude and colour, offset of the nearest catalogued galaxy, distance to the
nearest reference-image source) and its redshift with where that came from. A missing field is
missing (null), never a made-up value.

The model sees context through *modes*: ``light_curve`` hides all of it, ``alert_time`` shows what
an alert carries or a catalogue cross-match gives at once (everything but redshift), and
``with_redshift`` shows everything. Right ascension and declination are kept for cross-matching
and display but are never model features: Galactic latitude and extinction carry what position
tells.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pyarrow as pa

#: Columns of the lake's context table (``lake/_context``), in order.
CONTEXT_SCHEMA = pa.schema(
    [
        pa.field("object_id", pa.string(), nullable=False),
        pa.field("ra", pa.float64()),  # degrees (ICRS); display and cross-matching only
        pa.field("dec", pa.float64()),  # degrees (ICRS); display and cross-matching only
        pa.field("gal_b", pa.float64()),  # Galactic latitude, degrees
        pa.field("a_v", pa.float64()),  # Milky-Way extinction A_V, magnitudes
        pa.field("host_mag", pa.float64()),  # host apparent r magnitude (AB)
        pa.field("host_color", pa.float64()),  # host colour (g - r where measured, else catalogue's)
        pa.field("host_offset_arcsec", pa.float64()),  # separation to the host (nearest PS1 galaxy)
        pa.field("nuclear_dist_arcsec", pa.float64()),  # ZTF distnr: nearest reference-image source
        pa.field("redshift", pa.float64()),
        pa.field("redshift_source", pa.string()),  # provenance of the redshift (e.g. "bts_spectroscopic")
        pa.field("source", pa.string()),  # who filled the row: "ztf_alert", a table's file name...
        pa.field("updated_mjd", pa.float64()),  # MJD the row was last filled (newest wins on merge)
    ]
)

#: The fields a model may use as features (never ra/dec, never provenance).
FEATURE_FIELDS: tuple[str, ...] = (
    "gal_b",
    "a_v",
    "host_mag",
    "host_color",
    "host_offset_arcsec",
    "nuclear_dist_arcsec",
    "redshift",
)

ContextMode = Literal["light_curve", "alert_time", "with_redshift"]

#: Which feature fields each mode lets the model see.
MODES: dict[str, tuple[str, ...]] = {
    "light_curve": (),
    "alert_time": tuple(f for f in FEATURE_FIELDS if f != "redshift"),
    "with_redshift": FEATURE_FIELDS,
}

#: The mode the headline figures and serving default to.
DEFAULT_MODE = "alert_time"


def visible_fields(mode: str) -> tuple[str, ...]:
    """The feature fields ``mode`` shows.

    Raises:
        ValueError: an unknown mode.
    """
    try:
        return MODES[mode]
    except KeyError:
        raise ValueError(f"unknown context mode {mode!r}; known: {', '.join(MODES)}") from None


def masked(context: Mapping[str, Any] | None, mode: str) -> dict[str, float | None]:
    """The feature fields of ``context`` that ``mode`` shows; hidden or absent ones are ``None``."""
    shown = visible_fields(mode)
    out: dict[str, float | None] = {}
    for name in FEATURE_FIELDS:
        value = context.get(name) if (context is not None and name in shown) else None
        out[name] = float(value) if value is not None and value == value else None  # NaN -> None
    return out
