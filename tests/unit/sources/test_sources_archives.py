"""Archive sources: TESS light-curve FITS, MAST CAOM anchors, IRSA ZTF light curves.

Offline by default: real files and recorded answers are read from the shared data folder
(``COSMIC_RAY_SHARED_DATA``, default ``../shared/data``); the few answers that were never
recorded are CONSTRUCTED fixtures under ``tests/fixtures/constructed`` and say so in their names.
Live-service tests carry ``remote_data`` and run only with ``--remote-data``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import socket
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from astropy import units as u
from astropy.io import ascii as asciitable
from astropy.io import fits
from astropy.time import Time

from cosmic_ray.core.errors import SourceError
from cosmic_ray.core.lightcurve import SCHEMA
from cosmic_ray.sources import get_source, irsa, mast, tess
from cosmic_ray.sources.base import RawInput, http_response_bytes, split_http_response

REPO = Path(__file__).resolve().parents[3]
DATA = Path(os.environ.get("COSMIC_RAY_SHARED_DATA", REPO.parent / "shared" / "data"))
CONSTRUCTED = REPO / "tests" / "fixtures" / "constructed"

TESS_LC = {
    "hlsp_tess-data-alerts_tess_phot_00055652896-s01_tess_v1_lc.fits": 55652896,
    "hlsp_tess-data-alerts_tess_phot_00160148385-s02_tess_v1_lc.fits": 160148385,
}
TESS_PIXELS = ("tess-s0001-4-3_107.27_-70.0_5x5_astrocut.fits", "tess25155310-s01-first-cadences.fits.gz")


def shared(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    assert path.exists(), f"shared data file {path} missing; set COSMIC_RAY_SHARED_DATA"
    return path


def raw_of(path: Path) -> RawInput:
    return RawInput(str(path), path.read_bytes())


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("this code must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def remote(request: pytest.FixtureRequest) -> None:
    """Second guard beside tests/conftest.py's ``remote_data`` handling."""
    if not request.config.getoption("--remote-data", default=False):
        pytest.skip("live service test: run with --remote-data")


def test_sources_are_registered() -> None:
    assert get_source("tess") is tess
    assert get_source("mast") is mast
    assert get_source("irsa") is irsa
    for module in (tess, mast, irsa):
        assert callable(module.build_request) and callable(module.fetch) and callable(module.parse)


# ----------------------------------------------------------------------------------------- TESS


@pytest.mark.parametrize("filename", sorted(TESS_LC))
def test_tess_spoc_cadences_match_astropy(filename: str) -> None:
    path = shared("tess", filename)
    result = tess.parse(raw_of(path))
    assert result.quarantined == []
    table = result.table
    assert table.schema.remove_metadata() == SCHEMA

    # independently: the cadences to keep and their times, straight from astropy
    with fits.open(path) as hdul:
        header = hdul["LIGHTCURVE"].header
        data = hdul["LIGHTCURVE"].data
        time, quality, pdc = (np.asarray(data[c], dtype=float) for c in ("TIME", "QUALITY", "PDCSAP_FLUX"))
        pdc_err = np.asarray(data["PDCSAP_FLUX_ERR"], dtype=float)
        tic = int(hdul[0].header["TICID"])
    keep = (quality == 0) & np.isfinite(pdc) & np.isfinite(time)
    assert keep.sum() < len(keep)  # the file does have flagged/NaN cadences to drop
    assert table.num_rows == int(keep.sum())
    assert tic == TESS_LC[filename]

    bjd = Time(time[keep] + header["BJDREFI"] + header["BJDREFF"], format="jd", scale="tdb")
    np.testing.assert_allclose(table.column("mjd").to_numpy(), bjd.mjd, rtol=0, atol=1e-6)
    median = np.median(pdc[keep])
    flux = table.column("flux").to_numpy()
    np.testing.assert_allclose(flux * median, pdc[keep], rtol=1e-12)
    np.testing.assert_allclose(table.column("flux_err").to_numpy() * median, pdc_err[keep], rtol=1e-12)
    assert abs(np.median(flux) - 1.0) < 1e-12

    assert set(table.column("object_id").to_pylist()) == {f"TIC{tic}"}
    assert set(table.column("band").to_pylist()) == {"tess_T"}
    assert set(table.column("source").to_pylist()) == {"tess"}
    assert table.column("mag").null_count == table.num_rows  # relative flux, no magnitude
    assert not any(table.column("is_limit").to_pylist())
    assert b"BJD_TDB" in table.schema.metadata[b"time_reference"]


