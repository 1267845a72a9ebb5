"""What is known near an object: positional matches in the catalogues, and what its ZTF alert says.

* :class:`SkyCatalogue`: the catalogues with positions (the BTS Explorer rows of
  ``ztf-bts/bts_dev_catalog.csv``, the SLSN-I catalogue ``slsne/sne_data.txt``, the TDE catalogue
  ``tde/tde_objects.csv``, and the MAST observations stored as the lake's anchors), searched by
  cone with astropy (:func:`astropy.coordinates.SkyCoord.separation`), separations in arcsec. The
  TNS (IAU) name is given where the catalogue has it (BTS ``IAUID``; SLSN and TDE names that are
  IAU designations).
* :func:`alert_matches`: the alert's own cross-matches (nearest Pan-STARRS1 source and its
  star/galaxy score, nearest Gaia source, nearest known solar-system object), ``-999`` and
  ``"null"`` (ZTF's "none") turned into ``None``.

Nothing here asks a service: the catalogues are local files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord

from cosmic_ray.sources.catalogs import parse_sexagesimal
from cosmic_ray.sources.crossmatch import iau_name, ztf_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogueObject:
    """One object of a catalogue, with its position (deg) and what the catalogue says it is."""

    catalogue: str
    name: str
    ra: float
    dec: float
    label: str | None = None
    tns_name: str | None = None  # IAU designation without prefix (``2019abc``)
    ztf_id: str | None = None


@dataclass(frozen=True)
class SkyMatch:
    """A catalogue object within the search radius."""

    obj: CatalogueObject
    separation_arcsec: float


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() and value.strip().lower() != "nan" else None


def bts_objects(path: Path) -> list[CatalogueObject]:
    """BTS Explorer rows: ZTF id, IAU name, sexagesimal position, spectroscopic type."""
    df = pd.read_csv(path, dtype=str, usecols=["ZTFID", "IAUID", "RA", "Dec", "type"])
    out = []
    for row in df.itertuples(index=False):
        pos = parse_sexagesimal(row.RA, row.Dec)
        if pos is None:
            continue
        iau = iau_name(_text(row.IAUID) or "")
        out.append(CatalogueObject("BTS", str(row.ZTFID), pos[0], pos[1], _text(row.type), iau, ztf_name(row.ZTFID)))
    return out


def slsn_objects(path: Path) -> list[CatalogueObject]:
    """The SLSN-I catalogue's metadata (``Name RA_deg DEC_deg ...``, whitespace separated)."""
    df = pd.read_csv(path, sep=r"\s+", dtype=str, usecols=["Name", "RA_deg", "DEC_deg"])
    out = []
    for row in df.itertuples(index=False):
        ra, dec = pd.to_numeric(row.RA_deg, errors="coerce"), pd.to_numeric(row.DEC_deg, errors="coerce")
        if np.isfinite(ra) and np.isfinite(dec):
            name = str(row.Name)
            out.append(CatalogueObject("SLSN", name, float(ra), float(dec), "SLSN-I", iau_name(name), ztf_name(name)))
    return out


def tde_objects(path: Path) -> list[CatalogueObject]:
    """The Open TDE Catalog's objects (``name, ra, dec`` sexagesimal, ``claimedtype``, ``aliases``)."""
    df = pd.read_csv(path, dtype=str, usecols=["name", "ra", "dec", "claimedtype", "aliases"])
    out = []
    for row in df.itertuples(index=False):
        pos = parse_sexagesimal(row.ra, row.dec)
        if pos is None:
            continue
        names = [str(row.name), *(a.strip() for a in str(row.aliases or "").split(","))]
        iau = next((n for n in (iau_name(x) for x in names) if n), None)
        ztf = next((z for z in (ztf_name(x) for x in names) if z), None)
        out.append(CatalogueObject("TDE", str(row.name), pos[0], pos[1], _text(row.claimedtype) or "TDE", iau, ztf))
    return out


