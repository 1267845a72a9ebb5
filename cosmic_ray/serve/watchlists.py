"""Watchlists: a user's named positions with radii and sky regions (MOCs), and the alerts that fell in them.

Matching uses a HEALPix index, not a loop over entries: each entry's disc is stored as the nested
cells of order :data:`~cosmic_ray.serve.alertdb.PIXEL_ORDER` it touches (``astropy-healpix``
``cone_search_lonlat``); an alert's cell picks the candidate entries with one indexed look-up, then
the exact angular separation decides. Regions are MOCs (``mocpy``), checked with
``MOC.contains_lonlat`` for all the batch's alerts at once.

Example:
    >>> from cosmic_ray.serve.db import open_engine
    >>> lists = Watchlists(open_engine("sqlite:///:memory:"))
    >>> wl = lists.create("vera", "hosts", [EntryIn("M101", 210.80, 54.35, 60.0)])
    >>> [m.target for m in lists.match([AlertPosition(1, "ZTF1", 210.8001, 54.3501)])]
    ['entry:M101']
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Latitude, Longitude
from astropy_healpix import HEALPix
from sqlalchemy import delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from cosmic_ray.serve.alertdb import (
    PIXEL_ORDER,
    Watchlist,
    WatchlistEntry,
    WatchlistMatch,
    WatchlistPixel,
    WatchlistRegion,
    ensure_tables,
)
from cosmic_ray.serve.db import ConflictError, NotFoundError, StoreError, utcnow

if TYPE_CHECKING:
    from mocpy import MOC

log = logging.getLogger(__name__)

MAX_RADIUS_ARCSEC = 3600.0  # a disc of 1 degree: ~1000 cells at order 10
MAX_ENTRIES = 10_000
MAX_MOC_BYTES = 4 * 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9 _./()+:#-]{1,128}$")
_HEALPIX = HEALPix(nside=2**PIXEL_ORDER, order="nested")


@dataclass(frozen=True)
class EntryIn:
    """A position to watch (degrees, ICRS) and its radius (arcsec)."""

    name: str
    ra: float
    dec: float
    radius_arcsec: float


@dataclass(frozen=True)
class AlertPosition:
    """Where a new alert is."""

    candid: int
    object_id: str
    ra: float
    dec: float


@dataclass(frozen=True)
class Match:
    """An alert inside a watchlist's entry or region."""

    watchlist_id: int
    owner: str
    candid: int
    object_id: str
    target: str
    ra: float
    dec: float
    separation_arcsec: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "watchlist_id": self.watchlist_id,
            "candid": self.candid,
            "object_id": self.object_id,
            "target": self.target,
            "ra": self.ra,
            "dec": self.dec,
            "separation_arcsec": self.separation_arcsec,
        }