def test_tess_real_row_counts() -> None:
    counts = {name: tess.parse(raw_of(shared("tess", name))).table.num_rows for name in TESS_LC}
    assert counts == {
        "hlsp_tess-data-alerts_tess_phot_00055652896-s01_tess_v1_lc.fits": 18103,
        "hlsp_tess-data-alerts_tess_phot_00160148385-s02_tess_v1_lc.fits": 18314,
    }


def test_tess_sap_flux_option() -> None:
    path = shared("tess", min(TESS_LC))
    sap = tess.parse(raw_of(path), flux_column="SAP_FLUX").table
    pdc = tess.parse(raw_of(path)).table
    with fits.open(path) as hdul:
        d = hdul["LIGHTCURVE"].data
        raw_sap = np.asarray(d["SAP_FLUX"], dtype=float)
        keep = (np.asarray(d["QUALITY"]) == 0) & np.isfinite(raw_sap) & np.isfinite(np.asarray(d["TIME"], dtype=float))
    assert sap.num_rows == int(keep.sum())
    np.testing.assert_allclose(sap.column("flux").to_numpy() * np.median(raw_sap[keep]), raw_sap[keep], rtol=1e-12)
    assert sap.schema.metadata[b"flux_column"] == b"SAP_FLUX"
    assert not np.allclose(sap.column("flux").to_numpy()[:100], pdc.column("flux").to_numpy()[:100])


@pytest.mark.parametrize("filename", TESS_PIXELS)
def test_tess_pixel_files_are_quarantined_not_raised(filename: str) -> None:
    result = tess.parse(raw_of(shared("tess", filename)))
    assert result.table.num_rows == 0
    assert result.table.schema == SCHEMA
    assert len(result.quarantined) == 1
    name, reason = result.quarantined[0]
    assert name.endswith(filename)
    assert "LIGHTCURVE" in reason and "PIXELS" in reason


def test_tess_folder_through_the_source_shape(no_network: None) -> None:
    request = tess.build_request([shared("tess")])
    assert sorted(p.name for p in request.files) == sorted([*TESS_LC, *TESS_PIXELS])
    results = [tess.parse(raw) for raw in tess.fetch(request)]
    assert sum(r.table.num_rows for r in results) == 18103 + 18314
    assert sorted(Path(q[0]).name for r in results for q in r.quarantined) == sorted(TESS_PIXELS)


def test_tess_bad_bytes_are_quarantined() -> None:
    real = shared("tess", min(TESS_LC)).read_bytes()
    for raw in (
        RawInput("garbage.fits", b"not a fits file at all"),
        RawInput("truncated.fits", real[:5000]),
        RawInput("badgzip.fits.gz", b"\x1f\x8b" + b"\x00" * 20),
    ):
        result = tess.parse(raw)
        assert result.table.num_rows == 0 and len(result.quarantined) == 1, raw.name


def test_tess_all_flagged_cadences_quarantined() -> None:
    # a copy of a real file, edited in memory so that every cadence is flagged
    with fits.open(shared("tess", min(TESS_LC))) as hdul:
        hdul["LIGHTCURVE"].data["QUALITY"][:] = 1
        buf = io.BytesIO()
        hdul.writeto(buf)
    result = tess.parse(RawInput("all_flagged.fits", gzip.compress(buf.getvalue())))
    assert result.table.num_rows == 0
    assert "QUALITY == 0" in result.quarantined[0][1]


