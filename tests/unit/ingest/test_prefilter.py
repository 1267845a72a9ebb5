"""Alert pre-filters on real ZTF packets: every threshold can route an alert away or let it pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosmic_ray.ingest import prefilter
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.ingest.prefilter import PrefilterConfig
from cosmic_ray.sources import ztf


def _meta(shared_data: Path, pattern: str):
    path = next((shared_data / "ztf-alerts").rglob(pattern))
    result = ztf.parse(ztf.RawInput(str(path), path.read_bytes()))
    assert result.alerts == 1
    return result.alert_meta, result.table


def _decision(meta, **cfg) -> tuple[str, str]:
    decisions, reasons = prefilter.decide(meta, PrefilterConfig(**cfg))
    return decisions[0], reasons[0]


def test_real_bogus_by_drb(shared_data):
    meta, _ = _meta(shared_data, "ZTF18abvorxt.*.avro")  # real packet: drb 0.366
    assert meta.column("drb")[0].as_py() == pytest.approx(0.366, abs=1e-3)
    decision, reason = _decision(meta)
    assert decision == "bogus" and "drb=0.366<0.5" in reason
    assert _decision(meta, min_drb=0.3)[0] == "pass"


def test_real_bogus_falls_back_to_rb_for_old_schemas(shared_data):
    meta, _ = _meta(shared_data, "v2.0_ZTF18aakscsl_*.avro")  # schema 2.0: no drb, rb 0.227
    assert meta.column("drb")[0].as_py() is None
    assert _decision(meta)[0] == "bogus"
    assert _decision(meta, min_rb=0.2)[0] == "pass"


def test_known_solar_system_object(shared_data):
    meta, _ = _meta(shared_data, "ZTF21abrtszs.*.avro")  # ssdistnr 7", ssmagnr 21.9
    assert _decision(meta)[0] == "pass"  # 7" is beyond the default 5"
    decision, reason = _decision(meta, ss_max_distance_arcsec=10)
    assert decision == "solar_system" and "ssdistnr=7.00" in reason
    assert _decision(meta, ss_max_distance_arcsec=10, ss_max_magnitude=21.5)[0] == "pass"
    assert _decision(meta, ss_max_distance_arcsec=10, solar_system=False)[0] == "pass"


def test_stellar_counterpart_of_the_variable_star_packet(shared_data):
    meta, _ = _meta(shared_data, "*_varstar*.avro")  # sgscore1 0.991 at 0.25", rb 0.447
    decision, reason = _decision(meta)
    assert decision == "bogus" and "star: sgscore1=0.991" in reason  # both rules fired; first one wins
    assert _decision(meta, min_rb=0.4)[0] == "star"
    assert _decision(meta, min_rb=0.4, star_min_sgscore=0.995)[0] == "pass"
    assert _decision(meta, min_rb=0.4, star_max_distance_arcsec=0.2)[0] == "pass"


def test_missing_catalogue_values_never_fire(shared_data):
    meta, _ = _meta(shared_data, "v2.0_ZTF18aaxjlwy_*.avro")  # sgscore1 = distpsnr1 = -999
    assert meta.column("sgscore1")[0].as_py() == -999
    _, reason = _decision(meta, min_rb=0.0, star_min_sgscore=0.0, star_max_distance_arcsec=1e6)
    assert "star" not in reason


def test_routed_alerts_are_kept_and_labelled_in_the_lake(tmp_path, shared_data):
    lake = Lake(tmp_path / "lake")
    paths = sorted((shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))
    result = ztf.parse_many([ztf.RawInput(str(p), p.read_bytes()) for p in paths])
    lake.append(result.table)
    lake.append_alerts(prefilter.apply(result.alert_meta))
    stored = Lake(tmp_path / "lake").read_alerts()
    assert stored.num_rows == 50
    decisions = stored.column("prefilter").to_pylist()
    assert "pass" in decisions and {"bogus", "star"} <= set(decisions)
    for decision, reason in zip(decisions, stored.column("prefilter_reason").to_pylist(), strict=False):
        assert (decision == "pass") == (reason == "")
    routed = {c for c, d in zip(stored.column("alert_candid").to_pylist(), decisions, strict=False) if d != "pass"}
    points = set(lake.read().column("candid").to_pylist())
    assert routed <= points  # routed-away alerts keep their light-curve points


def test_config_loads_from_yaml_and_rejects_typos(tmp_path):
    from cosmic_ray.core.errors import ConfigError

    good = tmp_path / "good.yaml"
    good.write_text("min_drb: 0.8\nstars: false\n")
    cfg = prefilter.load_config(good)
    assert cfg.min_drb == 0.8 and cfg.stars is False
    bad = tmp_path / "bad.yaml"
    bad.write_text("min_dbr: 0.8\n")
    with pytest.raises(ConfigError):
        prefilter.load_config(bad)
