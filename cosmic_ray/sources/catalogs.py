"""Labelled rare-class catalogues -> light-curve points (the documented long format, AB mags).

Three catalogues, each a photometry table plus companion files:

=========  =======================================  ===========================  ===========
catalogue  photometry                               companions                   label
=========  =======================================  ===========================  ===========
``slsne``  ``slsne_photometry_long.csv.gz``         ``sne_data.txt`` (RA/Dec)    ``SLSN-I``
``tde``    ``tde_photometry_mag_long.csv.gz``       ``tde_objects.csv`` (RA/Dec)  ``TDE``
``alerce`` ``30_sne_detections_corr.csv``           ``30_sne_non_detections.csv``,  as given
                                                    ``30_sne_labels.csv``
=========  =======================================  ===========================  ===========

Conventions (the long format ``object_id,label,mjd,band,mag,magerr[,is_limit][,source]``):

* Magnitudes are AB. Vega magnitudes are converted here, once, by :func:`ab_offset` from the
  table :data:`VEGA_TO_AB`; a row whose system/filter cannot be converted (unfiltered ``C``
  photometry, HST Vega magnitudes, W1/W2 that could be Swift or WISE) is dropped and
  quarantined with its reason. A row without a ``system`` takes its filter's native system
  (:data:`NATIVE_SYSTEM`: SDSS-like ugriz/ATLAS/GALEX are AB, Johnson-Cousins, 2MASS, WISE and
  Swift/UVOT are Vega) unless ``assume_native_system=False``.
* Bands are ``g``/``r``/``i`` for ZTF, ``<survey>_<filter>`` otherwise (``atlas_o``,
  ``swift_UVW2``, ``ptf_R`` ...).
* Upper limits have ``is_limit`` true, the limiting magnitude in ``mag`` and no flux.
* SLSN magnitudes are the catalogue's ``Mag`` column, which is corrected for Milky-Way
  extinction (``Raw`` is the observed value and is missing for a third of the rows); rows the
  catalogue flags ``Ignore`` are quarantined. ALeRCE magnitudes are the alert ``magpsf``
  (difference photometry, sign from ``isdiffpos``), like ``ztf_alert`` rows.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from astropy import units as u
from astropy.coordinates import SkyCoord

from cosmic_ray.core.errors import SourceError
from cosmic_ray.core.lightcurve import (
    AB_ZP_NJY,
    JD_MJD_OFFSET,
    SCHEMA,
    ZTF_FID_TO_BAND,
    conform,
    jd_to_mjd,
    mjd_to_nights,
)
from cosmic_ray.core.taxonomy import to_coarse
from cosmic_ray.sources.base import ParseResult, RawInput
from cosmic_ray.sources.bounded import maybe_gunzip
from cosmic_ray.sources.magsystems import (
    ab_offset,
    band_name,
    canonical_filter,
    filter_family,
    survey_name,
    text_or_empty,
)

log = logging.getLogger(__name__)

NAME = "catalogs"

# ----------------------------------------------------------------------------- request / fetch

CATALOGUES: dict[str, dict[str, str]] = {
    "slsne": {"photometry": "slsne_photometry_long.csv.gz", "metadata": "sne_data.txt"},
    "tde": {"photometry": "tde_photometry_mag_long.csv.gz", "metadata": "tde_objects.csv"},
    "alerce": {
        "photometry": "30_sne_detections_corr.csv",
        "non_detections": "30_sne_non_detections.csv",
        "labels": "30_sne_labels.csv",
    },
}
LABELS = {"slsne": "SLSN-I", "tde": "TDE"}
SOURCES = {"slsne": "slsne", "tde": "tde", "alerce": "alerce"}

# ALeRCE class names -> the taxonomy's fine spelling (``SLSN`` is ALeRCE's own, type I and II together).
ALERCE_TO_TAXONOMY = {"SNIa": "SN Ia", "SNIbc": "SN Ib/c", "SNII": "SN II", "SNIIn": "SN IIn", "TDE": "TDE"}


def alerce_coarse(label: str | None) -> str:
    """Coarse class of an ALeRCE label (``SNIa`` -> ``SN Ia``); ALeRCE's ``SLSN`` gives ``Other``
    because it does not say which of ``SLSN-I``/``SLSN-II`` it is."""
    return to_coarse(ALERCE_TO_TAXONOMY.get(text_or_empty(label), text_or_empty(label)))


@dataclass(frozen=True)
class CatalogueFiles:
    catalogue: str
    files: Mapping[str, Path]  # role -> path


@dataclass(frozen=True)
class CatalogsRequest:
    catalogues: tuple[CatalogueFiles, ...]
    assume_native_system: bool = True

    @property
    def files(self) -> tuple[Path, ...]:
        """The photometry files (what a file-based ingest reads; companions are found beside them)."""
        return tuple(c.files["photometry"] for c in self.catalogues)

    @property
    def remote(self) -> bool:
        return False

    @property
    def parse_options(self) -> dict[str, Any]:
        return {"assume_native_system": self.assume_native_system}


@dataclass(frozen=True)
class CatalogueInput(RawInput):
    """The photometry file's bytes (``data``) plus its companions' bytes, named by role."""

    catalogue: str = ""
    parts: Mapping[str, bytes] = field(default_factory=dict)


def identify(path: Path) -> tuple[str, str] | None:
    """``(catalogue, role)`` of a known catalogue file, by name."""
    for catalogue, roles in CATALOGUES.items():
        for role, filename in roles.items():
            if path.name == filename:
                return catalogue, role
    return None


def build_request(inputs: Iterable[Path | str], assume_native_system: bool = True) -> CatalogsRequest:
    """Find the catalogues in folders/files; each photometry file must have its companions beside it.

    Raises:
        SourceError: a path does not exist, nothing known was found, or a companion is missing.
    """
    found: dict[str, dict[str, Path]] = {}
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise SourceError(f"catalogue input {path} does not exist")
        candidates = sorted(path.iterdir()) if path.is_dir() else [path]
        for candidate in candidates:
            hit = identify(candidate)
            if hit and hit[1] == "photometry":
                catalogue = hit[0]
                roles = {role: candidate.parent / name for role, name in CATALOGUES[catalogue].items()}
                missing = [str(p) for p in roles.values() if not p.is_file()]
                if missing:
                    raise SourceError(f"{catalogue} photometry {candidate} needs {missing} beside it")
                found[catalogue] = roles
    if not found:
        known = ", ".join(r["photometry"] for r in CATALOGUES.values())
        raise SourceError(f"no labelled catalogue found in {list(map(str, inputs))}; expected one of {known}")
    return CatalogsRequest(
        catalogues=tuple(CatalogueFiles(c, found[c]) for c in sorted(found)), assume_native_system=assume_native_system
    )


def fetch(request: CatalogsRequest) -> Iterator[CatalogueInput]:
    for cat in request.catalogues:
        parts = {role: p.read_bytes() for role, p in cat.files.items() if role != "photometry"}
        photometry = cat.files["photometry"]
        yield CatalogueInput(str(photometry), photometry.read_bytes(), catalogue=cat.catalogue, parts=parts)


def parse(raw: RawInput, assume_native_system: bool = True) -> ParseResult:
    """One catalogue (photometry bytes + companions) -> schema table; bad rows quarantined with reasons.

    A bare :class:`RawInput` (no ``parts``) named by the photometry file's path takes its
    companions from beside that file, so a file-based ingest can hand over the path alone.
    """
    catalogue = getattr(raw, "catalogue", "") or (identify(Path(raw.name)) or ("", ""))[0]
    parts = dict(getattr(raw, "parts", {}) or {})
    if catalogue in CATALOGUES and not parts:
        parts = _companions_beside(Path(raw.name), catalogue)
    if catalogue not in CATALOGUES:
        return ParseResult(table=SCHEMA.empty_table(), quarantined=[(raw.name, "not a known labelled catalogue file")])
    missing = [role for role in CATALOGUES[catalogue] if role != "photometry" and role not in parts]
    if missing:
        return ParseResult(
            table=SCHEMA.empty_table(), quarantined=[(raw.name, f"{catalogue} needs its {missing} file(s)")]
        )
    try:
        if catalogue == "slsne":
            return _parse_slsne(raw, parts, assume_native_system)
        if catalogue == "tde":
            return _parse_tde(raw, parts, assume_native_system)
        return _parse_alerce(raw, parts)
    except (ValueError, KeyError, pd.errors.ParserError, UnicodeDecodeError, OSError, SourceError) as exc:
        return ParseResult(
            table=SCHEMA.empty_table(), quarantined=[(raw.name, f"unreadable {catalogue} catalogue: {exc}")]
        )


def _companions_beside(photometry: Path, catalogue: str) -> dict[str, bytes]:
    """Companion files read from beside the photometry file, for a bare ``RawInput`` (file ingest)."""
    found = {}
    for role, filename in CATALOGUES[catalogue].items():
        path = photometry.parent / filename
        if role != "photometry" and path.is_file():
            found[role] = path.read_bytes()
    return found


def read_catalogue(folder: Path | str, assume_native_system: bool = True) -> ParseResult:
    """Read every labelled catalogue in a folder (or one photometry file) into one table."""
    tables, quarantined = [], []
    for raw in fetch(build_request([folder], assume_native_system)):
        res = parse(raw, assume_native_system)
        tables.append(res.table)
        quarantined.extend(res.quarantined)
    return ParseResult(table=pa.concat_tables(tables), quarantined=quarantined)


# ----------------------------------------------------------------------------- readers


def _csv(data: bytes, name: str, **kwargs: Any) -> pd.DataFrame:
    data = maybe_gunzip(data, f"gzipped catalogue {name}")  # by magic (readers may have inflated it), bounded
    return pd.read_csv(io.BytesIO(data), **kwargs)


def _jd_as_mjd(times: np.ndarray) -> np.ndarray:
    """Some catalogue rows give a Julian date in the MJD column (the TDE catalogue does): convert those."""
    return np.where(times >= JD_MJD_OFFSET, jd_to_mjd(times), times)


def _photometry_frame(
    name: pd.Series,
    mjd: pd.Series,
    mag: pd.Series,
    magerr: pd.Series,
    is_limit: pd.Series,
    filt: pd.Series,
    system: pd.Series,
    telescope: pd.Series,
    instrument: pd.Series,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "object_id": name.map(text_or_empty).to_numpy(),
            "mjd": _jd_as_mjd(pd.to_numeric(mjd, errors="coerce").to_numpy(float)),
            "mag_in": pd.to_numeric(mag, errors="coerce").to_numpy(float),
            "magerr": pd.to_numeric(magerr, errors="coerce").to_numpy(float),
            "is_limit": is_limit.astype(str).str.lower().isin(["true", "1", "t"]).to_numpy(),
            "filter_raw": filt.to_numpy(object),
            "system": system.to_numpy(object),
            "telescope": telescope.to_numpy(object),
            "instrument": instrument.to_numpy(object),
        }
    )


def _convert(
    df: pd.DataFrame, raw_name: str, catalogue: str, assume_native_system: bool
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Filters, bands, AB conversion and row checks, shared by the SLSN and TDE readers."""
    quarantined: list[tuple[str, str]] = []
    keys = df[["filter_raw", "system", "telescope", "instrument"]].map(text_or_empty)
    combos = keys.drop_duplicates()
    resolved = {}
    for row in combos.itertuples(index=False):
        filt = canonical_filter(row.filter_raw, row.telescope, row.instrument)
        family = filter_family(row.telescope, row.instrument, filt)
        offset, why = ab_offset(filt, row.system, family, assume_native_system) if filt else (None, "no filter")
        survey = survey_name(row.telescope, row.instrument)
        if survey == "unknown" and family == "swift":
            survey = "swift"  # UVW2/UVM2/UVW1 exist only on Swift/UVOT
        resolved[tuple(row)] = (band_name(survey, filt), offset, why)
    triples = [resolved[k] for k in keys.itertuples(index=False, name=None)]
    df = df.assign(
        band=[t[0] for t in triples],
        offset=np.array([np.nan if t[1] is None else t[1] for t in triples], dtype=float),
        why=[t[2] for t in triples],
    )
    bad_system = ~np.isfinite(df["offset"].to_numpy())
    no_time = ~np.isfinite(df["mjd"].to_numpy()) | ~np.isfinite(df["mag_in"].to_numpy())
    err = df["magerr"].to_numpy()
    no_err = ~df["is_limit"].to_numpy() & ~(np.isfinite(err) & (err >= 0))
    no_id = df["object_id"].to_numpy() == ""
    for i in np.flatnonzero(bad_system | no_time | no_err | no_id):
        reason = (
            "no object name"
            if no_id[i]
            else "missing or non-finite time/magnitude"
            if no_time[i]
            else df["why"].iat[i]
            if bad_system[i]
            else "detection without a magnitude error"
        )
        quarantined.append((f"{raw_name}#row{i + 2}", reason))
    keep = ~(bad_system | no_time | no_err | no_id)
    df = df[keep].copy()
    df["mag"] = df["mag_in"] + df["offset"]
    df.loc[df["is_limit"], "magerr"] = np.nan
    log.info("%s: %d rows kept, %d quarantined", catalogue, len(df), len(quarantined))
    return df, quarantined