def test_tess_build_request_for_tic_ids_sends_nothing(no_network: None) -> None:
    request = tess.build_request(["TIC 55652896", 160148385])
    assert request.tic_ids == (55652896, 160148385)
    assert request.files == ()
    search = request.searches[0]
    assert search.service == mast.FILTERED_SERVICE and search.url == mast.MAST_INVOKE_URL
    filters = {f["paramName"]: f["values"] for f in search.params["filters"]}
    assert filters == {"obs_collection": ["TESS"], "dataproduct_type": ["timeseries"], "target_name": ["55652896"]}
    qlp = tess.build_request([1], author="QLP").searches[0].params["filters"]
    assert {"paramName": "provenance_name", "values": ["QLP"]} in qlp
    with pytest.raises(SourceError):
        tess.build_request(["/no/such/file.fits"])
    with pytest.raises(SourceError):
        tess.build_request([1], author="nobody")


# ----------------------------------------------------------------------------------------- MAST


def test_mast_caom_recorded_answer_to_anchors(no_network: None) -> None:
    path = shared("mast-irsa-responses", "mast", "caom.json")
    recorded = json.loads(path.read_text())["data"]
    request = mast.build_request(path)
    assert isinstance(request, mast.ReplayRequest) and request.files == (path,) and not request.remote
    results = [mast.parse(raw) for raw in mast.fetch(request)]
    assert len(results) == 1 and results[0].quarantined == []
    assert results[0].kind == "anchors"  # never ingested as light-curve points
    table = results[0].table
    assert table.schema == mast.ANCHOR_SCHEMA
    assert table.num_rows == len(recorded) == 19
    assert table.column("obs_id").to_pylist() == [r["obs_id"] for r in recorded]
    np.testing.assert_allclose(table.column("ra").to_numpy(), [r["s_ra"] for r in recorded])
    np.testing.assert_allclose(table.column("dec").to_numpy(), [r["s_dec"] for r in recorded])
    np.testing.assert_allclose(table.column("t_min").to_numpy(), [r["t_min"] for r in recorded])
    np.testing.assert_allclose(table.column("t_max").to_numpy(), [r["t_max"] for r in recorded])
    assert Counter(table.column("obs_collection").to_pylist()) == Counter(r["obs_collection"] for r in recorded)
    assert table.column("obsid").to_pylist() == [int(r["obsid"]) for r in recorded]


def test_mast_build_request_is_inspectable_offline(no_network: None) -> None:
    cone = mast.build_request((23.1, 60.6), radius=0.1 * u.deg)
    assert cone.service == "Mast.Caom.Cone" and cone.url == "https://mast.stsci.edu/api/v0/invoke"
    assert cone.params == {"ra": 23.1, "dec": 60.6, "radius": pytest.approx(0.1)}
    crit = mast.build_request(obs_collection=["TESS", "HST"], t_min=(58000, 58100), target_name="TIC*")
    assert crit.service == "Mast.Caom.Filtered"
    assert crit.params["filters"] == [
        {"paramName": "obs_collection", "values": ["TESS", "HST"]},
        {"paramName": "t_min", "values": [{"min": 58000.0, "max": 58100.0}]},
        {"paramName": "target_name", "values": [], "freeText": "TIC%"},
    ]
    both = mast.build_request("23.1 60.6", radius=36 * u.arcsec, dataproduct_type="image")
    assert both.service == "Mast.Caom.Filtered.Position"
    assert both.params["position"] == "23.1, 60.6, 0.01"
    sent = json.loads(both.form()["request"])
    assert sent["service"] == both.service and sent["params"] == both.params
    with pytest.raises(SourceError):
        mast.build_request()
    with pytest.raises(SourceError):
        mast.build_request(t_min=58000)  # a float field needs (min, max)


def test_mast_http_500_CONSTRUCTED_is_quarantined() -> None:
    path = CONSTRUCTED / "mast_caom_http500_CONSTRUCTED.http"
    result = mast.parse(raw_of(path))
    assert result.table.num_rows == 0 and result.table.schema == mast.ANCHOR_SCHEMA
    assert len(result.quarantined) == 1
    assert "HTTP 500" in result.quarantined[0][1] and "retry" in result.quarantined[0][1]


def test_mast_status_error_CONSTRUCTED_is_quarantined() -> None:
    result = mast.parse(raw_of(CONSTRUCTED / "mast_caom_status_error_CONSTRUCTED.json"))
    assert result.table.num_rows == 0
    assert "Request timed out" in result.quarantined[0][1]


