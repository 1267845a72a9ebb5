"""ZTF ingestion through Ray Data into the lake: every real packet, nightly tarballs, equivalence
of the column-wise parser with the per-record rules."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import fastavro
import pyarrow.compute as pc
import pytest

from cosmic_ray.core.lightcurve import rows_to_table
from cosmic_ray.ingest.batch import ingest
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.sources import ztf


def _records(path: Path) -> list[dict]:
    with open(path, "rb") as handle:
        return list(fastavro.reader(handle))


def _independent_counts(paths: list[Path]) -> tuple[Counter, int]:
    """Points per object straight from fastavro: detections by candid, upper limits and forced
    photometry by (object, filter, jd) -- the dedup rules of the lake -- and the ZTF alert count."""
    keys: dict[str, set] = {}
    alerts = 0
    for path in paths:
        try:
            records = _records(path)
        except Exception:
            continue
        for rec in records:
            if "candidate" not in rec or "objectId" not in rec:
                continue  # foreign schema
            alerts += 1
            obj = rec["objectId"]
            bag = keys.setdefault(obj, set())
            bag.add(("det", rec["candidate"]["candid"]))
            for p in rec.get("prv_candidates") or []:
                if p.get("candid") is not None:
                    if p.get("magpsf") is not None and p.get("sigmapsf") is not None:
                        bag.add(("det", p["candid"]))
                elif p.get("diffmaglim") is not None:
                    bag.add(("lim", p["fid"], p["jd"]))
            for fp in rec.get("fp_hists") or []:
                flux = fp.get("forcediffimflux")
                if flux is not None and flux > -99999 and fp.get("magzpsci") is not None:
                    bag.add(("fp", fp["fid"], fp["jd"]))
    return Counter({obj: len(bag) for obj, bag in keys.items()}), alerts


def test_every_real_packet_decodes_with_matching_per_object_counts(ray_session, tmp_path, shared_data):
    paths = sorted((shared_data / "ztf-alerts").rglob("*.avro"))
    summary = ingest("ztf", [str(shared_data / "ztf-alerts")], tmp_path / "lake", tmp_path / "q")
    expected, n_alerts = _independent_counts(paths)
    assert summary.inputs == len(paths) and summary.alerts == n_alerts == len(paths) - 1
    assert summary.quarantined == 1
    reasons = [json.loads(p.read_text()) for p in (tmp_path / "q").glob("*.reason.json")]
    assert len(reasons) == 1 and "DC21baaa" in reasons[0]["input"] and "not a ZTF alert" in reasons[0]["reason"]
    assert list((tmp_path / "q").glob("*.bin")), "the quarantined packet's bytes are kept"
    table = Lake(tmp_path / "lake").read(sources=["ztf_alert", "ztf_fp"])
    got = Counter(table.column("object_id").to_pylist())
    assert got == expected
    assert summary.points == table.num_rows == sum(expected.values())
    alerts = Lake(tmp_path / "lake").read_alerts()
    assert alerts.num_rows == n_alerts and set(alerts.column("prefilter").to_pylist()) >= {"pass"}
    again = ingest("ztf", [str(shared_data / "ztf-alerts")], tmp_path / "lake", tmp_path / "q")
    assert again.points == 0 and again.duplicates > 0
    assert Lake(tmp_path / "lake").read().num_rows == table.num_rows


def _tarball(folder: Path, paths: list[Path]) -> Path:
    out = folder / "ztf_public_20210901.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        for path in paths:
            tar.add(path, arcname=f"ztf_public_20210901/{path.name}")
    return out


def test_nightly_tarball_is_read_without_unpacking(ray_session, tmp_path, shared_data):
    paths = sorted((shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))
    tarball = _tarball(tmp_path, paths)
    before = set(tmp_path.rglob("*"))
    from_tar = ingest("ztf", [str(tarball)], tmp_path / "lake-tar", tmp_path / "q")
    assert not [p for p in set(tmp_path.rglob("*")) - before if p.suffix == ".avro"], "nothing unpacked to disk"
    from_files = ingest("ztf", [str(p) for p in paths], tmp_path / "lake-files", tmp_path / "q")
    assert from_tar.inputs == 1 and from_tar.alerts == from_files.alerts == 50
    assert from_tar.points == from_files.points > 0 and from_tar.quarantined == 0
    a = Lake(tmp_path / "lake-tar").read()
    b = Lake(tmp_path / "lake-files").read()
    assert Counter(a.column("object_id").to_pylist()) == Counter(b.column("object_id").to_pylist())


def test_truncated_tarball_is_quarantined_and_the_rest_kept(ray_session, tmp_path, shared_data):
    paths = sorted((shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))
    data = _tarball(tmp_path, paths).read_bytes()
    cut = tmp_path / "ztf_public_20210902.tar.gz"
    cut.write_bytes(data[: len(data) * 6 // 10])
    summary = ingest("ztf", [str(cut)], tmp_path / "lake", tmp_path / "q")
    assert 0 < summary.alerts < 50 and summary.points > 0
    assert summary.quarantined == 1
    reason = json.loads(next((tmp_path / "q").glob("*.reason.json")).read_text())
    assert "truncated" in reason["input"]
    stored = Lake(tmp_path / "lake").read_alerts()
    assert stored.num_rows == summary.alerts


def test_columnwise_parser_matches_the_per_record_rules(shared_data):
    for path in sorted((shared_data / "ztf-alerts").rglob("*.avro")):
        data = path.read_bytes()
        new = ztf.parse(ztf.RawInput(str(path), data))
        rows, bad = [], 0
        for rec in fastavro.reader(io.BytesIO(data)):
            try:
                rows.extend(ztf.alert_to_rows(rec))
            except Exception:
                bad += 1
        old = rows_to_table(rows)
        assert len(new.quarantined) == bad, path.name
        order = [("source", "ascending"), ("mjd", "ascending"), ("band", "ascending"), ("is_limit", "ascending")]
        a, b = old.sort_by(order), new.table.sort_by(order)
        assert a.num_rows == b.num_rows, path.name
        for name in a.column_names:
            x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
            if name in ("flux", "flux_err", "mjd"):
                assert [v is None for v in x] == [v is None for v in y], (path.name, name)
                assert [v for v in x if v is not None] == pytest.approx([v for v in y if v is not None], rel=1e-12)
            else:
                assert x == y, (path.name, name)


def test_container_reader_rejects_corruption(shared_data):
    path = next((shared_data / "ztf-alerts" / "boom-v4.02").glob("*.avro"))
    data = bytearray(path.read_bytes())
    assert len(ztf.read_records(bytes(data))) == 1
    data[-5] ^= 0xFF  # inside the final sync marker
    result = ztf.parse(ztf.RawInput("corrupt.avro", bytes(data)))
    assert result.alerts == 0 and "sync marker" in result.quarantined[0][1]
    assert pc.sum(pc.is_valid(result.table.column("candid"))).as_py() in (0, None)
