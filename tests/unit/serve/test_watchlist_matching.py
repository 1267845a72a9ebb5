"""Watchlist matching (HEALPix index + exact distance, MOC regions) against a brute-force check, on the
positions of real ZTF alerts (``ztf-alerts/pittgoogle/alerts-for-testing``: 50 alerts, 49 objects).

The watchlist entries are CONSTRUCTED around those real positions (offsets and radii chosen here, so
that some alerts fall inside, some just outside, and some entries are far from every alert); the
alerts themselves are real. No Ray: a real SQLite store in a temporary folder.
"""

from __future__ import annotations

import math

import astropy.units as u
import fastavro
import numpy as np
import pytest
from astropy.coordinates import Latitude, Longitude
from mocpy import MOC

from cosmic_ray.serve.alerting import positions_of
from cosmic_ray.serve.db import ConflictError, StoreError, open_engine
from cosmic_ray.serve.watchlists import (
    AlertPosition,
    EntryIn,
    Watchlists,
    parse_csv,
    parse_moc_fits,
    separation_arcsec,
)
from cosmic_ray.sources import ztf

ALERTS = ("ztf-alerts", "pittgoogle", "alerts-for-testing")


@pytest.fixture(scope="module")
def real_positions(shared_data) -> list[AlertPosition]:
    """Each real alert's position, as the live path reads it from a watcher batch (lake rows)."""
    out: dict[int, AlertPosition] = {}
    for path in sorted(shared_data.joinpath(*ALERTS).glob("*.avro")):
        parsed = ztf.parse(ztf.RawInput(path.name, path.read_bytes()))
        out.update(positions_of(parsed.table))
    assert len(out) >= 40
    return list(out.values())


def _offset(ra: float, dec: float, arcsec: float, angle: float) -> tuple[float, float]:
    """A point ``arcsec`` away from (ra, dec) towards position angle ``angle`` (small-angle, fine here)."""
    d = arcsec / 3600.0
    return (ra + d * math.sin(angle) / math.cos(math.radians(dec))) % 360.0, dec + d * math.cos(angle)


def _constructed_entries(positions: list[AlertPosition], seed: int = 1) -> list[EntryIn]:
    rng = np.random.default_rng(seed)
    entries = []
    for i, p in enumerate(positions):
        radius = float(rng.choice([2.0, 10.0, 60.0, 600.0]))
        # half of them just inside their radius, half just outside
        distance = radius * (0.9 if i % 2 == 0 else 1.1)
        ra, dec = _offset(p.ra, p.dec, distance, float(rng.uniform(0, 2 * math.pi)))
        entries.append(EntryIn(f"near-{p.object_id}-{i}", ra, dec, radius))
    for j in range(200):  # far-away entries anywhere on the sky, large radii
        entries.append(
            EntryIn(
                f"sky-{j}",
                float(rng.uniform(0, 360)),
                float(np.degrees(np.arcsin(rng.uniform(-1, 1)))),
                float(rng.uniform(1, 3600)),
            )
        )
    return entries


def test_positions_of_a_lake_batch_are_the_alert_candidates_positions(shared_data, real_positions):
    by_candid = {p.candid: p for p in real_positions}
    for path in sorted(shared_data.joinpath(*ALERTS).glob("*.avro"))[:10]:
        with path.open("rb") as handle:
            for record in fastavro.reader(handle):
                p = by_candid[record["candid"]]
                assert p.object_id == record["objectId"]
                assert p.ra == pytest.approx(record["candidate"]["ra"]) and p.dec == pytest.approx(
                    record["candidate"]["dec"]
                )
                # the decoded records give the same position (the other input of the live path)
                assert positions_of([record])[record["candid"]] == p


