"""Decoding real ZTF alert packets of every schema version into the light-curve schema."""

from __future__ import annotations

from pathlib import Path

import fastavro
import pyarrow.compute as pc
import pytest

from cosmic_ray.core.errors import BadAlertError
from cosmic_ray.sources import get_source, ztf


def _raw(path: Path) -> ztf.RawInput:
    return ztf.RawInput(str(path), path.read_bytes())


def _independent_counts(path: Path) -> tuple[int, int]:
    """(detections, upper limits) counted straight from the Avro record, without our parser."""
    with open(path, "rb") as handle:
        record = next(iter(fastavro.reader(handle)))
    prv = record.get("prv_candidates") or []
    detections = 1 + sum(1 for p in prv if p.get("candid") is not None and p.get("magpsf") is not None)
    limits = sum(1 for p in prv if p.get("candid") is None and p.get("diffmaglim") is not None)
    return detections, limits


def _alerts_of_version(shared_data: Path, version: str) -> list[Path]:
    root = shared_data / "ztf-alerts"
    found = []
    for path in sorted(root.rglob("*.avro")):
        try:
            with open(path, "rb") as handle:
                record = next(iter(fastavro.reader(handle)))
        except Exception:
            continue
        if record.get("schemavsn") == version:
            found.append(path)
    return found


@pytest.mark.parametrize("version", ["2.0", "3.3", "4.02"])
def test_detections_per_alert_match_the_packet(shared_data, version):
    paths = _alerts_of_version(shared_data, version)
    assert paths, f"no real packet of schema {version} in the shared data"
    for path in paths:
        result = ztf.parse(_raw(path))
        assert result.alerts == 1 and not result.quarantined
        table = result.table
        alerts = table.filter(pc.equal(table.column("source"), "ztf_alert"))
        detections, limits = _independent_counts(path)
        assert pc.sum(pc.invert(alerts.column("is_limit"))).as_py() == detections, path.name
        assert pc.sum(alerts.column("is_limit")).as_py() == limits, path.name
        assert set(table.column("schemavsn").to_pylist()) == {version}


def test_difference_flux_is_signed_by_isdiffpos(shared_data):
    negatives = 0
    for path in sorted((shared_data / "ztf-alerts").rglob("*.avro")):
        table = ztf.parse(_raw(path)).table
        det = table.filter(pc.and_(pc.equal(table.column("source"), "ztf_alert"), pc.invert(table.column("is_limit"))))
        for flux, pos in zip(det.column("flux").to_pylist(), det.column("isdiffpos").to_pylist(), strict=False):
            assert (flux > 0) == bool(pos)
            negatives += flux < 0
    assert negatives > 0, "the real packets include negative differences; none were signed negative"


def test_forced_photometry_of_v4_02_is_read(shared_data):
    path = next((shared_data / "ztf-alerts" / "boom-v4.02").glob("*.avro"))
    with open(path, "rb") as handle:
        record = next(iter(fastavro.reader(handle)))
    usable = [
        fp for fp in record["fp_hists"] if fp.get("forcediffimflux") is not None and fp["forcediffimflux"] > -99999
    ]
    table = ztf.parse(_raw(path)).table
    fp_rows = table.filter(pc.equal(table.column("source"), "ztf_fp"))
    assert fp_rows.num_rows == len(usable) > 0


def test_foreign_schema_packet_is_quarantined_not_raised(shared_data):
    path = next((shared_data / "ztf-alerts" / "pittgoogle" / "misc").glob("DC*.avro"))
    result = ztf.parse(_raw(path))
    assert result.alerts == 0 and result.table.num_rows == 0
    assert len(result.quarantined) == 1 and "not a ZTF alert" in result.quarantined[0][1]


def test_truncated_file_is_quarantined(shared_data):
    path = next((shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))
    data = path.read_bytes()
    result = ztf.parse(ztf.RawInput("truncated.avro", data[: len(data) // 3]))
    assert result.table.num_rows == 0
    assert result.quarantined and result.quarantined[0][0] == "truncated.avro"


def test_alert_json_without_candidate_raises_typed_error():
    with pytest.raises(BadAlertError):
        ztf.alert_json_to_rows({"objectId": "ZTF00aaaaaaa", "candid": 1})


def test_registry_names_the_sources():
    assert get_source("ztf") is ztf
    with pytest.raises(KeyError, match="known sources"):
        get_source("nope")
