"""``ingest`` through Ray tasks writes exactly the lake rows of the plain one-process path.

Every real ZTF packet of the shared data (schema versions 2.0 to 4.02, the 34 alerts of one
object whose histories overlap, the foreign packet) is ingested twice: by :func:`ingest` (files cut
into several Ray tasks, results stored while the next are parsed) and by the reference path
(:func:`parse_inputs` over all files in one process, then the lake). The points, the per-alert
rows, the quarantine reasons and the counts must be the same, row for row.
"""

from __future__ import annotations

import pyarrow as pa

from cosmic_ray.ingest import quarantine
from cosmic_ray.ingest.batch import ingest, parse_inputs
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.sources import ztf

_KEYS = ["object_id", "source", "night", "mjd", "band", "is_limit", "candid", "alert_candid"]


def _sorted(table: pa.Table, keys: list[str]) -> list[dict]:
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()


def _reference(files: list[str], lake_dir, quarantine_dir) -> tuple[int, int]:
    parsed = parse_inputs("ztf", ((f, None) for f in files), quarantine_dir, "ref")
    lake = Lake(lake_dir)
    result = lake.append(parsed.points, defer=True)
    assert parsed.alerts is not None
    lake.append_alerts(parsed.alerts, defer=True)
    lake.flush()
    return result.written, result.duplicates


def test_ingest_writes_the_rows_of_the_one_process_path(ray_session, shared_data, tmp_path):
    root = shared_data / "ztf-alerts"
    files = [str(p) for p in ztf.build_request([root]).files]
    assert len(files) >= 99

    # small chunks: many tasks in flight, so the order of storing matters for the dedup
    summary = ingest("ztf", [root], tmp_path / "lake", tmp_path / "q", files_per_block=7)
    written, duplicates = _reference(files, tmp_path / "ref-lake", tmp_path / "ref-q")

    ours, ref = Lake(tmp_path / "lake"), Lake(tmp_path / "ref-lake")
    assert summary.points == written > 1000 and summary.duplicates == duplicates > 0
    assert summary.alerts == 98 and summary.quarantined == 1
    assert _sorted(ours.read(), _KEYS) == _sorted(ref.read(), _KEYS)
    assert _sorted(ours.read_alerts(), ["alert_candid"]) == _sorted(ref.read_alerts(), ["alert_candid"])
    reasons = sorted((r["input"], r["reason"]) for r in quarantine.reasons(tmp_path / "q"))
    assert reasons == sorted((r["input"], r["reason"]) for r in quarantine.reasons(tmp_path / "ref-q"))
    assert "not a ZTF alert" in reasons[0][1]

    # ingesting the same packets again stores nothing new
    again = ingest("ztf", [root], tmp_path / "lake", tmp_path / "q", files_per_block=7)
    assert again.points == 0 and again.duplicates == written + duplicates