def separation_arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Angular distance (haversine, stable at small angles), arcsec."""
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h)))) * 3600.0


def check_entry(entry: EntryIn) -> EntryIn:
    """Raises: StoreError: a bad name, position or radius."""
    if not _NAME.match(entry.name):
        raise StoreError(f"bad entry name {entry.name!r}: 1-128 letters, digits, spaces and _./()+:#-")
    if not (math.isfinite(entry.ra) and 0.0 <= entry.ra < 360.0):
        raise StoreError(f"entry {entry.name!r}: ra {entry.ra} is not in [0, 360) degrees")
    if not (math.isfinite(entry.dec) and -90.0 <= entry.dec <= 90.0):
        raise StoreError(f"entry {entry.name!r}: dec {entry.dec} is not in [-90, 90] degrees")
    if not (math.isfinite(entry.radius_arcsec) and 0.0 < entry.radius_arcsec <= MAX_RADIUS_ARCSEC):
        raise StoreError(
            f"entry {entry.name!r}: radius {entry.radius_arcsec} arcsec is not in (0, {MAX_RADIUS_ARCSEC}]"
        )
    return entry


def parse_csv(text: str) -> list[EntryIn]:
    """CSV with a header ``name,ra,dec,radius`` (radius in arcsec; ``radius_arcsec`` accepted too).

    Raises:
        StoreError: a missing column or a bad row (its line number in the message).
    """
    reader = csv.DictReader(io.StringIO(text))
    fields = {f.strip().lower() for f in reader.fieldnames or []}
    radius = "radius" if "radius" in fields else "radius_arcsec"
    missing = {"name", "ra", "dec", radius} - fields
    if missing:
        raise StoreError(f"CSV header lacks {sorted(missing)}: expected name,ra,dec,radius (arcsec)")
    out = []
    for line, row in enumerate(reader, start=2):
        row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        try:
            out.append(check_entry(EntryIn(row["name"], float(row["ra"]), float(row["dec"]), float(row[radius]))))
        except ValueError as exc:
            raise StoreError(f"CSV line {line}: {exc}") from None
        except StoreError as exc:
            raise StoreError(f"CSV line {line}: {exc}") from None
    return out


def parse_moc_fits(data: bytes) -> MOC:
    """A MOC from the bytes of a FITS file (``mocpy``'s reader).

    Raises:
        StoreError: too large, or not a MOC FITS file.
    """
    if len(data) > MAX_MOC_BYTES:
        raise StoreError(f"MOC file of {len(data)} bytes exceeds {MAX_MOC_BYTES}")
    from mocpy import MOC  # deferred: mocpy takes seconds to import; only MOC uploads and regions need it

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload.fits"
        path.write_bytes(data)
        try:
            moc = MOC.load(str(path), format="fits")
        except Exception as exc:  # noqa: BLE001 - mocpy raises OSError/ValueError/rust panics alike
            raise StoreError(f"not a MOC FITS file: {type(exc).__name__}") from None
    if moc.empty():
        raise StoreError("the MOC covers no sky")
    return moc


def _cells(entry: EntryIn) -> list[int]:
    # the cells touched by the disc (inclusive: a cell partly inside counts)
    cells = _HEALPIX.cone_search_lonlat(entry.ra * u.deg, entry.dec * u.deg, entry.radius_arcsec * u.arcsec)
    return sorted({int(c) for c in cells})


class Watchlists:
    """Watchlists in the event store. Safe to share across threads.

    Args:
        engine: the store's engine (the tables are created if missing).
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        ensure_tables(engine)
        self._mocs: dict[int, MOC] = {}
        self._lock = threading.Lock()

    # --------------------------------------------------------------- lists
    def create(self, owner: str, name: str, entries: Sequence[EntryIn]) -> dict[str, Any]:
        """A new watchlist of ``entries`` (may be empty: regions can be added later).

        Raises:
            ConflictError: ``owner`` has a watchlist of that name.
            StoreError: a bad name or entry, or too many entries.
        """
        if not _NAME.match(name):
            raise StoreError(f"bad watchlist name {name!r}: 1-128 letters, digits, spaces and _./()+:#-")
        if len(entries) > MAX_ENTRIES:
            raise StoreError(f"{len(entries)} entries exceed the limit of {MAX_ENTRIES}")
        checked = [check_entry(e) for e in entries]
        with self.engine.begin() as conn:
            exists = conn.execute(select(Watchlist.id).where(Watchlist.owner == owner, Watchlist.name == name)).first()
            if exists is not None:
                raise ConflictError(f"you already have a watchlist named {name!r}")
            result = conn.execute(insert(Watchlist).values(owner=owner, name=name, created_at=utcnow()))
            assert result.inserted_primary_key is not None  # an INSERT has one
            wl_id = int(result.inserted_primary_key[0])
            for e in checked:
                entry = conn.execute(
                    insert(WatchlistEntry).values(
                        watchlist_id=wl_id, name=e.name, ra=e.ra, dec=e.dec, radius_arcsec=e.radius_arcsec
                    )
                )
                assert entry.inserted_primary_key is not None
                entry_id = int(entry.inserted_primary_key[0])
                conn.execute(insert(WatchlistPixel), [{"pixel": c, "entry_id": entry_id} for c in _cells(e)])
        log.info("watchlist %d (%d entries) created by %s", wl_id, len(checked), owner)
        return self.get(wl_id)

    def add_region(self, watchlist_id: int, name: str, moc: MOC) -> dict[str, Any]:
        """Add a sky region to a watchlist. Raises: StoreError: a bad name; NotFoundError: no such list."""
        if not _NAME.match(name):
            raise StoreError(f"bad region name {name!r}")
        with self.engine.begin() as conn:
            if conn.execute(select(Watchlist.id).where(Watchlist.id == watchlist_id)).first() is None:
                raise NotFoundError(f"no watchlist {watchlist_id}")
            conn.execute(
                insert(WatchlistRegion).values(
                    watchlist_id=watchlist_id,
                    name=name,
                    moc=moc.to_string(format="ascii"),
                    sky_fraction=float(moc.sky_fraction),
                )
            )
        return self.get(watchlist_id)

    def get(self, watchlist_id: int) -> dict[str, Any]:
        """A watchlist with its entries and regions. Raises: NotFoundError."""
        with self.engine.connect() as conn:
            wl = conn.execute(select(Watchlist).where(Watchlist.id == watchlist_id)).first()
            if wl is None:
                raise NotFoundError(f"no watchlist {watchlist_id}")
            entries = conn.execute(
                select(WatchlistEntry).where(WatchlistEntry.watchlist_id == watchlist_id).order_by(WatchlistEntry.id)
            ).all()
            regions = conn.execute(
                select(WatchlistRegion.name, WatchlistRegion.sky_fraction)
                .where(WatchlistRegion.watchlist_id == watchlist_id)
                .order_by(WatchlistRegion.id)
            ).all()
        return {
            "id": wl.id,
            "owner": wl.owner,
            "name": wl.name,
            "created_at": wl.created_at.isoformat() + "Z",
            "entries": [{"name": e.name, "ra": e.ra, "dec": e.dec, "radius_arcsec": e.radius_arcsec} for e in entries],
            "regions": [{"name": r.name, "sky_fraction": r.sky_fraction} for r in regions],
        }

    def owner_of(self, watchlist_id: int) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(Watchlist.owner).where(Watchlist.id == watchlist_id)).scalar_one_or_none()

    def list_for(self, owner: str | None = None) -> list[dict[str, Any]]:
        """Watchlists of ``owner`` (all when None), oldest first."""
        stmt = select(Watchlist.id).order_by(Watchlist.id)
        if owner is not None:
            stmt = stmt.where(Watchlist.owner == owner)
        with self.engine.connect() as conn:
            ids = list(conn.execute(stmt).scalars())
        return [self.get(i) for i in ids]

    def delete(self, watchlist_id: int) -> None:
        """Remove a watchlist with its entries, regions and matches. Raises: NotFoundError."""
        with self.engine.begin() as conn:
            entry_ids = select(WatchlistEntry.id).where(WatchlistEntry.watchlist_id == watchlist_id)
            conn.execute(delete(WatchlistPixel).where(WatchlistPixel.entry_id.in_(entry_ids)))
            conn.execute(delete(WatchlistEntry).where(WatchlistEntry.watchlist_id == watchlist_id))
            conn.execute(delete(WatchlistRegion).where(WatchlistRegion.watchlist_id == watchlist_id))
            conn.execute(delete(WatchlistMatch).where(WatchlistMatch.watchlist_id == watchlist_id))
            if conn.execute(delete(Watchlist).where(Watchlist.id == watchlist_id)).rowcount == 0:
                raise NotFoundError(f"no watchlist {watchlist_id}")
        with self._lock:
            self._mocs = {}

    # --------------------------------------------------------------- matching
    def match(self, alerts: Iterable[AlertPosition]) -> list[Match]:
        """The watchlist entries and regions each alert falls in (nothing is stored; see :meth:`record`)."""
        alerts = [a for a in alerts if math.isfinite(a.ra) and math.isfinite(a.dec)]
        if not alerts:
            return []
        ra = np.array([a.ra for a in alerts])
        dec = np.array([a.dec for a in alerts])
        cells = _HEALPIX.lonlat_to_healpix(ra * u.deg, dec * u.deg)  # (n_alerts,)
        by_cell: dict[int, list[int]] = {}
        for i, cell in enumerate(cells.tolist()):
            by_cell.setdefault(int(cell), []).append(i)
        out: list[Match] = []
        with self.engine.connect() as conn:
            wanted = list(by_cell)
            for start in range(0, len(wanted), 900):
                rows = conn.execute(
                    select(
                        WatchlistPixel.pixel,
                        WatchlistEntry.name,
                        WatchlistEntry.ra,
                        WatchlistEntry.dec,
                        WatchlistEntry.radius_arcsec,
                        Watchlist.id,
                        Watchlist.owner,
                    )
                    .join(WatchlistEntry, WatchlistEntry.id == WatchlistPixel.entry_id)
                    .join(Watchlist, Watchlist.id == WatchlistEntry.watchlist_id)
                    .where(WatchlistPixel.pixel.in_(wanted[start : start + 900]))
                ).all()
                for r in rows:
                    for i in by_cell[int(r.pixel)]:
                        a = alerts[i]
                        sep = separation_arcsec(a.ra, a.dec, r.ra, r.dec)
                        if sep <= r.radius_arcsec:
                            out.append(Match(r.id, r.owner, a.candid, a.object_id, f"entry:{r.name}", a.ra, a.dec, sep))
            regions = conn.execute(
                select(WatchlistRegion.id, WatchlistRegion.name, WatchlistRegion.moc, Watchlist.id, Watchlist.owner)
                .join(Watchlist, Watchlist.id == WatchlistRegion.watchlist_id)
                .order_by(WatchlistRegion.id)
            ).all()
        for region in regions:
            inside = self._moc(region[0], region.moc).contains_lonlat(Longitude(ra * u.deg), Latitude(dec * u.deg))
            for k in np.flatnonzero(inside).tolist():
                a = alerts[k]
                out.append(
                    Match(region[3], region.owner, a.candid, a.object_id, f"region:{region.name}", a.ra, a.dec, None)
                )
        return out

    def _moc(self, region_id: int, text: str) -> MOC:
        with self._lock:
            moc = self._mocs.get(region_id)
            if moc is None:
                from mocpy import MOC  # deferred: mocpy takes seconds to import; only regions need it

                moc = self._mocs[region_id] = MOC.from_string(text, format="ascii")
            return moc

    def record(self, matches: Sequence[Match]) -> list[Match]:
        """Store matches once per (watchlist, candid, target); returns those that were new."""
        if not matches:
            return []
        now = utcnow()
        dialect = self.engine.dialect.name
        upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        new: list[Match] = []
        with self.engine.begin() as conn:
            for m in matches:
                stmt = (
                    upsert(WatchlistMatch)
                    .values(
                        watchlist_id=m.watchlist_id,
                        candid=m.candid,
                        object_id=m.object_id,
                        target=m.target,
                        ra=m.ra,
                        dec=m.dec,
                        separation_arcsec=m.separation_arcsec,
                        matched_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["watchlist_id", "candid", "target"])
                )
                if conn.execute(stmt).rowcount:
                    new.append(m)
        return new

    def matches(self, watchlist_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """A watchlist's latest matches first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(WatchlistMatch)
                .where(WatchlistMatch.watchlist_id == watchlist_id)
                .order_by(WatchlistMatch.matched_at.desc(), WatchlistMatch.id.desc())
                .limit(limit)
            ).all()
        return [
            {
                "candid": r.candid,
                "object_id": r.object_id,
                "target": r.target,
                "ra": r.ra,
                "dec": r.dec,
                "separation_arcsec": r.separation_arcsec,
                "matched_at": r.matched_at.isoformat() + "Z",
            }
            for r in rows
        ]
