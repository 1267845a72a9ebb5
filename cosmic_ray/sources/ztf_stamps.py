"""What a ZTF alert carries beside its photometry: the three image stamps and the cross-match fields.

Every ZTF packet (schema 2.0 to 4.02) holds ``cutoutScience``, ``cutoutTemplate`` and
``cutoutDifference`` (``{fileName, stampData}``, ``stampData`` a gzipped 63x63 FITS image) and, in
its candidate, what the pipeline already matched: the nearest Pan-STARRS1 sources (``distpsnr1``,
``sgscore1``, ``srmag1``...), the nearest Gaia source (``neargaia``, ``maggaia``; schema >= 3.0) and
the nearest known solar-system object (``ssdistnr``, ``ssnamenr``, ``ssmagnr``).

:func:`with_stamps` adds them to the per-alert table :func:`cosmic_ray.sources.ztf.records_to_tables`
builds (columns :data:`STAMP_COLUMNS` and :data:`CONTEXT_COLUMN`), still gzipped: extracting them is
a reference per alert, no decompression. The lake takes them off that table when it writes it
(:func:`cosmic_ray.ingest.cutouts.store_alert_extras`), so ``_alerts`` never holds images.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa

#: stamp kind -> packet field
STAMP_FIELDS = {"science": "cutoutScience", "template": "cutoutTemplate", "difference": "cutoutDifference"}
KINDS = tuple(STAMP_FIELDS)
#: stamp kind -> column of the per-alert table (gzipped FITS bytes as in the packet, null if absent)
STAMP_COLUMNS = {kind: f"_cutout_{kind}" for kind in KINDS}
#: JSON object of the candidate's cross-match fields (:data:`CONTEXT_FIELDS`)
CONTEXT_COLUMN = "_alert_context"
EXTRA_COLUMNS = (*STAMP_COLUMNS.values(), CONTEXT_COLUMN)
#: candidate fields kept for the object page (those a packet lacks are left out)
CONTEXT_FIELDS = (
    "jd",
    "fid",
    "ra",
    "dec",
    "magpsf",
    "objectidps1",
    "distpsnr1",
    "sgscore1",
    "srmag1",
    "sgmag1",
    "simag1",
    "objectidps2",
    "distpsnr2",
    "sgscore2",
    "neargaia",
    "maggaia",
    "neargaiabright",
    "maggaiabright",
    "ssdistnr",
    "ssmagnr",
    "ssnamenr",
    "distnr",
    "magnr",
)


def _stamp(record: dict[str, Any], field: str) -> bytes | None:
    cutout = record.get(field)
    data = cutout.get("stampData") if isinstance(cutout, dict) else None
    return data if isinstance(data, bytes) and data else None


def _plain(value: Any) -> Any:
    """A JSON-safe value: finite numbers and text; anything else (NaN, bytes...) is None."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value[:200]
    return None


def context_of(record: dict[str, Any]) -> dict[str, Any]:
    """The cross-match fields of one decoded alert's candidate (:data:`CONTEXT_FIELDS` it has)."""
    candidate = record.get("candidate")
    if not isinstance(candidate, dict):
        return {}
    return {name: _plain(candidate[name]) for name in CONTEXT_FIELDS if name in candidate}


def with_stamps(meta: pa.Table, records: list[dict[str, Any]]) -> pa.Table:
    """``meta`` (one row per record, same order) with the stamps and cross-match fields of each alert.

    Args:
        meta: the per-alert table, one row per record, before any filtering.
        records: the decoded alerts (Avro records; JSON alerts without cutouts get nulls).
    """
    if meta.num_rows != len(records):
        raise ValueError(f"{meta.num_rows} alert rows for {len(records)} records")
    for kind, field in STAMP_FIELDS.items():
        meta = meta.append_column(STAMP_COLUMNS[kind], pa.array([_stamp(r, field) for r in records], pa.binary()))
    contexts = [json.dumps(context_of(r), separators=(",", ":")) for r in records]
    return meta.append_column(CONTEXT_COLUMN, pa.array(contexts, pa.string()))
