"""ZTF light curves from IRSA's ZTF light-curve API -> light-curve points.

These are **not difference photometry**: IRSA serves PSF-fit magnitudes measured on the
single-exposure science images at the positions of ZTF data-release objects (AB, calibrated to
PS1), so a transient's points include its host's light. Rows carry ``source = "ztf_irsa"``
(never ``ztf_alert``), positive ``flux`` from the AB magnitude and a null ``isdiffpos``; keep
them apart from alert photometry, or subtract a reference level first.

Service: ``https://irsa.ipac.caltech.edu/cgi-bin/ZTF/nph_light_curves`` with ``POS=CIRCLE ra dec
radius`` (degrees) or ``ID=<oid>``, ``FORMAT=ipac_table`` or ``csv`` (documented at
https://irsa.ipac.caltech.edu/docs/program_interface/ztf_lightcurve_api.html). Columns read:
``oid, mjd, mag, magerr, catflags, filtercode`` (required) and ``ra, dec`` (optional). ``mjd``
is used (``hjd`` is heliocentric). Epochs with ``catflags != 0`` are dropped; ``filtercode``
``zg/zr/zi`` becomes band ``g/r/i``. ``object_id`` is the DR object id ``oid`` (one per field,
CCD quadrant and filter) unless the caller names the object.

Example (offline)::

    req = build_request((150.1, 2.2), radius=2 * u.arcsec)
    req.url()   # 'https://irsa.ipac.caltech.edu/cgi-bin/ZTF/nph_light_curves?POS=CIRCLE+150.1+2.2+...'
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.parsers.expat import ExpatError

import httpx
import numpy as np
import pyarrow as pa
from astropy import units as u
from astropy.io import ascii as asciitable

from cosmic_ray.core.errors import SourceError
from cosmic_ray.core.lightcurve import SCHEMA, conform, mag_to_flux_njy, mjd_to_nights
from cosmic_ray.sources.base import (
    FileRequest,
    ParseResult,
    RawInput,
    http_answer,
    read_files,
    recorded_paths,
    sky_position,
    unwrap_http,
)

log = logging.getLogger(__name__)

NAME = "irsa"
SOURCE = "ztf_irsa"  # ZTF data-release PSF photometry on science images: NOT difference photometry
IRSA_SERVER = "https://irsa.ipac.caltech.edu"
LIGHTCURVE_PATH = "/cgi-bin/ZTF/nph_light_curves"
LIGHTCURVE_URL = IRSA_SERVER + LIGHTCURVE_PATH
RECORDED_SUFFIXES = (".tbl", ".csv", ".xml", ".vot", ".http", ".txt")
FORMATS = ("ipac_table", "csv")
FILTERCODE_TO_BAND = {"zg": "g", "zr": "r", "zi": "i"}
REQUIRED_COLUMNS = ("oid", "mjd", "mag", "magerr", "catflags", "filtercode")
DEFAULT_RADIUS = 2 * u.arcsec


@dataclass(frozen=True)
class IrsaRequest:
    """One GET of the ZTF light-curve API: base URL and ordered query parameters."""

    params: tuple[tuple[str, str], ...]
    base_url: str = LIGHTCURVE_URL
    object_id: str | None = None  # name to give the rows instead of IRSA's oid

    @property
    def files(self) -> tuple[Path, ...]:
        return ()

    @property
    def remote(self) -> bool:
        return True

    @property
    def parse_options(self) -> dict[str, Any]:
        return {"object_id": self.object_id} if self.object_id else {}

    def url(self) -> str:
        """The full URL that :func:`fetch` GETs."""
        return str(httpx.URL(self.base_url, params=list(self.params)))


@dataclass(frozen=True)
class RecordedAnswers(FileRequest):
    """Recorded answers of the service (IPAC table, CSV, VOTable or raw HTTP) to read from disk."""

    object_id: str | None = None  # name to give the rows instead of IRSA's oid

    @property
    def parse_options(self) -> dict[str, Any]:
        return {"object_id": self.object_id} if self.object_id else {}


def build_request(
    inputs: Any,
    *,
    radius: u.Quantity | float = DEFAULT_RADIUS,
    fmt: str = "ipac_table",
    bands: Sequence[str] | None = None,
    time: tuple[float, float] | None = None,
    bad_catflags_mask: int | None = None,
    collection: str | None = None,
    object_id: str | None = None,
    server: str = IRSA_SERVER,
) -> IrsaRequest | RecordedAnswers:
    """The ZTF light-curve API query for one position or some DR object ids (nothing is sent).

    Args:
        inputs: a position (``SkyCoord``, ``(ra, dec)`` in degrees or ``"ra dec"``) for
            ``POS=CIRCLE``; an ``int`` oid or a list of them for ``ID``; or paths of recorded
            answers (``.tbl``/``.csv``) to replay.
        radius: cone radius (a Quantity, or arcseconds).
        fmt: ``ipac_table`` or ``csv``.
        bands: ``g``/``r``/``i`` to ask for (``BANDNAME``); all when ``None``.
        time: ``(mjd_min, mjd_max)`` (``TIME``).
        bad_catflags_mask: let IRSA drop flagged epochs too (``BAD_CATFLAGS_MASK``); the parser
            drops ``catflags != 0`` either way.
        collection: data release, e.g. ``ztf_dr23`` (``COLLECTION``); IRSA's latest when ``None``.
        object_id: name for the rows (e.g. the ZTF alert id of the transient); IRSA's oid if ``None``.
        server: IRSA server root (a mirror or a local replay of one).

    Raises:
        SourceError: unknown format or band, or a recorded file does not exist.
    """
    recorded = recorded_paths(inputs, RECORDED_SUFFIXES)
    if recorded is not None:
        return RecordedAnswers(files=recorded, object_id=object_id)
    if fmt not in FORMATS:
        raise SourceError(f"IRSA light-curve format {fmt!r} not supported; use one of {FORMATS}")
    params: list[tuple[str, str]] = []
    if isinstance(inputs, (int, np.integer)) or (
        isinstance(inputs, (list, tuple)) and inputs and all(isinstance(x, (int, np.integer)) for x in inputs)
    ):
        ids = [int(inputs)] if isinstance(inputs, (int, np.integer)) else [int(x) for x in inputs]
        params += [("ID", str(i)) for i in ids]
    else:
        coords = sky_position(inputs)
        radius_deg = float(u.Quantity(radius, u.arcsec).to_value(u.deg))
        params.append(("POS", f"CIRCLE {coords.ra.deg:.7f} {coords.dec.deg:.7f} {radius_deg:.7f}"))
    if bands:
        unknown = [b for b in bands if b not in FILTERCODE_TO_BAND.values()]
        if unknown:
            raise SourceError(f"ZTF bands are g, r, i; got {unknown}")
        params.append(("BANDNAME", ",".join(bands)))
    if time is not None:
        params.append(("TIME", f"{float(time[0])} {float(time[1])}"))
    if bad_catflags_mask is not None:
        params.append(("BAD_CATFLAGS_MASK", str(int(bad_catflags_mask))))
    if collection:
        params.append(("COLLECTION", collection))
    params.append(("FORMAT", fmt))
    return IrsaRequest(params=tuple(params), base_url=server.rstrip("/") + LIGHTCURVE_PATH, object_id=object_id)


def fetch(request: IrsaRequest | RecordedAnswers, timeout: float = 120.0) -> Iterator[RawInput]:
    """GET the light curves (network) and yield the answer as a raw HTTP response.

    Recorded answers (:class:`RecordedAnswers`) are read from disk.

    Raises:
        RemoteServiceError: IRSA did not answer (an HTTP error answer is yielded and quarantined).
    """
    if isinstance(request, RecordedAnswers):
        yield from read_files(request.files)
        return
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        yield http_answer(client, "GET", request.url(), service="IRSA")


def _read_table(body: bytes) -> Any:
    """IPAC table, CSV (``#`` comment lines allowed) or VOTable (IRSA's default format)."""
    stripped = body.lstrip()
    if stripped.startswith(b"<"):
        from astropy.io.votable import parse_single_table  # deferred: only VOTable answers need it

        return parse_single_table(io.BytesIO(body)).to_table(), "votable"
    text = body.decode("utf-8", "replace")
    if stripped.startswith((b"\\", b"|")):
        return asciitable.read(text, format="ipac", guess=False), "ipac"
    return asciitable.read(text, format="csv", guess=False, comment="#"), "csv"


def _column(table: Any, name: str, dtype: Any = float) -> np.ndarray:
    col = table[name]
    if hasattr(col, "filled"):
        col = col.filled(np.nan if dtype is float else (-1 if dtype is int else ""))
    return np.asarray(col).astype(dtype)


def parse(raw: RawInput, object_id: str | None = None) -> ParseResult:
    """One ZTF light-curve API answer (IPAC table or CSV, bare or raw HTTP) -> schema table.

    Args:
        raw: the answer's bytes.
        object_id: name for every row; IRSA's ``oid`` (as text) when ``None``.

    Returns:
        Rows with ``catflags == 0``; rows with a null/non-finite ``mag``/``magerr``/``mjd`` or an
        unknown ``filtercode`` are quarantined one by one; an HTTP error, an unreadable body or
        missing columns quarantine the whole answer.
    """
    body = unwrap_http(raw, "IRSA")
    if isinstance(body, str):
        return ParseResult(table=SCHEMA.empty_table(), quarantined=[(raw.name, body)])
    try:
        table, fmt = _read_table(body)
    except (ValueError, TypeError, IndexError, KeyError, ExpatError) as exc:  # astropy's readers raise these
        return ParseResult(
            table=SCHEMA.empty_table(),
            quarantined=[(raw.name, f"IRSA answer is not a readable table: {type(exc).__name__}: {exc}")],
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in table.colnames]
    if missing:
        return ParseResult(
            table=SCHEMA.empty_table(),
            quarantined=[
                (raw.name, f"not a ZTF light-curve table: missing columns {missing} (has {table.colnames[:12]})")
            ],
        )
    if len(table) == 0:
        log.warning("IRSA answer %s holds no epochs", raw.name)
        return ParseResult(table=SCHEMA.empty_table())

    oid = _column(table, "oid", str)
    mjd = _column(table, "mjd")
    mag = _column(table, "mag")
    err = _column(table, "magerr")
    catflags = _column(table, "catflags", int)
    band = np.array([FILTERCODE_TO_BAND.get(str(f).strip(), "") for f in _column(table, "filtercode", str)])
    ra = _column(table, "ra") if "ra" in table.colnames else np.full(len(table), np.nan)
    dec = _column(table, "dec") if "dec" in table.colnames else np.full(len(table), np.nan)

    flagged = catflags != 0
    usable = np.isfinite(mjd) & np.isfinite(mag) & np.isfinite(err) & (err >= 0)
    known = band != ""
    quarantined = [
        (f"{raw.name}#row{i}", "null or non-finite mjd/mag/magerr" if not usable[i] else "unknown filtercode")
        for i in np.flatnonzero(~flagged & ~(usable & known))
    ]
    keep = ~flagged & usable & known
    log.info(
        "%s (%s): %d of %d epochs kept, %d with catflags != 0",
        raw.name,
        fmt,
        int(keep.sum()),
        len(keep),
        int(flagged.sum()),
    )

    flux, flux_err = mag_to_flux_njy(mag[keep], err[keep])
    n = int(keep.sum())
    ids = [object_id] * n if object_id is not None else [str(o) for o in oid[keep]]
    out = pa.table(
        {
            "object_id": pa.array(ids, pa.string()),
            "source": pa.array([SOURCE] * n, pa.string()),
            "mjd": pa.array(mjd[keep]),
            "band": pa.array(band[keep].tolist(), pa.string()),
            "mag": pa.array(mag[keep]),
            "magerr": pa.array(err[keep]),
            "flux": pa.array(flux),
            "flux_err": pa.array(flux_err),
            "is_limit": pa.array(np.zeros(n, dtype=bool)),
            "ra": pa.array(ra[keep], mask=~np.isfinite(ra[keep])),
            "dec": pa.array(dec[keep], mask=~np.isfinite(dec[keep])),
            "night": pa.array(mjd_to_nights(mjd[keep]), pa.string()),
        }
    )
    return ParseResult(table=conform(out), quarantined=quarantined)


def read_lightcurves(inputs: Iterable[Path | str], object_id: str | None = None) -> ParseResult:
    """Parse recorded answers into one table (quarantine lists concatenated)."""
    tables: list[pa.Table] = []
    quarantined: list[tuple[str, str]] = []
    for raw in fetch(build_request([Path(p) for p in inputs])):
        res = parse(raw, object_id=object_id)
        tables.append(res.table)
        quarantined.extend(res.quarantined)
    return ParseResult(table=pa.concat_tables(tables) if tables else SCHEMA.empty_table(), quarantined=quarantined)
