"""Issue 16, item 1: context as data. The shared per-object context table and real ZTF alerts fill
the lake's context table (``lake/_context``); rows merge per object and per field, newest first,
and a missing field never erases a known one. No Ray: the parser and the lake are called directly
(the Ray ingest path is covered by tests/integration/test_context_chain.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from cosmic_ray.core.context import CONTEXT_SCHEMA
from cosmic_ray.ingest import quarantine
from cosmic_ray.ingest.batch import parse_inputs
from cosmic_ray.ingest.context import evaluation_context, ingest_context_file, merge_context, read_context
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.sources.ztf_context import context_from_alerts

REPO = Path(__file__).resolve().parents[3]


def _row(table: pa.Table, object_id: str) -> dict:
    rows = [r for r in table.to_pylist() if r["object_id"] == object_id]
    assert len(rows) == 1, f"{object_id}: {len(rows)} rows"
    return rows[0]


def test_the_shared_context_table_lands_in_the_lake(tmp_path, shared_data):
    path = shared_data / "ztf-bts" / "bts_dev_context.csv"
    summary = ingest_context_file(path, tmp_path / "lake", tmp_path / "q")
    assert summary.rows == summary.objects == 1621 and summary.quarantined == 0 and summary.ignored_columns == []
    table = Lake(tmp_path / "lake").read_context()
    assert table.schema == CONTEXT_SCHEMA and table.num_rows == 1621
    known = _row(table, "ZTF18aacnlxz")  # the table's first row
    assert known["ra"] == pytest.approx(134.954667) and known["dec"] == pytest.approx(38.109056)
    assert known["gal_b"] == pytest.approx(40.8053) and known["a_v"] == pytest.approx(0.068)
    assert known["host_mag"] == pytest.approx(18.698) and known["host_color"] == pytest.approx(0.24)
    assert known["redshift"] == pytest.approx(0.07247) and known["redshift_source"] == "bts_dev_context"
    assert known["host_offset_arcsec"] is None and known["nuclear_dist_arcsec"] is None  # not in this table
    no_host = _row(table, "ZTF18aadmssd")  # host_mag and host_color empty in the file: missing, not made up
    assert (
        no_host["host_mag"] is None and no_host["host_color"] is None and no_host["redshift"] == pytest.approx(0.01885)
    )
    assert table.column("host_mag").null_count == 1621 - 1555 and table.column("redshift").null_count == 2
    assert Lake(tmp_path / "lake").read_context(["ZTF18aacnlxz", "nope"]).num_rows == 1


def test_bad_rows_are_quarantined_with_reasons_and_the_rest_kept(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(
        "object_id,ra,dec,gal_b,redshift,colour_index,host_mag\n"
        "ZTFgood1,10.0,20.0,,0.05,1.0,19.5\n"
        "ZTFbad1,10.0,20.0,95.0,0.05,1.0,19.5\n"  # |gal_b| > 90
        "ZTFbad2,10.0,20.0,,-0.1,1.0,\n"  # negative redshift
        "ZTFbad3,ten,20.0,,,,\n"  # not a number
        ",10.0,20.0,,0.1,,\n"  # no object id
        "ZTFgood2,,,,,,21.0\n"
    )
    summary = ingest_context_file(path, tmp_path / "lake", tmp_path / "q")
    assert (summary.rows, summary.quarantined) == (2, 4)
    assert summary.ignored_columns == ["colour_index"] and summary.redshift_source == "mine"
    reasons = sorted(r["reason"] for r in quarantine.reasons(tmp_path / "q"))
    assert len(reasons) == 4
    assert any("gal_b 95 is outside -90..90" in r for r in reasons)
    assert any("redshift -0.1 is outside" in r for r in reasons)
    assert any("ra: 'ten' is not a number" in r for r in reasons)
    assert any("object_id is missing" in r for r in reasons)
    table = read_context(tmp_path / "lake")
    good = _row(table, "ZTFgood1")
    # no gal_b in the file, a position: Galactic latitude computed (astropy), not left out
    assert good["gal_b"] == pytest.approx(-42.79, abs=0.01)
    assert good["a_v"] is None  # no dust map installed here: missing, never a guess
    assert _row(table, "ZTFgood2")["gal_b"] is None and _row(table, "ZTFgood2")["host_mag"] == 21.0


def test_merge_newest_wins_per_field_and_a_missing_field_never_erases(tmp_path):
    def rows(*items: dict) -> pa.Table:
        return pa.Table.from_pylist([{"source": "t", **r} for r in items])

    lake = Lake(tmp_path / "lake")
    lake.append_context(
        rows({"object_id": "a", "host_mag": 19.0, "redshift": 0.1, "redshift_source": "spec", "updated_mjd": 100.0})
    )
    lake.append_context(rows({"object_id": "a", "host_mag": 18.0, "gal_b": 30.0, "updated_mjd": 200.0}))  # no redshift
    lake.append_context(
        rows({"object_id": "a", "host_mag": 25.0, "redshift": 0.9, "redshift_source": "old", "updated_mjd": 50.0})
    )
    lake.append_context(rows({"object_id": "b", "a_v": 0.2, "updated_mjd": 10.0}))
    a = _row(lake.read_context(), "a")
    assert a["host_mag"] == 18.0 and a["gal_b"] == 30.0  # the newest row that knows them
    assert a["redshift"] == 0.1 and a["redshift_source"] == "spec"  # a later row without redshift erases nothing;
    assert a["updated_mjd"] == 200.0  # the older row ingested later loses
    assert _row(lake.read_context(), "b")["a_v"] == 0.2
    # a redshift's provenance never outlives it: a row with a source but no redshift adds no source
    merged = merge_context(rows({"object_id": "c", "redshift_source": "x", "updated_mjd": 1.0}))
    assert _row(merged, "c")["redshift_source"] is None
    # ... and a newer redshift of unknown provenance does not take an older one's source
    merged = merge_context(
        rows(
            {"object_id": "d", "redshift": 0.1, "redshift_source": "spec", "updated_mjd": 1.0},
            {"object_id": "d", "redshift": 0.2, "updated_mjd": 2.0},
        )
    )
    assert (_row(merged, "d")["redshift"], _row(merged, "d")["redshift_source"]) == (0.2, None)
    # an evaluation table is added in memory only: its rows win, the lake is unchanged
    extra = tmp_path / "eval.csv"
    extra.write_text("object_id,redshift\na,0.3\n")
    both = evaluation_context(tmp_path / "lake", extra)
    assert _row(both, "a")["redshift"] == 0.3 and _row(both, "a")["host_mag"] == 18.0
    assert _row(lake.read_context(), "a")["redshift"] == 0.1


def test_an_alerts_ps1_host_lands_in_the_context_table(tmp_path, shared_data):
    alerts = shared_data / "ztf-alerts"
    files = [
        alerts / "ztf-avro-alert/alerts/v3.1_ZTF18abdqake_472263571115115014.avro",  # galaxy 1.98", no g magnitude
        alerts / "pittgoogle/alerts-for-testing/ZTF18aamyaaj.1704217901015015001.ztf_20210901_programid1.avro",
        alerts
        / "pittgoogle/alerts-for-testing/ZTF18abltebw.1703211072815015018.ztf_20210831_programid1.avro",  # a star
    ]
    parsed = parse_inputs("ztf", [(str(f), None) for f in files], tmp_path / "q")
    assert parsed.alerts is not None and parsed.alerts.num_rows == 3
    lake = Lake(tmp_path / "lake")
    lake.append_context(context_from_alerts(parsed.alerts))
    table = lake.read_context()
    galaxy = _row(table, "ZTF18aamyaaj")  # sgscore1 0.084 at 0.41": a host
    assert galaxy["host_mag"] == pytest.approx(17.3889, abs=1e-3)  # srmag1
    assert galaxy["host_color"] == pytest.approx(17.5340 - 17.3889, abs=1e-3)  # sgmag1 - srmag1
    assert galaxy["host_offset_arcsec"] == pytest.approx(0.4096, abs=1e-3)  # distpsnr1
    assert galaxy["nuclear_dist_arcsec"] == pytest.approx(0.4916, abs=1e-3)  # distnr
    assert galaxy["ra"] == pytest.approx(227.9609232) and galaxy["source"] == "ztf_alert"
    assert galaxy["gal_b"] == pytest.approx(45.0, abs=3.0) and galaxy["a_v"] is None and galaxy["redshift"] is None
    no_g = _row(table, "ZTF18abdqake")  # sgmag1 = -999: ZTF's "missing", so no colour; the magnitude stays
    assert no_g["host_mag"] == pytest.approx(22.1661, abs=1e-3) and no_g["host_color"] is None
    star = _row(table, "ZTF18abltebw")  # sgscore1 0.98: a star, not a host
    assert star["host_mag"] is None and star["host_offset_arcsec"] is None and star["nuclear_dist_arcsec"] is not None
    # the host must lie within the setting's distance: at 1 arcsec ZTF18abdqake's galaxy (1.98") is no host
    near = context_from_alerts(parsed.alerts, host_max_arcsec=1.0)
    assert _row(near, "ZTF18abdqake")["host_mag"] is None and _row(near, "ZTF18aamyaaj")["host_mag"] is not None


def test_the_newest_alert_of_an_object_wins(tmp_path, shared_data):
    stream = sorted((shared_data / "ztf-alerts/pittgoogle/ZTF21abiuvdk_SN2021rhu_stream").glob("*.avro"))
    parsed = parse_inputs("ztf", [(str(f), None) for f in stream], tmp_path / "q")
    assert parsed.alerts is not None and parsed.alerts.num_rows == len(stream) > 30
    Lake(tmp_path / "lake").append_context(context_from_alerts(parsed.alerts))
    row = _row(read_context(tmp_path / "lake"), "ZTF21abiuvdk")
    newest = parsed.alerts.sort_by([("mjd", "descending")]).slice(0, 1).to_pylist()[0]
    assert row["updated_mjd"] == pytest.approx(newest["mjd"]) and row["ra"] == pytest.approx(newest["ra"])


def test_cli_ingest_context_prints_one_json_line(tmp_path, shared_data):
    env = {**os.environ, "COSMIC_RAY_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cosmic_ray.ops.cli",
            "ingest",
            "context",
            str(shared_data / "ztf-bts/bts_dev_context.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["source"] == "context" and summary["rows"] == 1621 and summary["quarantined"] == 0
    assert read_context(tmp_path / "home" / "lake").num_rows == 1621
    missing = subprocess.run(
        [sys.executable, "-m", "cosmic_ray.ops.cli", "ingest", "context", str(tmp_path / "nope.csv")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert missing.returncode == 1 and "unreadable" in missing.stderr


def test_galactic_latitude_is_astropys():
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    from cosmic_ray.sources.sky import galactic_latitude

    rng = np.random.default_rng(0)
    ra, dec = rng.uniform(0, 360, 500), np.degrees(np.arcsin(rng.uniform(-1, 1, 500)))
    reference = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs").galactic.b.deg
    np.testing.assert_allclose(galactic_latitude(ra, dec), reference, atol=1e-9)
    assert np.isnan(galactic_latitude(np.array([10.0, np.nan]), np.array([95.0, 0.0]))).all()  # impossible, missing


def test_a_parquet_table_with_some_columns(tmp_path, shared_data):
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    shared = pcsv.read_csv(shared_data / "ztf-bts" / "bts_dev_context.csv")
    part = shared.select(["object_id", "redshift"]).append_column(
        "redshift_source", pa.array(["bts_spectroscopic"] * shared.num_rows)
    )
    pq.write_table(part.slice(0, 100), tmp_path / "z.parquet")
    summary = ingest_context_file(tmp_path / "z.parquet", tmp_path / "lake", tmp_path / "q")
    assert (summary.rows, summary.quarantined) == (100, 0)
    row = _row(read_context(tmp_path / "lake"), "ZTF18aacnlxz")
    assert row["redshift"] == pytest.approx(0.07247) and row["redshift_source"] == "bts_spectroscopic"
    assert row["host_mag"] is None and row["gal_b"] is None  # columns it does not have stay missing
