"""What reaches the model: negative-difference detections never count as brightenings (real ZTF
packets with ``isdiffpos`` 'f' and '0'), Rubin light curves give the model their g/r/i points
only, and a prediction's ``bands_used`` names the bands that went in."""

from __future__ import annotations

from pathlib import Path

import fastavro
import numpy as np

from cosmic_ray.core.lightcurve import rows_to_table
from cosmic_ray.learn.bands import bands_used, is_model_input
from cosmic_ray.learn.features import clean_points, featurize, featurize_objects
from cosmic_ray.serve.schemas import PredictResponse
from cosmic_ray.sources import lsst, ztf
from cosmic_ray.sources.base import RawInput

VARSTAR = "v3.2_ZTF17aaacxxf_739260766315010006_varstar.avro"  # real: isdiffpos 'f' and '0' in its history


def _rows(shared_data: Path) -> tuple[dict, list[dict]]:
    path = next((shared_data / "ztf-alerts").rglob(VARSTAR))
    with open(path, "rb") as handle:
        [record] = list(fastavro.reader(handle))
    return record, ztf.alert_to_rows(record)


def test_real_negative_differences_are_not_model_input(shared_data: Path):
    record, rows = _rows(shared_data)
    raw_flags = {p["isdiffpos"] for p in record["prv_candidates"] if p.get("candid") is not None}
    assert {"f", "0"} <= raw_flags | {record["candidate"]["isdiffpos"]}
    detections = [r for r in rows if not r["is_limit"] and r["source"] == "ztf_alert"]
    negative = [r for r in detections if r["isdiffpos"] is False]
    positive = [r for r in detections if r["isdiffpos"] is True]
    assert negative and positive and all(r["flux"] < 0 for r in negative)

    cleaned = clean_points(rows_to_table(rows))
    assert cleaned.num_rows == len({(r["band"], r["mjd"]) for r in positive})
    assert not set(cleaned.column("mjd").to_pylist()) & {r["mjd"] for r in negative}

    served = featurize_objects([rows])
    only_positive = featurize_objects([[r for r in rows if r["isdiffpos"] is not False]])
    as_brightenings = featurize_objects([[{**r, "isdiffpos": True} for r in rows]])  # the old reading
    assert np.array_equal(served["seq"], only_positive["seq"]) and served["length"][0] == len(positive)
    assert as_brightenings["length"][0] == len(detections) > served["length"][0]
    table_path = featurize(rows_to_table([{**r, "object_id": "0"} for r in rows]))
    assert np.array_equal(table_path["seq"], served["seq"])
    assert np.array_equal(table_path["feats"], served["feats"], equal_nan=True)


def test_rubin_light_curves_use_the_trained_bands_simulated(shared_data: Path):
    kit = next((shared_data / "plasticc-elasticc-SIMULATED" / "lsst_v4_1_starterkit").glob("*.avro"))
    rows = lsst.parse(RawInput(str(kit), kit.read_bytes())).table.to_pylist()
    base = rows[0]
    extra = [
        {**base, "band": band, "mjd": base["mjd"] + 1 + i, "mag": 21.0 + i, "candid": None}
        for i, band in enumerate(("g", "r", "z", "y"))
    ]
    extra.append({**base, "band": "i", "mjd": base["mjd"] + 9, "mag": None, "flux": -80.0, "isdiffpos": False})
    extra.append({**base, "band": "g", "mjd": base["mjd"] + 10, "source": "lsst_fp"})  # forced photometry
    light_curve = rows + extra
    assert bands_used(light_curve) == ["g", "r"]  # u, z, y: not bands the model was trained on
    arrays = featurize_objects([light_curve])
    assert arrays["length"][0] == 2  # the g and r detections
    assert bands_used(rows) == [] and featurize_objects([rows])["object_id"].size == 0  # u only: nothing to read


def test_bands_used_follows_the_featurizer_rules():
    assert bands_used(
        [{"source": "user", "band": "ps1_g", "mag": 20.0}, {"source": "user", "band": "swift_UVW2", "mag": 19.0}]
    ) == ["ps1_g"]
    assert not is_model_input({"source": "ztf_alert", "band": "g", "mag": 19.0, "isdiffpos": False})
    assert not is_model_input({"source": "ztf_alert", "band": "g", "mag": 19.0, "is_limit": True})
    assert is_model_input({"source": "ztf_alert", "band": "g", "mag": 19.0, "isdiffpos": None})
    answer = {"object_id": "x", "class": "SN Ia", "probabilities": {"SN Ia": 1.0}, "open_set_score": 0.1}
    answer |= {"novel": False, "rare": False, "neighbours": [], "model_version": "1", "latency_ms": 1.0}
    assert PredictResponse(**answer, bands_used=["g", "r"]).model_dump(by_alias=True)["bands_used"] == ["g", "r"]
    assert PredictResponse(**answer).bands_used == []  # answers of older replicas still validate