def test_index_matches_equal_a_brute_force_check_on_real_alerts(tmp_path, real_positions):
    engine = open_engine(f"sqlite:///{tmp_path / 'events.db'}")
    lists = Watchlists(engine)
    entries = _constructed_entries(real_positions)
    half = len(entries) // 2
    first = lists.create("vera", "first", entries[:half])
    second = lists.create("ana", "second", entries[half:])
    ids = {e.name: (first["id"] if k < half else second["id"]) for k, e in enumerate(entries)}

    found = {(m.watchlist_id, m.candid, m.target) for m in lists.match(real_positions)}
    expected = {
        (ids[e.name], p.candid, f"entry:{e.name}")
        for p in real_positions
        for e in entries
        if separation_arcsec(p.ra, p.dec, e.ra, e.dec) <= e.radius_arcsec
    }
    assert found == expected
    assert len(expected) >= len(real_positions) // 2  # the constructed "inside" half matches...
    inside_names = {t for _, _, t in expected}
    assert not any(f"entry:near-{p.object_id}-{i}" in inside_names for i, p in enumerate(real_positions) if i % 2)


def test_matches_are_recorded_once_and_listed_per_watchlist(tmp_path, real_positions):
    lists = Watchlists(open_engine(f"sqlite:///{tmp_path / 'events.db'}"))
    p = real_positions[0]
    wl = lists.create("vera", "one", [EntryIn("target", p.ra, p.dec, 5.0)])
    matches = lists.match(real_positions)
    assert [m.candid for m in matches] == [
        q.candid for q in real_positions if separation_arcsec(q.ra, q.dec, p.ra, p.dec) <= 5
    ]
    assert len(lists.record(matches)) == len(matches)
    assert lists.record(matches) == []  # a repeat of the same batch adds nothing
    listed = lists.matches(wl["id"])
    assert {m["candid"] for m in listed} == {m.candid for m in matches}
    assert listed[0]["separation_arcsec"] < 1e-6
    lists.delete(wl["id"])
    assert lists.match(real_positions) == [] and lists.list_for("vera") == []


def test_a_moc_region_from_mocpy_matches_like_its_own_contains(tmp_path, real_positions):
    """A MOC built from a real alert's 0.5-degree disc, written as FITS by mocpy, read back from its bytes."""
    p = real_positions[3]
    moc = MOC.from_cone(lon=Longitude(p.ra * u.deg), lat=Latitude(p.dec * u.deg), radius=0.5 * u.deg, max_depth=12)
    moc.save(str(tmp_path / "region.fits"), format="fits", overwrite=True)
    parsed = parse_moc_fits((tmp_path / "region.fits").read_bytes())
    lists = Watchlists(open_engine(f"sqlite:///{tmp_path / 'events.db'}"))
    wl = lists.create("vera", "gw-like", [])
    lists.add_region(wl["id"], "disc", parsed)
    found = {m.candid for m in lists.match(real_positions)}
    ras = np.array([q.ra for q in real_positions])
    decs = np.array([q.dec for q in real_positions])
    inside = moc.contains_lonlat(Longitude(ras * u.deg), Latitude(decs * u.deg))
    assert found == {q.candid for q, hit in zip(real_positions, inside, strict=True) if hit}
    assert p.candid in found
    far = [q for q in real_positions if separation_arcsec(q.ra, q.dec, p.ra, p.dec) > 3600]
    assert far and not found & {q.candid for q in far}
    with pytest.raises(StoreError, match="not a MOC"):
        parse_moc_fits(b"SIMPLE  =                    T" + b" " * 3000)


def test_csv_upload_and_bad_entries(tmp_path):
    entries = parse_csv("name,ra,dec,radius\nM101,210.802,54.349,60\nNGC 4993, 197.4487,-23.3839,30\n")
    assert [e.name for e in entries] == ["M101", "NGC 4993"] and entries[1].dec == pytest.approx(-23.3839)
    with pytest.raises(StoreError, match="line 2"):
        parse_csv("name,ra,dec,radius\nbad,400,0,5\n")
    with pytest.raises(StoreError, match="lacks"):
        parse_csv("name,ra,dec\nx,1,2\n")
    lists = Watchlists(open_engine(f"sqlite:///{tmp_path / 'events.db'}"))
    lists.create("vera", "hosts", entries)
    with pytest.raises(ConflictError):
        lists.create("vera", "hosts", entries)
    with pytest.raises(StoreError, match="radius"):
        lists.create("vera", "huge", [EntryIn("x", 1.0, 2.0, 1e6)])
