"""The Parquet lake: partitioning, idempotent appends."""

from __future__ import annotations

from pathlib import Path

from cosmic_ray.ingest.lake import Lake
from cosmic_ray.sources import ztf


def _stream_tables(shared_data: Path):
    folder = shared_data / "ztf-alerts" / "pittgoogle" / "ZTF21abiuvdk_SN2021rhu_stream"
    return [ztf.parse(ztf.RawInput(str(p), p.read_bytes())).table for p in sorted(folder.glob("*.avro"))]


def test_stream_of_one_object_deduplicates_by_candid(tmp_path, shared_data):
    lake = Lake(tmp_path / "lake")
    tables = _stream_tables(shared_data)
    written = sum(lake.append(t).written for t in tables)
    all_candids = {c for t in tables for c in t.column("candid").to_pylist() if c is not None}
    stored = Lake(tmp_path / "lake").read(sources=["ztf_alert"])
    detections = [c for c in stored.column("candid").to_pylist() if c is not None]
    assert len(detections) == len(set(detections)) == len(all_candids)
    assert stored.num_rows == written
    assert set(stored.column("object_id").to_pylist()) == {"ZTF21abiuvdk"}


def test_reingesting_adds_nothing(tmp_path, shared_data):
    tables = _stream_tables(shared_data)
    first = [Lake(tmp_path / "lake").append(t) for t in tables]
    again = Lake(tmp_path / "lake")  # a fresh process re-derives what is present from the files
    second = [again.append(t) for t in tables]
    assert sum(r.written for r in first) > 0
    assert sum(r.written for r in second) == 0
    assert sum(r.duplicates for r in second) == sum(t.num_rows for t in tables)


def test_partitioned_by_source_and_night(tmp_path, shared_data):
    lake = Lake(tmp_path / "lake")
    for table in _stream_tables(shared_data)[:3]:
        lake.append(table)
    folders = {p.parent.relative_to(tmp_path / "lake").parts for p in lake.files()}
    assert all(parts[0] == "source=ztf_alert" and parts[1].startswith("night=20") for parts in folders)
    nights = {parts[1][6:] for parts in folders}
    table = lake.read()
    assert set(table.column("night").to_pylist()) == nights


def test_key_index_matches_exact_string_keys_on_real_alerts(shared_data):
    """The compact index keeps exactly the rows a set of full key strings keeps: detections by
    candid, upper limits (no candid) by object/band/time/flag, repeats inside one table too."""
    import numpy as np
    import pyarrow as pa

    from cosmic_ray.ingest.keyindex import PointKeyIndex

    folder = shared_data / "ztf-alerts" / "pittgoogle"
    tables = [ztf.parse(ztf.RawInput(str(p), p.read_bytes())).table for p in sorted(folder.rglob("*.avro"))]
    tables = [t for t in tables if t.num_rows]
    table = pa.concat_tables(tables)
    rows = table.select(["source", "candid", "object_id", "band", "mjd", "is_limit"]).to_pylist()
    seen: set[tuple] = set()
    expected = []
    for r in rows:
        key = (
            (r["source"], r["candid"])
            if r["candid"] is not None
            else (r["source"], r["object_id"], r["band"], round(r["mjd"] * 1e6), r["is_limit"])
        )
        expected.append(key not in seen)
        seen.add(key)
    limits = sum(1 for r in rows if r["candid"] is None)
    assert limits > 0 and sum(expected) < len(rows)  # the real stream repeats points and has limits

    index = PointKeyIndex()
    half = len(tables) // 2
    got = np.concatenate(
        [index.add_new(pa.concat_tables(tables[:half])), index.add_new(pa.concat_tables(tables[half:]))]
    )
    assert got.tolist() == expected
    assert len(index) == sum(expected)
    assert not index.add_new(table).any()  # everything is known now
    assert index.nbytes == 8 * len(index)