def test_mast_answers_in_http_wrapping_parse_the_same() -> None:
    body = shared("mast-irsa-responses", "mast", "caom.json").read_bytes()
    wrapped = http_response_bytes(200, body, {"Content-Type": "application/json"})
    assert split_http_response(wrapped) == (
        200,
        {"content-type": "application/json", "content-length": str(len(body))},
        body,
    )
    assert mast.parse(RawInput("w", wrapped)).table.equals(mast.parse(RawInput("b", body)).table)


def test_mast_non_json_answer_is_quarantined() -> None:
    # a real IRSA VOTable handed to the MAST parser
    result = mast.parse(raw_of(shared("mast-irsa-responses", "ipac_irsa", "Cone.xml")))
    assert result.table.num_rows == 0 and "not JSON" in result.quarantined[0][1]


def _sep_arcsec(ra1: np.ndarray, dec1: np.ndarray, ra2: float, dec2: float) -> np.ndarray:
    """Great-circle separation by the haversine formula, independent of astropy's search."""
    r1, d1, r2, d2 = map(np.radians, (ra1, dec1, ra2, dec2))
    h = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(h))) * 3600


def test_join_anchors_by_position() -> None:
    anchors = mast.read_anchors([shared("mast-irsa-responses", "mast", "caom.json")]).table
    a_ra, a_dec = anchors.column("ra").to_numpy(), anchors.column("dec").to_numpy()
    # object "near": 3 arcsec north of the first anchor (two light-curve rows); "far": nowhere near
    ra0, dec0 = float(a_ra[0]), float(a_dec[0]) + 3 / 3600
    objects = pa.table({"object_id": ["near", "near", "far"], "ra": [ra0, ra0, 200.0], "dec": [dec0, dec0, -30.0]})
    for radius_arcsec in (2.0, 5.0, 300.0):
        joined = mast.join_anchors(objects, anchors, radius_arcsec * u.arcsec)
        expected = np.flatnonzero(_sep_arcsec(a_ra, a_dec, ra0, dec0) <= radius_arcsec)
        assert set(joined.column("object_id").to_pylist()) <= {"near"}
        assert sorted(joined.column("obs_id").to_pylist()) == sorted(
            anchors.column("obs_id").to_numpy(zero_copy_only=False)[expected]
        )
        seps = joined.column("separation_arcsec").to_numpy()
        assert np.all(np.diff(seps) >= 0)
    assert mast.join_anchors(objects, anchors, 2).num_rows == 0  # 3 arcsec away: outside 2 arcsec
    assert mast.join_anchors(objects, anchors, 5 * u.arcsec).num_rows >= 1


# ----------------------------------------------------------------------------------------- IRSA


def _expected_irsa(path: Path) -> tuple[np.ndarray, object]:
    t = asciitable.read(path, format="ipac")
    mag = np.ma.filled(t["mag"].astype(float), np.nan)
    keep = (np.asarray(t["catflags"]) == 0) & np.isfinite(mag)
    return keep, t


def test_irsa_ipac_table_CONSTRUCTED() -> None:
    path = CONSTRUCTED / "irsa_ztf_lightcurve_CONSTRUCTED.tbl"
    keep, t = _expected_irsa(path)
    result = irsa.parse(raw_of(path))
    table = result.table
    assert table.schema == SCHEMA
    assert table.num_rows == int(keep.sum()) == 15
    assert [q[1] for q in result.quarantined] == ["null or non-finite mjd/mag/magerr"]
    np.testing.assert_allclose(table.column("mjd").to_numpy(), np.asarray(t["mjd"])[keep])
    np.testing.assert_allclose(table.column("mag").to_numpy(), np.asarray(t["mag"])[keep])
    # nanojansky: 31.4 is the AB magnitude of 1 nJy
    np.testing.assert_allclose(table.column("flux").to_numpy(), 10 ** (-0.4 * (np.asarray(t["mag"])[keep] - 31.4)))
    assert table.column("band").to_pylist() == [
        {"zg": "g", "zr": "r", "zi": "i"}[f] for f in np.asarray(t["filtercode"])[keep]
    ]
    assert table.column("object_id").to_pylist() == [str(o) for o in np.asarray(t["oid"])[keep]]
    assert set(table.column("source").to_pylist()) == {"ztf_irsa"}  # not difference photometry
    assert table.column("isdiffpos").null_count == table.num_rows
    assert Counter(table.column("band").to_pylist()) == Counter({"g": 6, "r": 7, "i": 2})