def _to_table(df: pd.DataFrame, source: str, labels: pd.Series | str) -> pa.Table:
    mag = df["mag"].to_numpy(float)
    err = df["magerr"].to_numpy(float)
    limit = df["is_limit"].to_numpy(bool)
    sign = df["sign"].to_numpy(float) if "sign" in df else np.ones(len(df))
    flux = sign * 10 ** (-0.4 * (mag - AB_ZP_NJY))  # nanojansky from AB (ZP 31.4)
    flux_err = np.abs(flux) * err * np.log(10) / 2.5
    no_flux = limit | ~np.isfinite(flux)
    columns: dict[str, Any] = {
        "object_id": pa.array(df["object_id"].tolist(), pa.string()),
        "source": pa.array([source] * len(df), pa.string()),
        "mjd": pa.array(df["mjd"].to_numpy(float)),
        "band": pa.array(df["band"].tolist(), pa.string()),
        "mag": pa.array(mag),
        "magerr": pa.array(err, mask=~np.isfinite(err)),
        "flux": pa.array(flux, mask=no_flux),
        "flux_err": pa.array(flux_err, mask=no_flux | ~np.isfinite(flux_err)),
        "is_limit": pa.array(limit),
        "label": pa.array([labels] * len(df) if isinstance(labels, str) else labels.tolist(), pa.string()),
        "night": pa.array(mjd_to_nights(df["mjd"].to_numpy(float)), pa.string()),
    }
    for name, typ in (("ra", pa.float64()), ("dec", pa.float64()), ("rb", pa.float64()), ("drb", pa.float64())):
        if name in df:
            values = df[name].to_numpy(float)
            columns[name] = pa.array(values, mask=~np.isfinite(values), type=typ)
    if "candid" in df:
        # 19-digit ids: never through float64
        columns["candid"] = pa.array(df["candid"].astype("Int64"), type=pa.int64(), from_pandas=True)
    if "isdiffpos" in df:
        columns["isdiffpos"] = pa.array([None if pd.isna(v) else bool(v) for v in df["isdiffpos"]], pa.bool_())
    return conform(pa.table(columns))


