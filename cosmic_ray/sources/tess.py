"""TESS light curves (SPOC 2-min ``*_lc.fits`` and QLP HLSP FITS) -> light-curve points.

What a row holds (differs from the alert sources, read this before mixing them):

* ``mjd`` is **barycentric**: ``TIME`` is BJD_TDB - 2457000 (``BJDREFI + BJDREFF`` in the
  header), so ``mjd = jd_to_mjd(TIME + BJDREF)`` is BJD_TDB as an MJD, not a geocentric UTC
  MJD like ZTF's (the two differ by up to ~8 minutes). :data:`TIME_REFERENCE` names it and the
  table's schema metadata carries it.
* ``flux`` / ``flux_err`` are **relative** (the chosen flux column divided by its median over
  the kept cadences, so the median is 1), not nanojansky; ``mag``/``magerr`` are null.
* Cadences with ``QUALITY != 0`` or a NaN time/flux are dropped (counted in the log).
* ``band`` is ``tess_T``, ``source`` is ``tess``, ``object_id`` is ``TIC<TICID>``.

A FITS file without a ``LIGHTCURVE`` table (a target-pixel file, a TESScut cutout) or without
the needed columns is quarantined with a reason, never raised.

Example (offline)::

    req = build_request(["../shared/data/tess"])
    for raw in fetch(req):
        result = parse(raw)
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
from astropy.io import fits

from cosmic_ray.core.errors import RemoteServiceError, SourceError
from cosmic_ray.core.lightcurve import JD_MJD_OFFSET, SCHEMA, conform, jd_to_mjd, mjd_to_nights
from cosmic_ray.sources import mast
from cosmic_ray.sources.base import ParseResult, RawInput, http_answer, read_files, unwrap_http
from cosmic_ray.sources.bounded import DecompressionLimitError, maybe_gunzip

log = logging.getLogger(__name__)

NAME = "tess"
SOURCE = "tess"
BAND = "tess_T"
TIME_REFERENCE = f"BJD_TDB - {JD_MJD_OFFSET} (barycentric, TDB); not geocentric UTC MJD"
FLUX_REFERENCE = "relative: flux / median(flux) over kept cadences; not nanojansky"
# Column tried in order when none is asked for: SPOC's PDC flux, then QLP's detrended flux.
DEFAULT_FLUX_COLUMNS = ("PDCSAP_FLUX", "KSPSAP_FLUX")
DOWNLOAD_URL = mast.download_url()
# MAST product sub-groups of the light-curve files: SPOC "LC", QLP "LLC".
_LC_PRODUCTS = {"SPOC": ("TESS", "LC"), "QLP": ("HLSP", "LLC")}
_TIC_RE = re.compile(r"^\s*TIC\s*(\d+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class TessRequest:
    """Local FITS files to read and/or MAST searches for the light curves of TIC targets."""

    files: tuple[Path, ...] = ()
    tic_ids: tuple[int, ...] = ()
    searches: tuple[mast.MastRequest, ...] = ()  # one Mast.Caom.Filtered search per TIC id
    author: str = "SPOC"
    server: str = mast.MAST_SERVER  # MAST server root (a mirror or a local replay of one)

    @property
    def remote(self) -> bool:
        """TIC ids are searched for and downloaded from MAST."""
        return bool(self.tic_ids)

    @property
    def parse_options(self) -> dict[str, Any]:
        return {}


def build_request(
    inputs: Iterable[Path | str | int], author: str = "SPOC", server: str = mast.MAST_SERVER
) -> TessRequest:
    """Files/folders of FITS light curves and/or TIC ids to search MAST for (nothing is sent).

    Args:
        inputs: paths (folders are searched for ``*.fits`` and ``*.fits.gz``), TIC ids as ``int``
            or ``"TIC 123"``.
        author: pipeline of the light curves searched for, ``SPOC`` or ``QLP``.
        server: MAST server root (a mirror or a local replay of one).

    Raises:
        SourceError: a path does not exist, or the author is unknown.
    """
    if author not in _LC_PRODUCTS:
        raise SourceError(f"unknown TESS light-curve author {author!r}; use one of {sorted(_LC_PRODUCTS)}")
    files: list[Path] = []
    tics: list[int] = []
    for item in inputs:
        if isinstance(item, (int, np.integer)):
            tics.append(int(item))
            continue
        match = _TIC_RE.match(str(item))
        if match:
            tics.append(int(match.group(1)))
            continue
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.name.endswith((".fits", ".fits.gz")) and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise SourceError(f"TESS input {path} does not exist (give a FITS file, a folder or a TIC id)")
    collection, _ = _LC_PRODUCTS[author]
    searches = []
    for tic in tics:
        criteria: dict[str, Any] = {
            "obs_collection": collection,
            "dataproduct_type": "timeseries",
            "target_name": str(tic),
        }
        if author == "QLP":
            criteria["provenance_name"] = "QLP"
        searches.append(mast.search_request(None, server=server, **criteria))
    return TessRequest(files=tuple(files), tic_ids=tuple(tics), searches=tuple(searches), author=author, server=server)


def fetch(request: TessRequest, timeout: float = 120.0) -> Iterator[RawInput]:
    """Yield the bytes of every light-curve file: local files, then MAST downloads.

    Network (TIC ids only): each prepared CAOM search (:attr:`TessRequest.searches`) finds the
    observations, their product list gives the light-curve files (``productSubGroupDescription``
    ``LC`` for SPOC, ``LLC`` for QLP), and each file is downloaded into memory; a download that
    answers an HTTP error is yielded as a raw HTTP response and quarantined by :func:`parse`.

    Raises:
        RemoteServiceError: MAST did not answer, or its search answer could not be read.
    """
    yield from read_files(request.files)
    if not request.tic_ids:
        return
    _, subgroup = _LC_PRODUCTS[request.author]
    url = mast.download_url(request.server)
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        for tic, search in zip(request.tic_ids, request.searches, strict=True):
            uris = _light_curve_uris(tic, search, subgroup, request.server)
            if not uris:
                log.warning("MAST has no %s light curve of TIC %d", request.author, tic)
            for uri in uris:
                yield http_answer(
                    client, "GET", url, service="MAST download", name=f"{url}?uri={uri}", params={"uri": uri}
                )


def _light_curve_uris(tic: int, search: mast.MastRequest, subgroup: str, server: str) -> list[str]:
    """The data URIs of the light-curve files of one TIC (search, then product list)."""
    obsids: list[int] = []
    for raw in mast.fetch(search):
        found = mast.parse(raw)
        if found.quarantined and found.table.num_rows == 0:
            raise RemoteServiceError(f"MAST search for TIC {tic} failed: {found.quarantined[0][1]}")
        obsids += [i for i in found.table.column("obsid").to_pylist() if i is not None]
    if not obsids:
        return []
    uris: list[str] = []
    for raw in mast.fetch(mast.products_request(obsids, server)):
        found_uris = mast.product_uris(raw, subgroup)
        if isinstance(found_uris, str):
            raise RemoteServiceError(f"MAST product list for TIC {tic} failed: {found_uris}")
        uris += found_uris
    return uris


def _tic_id(headers: Iterable[fits.Header]) -> int | None:
    for header in headers:
        if "TICID" in header and header["TICID"] not in (None, ""):
            try:
                return int(header["TICID"])
            except (TypeError, ValueError):
                pass
        match = _TIC_RE.match(str(header.get("OBJECT", "")))
        if match:
            return int(match.group(1))
    return None


def _quarantine(raw: RawInput, reason: str) -> ParseResult:
    return ParseResult(table=SCHEMA.empty_table(), quarantined=[(raw.name, reason)])


def parse(raw: RawInput, flux_column: str | None = None) -> ParseResult:
    """One TESS light-curve FITS file (bytes, optionally gzipped) -> schema table.

    Args:
        raw: the file's bytes.
        flux_column: ``PDCSAP_FLUX``, ``SAP_FLUX``, ``KSPSAP_FLUX``...; by default the first of
            :data:`DEFAULT_FLUX_COLUMNS` the file has.

    Returns:
        One row per kept cadence (see the module docstring), or an empty table and a
        quarantine record saying why the file was not read.
    """
    body = unwrap_http(raw, "MAST download")
    if isinstance(body, str):
        return _quarantine(raw, body)
    data = body
    try:
        data = maybe_gunzip(data, "gzipped FITS file")
    except DecompressionLimitError as exc:
        return _quarantine(raw, str(exc))
    except (OSError, EOFError) as exc:
        return _quarantine(raw, f"corrupt gzip: {exc}")
    try:
        with fits.open(io.BytesIO(data), memmap=False) as hdul:
            hdul.verify("silentfix")
            return _parse_hdul(raw, hdul, flux_column)
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        return _quarantine(raw, f"not a readable FITS file: {type(exc).__name__}: {exc}")


def _parse_hdul(raw: RawInput, hdul: fits.HDUList, flux_column: str | None) -> ParseResult:
    names = [hdu.name for hdu in hdul]
    if "LIGHTCURVE" not in names:
        kind = "a target-pixel file or TESScut cutout" if "PIXELS" in names else "not a light-curve file"
        return _quarantine(
            raw,
            f"no LIGHTCURVE table (HDUs {names}): {kind}; fetch the SPOC/QLP light-curve product "
            "or extract a light curve from the pixels first",
        )
    hdu = hdul["LIGHTCURVE"]
    columns = set(hdu.columns.names)
    if flux_column is None:
        flux_column = next((c for c in DEFAULT_FLUX_COLUMNS if c in columns), DEFAULT_FLUX_COLUMNS[0])
    missing = [c for c in ("TIME", "QUALITY", flux_column) if c not in columns]
    if missing:
        return _quarantine(raw, f"LIGHTCURVE table lacks {missing} (has {sorted(columns)})")
    tic = _tic_id([hdul[0].header, hdu.header])
    if tic is None:
        return _quarantine(raw, "no TICID (or OBJECT 'TIC n') in the headers")
    header = hdu.header
    if str(header.get("TIMESYS", "TDB")).upper() != "TDB":
        return _quarantine(raw, f"TIMESYS is {header.get('TIMESYS')!r}, expected TDB (barycentric TESS time)")
    bjd_ref = float(header.get("BJDREFI", 2457000)) + float(header.get("BJDREFF", 0.0))

    d = hdu.data
    time = np.asarray(d["TIME"], dtype=float)
    quality = np.asarray(d["QUALITY"], dtype=np.int64)
    flux = np.asarray(d[flux_column], dtype=float)
    err_col = f"{flux_column}_ERR"
    flux_err = np.asarray(d[err_col], dtype=float) if err_col in columns else np.full(len(flux), np.nan)
    keep = (quality == 0) & np.isfinite(time) & np.isfinite(flux)
    log.info(
        "%s: %d of %d cadences kept (%d flagged, %d NaN time/flux)",
        raw.name,
        int(keep.sum()),
        len(keep),
        int((quality != 0).sum()),
        int(((quality == 0) & ~(np.isfinite(time) & np.isfinite(flux))).sum()),
    )
    if not keep.any():
        return _quarantine(raw, f"no cadence with QUALITY == 0 and a finite {flux_column}")
    median = float(np.median(flux[keep]))
    if not median > 0:
        return _quarantine(raw, f"median {flux_column} is {median}, cannot normalise")

    n = int(keep.sum())
    mjd = jd_to_mjd(time[keep] + bjd_ref)  # BJD_TDB as an MJD: barycentric, not UTC
    rel_err = flux_err[keep] / median
    ra = header.get("RA_OBJ", hdul[0].header.get("RA_OBJ"))
    dec = header.get("DEC_OBJ", hdul[0].header.get("DEC_OBJ"))
    table = pa.table(
        {
            "object_id": pa.array([f"TIC{tic}"] * n, pa.string()),
            "source": pa.array([SOURCE] * n, pa.string()),
            "mjd": pa.array(mjd),
            "band": pa.array([BAND] * n, pa.string()),
            "flux": pa.array(flux[keep] / median),
            "flux_err": pa.array(rel_err, mask=~np.isfinite(rel_err)),
            "is_limit": pa.array(np.zeros(n, dtype=bool)),
            "ra": pa.array([_maybe_float(ra)] * n, pa.float64()),
            "dec": pa.array([_maybe_float(dec)] * n, pa.float64()),
            "night": pa.array(mjd_to_nights(mjd), pa.string()),
            "time_scale": pa.array(["tdb"] * n, pa.string()),  # barycentric TDB (see TIME_REFERENCE)
        }
    )
    table = conform(table).replace_schema_metadata(
        {"time_reference": TIME_REFERENCE, "flux_reference": FLUX_REFERENCE, "flux_column": flux_column}
    )
    return ParseResult(table=table)


def _maybe_float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None