def anchor_objects(anchors: Any) -> list[CatalogueObject]:
    """MAST observations stored in the lake (``_anchors``: ``obs_id``, ``obs_collection``, ``target_name``, ``ra``, ``dec``)."""
    if anchors is None or getattr(anchors, "num_rows", 0) == 0:
        return []
    out = []
    for row in anchors.select(["obs_id", "obs_collection", "target_name", "ra", "dec"]).to_pylist():
        if row["ra"] is None or row["dec"] is None or not np.isfinite([row["ra"], row["dec"]]).all():
            continue
        label = " ".join(x for x in (row["obs_collection"], row["target_name"]) if x) or None
        out.append(CatalogueObject("MAST", str(row["obs_id"]), float(row["ra"]), float(row["dec"]), label))
    return out


class SkyCatalogue:
    """Catalogue objects searchable by position (and by name: ZTF id or IAU designation)."""

    def __init__(self, objects: list[CatalogueObject]):
        self.objects = objects
        self._coords = SkyCoord([o.ra for o in objects] * u.deg, [o.dec for o in objects] * u.deg) if objects else None
        self._by_name: dict[str, CatalogueObject] = {}
        for o in objects:
            for key in (o.name, o.ztf_id, o.tns_name):
                if key:
                    self._by_name.setdefault(key.lower(), o)

    def near(self, ra: float, dec: float, radius_arcsec: float) -> list[SkyMatch]:
        """Objects within ``radius_arcsec`` of (ra, dec), nearest first."""
        if self._coords is None:
            return []
        sep = self._coords.separation(SkyCoord(ra * u.deg, dec * u.deg)).arcsec
        hits = np.flatnonzero(sep <= radius_arcsec)
        return [SkyMatch(self.objects[i], float(sep[i])) for i in hits[np.argsort(sep[hits], kind="stable")]]

    def named(self, name: str) -> CatalogueObject | None:
        """The object a catalogue lists under ``name`` (its own name, ZTF id or IAU designation)."""
        key = ztf_name(name) or iau_name(name) or name
        return self._by_name.get(key.lower())


def load_catalogues(shared_data: Path | None, anchors: Any = None) -> SkyCatalogue:
    """The catalogues of the shared data folder (those present) and the lake's anchors."""
    objects: list[CatalogueObject] = []
    if shared_data is not None:
        for rel, reader in (
            ("ztf-bts/bts_dev_catalog.csv", bts_objects),
            ("slsne/sne_data.txt", slsn_objects),
            ("tde/tde_objects.csv", tde_objects),
        ):
            path = shared_data / rel
            if path.is_file():
                try:
                    objects.extend(reader(path))
                except (OSError, ValueError, KeyError) as exc:
                    log.warning("catalogue %s unreadable: %s (left out)", path, exc)
    objects.extend(anchor_objects(anchors))
    return SkyCatalogue(objects)


def _value(context: dict[str, Any], key: str) -> Any:
    """A candidate field, ``None`` for ZTF's placeholders (-999, "null") and absent fields."""
    value = context.get(key)
    if value is None or (isinstance(value, int | float) and value <= -999) or value in ("null", ""):
        return None
    return value


def alert_matches(context: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """What the alert's candidate already matched: ``ps1``, ``gaia``, ``solar_system`` (None: nothing near)."""
    ps1 = {
        "objectidps1": _value(context, "objectidps1"),
        "distance_arcsec": _value(context, "distpsnr1"),
        "sgscore": _value(context, "sgscore1"),
        "rmag": _value(context, "srmag1"),
        "gmag": _value(context, "sgmag1"),
    }
    gaia = {"distance_arcsec": _value(context, "neargaia"), "gmag": _value(context, "maggaia")}
    ss = {
        "name": _value(context, "ssnamenr"),
        "distance_arcsec": _value(context, "ssdistnr"),
        "vmag": _value(context, "ssmagnr"),
    }
    return {
        "ps1": ps1 if ps1["distance_arcsec"] is not None else None,
        "gaia": gaia if gaia["distance_arcsec"] is not None else None,
        "solar_system": ss if ss["name"] is not None or ss["distance_arcsec"] is not None else None,
    }