def _parse_slsne(raw: RawInput, parts: Mapping[str, bytes], assume_native_system: bool) -> ParseResult:
    phot = _csv(raw.data, raw.name, dtype={"Name": str})
    meta = pd.read_csv(io.BytesIO(parts["metadata"]), sep=r"\s+", dtype={"Name": str})
    df = _photometry_frame(
        phot["Name"],
        phot["MJD"],
        phot["Mag"],
        phot["MagErr"],
        phot["UL"],
        phot["Filter"],
        phot["System"],
        phot["Telescope"],
        phot["Instrument"],
    )
    ignored = phot["Ignore"].astype(str).str.lower().isin(["true", "1"]).to_numpy()
    quarantined = [(f"{raw.name}#row{i + 2}", "flagged Ignore by the catalogue") for i in np.flatnonzero(ignored)]
    df = df[~ignored]
    df, bad = _convert(df, raw.name, "slsne", assume_native_system)
    quarantined.extend(bad)
    pos = meta.set_index(meta["Name"].map(text_or_empty))
    df["ra"] = df["object_id"].map(pd.to_numeric(pos["RA_deg"], errors="coerce"))
    df["dec"] = df["object_id"].map(pd.to_numeric(pos["DEC_deg"], errors="coerce"))
    return ParseResult(table=_to_table(df, SOURCES["slsne"], LABELS["slsne"]), quarantined=quarantined)