def test_irsa_csv_CONSTRUCTED_equals_ipac() -> None:
    ipac = irsa.parse(raw_of(CONSTRUCTED / "irsa_ztf_lightcurve_CONSTRUCTED.tbl")).table
    csv = irsa.parse(raw_of(CONSTRUCTED / "irsa_ztf_lightcurve_CONSTRUCTED.csv")).table
    assert csv.equals(ipac)


def test_irsa_http_wrapped_and_errors_CONSTRUCTED() -> None:
    body = (CONSTRUCTED / "irsa_ztf_lightcurve_CONSTRUCTED.tbl").read_bytes()
    ok = irsa.parse(RawInput("ok", http_response_bytes(200, body, {"Content-Type": "text/plain"})), object_id="SN-x")
    assert ok.table.num_rows == 15 and set(ok.table.column("object_id").to_pylist()) == {"SN-x"}
    bad = irsa.parse(RawInput("bad", http_response_bytes(503, b"Service Unavailable")))
    assert bad.table.num_rows == 0 and "HTTP 503" in bad.quarantined[0][1]


@pytest.mark.parametrize(
    "path", [("ipac_irsa", "most_gator.tbl"), ("ipac_irsa", "Cone.xml"), ("ipac_irsa_ibe", "pos.txt")]
)
def test_irsa_real_tables_that_are_not_light_curves_are_quarantined(path: tuple[str, str]) -> None:
    result = irsa.parse(raw_of(shared("mast-irsa-responses", *path)))
    assert result.table.num_rows == 0 and len(result.quarantined) == 1
    assert "missing columns" in result.quarantined[0][1] or "not a readable table" in result.quarantined[0][1]


def test_irsa_build_request_is_inspectable_offline(no_network: None) -> None:
    req = irsa.build_request((298.0025, 29.87147), radius=5.04 * u.arcsec, bands=["g", "r"], time=(58000, 59000))
    params = dict(req.params)
    assert params["POS"] == "CIRCLE 298.0025000 29.8714700 0.0014000"
    assert params["BANDNAME"] == "g,r" and params["FORMAT"] == "ipac_table" and params["TIME"] == "58000.0 59000.0"
    assert req.url().startswith("https://irsa.ipac.caltech.edu/cgi-bin/ZTF/nph_light_curves?POS=CIRCLE+298.0025000")
    ids = irsa.build_request([686103400067717, 686203400017193], fmt="csv")
    assert ids.params == (("ID", "686103400067717"), ("ID", "686203400017193"), ("FORMAT", "csv"))
    replay = irsa.build_request(CONSTRUCTED / "irsa_ztf_lightcurve_CONSTRUCTED.tbl")
    assert isinstance(replay, irsa.RecordedAnswers) and replay.files == (
        CONSTRUCTED / "irsa_ztf_lightcurve_CONSTRUCTED.tbl",
    )
    with pytest.raises(SourceError):
        irsa.build_request((1, 2), fmt="fits")
    with pytest.raises(SourceError):
        irsa.build_request((1, 2), bands=["u"])


# ----------------------------------------------------------------------------------- live services


@pytest.mark.remote_data
def test_live_irsa_light_curve(remote: None) -> None:
    request = irsa.build_request((298.0025, 29.87147), radius=5 * u.arcsec, bands=["g"])
    results = [irsa.parse(raw) for raw in irsa.fetch(request)]
    assert results and results[0].quarantined == [] and results[0].table.num_rows > 0


@pytest.mark.remote_data
def test_live_mast_cone(remote: None) -> None:
    results = [mast.parse(raw) for raw in mast.fetch(mast.build_request((23.1, 60.6), radius=0.02 * u.deg))]
    assert results and sum(r.table.num_rows for r in results) > 0


@pytest.mark.remote_data
def test_live_tess_light_curve(remote: None) -> None:
    results = [tess.parse(raw) for raw in tess.fetch(tess.build_request(["TIC 55652896"]))]
    assert any(r.table.num_rows > 0 for r in results)
