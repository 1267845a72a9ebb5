"""The serving featurizer (rows per object, no Arrow table) gives exactly the arrays of the table featurizer."""

import numpy as np

from cosmic_ray.core.lightcurve import rows_to_table
from cosmic_ray.learn.features import featurize, featurize_objects
from cosmic_ray.sources import catalog, catalogs


def _per_object(table, limit):
    by: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        if row["object_id"] in by or len(by) < limit:
            by.setdefault(row["object_id"], []).append(row)
    return list(by.values())


def _same_as_table_path(objects):
    reference = featurize(
        rows_to_table([{**r, "object_id": str(i)} for i, rows in enumerate(objects) for r in rows]), 64
    )
    fast = featurize_objects(objects, 64)
    assert sorted(fast["object_id"]) == sorted(reference["object_id"])
    where = {oid: i for i, oid in enumerate(reference["object_id"])}
    order = [where[oid] for oid in fast["object_id"]]
    for key in ("seq", "length", "feats", "label"):
        assert np.array_equal(reference[key][order], fast[key], equal_nan=key != "label"), key
    return fast


def test_bts_light_curves_with_their_repeated_points(shared_data):
    raw = next(
        catalog.fetch(catalog.build_request([shared_data / "ztf-bts" / "bts_dev_lightcurves.csv.gz"], source="ztf_bts"))
    )
    table = catalog.parse(raw, source="ztf_bts").table
    objects = _per_object(table, 300)
    keys = [(r["band"], r["mjd"]) for rows in objects for r in rows]
    assert len(keys) > len(set(keys)), "the sample should hold BTS's exact repeats"
    fast = _same_as_table_path(objects)
    assert len(fast["object_id"]) == 300 and set(fast["label"]) >= {"SN Ia", "SN II"}


def test_other_surveys_bands_limits_and_empty_objects(shared_data):
    raw = next(catalogs.fetch(catalogs.build_request([shared_data / "slsne"])))
    table = catalogs.parse(raw).table
    objects = _per_object(table, 60)
    assert any(r["is_limit"] for rows in objects for r in rows) or any(
        r["band"] not in ("g", "r", "i") for rows in objects for r in rows
    )
    only_limits = [{**objects[0][0], "is_limit": True}]
    foreign = [{**objects[0][0], "band": "swift_UVW2"}]
    fast = _same_as_table_path([only_limits, *objects, foreign])
    assert "0" not in set(fast["object_id"]) and str(len(objects) + 1) not in set(fast["object_id"])
