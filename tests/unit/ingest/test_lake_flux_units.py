"""The lake's photometry columns: flux in nanojansky, the time scale of every row, Rubin rows through
the batch parser (deduplicated by diaSourceId), lake files written before the change still read.

LSST packets here are SIMULATED (the shared PLAsTiCC/ELAsTiCC starter-kit alert and the samples
lsst-alert-packet ships); ZTF packets are real.
"""

from __future__ import annotations

import io
from pathlib import Path

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from lsst.alert.packet import get_schema_root

from cosmic_ray.core.lightcurve import AB_ZP_NJY, BANDS, SCHEMA
from cosmic_ray.ingest import quarantine
from cosmic_ray.ingest.batch import parse_inputs
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.sources import ztf
from cosmic_ray.sources.base import RawInput


def _lsst_inputs(shared_data: Path) -> list[Path]:
    kit = next((shared_data / "plasticc-elasticc-SIMULATED" / "lsst_v4_1_starterkit").glob("*.avro"))
    root = Path(str(get_schema_root()))
    return [
        kit,
        root / "11" / "1" / "sample_data" / "fakeAlert.avro",
        root / "9" / "0" / "sample_data" / "fakeAlert.avro",
    ]


def test_lsst_files_through_the_batch_parser_to_the_lake_simulated(tmp_path: Path, shared_data: Path):
    inputs = _lsst_inputs(shared_data)
    items = [(str(p), p.read_bytes()) for p in inputs] + [("garbage.avro", b"Obj\x01 not really")]
    parsed = parse_inputs("lsst", items, tmp_path / "quarantine")
    assert parsed.n_alerts == 3 and parsed.quarantined == 1
    [reason] = quarantine.reasons(tmp_path / "quarantine")
    assert reason["input"] == "garbage.avro" and "not a readable Avro container" in reason["reason"]

    sent: dict[int, float] = {}  # diaSourceId -> psfFlux, the first time each id is seen
    for path in inputs:
        for packet in fastavro.reader(io.BytesIO(path.read_bytes())):
            for src in [packet["diaSource"], *packet["prvDiaSources"]]:
                sent.setdefault(src["diaSourceId"], src.get("psfFlux", src.get("psFlux")))
    lake = Lake(tmp_path / "lake")
    first = lake.append(parsed.points)
    # the simulated samples repeat ids (9.0 and 11.1 carry the same sources): one row per diaSourceId
    assert first.written == len(sent) < parsed.points.num_rows
    again = Lake(tmp_path / "lake").append(parse_inputs("lsst", items[:3], tmp_path / "q2").points)
    assert again.written == 0 and again.duplicates == parsed.points.num_rows  # diaSourceId is the dedup key

    stored = Lake(tmp_path / "lake").read(sources=["lsst_alert"])
    assert stored.num_rows == first.written
    assert set(stored.column("time_scale").to_pylist()) == {"tai"}
    assert set(stored.column("band").to_pylist()) <= set(BANDS)
    assert stored.schema.field("flux").metadata == {b"unit": b"nJy"}
    got = dict(zip(stored.column("candid").to_pylist(), stored.column("flux").to_pylist(), strict=True))
    assert got == sent  # the nJy fluxes Rubin sent, unchanged
    flux, mag = stored.column("flux").to_numpy(), stored.column("mag").to_numpy(zero_copy_only=False)
    np.testing.assert_allclose(mag, AB_ZP_NJY - 2.5 * np.log10(flux))


def test_ztf_rows_are_utc_and_nanojansky(shared_data: Path):
    path = next((shared_data / "ztf-alerts" / "boom-v4.02").glob("*.avro"))
    table = ztf.parse(RawInput(str(path), path.read_bytes())).table
    assert set(table.column("time_scale").to_pylist()) == {"utc"}
    det = table.filter(pc.and_(pc.equal(table.column("source"), "ztf_alert"), pc.invert(table.column("is_limit"))))
    mag = det.column("mag").to_numpy()
    flux = np.abs(det.column("flux").to_numpy())
    np.testing.assert_allclose(flux, 10 ** (-0.4 * (mag - 31.4)), rtol=1e-12)  # 31.4: AB mag of 1 nJy
    forced = table.filter(pc.equal(table.column("source"), "ztf_fp"))
    assert forced.num_rows > 0 and set(forced.column("time_scale").to_pylist()) == {"utc"}


def test_lake_files_from_before_the_change_read_in_nanojansky(tmp_path: Path):
    old_schema = pa.schema([f.remove_metadata() for f in SCHEMA if f.name != "time_scale"])
    old = pa.table(
        {
            "object_id": ["ZTF21x", "ZTF21x"],
            "source": ["ztf_alert", "ztf_alert"],
            "mjd": [59400.1, 59401.1],
            "band": ["g", "r"],
            "mag": [19.0, 19.5],
            "magerr": [0.1, 0.1],
            "flux": [10 ** (-0.4 * (19.0 - 23.9)), -(10 ** (-0.4 * (19.5 - 23.9)))],  # microjansky, as written then
            "flux_err": [1.0, 2.0],
            "is_limit": [False, False],
            "night": ["20210701", "20210702"],
        }
    )
    old = old.cast(pa.schema([old_schema.field(n) for n in old.column_names]))
    folder = tmp_path / "lake" / "source=ztf_alert" / "night=20210701"
    folder.mkdir(parents=True)
    pq.write_table(old.drop_columns(["source", "night"]), folder / "part-old.parquet")
    lake = Lake(tmp_path / "lake")
    new_row = old.slice(0, 1).to_pylist()[0] | {"mjd": 59402.1, "flux": 5e4, "time_scale": "utc"}
    lake.append(pa.Table.from_pylist([new_row]))
    table = Lake(tmp_path / "lake").read().sort_by("mjd")
    np.testing.assert_allclose(
        table.column("flux").to_numpy(), [10 ** (-0.4 * (19.0 - 31.4)), -(10 ** (-0.4 * (19.5 - 31.4))), 5e4]
    )
    np.testing.assert_allclose(table.column("flux_err").to_numpy(), [1e3, 2e3, 1.0])
    assert table.column("time_scale").to_pylist() == ["utc", "utc", "utc"]
    only = Lake(tmp_path / "lake").read_objects(["ZTF21x"], columns=["mjd", "flux", "time_scale"]).sort_by("mjd")
    assert only.column("flux").to_pylist()[0] == table.column("flux").to_pylist()[0]
