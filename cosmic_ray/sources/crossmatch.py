"""One event, one id: match objects across catalogues by name and position.

The SLSN and TDE catalogues, the ALeRCE SNe and the ZTF Bright Transient Survey share events
under different names (``SN2019abc``, ``2019abc``, ``AT 2019abc``, ``ZTF19...``). Before building
folds or counting classes, map every ``(catalogue, object_id)`` to one canonical event id:

* names are normalised by :func:`normalise_name` (IAU designations lose their ``SN``/``AT``
  prefix and spaces: ``AT 2019abc`` -> ``2019abc``; ZTF ids stay as they are; other survey names
  match without case, spaces or hyphens, so ``PS1-10jh`` matches ``PS110jh``);
* objects sharing a name are one event;
* objects within ``radius`` (2 arcsec by default) are one event, unless that would join two
  different IAU designations (two events in one galaxy stay apart);
* the canonical id of an event is its IAU name (``2019abc``), else its ZTF id, else the first
  of its names.

Example::

    xm = build_crossmatch(load_shared_entries(data_dir))
    xm.canonical("slsne", "2019ujb") == xm.canonical("ztf_bts", "ZTF19ackjrru")  # True
    canonical_ids(table, xm, catalogue="slsne")  # set of event ids in a light-curve table
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from astropy import units as u
from astropy.coordinates import SkyCoord, search_around_sky

from cosmic_ray.sources import catalogs
from cosmic_ray.sources.catalogs import parse_sexagesimal
from cosmic_ray.sources.mast import object_positions

log = logging.getLogger(__name__)

DEFAULT_RADIUS = 2 * u.arcsec
_IAU_RE = re.compile(r"^(?:SN|AT)?\s*((?:1[89]|20)\d{2})\s*([A-Za-z]{1,4})$", re.IGNORECASE)
_ZTF_RE = re.compile(r"^ZTF(\d{2})([a-z]{7})$", re.IGNORECASE)
_MISSING = {"", "-", "--", "nan", "none"}


def iau_name(name: str) -> str | None:
    """``2019abc`` for ``SN2019abc``, ``AT 2019abc``, ``2019ABC``...; ``None`` if not an IAU designation.

    Single-letter designations (before 2016 only) keep their capital: ``SN 1991D`` -> ``1991D``.
    """
    match = _IAU_RE.match(str(name).strip())
    if not match:
        return None
    year, letters = match.groups()
    return year + (letters.upper() if len(letters) == 1 else letters.lower())


def ztf_name(name: str) -> str | None:
    """``ZTF19abcdefg`` (canonical case) if ``name`` is a ZTF object id, else ``None``."""
    match = _ZTF_RE.match(str(name).strip())
    return f"ZTF{match.group(1)}{match.group(2).lower()}" if match else None


def normalise_name(name: str) -> str:
    """The display form of a name: IAU without prefix, ZTF ids as they are, others stripped."""
    text = " ".join(str(name).split())
    return iau_name(text) or ztf_name(text) or text


def name_key(name: str) -> str | None:
    """The key two spellings of one name share (``None`` for an empty/missing name)."""
    text = " ".join(str(name).split())
    if text.lower() in _MISSING:
        return None
    iau = iau_name(text)
    if iau:
        return f"iau:{iau.lower()}"
    ztf = ztf_name(text)
    if ztf:
        return f"ztf:{ztf}"
    return "name:" + re.sub(r"[^A-Za-z0-9]", "", text).upper()


def split_aliases(text: str | None, sep: str = ";") -> list[str]:
    """``"AT 2019dsg (ZTF19aapreis);PS16dtm (2016ezh)"`` -> each name, parenthesised ones included."""
    names: list[str] = []
    for part in str(text or "").split(sep):
        for piece in re.split(r"[()]", part):
            piece = " ".join(piece.replace("=", " ").split())
            if piece and piece.lower() not in _MISSING:
                names.append(piece)
    return names


@dataclass(frozen=True)
class Entry:
    """One object of one catalogue, with every name it is known by and its position (deg)."""

    catalogue: str
    object_id: str
    names: tuple[str, ...] = ()
    ra: float | None = None
    dec: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.catalogue, self.object_id)


@dataclass
class CrossMatch:
    """Result of :func:`build_crossmatch`."""

    ids: dict[tuple[str, str], str]  # (catalogue, object_id) -> canonical event id
    name_index: dict[str, str]  # name_key -> canonical event id
    conflicts: list[tuple[str, ...]] = field(default_factory=list)  # events joined with 2+ IAU names

    def canonical(self, catalogue: str, object_id: str) -> str:
        """Canonical id of an object; an object not in the match falls back to its name."""
        hit = self.ids.get((catalogue, object_id))
        if hit is not None:
            return hit
        key = name_key(object_id)
        return self.name_index.get(key, normalise_name(object_id)) if key else str(object_id)

    def members(self) -> dict[str, list[tuple[str, str]]]:
        """Canonical id -> its ``(catalogue, object_id)`` members."""
        out: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for key, cid in sorted(self.ids.items()):
            out[cid].append(key)
        return dict(out)

    def catalogue_ids(self, catalogue: str) -> set[str]:
        """Canonical ids of every object of one catalogue."""
        return {cid for (cat, _), cid in self.ids.items() if cat == catalogue}

    def shared(self, a: str, b: str) -> set[str]:
        """Events present in both catalogues."""
        return self.catalogue_ids(a) & self.catalogue_ids(b)


class _Union:
    def __init__(self, n: int, iaus: list[set[str]]) -> None:
        self.parent = list(range(n))
        self.iaus = [set(s) for s in iaus]

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int, guard: bool = False) -> bool:
        a, b = self.find(i), self.find(j)
        if a == b:
            return True
        if guard and self.iaus[a] and self.iaus[b] and not (self.iaus[a] & self.iaus[b]):
            return False  # two different IAU events close on the sky: keep apart
        self.parent[b] = a
        self.iaus[a] |= self.iaus[b]
        return True


def build_crossmatch(entries: Iterable[Entry], radius: u.Quantity | float = DEFAULT_RADIUS) -> CrossMatch:
    """Group entries into events by shared names, then by position within ``radius``.

    Args:
        entries: objects of every catalogue (an ``(catalogue, object_id)`` given twice is merged).
        radius: position match radius (a Quantity, or arcseconds).

    Returns:
        The mapping of every ``(catalogue, object_id)`` to its canonical event id.
    """
    merged: dict[tuple[str, str], Entry] = {}
    for e in entries:
        old = merged.get(e.key)
        if old is None:
            merged[e.key] = e
        else:
            merged[e.key] = Entry(
                e.catalogue,
                e.object_id,
                old.names + e.names,
                old.ra if old.ra is not None else e.ra,
                old.dec if old.dec is not None else e.dec,
            )
    nodes = [merged[k] for k in sorted(merged)]
    names = [_entry_names(e) for e in nodes]
    iaus = [{n for n in ns if iau_name(n) and iau_name(n) == n} for ns in names]
    uf = _Union(len(nodes), iaus)

    by_key: dict[str, list[int]] = defaultdict(list)
    for i, ns in enumerate(names):
        for n in ns:
            key = name_key(n)
            if key:
                by_key[key].append(i)
    for members in by_key.values():
        for j in members[1:]:
            uf.union(members[0], j)

    with_pos = [
        i
        for i, e in enumerate(nodes)
        if e.ra is not None and e.dec is not None and np.isfinite(e.ra) and np.isfinite(e.dec)
    ]
    if len(with_pos) > 1:
        coords = SkyCoord([nodes[i].ra for i in with_pos] * u.deg, [nodes[i].dec for i in with_pos] * u.deg)
        i1, i2, sep, _ = search_around_sky(coords, coords, u.Quantity(radius, u.arcsec))
        order = np.argsort(sep.arcsec, kind="stable")  # closest pairs first
        refused = 0
        for a, b in zip(i1[order], i2[order], strict=False):
            if a < b and not uf.union(with_pos[a], with_pos[b], guard=True):
                refused += 1
        if refused:
            log.info("%d position pairs within %s kept apart: different IAU names", refused, radius)

    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(nodes)):
        groups[uf.find(i)].append(i)
    ids: dict[tuple[str, str], str] = {}
    name_index: dict[str, str] = {}
    conflicts = []
    for members in groups.values():
        all_names = sorted({n for i in members for n in names[i]})
        iau = sorted({n for n in all_names if iau_name(n) == n})
        ztf = sorted({n for n in all_names if ztf_name(n) == n})
        if len(iau) > 1:
            conflicts.append(tuple(iau))
            log.warning("one event carries several IAU names %s (members %s)", iau, [nodes[i].key for i in members])
        cid = iau[0] if iau else ztf[0] if ztf else min(normalise_name(nodes[i].object_id) for i in members)
        for i in members:
            ids[nodes[i].key] = cid
        for n in all_names:
            key = name_key(n)
            if key:
                name_index.setdefault(key, cid)
    return CrossMatch(ids=ids, name_index=name_index, conflicts=conflicts)


def _entry_names(e: Entry) -> list[str]:
    """Display names of an entry; an alias list holding several IAU designations is not trusted."""
    own = normalise_name(e.object_id)
    names = [own] + [normalise_name(n) for n in e.names if str(n).strip()]
    iaus = {n for n in names if iau_name(n) == n}
    if len(iaus) > 1:
        log.warning("%s %s lists several IAU names %s; using its own name only", e.catalogue, e.object_id, sorted(iaus))
        names = [own]
    return sorted(set(names))


def canonical_ids(table: pa.Table, crossmatch: CrossMatch, catalogue: str | None = None) -> set[str]:
    """The set of canonical event ids of a light-curve table.

    Args:
        table: rows with ``object_id`` (and ``source``, used as the catalogue when ``catalogue``
            is not given).
        crossmatch: from :func:`build_crossmatch`.
        catalogue: catalogue name of every row.
    """
    objects = table.column("object_id").to_pylist()
    if catalogue is not None:
        return {crossmatch.canonical(catalogue, o) for o in set(objects)}
    sources = table.column("source").to_pylist()
    return {crossmatch.canonical(s, o) for s, o in set(zip(sources, objects, strict=False))}


# ----------------------------------------------------------------------------- entries from files


def _float_or_none(value: object) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _sexagesimal(ra: object, dec: object) -> tuple[float | None, float | None]:

    pos = parse_sexagesimal(ra, dec)
    return pos if pos else (None, None)


def bts_entries(path: Path | str, catalogue: str = "ztf_bts") -> list[Entry]:
    """BTS Explorer rows (``ZTFID, IAUID, RA, Dec`` sexagesimal); object id is the ZTF id."""
    df = pd.read_csv(path, dtype=str)
    out = []
    for row in df.itertuples(index=False):
        ra, dec = _sexagesimal(row.RA, row.Dec)
        out.append(Entry(catalogue, row.ZTFID, tuple(n for n in (row.IAUID,) if isinstance(n, str)), ra, dec))
    return out


def slsne_entries(path: Path | str, catalogue: str = "slsne") -> list[Entry]:
    """SLSN metadata ``sne_data.txt`` (``Name, RA_deg, DEC_deg``)."""
    df = pd.read_csv(path, sep=r"\s+", dtype=str)
    return [
        Entry(catalogue, row.Name, (), _float_or_none(row.RA_deg), _float_or_none(row.DEC_deg))
        for row in df.itertuples(index=False)
    ]


def tde_entries(path: Path | str, object_ids: Iterable[str] | None = None, catalogue: str = "tde") -> list[Entry]:
    """TDE ``tde_objects.csv`` (``name, aliases, ra, dec``), restricted to ``object_ids`` if given."""
    df = pd.read_csv(path, dtype=str)
    keep = set(object_ids) if object_ids is not None else None
    out = []
    for row in df.itertuples(index=False):
        if keep is not None and row.name not in keep:
            continue
        ra, dec = _sexagesimal(row.ra, row.dec)
        out.append(Entry(catalogue, row.name, tuple(split_aliases(row.aliases)), ra, dec))
    return out


def table_entries(table: pa.Table, catalogue: str) -> list[Entry]:
    """One entry per object of a light-curve table (its object id, mean position of its rows)."""

    ids = sorted(set(table.column("object_id").to_pylist()))
    pos = {
        o: (r, d)
        for o, r, d in zip(
            *(object_positions(table).column(c).to_pylist() for c in ("object_id", "ra", "dec")), strict=False
        )
    }
    return [Entry(catalogue, o, (), *pos.get(o, (None, None))) for o in ids]


def load_shared_entries(data_dir: Path | str) -> list[Entry]:
    """Entries of the BTS, SLSN, TDE (objects with photometry) and ALeRCE catalogues in shared data."""

    data = Path(data_dir)
    entries = bts_entries(data / "ztf-bts" / "bts_dev_catalog.csv")
    entries += slsne_entries(data / "slsne" / "sne_data.txt")
    tde_names = pd.read_csv(data / "tde" / "tde_photometry_mag_long.csv.gz", usecols=["name"], dtype=str)["name"]
    entries += tde_entries(data / "tde" / "tde_objects.csv", object_ids=set(tde_names.dropna()))
    alerce = catalogs.read_catalogue(data / "alerce-sne").table
    entries += table_entries(alerce, "alerce")
    return entries
