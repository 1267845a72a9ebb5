"""Labelled light-curve catalogues in the documented long format.

Format (CSV, optionally gzipped), one row per point::

    object_id,label,mjd,band,mag,magerr[,is_limit][,source]

Magnitudes are AB; bands are ``g``, ``r``, ``i`` for ZTF and ``<survey>_<filter>`` otherwise.
The ZTF Bright Transient Survey table in ``../shared/data/ztf-bts`` is in this format.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from cosmic_ray.core.errors import SourceError
from cosmic_ray.core.lightcurve import SCHEMA, conform, mag_to_flux_njy, mjd_to_nights
from cosmic_ray.sources.base import ParseResult, RawInput, read_files
from cosmic_ray.sources.bounded import DecompressionLimitError, maybe_gunzip

log = logging.getLogger(__name__)

NAME = "catalog"
REQUIRED_COLUMNS = ("object_id", "label", "mjd", "band", "mag", "magerr")
MJD_RANGE = (0.0, 200000.0)  # 1858 .. 2406: outside that a time is garbage (and so would its night be)
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_TRUE, _FALSE = {"true", "t", "1", "yes"}, {"false", "f", "0", "no", ""}


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    """A column as floats; text that is not a number becomes NaN (and its row is quarantined)."""
    try:
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        out = np.full(len(column), np.nan)
        for i, value in enumerate(column.cast(pa.string()).to_pylist()):
            try:
                out[i] = float(value)
            except (TypeError, ValueError):
                pass
        return out


def _bools(column: pa.ChunkedArray) -> np.ndarray:
    """true/false/1/0 (any case; empty = false) -> bool; anything else -> None (the row is quarantined)."""
    values = column.cast(pa.string()).to_pylist()
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        text = "" if value is None else value.strip().lower()
        out[i] = True if text in _TRUE else False if text in _FALSE else None
    return out


def _non_empty(column: pa.ChunkedArray) -> np.ndarray:
    return np.array([bool(v and v.strip()) for v in column.cast(pa.string()).to_pylist()], dtype=bool)


def _is_none(values: np.ndarray) -> np.ndarray:
    return np.array([v is None for v in values], dtype=bool)


def _safe_source(value: str | None) -> str | None:
    """A source name is a lake partition folder: no separators, no ``..``, nothing hidden."""
    return value if value is not None and _SOURCE_NAME.match(value) and ".." not in value else None


@dataclass(frozen=True)
class CatalogRequest:
    """Long-format CSV files to read, and the ``source`` name their rows get (unless a column says)."""

    files: tuple[Path, ...]
    source: str = "catalog"

    @property
    def remote(self) -> bool:
        return False

    @property
    def parse_options(self) -> dict[str, Any]:
        return {"source": self.source}


def build_request(inputs: Iterable[Path | str], source: str | None = None) -> CatalogRequest:
    """The CSV files in ``inputs`` (folders are searched for ``*.csv`` / ``*.csv.gz``).

    Raises:
        SourceError: a path does not exist.
    """
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
    """The bytes of each CSV file."""
    return read_files(request.files)


def parse(raw: RawInput, source: str = "catalog") -> ParseResult:
    """Long-format CSV bytes -> schema table. Rows with missing/non-finite values are quarantined."""
    try:
        data = maybe_gunzip(raw.data, "gzipped CSV file")  # by magic (readers may inflate already), bounded
        table = pacsv.read_csv(
            pa.BufferReader(data),
            convert_options=pacsv.ConvertOptions(
                column_types={"object_id": pa.string(), "label": pa.string(), "band": pa.string()}
            ),
        )
        columns = table.column_names  # decodes the header: not UTF-8 raises here
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError, DecompressionLimitError) as exc:
        return ParseResult(table=SCHEMA.empty_table(), quarantined=[(raw.name, f"unreadable CSV: {exc}")])
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        return ParseResult(table=SCHEMA.empty_table(), quarantined=[(raw.name, f"missing columns {missing}")])

    mjd, mag, err = (_floats(table.column(c)) for c in ("mjd", "mag", "magerr"))
    with np.errstate(over="ignore", invalid="ignore"):
        flux, flux_err = mag_to_flux_njy(mag, err)
    good = (
        np.isfinite(mjd)
        & (mjd >= MJD_RANGE[0])
        & (mjd <= MJD_RANGE[1])
        & np.isfinite(mag)
        & np.isfinite(err)
        & (err >= 0)
        & np.isfinite(flux)
        & np.isfinite(flux_err)
    )
    reasons = np.where(good, "", "non-finite, out-of-range or negative mjd/mag/magerr").astype(object)
    names_ok = _non_empty(table.column("object_id")) & _non_empty(table.column("band"))
    reasons[~names_ok & (reasons == "")] = "empty object_id or band"
    is_limit = (
        _bools(table.column("is_limit")) if "is_limit" in table.column_names else np.zeros(len(mjd), dtype=object)
    )
    reasons[_is_none(is_limit) & (reasons == "")] = "is_limit is not true/false"
    if "source" in table.column_names:
        sources = np.array(
            [_safe_source(v) for v in table.column("source").cast(pa.string()).to_pylist()], dtype=object
        )
        reasons[_is_none(sources) & (reasons == "")] = "source is not a plain name (letters, digits, _ . -)"
    good = reasons == ""
    quarantined = [(f"{raw.name}#row{i + 2}", str(reasons[i])) for i in np.flatnonzero(~good)]
    if not good.any():
        return ParseResult(table=SCHEMA.empty_table(), quarantined=quarantined)
    table = table.filter(pa.array(good))
    mjd, mag, err, flux, flux_err = mjd[good], mag[good], err[good], flux[good], flux_err[good]
    is_limit = pa.array(is_limit[good].astype(bool))
    src = (
        pa.array(sources[good], pa.string())
        if "source" in table.column_names
        else pa.array([source] * len(mjd), pa.string())
    )
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
            "is_limit": is_limit,
            "label": table.column("label"),
            "night": pa.array(mjd_to_nights(mjd), pa.string()),
        }
    )
    return ParseResult(table=conform(out), quarantined=quarantined)
