"""One parser per ZTF alert: the row-wise path (``alert_to_rows``, serving and the live path) and
the columnar one (``records_to_tables`` / ``parse_many``, ingest) give the same rows, values and
order, over the real packets of every schema version in the shared data.

Hypothesis draws sub-samples of the real packets in any order, repeats included; the records are
decoded by ``fastavro.reader`` (independently of the project's container reader), and a JSON
round trip stands for an alert posted to the API.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosmic_ray.core.errors import BadAlertError
from cosmic_ray.core.lightcurve import SCHEMA, rows_to_table
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.sources import ztf

VERSIONS = {"2.0", "3.1", "3.2", "3.3", "3.5", "4.02"}  # MANIFEST.md: every schema version shipped


def _packets(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(root.rglob("*.avro")):
        with open(path, "rb") as handle:
            found.extend((path, record) for record in fastavro.reader(handle))
    return found


@pytest.fixture(scope="module")
def packets(shared_data: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = _packets(shared_data / "ztf-alerts")
    assert {str(r.get("schemavsn")) for _, r in found} >= VERSIONS
    return found


def _rows_one_by_one(records: list[Any]) -> tuple[list[dict[str, Any]], list[int]]:
    """The row-wise path: every record alone; which ones it refused."""
    rows: list[dict[str, Any]] = []
    refused = []
    for i, record in enumerate(records):
        try:
            rows.extend(ztf.alert_to_rows(record))
        except BadAlertError:
            refused.append(i)
    return rows, refused


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys() == set(SCHEMA.names)
        for key in x:
            u, v = x[key], y[key]
            if isinstance(u, float) and isinstance(v, float) and math.isnan(u):
                assert math.isnan(v), key
            else:
                assert u == v, (key, u, v)


def _no_cutouts(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("cutout")}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_columnar_and_row_wise_paths_agree_on_any_sample_of_real_packets(packets, data):
    picks = data.draw(st.lists(st.integers(0, len(packets) - 1), min_size=1, max_size=15), label="packets")
    records = [packets[i][1] for i in picks]

    rows, refused = _rows_one_by_one(records)
    accepted = [r for i, r in enumerate(records) if i not in refused]
    table, meta, bad = ztf.records_to_tables(accepted)
    assert bad == []  # what alert_to_rows accepts, the columnar path accepts
    _same(table.to_pylist(), rows)  # same rows, same values, same order (alert by alert)
    assert meta.column("alert_candid").to_pylist() == [r["candid"] for r in accepted]

    # the ingest path from the files (project's own Avro reader, quarantine on) gives the same
    paths = [packets[i][0] for i in picks]
    parsed = ztf.parse_many(ztf.RawInput(str(p), p.read_bytes()) for p in paths)
    file_rows, file_refused = _rows_one_by_one([r for p in paths for r in fastavro.reader(io.BytesIO(p.read_bytes()))])
    _same(parsed.table.to_pylist(), file_rows)
    assert len(parsed.quarantined) == len(file_refused) and parsed.alerts == len(paths) - len(file_refused)


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_json_posted_alert_gives_the_avro_rows(packets, version):
    """The serving path (an alert posted as JSON, cutouts left out) reads what the ingest reads."""
    of_version = [r for _, r in packets if str(r.get("schemavsn")) == version]
    assert of_version, version
    for record in of_version:
        posted = json.loads(json.dumps(_no_cutouts(record)))
        _same(ztf.alert_json_to_rows(posted), ztf.records_to_tables([record])[0].to_pylist())


def test_duplicates_are_dropped_by_the_same_rule_on_both_paths(packets, tmp_path):
    """Each packet twice, shuffled: both paths give every point twice, the lake keeps each once."""
    records = [r for _, r in packets] * 2
    order = list(range(len(records)))
    order = order[::-2] + order[::2][::-1]  # a fixed shuffle that splits the pairs apart
    shuffled = [records[i] for i in order]
    rows, refused = _rows_one_by_one(shuffled)
    columnar, _, _ = ztf.records_to_tables([r for i, r in enumerate(shuffled) if i not in refused])

    a, b = Lake(tmp_path / "rows"), Lake(tmp_path / "columns")
    first, second = a.append(rows_to_table(rows)), b.append(columnar)
    assert (first.written, first.duplicates) == (second.written, second.duplicates)
    assert first.duplicates > 0 and first.written + first.duplicates == len(rows)
    key = ["source", "object_id", "band", "mjd", "is_limit"]
    left, right = a.read().sort_by([(k, "ascending") for k in key]), b.read().sort_by([(k, "ascending") for k in key])
    assert left.equals(right)


def test_a_malformed_point_type_is_read_the_same_on_both_paths(packets):
    """A JSON alert with text where numbers belong: the unusable points are dropped, not crashed on."""
    record = next(r for _, r in packets if r.get("prv_candidates"))
    posted = json.loads(json.dumps(_no_cutouts(record)))
    posted["prv_candidates"][0]["magpsf"] = "not a number"
    posted["prv_candidates"][0]["diffmaglim"] = "?"
    posted["prv_candidates"][0]["fid"] = "g"
    rows = ztf.alert_json_to_rows(posted)
    checked = ztf.check_alert(posted)
    assert rows == ztf.records_to_tables([checked])[0].to_pylist()
    without = {**posted, "prv_candidates": posted["prv_candidates"][1:]}
    assert rows == ztf.alert_json_to_rows(without)  # the point is unusable: as if it were not there
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError, TypeError)):
        ztf.records_to_tables([posted])  # unchecked, the columnar path refuses the bad types outright
