"""Which bands of a light curve the model reads: the ``bands_used`` of a prediction.

A model classifies what it can from the bands it was trained on (the g/r/i families,
:func:`cosmic_ray.learn.features.band_family`); a Rubin light curve's u, z and y points, upper
limits, forced photometry and negative-difference detections are not model input. The answer
says which of the item's own bands (as the item names them) went in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cosmic_ray.learn.features import MODEL_SOURCES, band_family


def is_model_input(row: Mapping[str, Any]) -> bool:
    """Whether :mod:`cosmic_ray.learn.features` reads this lake row (the rules of ``_clean_object``)."""
    if row.get("is_limit") or row.get("mag") is None or row.get("source") not in MODEL_SOURCES:
        return False
    if row.get("isdiffpos") is False:
        return False
    band = row.get("band") or ""
    return band in ("g", "r", "i") or band_family(band) is not None


def bands_used(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The item's bands (sorted, as the rows name them) that the model's features read.

    >>> bands_used([{"source": "lsst_alert", "band": "g", "mag": 21.0}, {"source": "lsst_alert", "band": "y", "mag": 20.0}])
    ['g']
    """
    return sorted({str(row["band"]) for row in rows if is_model_input(row)})
