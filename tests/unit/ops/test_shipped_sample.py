"""The small real sample shipped in the package: picked when the shared data is absent, real, licensed,
and readable by the normal readers (catalogue light curves with their classes, ZTF packets)."""

from __future__ import annotations

import gzip
import logging

import pandas as pd
import pyarrow.compute as pc

from cosmic_ray.core.config import Settings
from cosmic_ray.core.sample import LABELLED, data_root, sample_dir
from cosmic_ray.core.taxonomy import to_coarse
from cosmic_ray.ops import pipeline
from cosmic_ray.sources import get_source, ztf
from cosmic_ray.sources.base import RawInput


def test_without_shared_data_the_shipped_sample_is_used_and_said(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="cosmic_ray.core.sample"):
        root = data_root(tmp_path / "absent")
    assert root is not None and root.shipped and root.path == sample_dir()
    assert root.labelled.is_file() and root.alerts.is_dir()
    assert "using the shipped real sample" in caplog.text


def test_shared_data_wins_when_present(shared_data):
    root = data_root(shared_data)
    assert root is not None and not root.shipped and root.path == shared_data


def test_the_demo_inputs_are_the_sample_not_simulated(tmp_path):
    settings = Settings(home=tmp_path / "home", shared_data=tmp_path / "nonexistent")
    inputs = pipeline.default_inputs(settings)
    assert inputs.sample and not inputs.simulated
    assert inputs.catalogs == [sample_dir() / LABELLED]
    assert inputs.alerts == [sample_dir() / "ztf-alerts"]
    assert not (tmp_path / "home" / "simulated").exists()  # the simulator did not run


def test_sample_light_curves_parse_with_at_least_five_trainable_classes():
    path = sample_dir() / LABELLED
    result = get_source("catalog").parse(RawInput(str(path), path.read_bytes()))
    assert not result.quarantined
    table = result.table
    objects = pd.DataFrame(
        {"object_id": table.column("object_id").to_pylist(), "label": table.column("label").to_pylist()}
    )
    per_object = objects.groupby("object_id")["label"].agg(["first", "size"])
    trainable = per_object[per_object["size"] >= 3]
    counts = trainable["first"].map(to_coarse).value_counts()
    assert 250 <= len(per_object) <= 400
    assert (counts >= 6).sum() >= 5, counts.to_dict()  # classes a model trains on (min_objects_per_class 6)
    for rare in ("SLSN-I", "TDE", "SLSN-II", "nova"):
        assert counts.get(rare, 0) >= 4, (rare, counts.to_dict())
    context = pd.read_csv(sample_dir() / "ztf-bts" / "bts_dev_context.csv")
    assert set(context["object_id"]) == set(per_object.index)


def test_sample_rows_are_the_real_rows_unchanged(shared_data):
    ours = pd.read_csv(sample_dir() / LABELLED)
    real = pd.read_csv(shared_data / "ztf-bts" / "bts_dev_lightcurves.csv.gz")
    real = real[real["object_id"].isin(set(ours["object_id"]))]
    pd.testing.assert_frame_equal(ours.reset_index(drop=True), real.reset_index(drop=True))
    for path in (sample_dir() / "ztf-alerts").rglob("*.avro"):
        copies = list((shared_data / "ztf-alerts").rglob(path.name))
        assert len(copies) == 1 and copies[0].read_bytes() == path.read_bytes(), path.name


def test_sample_packets_parse_and_every_data_folder_has_its_licence():
    packets = sorted((sample_dir() / "ztf-alerts").rglob("*.avro"))
    assert 30 <= len(packets) <= 50
    result = ztf.parse_many([RawInput(str(p), p.read_bytes()) for p in packets])
    assert result.alerts == len(packets) and not result.quarantined
    assert result.alert_meta is not None
    assert set(result.alert_meta.column("schemavsn").to_pylist()) == {"3.3", "4.02"}
    assert pc.count_distinct(result.table.column("object_id")).as_py() >= 20
    for folder in {p.parent for p in packets} | {sample_dir() / "ztf-bts"}:
        licences = [f for up in (folder, folder.parent) for f in up.glob("LICENSE*.txt")]
        assert licences, folder
        assert any(word in licences[0].read_text() for word in ("Permission is hereby granted", "Redistribution")), (
            folder
        )
    total = sum(f.stat().st_size for f in sample_dir().rglob("*") if f.is_file())
    assert total < 4_000_000, total
    with gzip.open(sample_dir() / LABELLED, "rt") as handle:
        assert handle.readline().startswith("object_id,label,mjd,band,mag,magerr")
