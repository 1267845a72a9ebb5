"""Labelled light-curve catalogues in the documented long format.

Format (CSV, optionally gzipped), one row per point::

    object_id,label,mjd,band,mag,magerr[,is_limit][,source]

Magnitudes are AB; bands are ``g``, ``r``, ``i`` for ZTF and ``<survey>_<filter>`` otherwise.
The ZTF Bright Transient Survey table in ``../shared/data/ztf-bts`` is in this format.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cosmic_ray.errors import SourceError
from cosmic_ray.lightcurve import SCHEMA, conform, mag_to_flux_ujy, mjd_to_nights
from cosmic_ray.sources.ztf import ParseResult, RawInput

log = logging.getLogger(__name__)

NAME = "catalog"
REQUIRED_COLUMNS = ("object_id", "label", "mjd", "band", "mag", "magerr")


@dataclass(frozen=True)
class CatalogRequest:
    files: tuple[Path, ...]
    source: str = "catalog"


def build_request(inputs: Iterable[Path | str], source: str | None = None) -> CatalogRequest:
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.name.endswith((".csv", ".csv.gz"))))
        elif path.is_file():
            files.append(path)
        else:
            raise SourceError(f"catalogue {path} does not exist")
    return CatalogRequest(files=tuple(files), source=source or "catalog")


def fetch(request: CatalogRequest) -> Iterator[RawInput]:
    for path in request.files:
        yield RawInput(str(path), path.read_bytes())


def parse(raw: RawInput, source: str = "catalog") -> ParseResult:
    """Long-format CSV bytes -> schema table. Rows with missing/non-finite values are quarantined."""
    compression = "gzip" if raw.data[:2] == b"\x1f\x8b" else None  # by magic: readers may inflate already
    try:
        stream = pa.input_stream(pa.BufferReader(raw.data), compression=compression)
        table = pacsv.read_csv(
            stream,
            convert_options=pacsv.ConvertOptions(
                column_types={"object_id": pa.string(), "label": pa.string(), "band": pa.string()}
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        return ParseResult(table=SCHEMA.empty_table(), quarantined=[(raw.name, f"unreadable CSV: {exc}")])
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        return ParseResult(table=SCHEMA.empty_table(), quarantined=[(raw.name, f"missing columns {missing}")])

    mjd = table.column("mjd").cast(pa.float64()).to_numpy(zero_copy_only=False)
    mag = table.column("mag").cast(pa.float64()).to_numpy(zero_copy_only=False)
    err = table.column("magerr").cast(pa.float64()).to_numpy(zero_copy_only=False)
    good = np.isfinite(mjd) & np.isfinite(mag) & np.isfinite(err) & (err >= 0)
    quarantined = [(f"{raw.name}#row{i + 2}", "non-finite or negative mjd/mag/magerr") for i in np.flatnonzero(~good)]
    table = table.filter(pa.array(good))
    mjd, mag, err = mjd[good], mag[good], err[good]

    is_limit = (
        table.column("is_limit").cast(pa.bool_())
        if "is_limit" in table.column_names
        else pa.array(np.zeros(len(mjd), dtype=bool))
    )
    flux, flux_err = mag_to_flux_ujy(mag, err)
    src = table.column("source") if "source" in table.column_names else pa.array([source] * len(mjd), pa.string())
    out = pa.table(
        {
            "object_id": table.column("object_id"),
            "source": src,
            "mjd": pa.array(mjd),
            "band": table.column("band"),
            "mag": pa.array(mag),
            "magerr": pa.array(err),
            "flux": pa.array(flux),
            "flux_err": pa.array(flux_err),
            "is_limit": pc.fill_null(is_limit, False),
            "label": table.column("label"),
            "night": pa.array(mjd_to_nights(mjd), pa.string()),
        }
    )
    return ParseResult(table=conform(out), quarantined=quarantined)