def parse_sexagesimal(ra: Any, dec: Any) -> tuple[float, float] | None:
    """``(ra_deg, dec_deg)`` from hour-angle RA and degree Dec strings, or ``None`` if unreadable."""
    ra_s, dec_s = text_or_empty(ra), text_or_empty(dec)
    if not ra_s or not dec_s or ra_s.count(":") != 2 or dec_s.count(":") != 2:
        return None
    try:
        c = SkyCoord(ra_s, dec_s, unit=(u.hourangle, u.deg), frame="icrs")
    except ValueError:
        return None
    return float(c.ra.deg), float(c.dec.deg)


def _parse_tde(raw: RawInput, parts: Mapping[str, bytes], assume_native_system: bool) -> ParseResult:
    phot = _csv(raw.data, raw.name, dtype={"name": str})
    meta = pd.read_csv(io.BytesIO(parts["metadata"]), dtype=str)
    time = pd.to_numeric(phot["time"], errors="coerce")
    unit = phot["u_time"].map(text_or_empty)
    time = time.where(unit.isin(["MJD", ""]), np.nan)  # only MJD times are understood
    df = _photometry_frame(
        phot["name"],
        time,
        phot["magnitude"],
        phot["e_magnitude"],
        phot["upperlimit"],
        phot["band"],
        phot["system"],
        phot["telescope"],
        phot["instrument"],
    )
    df, quarantined = _convert(df, raw.name, "tde", assume_native_system)
    positions = {}
    for row in meta.itertuples(index=False):
        pos = parse_sexagesimal(row.ra, row.dec)
        if pos:
            positions[text_or_empty(row.name)] = pos
    df["ra"] = df["object_id"].map(lambda n: positions.get(n, (np.nan, np.nan))[0])
    df["dec"] = df["object_id"].map(lambda n: positions.get(n, (np.nan, np.nan))[1])
    return ParseResult(table=_to_table(df, SOURCES["tde"], LABELS["tde"]), quarantined=quarantined)


def _parse_alerce(raw: RawInput, parts: Mapping[str, bytes]) -> ParseResult:
    det = _csv(raw.data, raw.name, dtype={"objectId": str})
    nondet = pd.read_csv(io.BytesIO(parts["non_detections"]), dtype={"objectId": str})
    labels = pd.read_csv(io.BytesIO(parts["labels"]), dtype=str)
    label_of = dict(zip(labels["objectId"].map(text_or_empty), labels["classALeRCE"].map(text_or_empty), strict=False))
    quarantined: list[tuple[str, str]] = []

    d = pd.DataFrame(
        {
            "object_id": det["objectId"].map(text_or_empty),
            "mjd": pd.to_numeric(det["mjd"], errors="coerce"),
            "mag": pd.to_numeric(det["magpsf"], errors="coerce"),
            "magerr": pd.to_numeric(det["sigmapsf"], errors="coerce"),
            "band": det["fid"].map(lambda f: ZTF_FID_TO_BAND.get(int(f)) if pd.notna(f) else None),
            "is_limit": False,
            "candid": pd.to_numeric(det["candid"], errors="coerce").astype("Int64"),
            "ra": pd.to_numeric(det["ra"], errors="coerce"),
            "dec": pd.to_numeric(det["dec"], errors="coerce"),
            "rb": pd.to_numeric(det["rb"], errors="coerce"),
            "drb": pd.to_numeric(det["drb"], errors="coerce") if "drb" in det else np.nan,
        }
    )
    diffpos = det["isdiffpos"].astype(str).str.lower().str.strip()
    d["isdiffpos"] = ~diffpos.isin(["-1", "-1.0", "f", "false", "0"])
    d["sign"] = np.where(d["isdiffpos"], 1.0, -1.0)
    n = pd.DataFrame(
        {
            "object_id": nondet["objectId"].map(text_or_empty),
            "mjd": jd_to_mjd(pd.to_numeric(nondet["jd"], errors="coerce")),
            "mag": pd.to_numeric(nondet["diffmaglim"], errors="coerce"),
            "magerr": np.nan,
            "band": nondet["fid"].map(lambda f: ZTF_FID_TO_BAND.get(int(f)) if pd.notna(f) else None),
            "is_limit": True,
        }
    )
    for frame, fname in ((d, raw.name), (n, "non_detections")):
        err = frame["magerr"].to_numpy(float)
        bad = (
            ~np.isfinite(frame["mjd"].to_numpy(float))
            | ~np.isfinite(frame["mag"].to_numpy(float))
            | frame["band"].isna().to_numpy()
            | (~frame["is_limit"].to_numpy(bool) & ~(np.isfinite(err) & (err >= 0)))
        )
        quarantined += [
            (f"{fname}#row{i + 2}", "missing time/magnitude/error or unknown fid") for i in np.flatnonzero(bad)
        ]
        frame.drop(frame.index[bad], inplace=True)
    unlabelled = sorted(set(d["object_id"]).union(n["object_id"]) - set(label_of))
    quarantined += [(f"{raw.name}:{oid}", "object has no ALeRCE label") for oid in unlabelled]
    df = pd.concat([d, n], ignore_index=True)
    df = df[~df["object_id"].isin(unlabelled)]
    df["sign"] = df["sign"].fillna(1.0)
    df = df.sort_values(["object_id", "mjd"], kind="stable")
    return ParseResult(table=_to_table(df, SOURCES["alerce"], df["object_id"].map(label_of)), quarantined=quarantined)


# ----------------------------------------------------------------------------- long format


LONG_COLUMNS = ("object_id", "label", "mjd", "band", "mag", "magerr", "is_limit", "source")


def to_long_format(table: pa.Table) -> pa.Table:
    """The documented long format ``object_id,label,mjd,band,mag,magerr,is_limit,source``
    (what :mod:`cosmic_ray.sources.catalog` reads back)."""
    return table.select(list(LONG_COLUMNS))
