"""Labelled catalogues (SLSN, TDE, ALeRCE) and the cross-catalogue event match, on the real files.

Expected numbers are derived here independently (pandas / astropy straight from the files),
never copied from the code under test. Shared data: ``COSMIC_RAY_SHARED_DATA`` (default
``../shared/data``).
"""

from __future__ import annotations

import gzip
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord, match_coordinates_sky

from cosmic_ray.core.errors import SourceError
from cosmic_ray.core.lightcurve import SCHEMA
from cosmic_ray.sources import catalog, catalogs, get_source, magsystems
from cosmic_ray.sources import crossmatch as xm
from cosmic_ray.sources.ztf import RawInput

REPO = Path(__file__).resolve().parents[3]
DATA = Path(os.environ.get("COSMIC_RAY_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    assert path.exists(), f"shared data file {path} missing; set COSMIC_RAY_SHARED_DATA"
    return path


@pytest.fixture(scope="module")
def slsne() -> catalogs.ParseResult:
    return catalogs.read_catalogue(shared("slsne"))


@pytest.fixture(scope="module")
def tde() -> catalogs.ParseResult:
    return catalogs.read_catalogue(shared("tde"))


@pytest.fixture(scope="module")
def alerce() -> catalogs.ParseResult:
    return catalogs.read_catalogue(shared("alerce-sne"))


@pytest.fixture(scope="module")
def match() -> xm.CrossMatch:
    return xm.build_crossmatch(xm.load_shared_entries(DATA))


def rows(table: pa.Table, **where: object) -> pd.DataFrame:
    df = table.to_pandas()
    for key, value in where.items():
        df = df[df[key] == value]
    return df


# ------------------------------------------------------------------------------ magnitude systems


def test_vega_to_ab_offsets() -> None:
    assert magsystems.ab_offset("R", "Vega") == (pytest.approx(0.21), "Vega")
    assert magsystems.ab_offset("J", "Vega")[0] == pytest.approx(0.91)
    assert magsystems.ab_offset("Ks", "Vega")[0] == pytest.approx(1.85)
    assert magsystems.ab_offset("UVW2", "Vega", "swift")[0] == pytest.approx(1.73)
    assert magsystems.ab_offset("V", "Vega", "swift")[0] == pytest.approx(-0.01)
    assert magsystems.ab_offset("W1", "Vega", "wise")[0] == pytest.approx(2.699)
    assert magsystems.ab_offset("g", "AB") == (0.0, "AB")
    assert magsystems.ab_offset("C", "Vega")[0] is None  # unfiltered: no offset exists
    assert magsystems.ab_offset("F850LP", "Vega")[0] is None
    # no system given: the filter's native one, unless asked not to assume
    assert magsystems.ab_offset("g", None) == (0.0, "AB")
    assert magsystems.ab_offset("V", "") == (pytest.approx(0.02), "Vega")
    assert magsystems.ab_offset("V", None, assume_native_system=False)[0] is None
    assert magsystems.ab_offset("W1", None, "standard")[0] is None  # Swift or WISE? cannot tell
    # one table, one place: every offset is a magnitude Quantity
    assert all(q.unit == u.mag for family in magsystems.VEGA_TO_AB.values() for q in family.values())


def test_filter_and_band_names() -> None:
    assert magsystems.canonical_filter("orange", "ATLAS") == "o"
    assert magsystems.canonical_filter("W1", "Swift", "UVOT") == "UVW1"
    assert magsystems.canonical_filter("W1", "WISE") == "W1"
    assert magsystems.band_name(magsystems.survey_name("P48", "ZTF"), "g") == "g"
    assert magsystems.band_name(magsystems.survey_name("P48", "--"), "g") == "ptf_g"
    assert magsystems.band_name(magsystems.survey_name("Pan-STARRS1", "GPC"), "i") == "ps1_i"
    assert magsystems.band_name(magsystems.survey_name("ATLAS", "ATLAS"), "o") == "atlas_o"


# ------------------------------------------------------------------------------------------ SLSN


def test_slsne_rows_and_quarantine(slsne: catalogs.ParseResult) -> None:
    raw = pd.read_csv(shared("slsne", "slsne_photometry_long.csv.gz"))
    ignored = raw["Ignore"].astype(bool)
    unconvertible = (raw["System"] == "Vega") & raw["Filter"].isin(["C", "F775W", "F850LP"])
    no_error = ~raw["UL"].astype(bool) & ~(raw["MagErr"] >= 0)
    dropped = ignored | unconvertible | no_error
    table = slsne.table
    assert table.schema == SCHEMA
    assert table.num_rows == int((~dropped).sum()) == 38537
    assert len(slsne.quarantined) == int(dropped.sum()) == len(raw) - table.num_rows
    reasons = Counter(r for _, r in slsne.quarantined)
    assert reasons["flagged Ignore by the catalogue"] == int(ignored.sum())
    assert sum(n for r, n in reasons.items() if "no Vega->AB offset" in r) == int((unconvertible & ~ignored).sum())
    assert set(table.column("label").to_pylist()) == {"SLSN-I"}
    assert set(table.column("source").to_pylist()) == {"slsne"}
    assert pc.sum(table.column("is_limit")).as_py() == int((raw["UL"].astype(bool) & ~dropped).sum())
    assert len(set(table.column("object_id").to_pylist())) == raw.loc[~dropped, "Name"].nunique()


def test_slsne_ztf_bands_and_ab_values(slsne: catalogs.ParseResult) -> None:
    raw = pd.read_csv(shared("slsne", "slsne_photometry_long.csv.gz"))
    kept = raw[~raw["Ignore"].astype(bool)]
    ztf = kept[(kept["Instrument"] == "ZTF") & kept["Filter"].isin(["g", "r", "i"])]
    df = slsne.table.to_pandas()
    assert Counter(df.loc[df["band"].isin(["g", "r", "i"]), "band"]) == Counter(ztf["Filter"])
    # AB rows keep their magnitude
    ab = kept[(kept["Instrument"] == "ZTF")]
    np.testing.assert_allclose(np.sort(df.loc[df["band"].isin(["g", "r", "i"]), "mag"]), np.sort(ab["Mag"]))
    # a Vega row by hand: SN 1991D, NTT R band, Mag 16.6949 (Vega) -> AB + 0.21 (Blanton & Roweis 2007)
    row = df[(df["object_id"] == "1991D") & (df["mjd"] == 48299.3) & (df["band"] == "ntt_R")]
    assert len(row) == 1 and row["mag"].iloc[0] == pytest.approx(16.6949 + 0.21)
    # Johnson V of non-Swift telescopes: Vega rows moved by +0.02, AB rows unchanged
    usable = kept["UL"].astype(bool) | (kept["MagErr"] >= 0)
    v = kept[(kept["Filter"] == "V") & (kept["Telescope"] != "Swift") & usable]
    expected_v = np.concatenate([v.loc[v["System"] == "Vega", "Mag"] + 0.02, v.loc[v["System"] == "AB", "Mag"]])
    out_v = df[df["band"].str.endswith("_V") & ~df["band"].str.startswith("swift")]
    np.testing.assert_allclose(np.sort(out_v["mag"]), np.sort(expected_v))
    # positions from sne_data.txt
    meta = pd.read_csv(shared("slsne", "sne_data.txt"), sep=r"\s+", dtype={"Name": str}).set_index("Name")
    one = df[df["object_id"] == "2019ujb"].iloc[0]
    assert one["ra"] == pytest.approx(meta.loc["2019ujb", "RA_deg"]) and one["dec"] == pytest.approx(
        meta.loc["2019ujb", "DEC_deg"]
    )


def test_slsne_limits_and_flux(slsne: catalogs.ParseResult) -> None:
    df = slsne.table.to_pandas()
    limits, dets = df[df["is_limit"]], df[~df["is_limit"]]
    assert limits["magerr"].isna().all() and limits["flux"].isna().all()
    assert dets["magerr"].notna().all() and (dets["magerr"] >= 0).all()
    np.testing.assert_allclose(dets["flux"], (dets["mag"].to_numpy() * u.ABmag).to_value(u.nJy), rtol=1e-10)


# ------------------------------------------------------------------------------------------- TDE


def test_tde_rows_and_conversion(tde: catalogs.ParseResult) -> None:
    raw = pd.read_csv(shared("tde", "tde_photometry_mag_long.csv.gz"))
    no_time = raw["time"].isna() | (raw["u_time"] != "MJD")
    no_error = ~raw["upperlimit"].astype(bool) & raw["e_magnitude"].isna()
    no_system = raw["system"].isna() & raw["band"].isin(["C", "F225W"])  # no native system known
    dropped = no_time | no_error | no_system
    table = tde.table
    assert table.num_rows == int((~dropped).sum()) == 4169
    assert len(tde.quarantined) == int(dropped.sum())
    assert set(table.column("label").to_pylist()) == {"TDE"}
    assert set(table.column("source").to_pylist()) == {"tde"}
    assert len(set(table.column("object_id").to_pylist())) == raw["name"].nunique() == 41
    df = table.to_pandas()
    # Swift "W1" is UVOT's UVW1 (Vega, +1.51), not WISE W1
    sw = raw[
        (raw["telescope"] == "Swift") & (raw["band"] == "W1") & raw["system"].isna() & raw["e_magnitude"].notna()
    ].iloc[0]
    got = df[(df["object_id"] == sw["name"]) & (df["mjd"] == sw["time"]) & (df["band"] == "swift_UVW1")]
    assert len(got) >= 1 and got["mag"].to_numpy() == pytest.approx(np.full(len(got), sw["magnitude"] + 1.51))
    assert not df["band"].eq("swift_W1").any()
    # AB g rows unchanged
    ab_g = raw[(raw["system"] == "AB") & (raw["band"] == "g") & ~dropped]
    assert set(np.round(ab_g["magnitude"], 6)) <= set(np.round(df["mag"], 6))
    assert df["ra"].notna().all()


# ---------------------------------------------------------------------------------------- ALeRCE


def test_alerce_detections_limits_and_labels(alerce: catalogs.ParseResult) -> None:
    det = pd.read_csv(shared("alerce-sne", "30_sne_detections_corr.csv"))
    nondet = pd.read_csv(shared("alerce-sne", "30_sne_non_detections.csv"))
    labels = pd.read_csv(shared("alerce-sne", "30_sne_labels.csv")).set_index("objectId")["classALeRCE"]
    table = alerce.table
    assert alerce.quarantined == []
    assert table.num_rows == len(det) + len(nondet) == 1227
    df = table.to_pandas()
    lim, dets = df[df["is_limit"]], df[~df["is_limit"]]
    assert len(lim) == len(nondet) and len(dets) == len(det)
    np.testing.assert_allclose(np.sort(lim["mjd"]), np.sort(nondet["jd"] - 2400000.5))
    np.testing.assert_allclose(np.sort(lim["mag"]), np.sort(nondet["diffmaglim"]))
    np.testing.assert_allclose(np.sort(dets["mag"]), np.sort(det["magpsf"]))
    assert Counter(dets["band"]) == Counter(det["fid"].map({1: "g", 2: "r"}))
    candids = table.filter(pc.invert(table.column("is_limit"))).column("candid").to_pylist()  # int64, not via float
    assert set(candids) == set(det["candid"]) and len(candids) == len(det)
    for oid, label in df.groupby("object_id")["label"].agg(set).items():
        assert label == {labels[oid]}
    negative = dets[dets["isdiffpos"].eq(False)]
    assert len(negative) == int((det["isdiffpos"] < 0).sum()) == 1 and (negative["flux"] < 0).all()
    assert set(table.column("source").to_pylist()) == {"alerce"}


def test_alerce_labels_to_coarse_classes() -> None:
    assert catalogs.alerce_coarse("SNIa") == "SN Ia"
    assert catalogs.alerce_coarse("SNIbc") == "SN Ibc"
    assert catalogs.alerce_coarse("SNII") == "SN II"
    assert catalogs.alerce_coarse("SLSN") == "Other"  # ALeRCE does not say SLSN-I or SLSN-II


# ------------------------------------------------------------------------------ source shape


def test_catalogs_source_shape(tmp_path: Path) -> None:
    assert get_source("catalogs") is catalogs
    request = catalogs.build_request([shared("slsne"), shared("tde"), shared("alerce-sne")])
    assert [c.catalogue for c in request.catalogues] == ["alerce", "slsne", "tde"]
    raws = list(catalogs.fetch(request))
    assert all(isinstance(r, RawInput) for r in raws)
    assert sum(catalogs.parse(r).table.num_rows for r in raws) == 1227 + 38537 + 4169
    assert request.files == tuple(c.files["photometry"] for c in request.catalogues)
    # file-based ingest hands over the path and bytes only (maybe already inflated): companions
    # are read from beside the file
    path = shared("slsne", "slsne_photometry_long.csv.gz")
    assert catalogs.parse(RawInput(str(path), gzip.decompress(path.read_bytes()))).table.num_rows == 38537
    # a photometry file without its companions (a link to the real file, alone in a folder)
    lonely = tmp_path / "slsne_photometry_long.csv.gz"
    lonely.symlink_to(shared("slsne", "slsne_photometry_long.csv.gz"))
    with pytest.raises(SourceError, match="sne_data.txt"):
        catalogs.build_request([tmp_path])
    # the same bytes handed over without companions are quarantined, not raised
    bare = catalogs.parse(RawInput(str(lonely), lonely.read_bytes()))
    assert bare.table.num_rows == 0 and "metadata" in bare.quarantined[0][1]
    with pytest.raises(SourceError):
        catalogs.build_request([shared("tess")])


def test_long_format_round_trips_through_catalog_reader(tde: catalogs.ParseResult, tmp_path: Path) -> None:
    detections = tde.table.filter(pc.invert(tde.table.column("is_limit")))
    long = catalogs.to_long_format(detections)
    assert long.column_names == ["object_id", "label", "mjd", "band", "mag", "magerr", "is_limit", "source"]
    path = tmp_path / "tde_long.csv"
    pacsv.write_csv(long, path)
    back = catalog.parse(RawInput(str(path), path.read_bytes()))
    assert back.quarantined == []
    assert back.table.num_rows == detections.num_rows
    np.testing.assert_allclose(back.table.column("flux").to_numpy(), detections.column("flux").to_numpy(), rtol=1e-9)


# ------------------------------------------------------------------------------------ crossmatch


@pytest.mark.parametrize("name", ["SN2019abc", "2019abc", "AT2019abc", "AT 2019abc", "sn 2019ABC"])
def test_normalise_iau_names(name: str) -> None:
    assert xm.normalise_name(name) == "2019abc"


def test_normalise_other_names() -> None:
    assert xm.normalise_name("ZTF19aapreis") == "ZTF19aapreis"
    assert xm.normalise_name("SN 1991D") == "1991D"
    assert xm.normalise_name("2019aamp") == "2019aamp"
    assert xm.name_key("PS1-10jh") == xm.name_key("PS110jh")
    assert xm.name_key("ASASSN-15oi") == xm.name_key("ASASSN15oi")
    assert xm.name_key("SN1000") != xm.name_key("1000")  # not an IAU designation
    assert xm.split_aliases("AT 2019dsg (ZTF19aapreis);PS16dtm (2016ezh)") == [
        "AT 2019dsg",
        "ZTF19aapreis",
        "PS16dtm",
        "2016ezh",
    ]


def test_name_variants_map_to_one_event() -> None:
    m = xm.build_crossmatch(
        [xm.Entry("a", "AT2019abc"), xm.Entry("b", "SN2019abc"), xm.Entry("c", "ZTF19aaaaaaa", ("AT 2019abc",))]
    )
    assert (
        m.canonical("a", "AT2019abc") == m.canonical("b", "SN2019abc") == m.canonical("c", "ZTF19aaaaaaa") == "2019abc"
    )
    assert len(set(m.ids.values())) == 1
    assert m.canonical("zz", "SN 2019abc") == "2019abc"  # unknown catalogue: by name


def test_untrusted_alias_list_is_not_followed() -> None:
    # the TDE catalogue's row "AT" lists twenty different events as aliases: it must not join them
    junk = xm.Entry("tde", "AT", ("AT 2019dsg (ZTF19aapreis)", "AT 2019bue (ZTF19aammlzn)"))
    m = xm.build_crossmatch([junk, xm.Entry("ztf_bts", "ZTF19aapreis", ("AT2019dsg",)), xm.Entry("x", "2019bue")])
    assert m.canonical("ztf_bts", "ZTF19aapreis") == "2019dsg" and m.canonical("x", "2019bue") == "2019bue"
    assert m.canonical("tde", "AT") == "AT"


def test_position_match_and_guard() -> None:
    ra, dec = 150.0, 2.0
    near = 1.5 / 3600  # 1.5 arcsec in dec
    m = xm.build_crossmatch(
        [
            xm.Entry("a", "foo", (), ra, dec),
            xm.Entry("b", "bar", (), ra, dec + near),
            xm.Entry("c", "baz", (), ra, dec + 10 / 3600),
        ]
    )
    assert m.canonical("a", "foo") == m.canonical("b", "bar") != m.canonical("c", "baz")
    # two different IAU events in one galaxy stay two events
    g = xm.build_crossmatch([xm.Entry("a", "2019aaa", (), ra, dec), xm.Entry("b", "SN2020bbb", (), ra, dec + near)])
    assert g.canonical("a", "2019aaa") == "2019aaa" and g.canonical("b", "SN2020bbb") == "2020bbb"


def test_slsne_bts_overlap_on_real_files(match: xm.CrossMatch) -> None:
    bts = pd.read_csv(shared("ztf-bts", "bts_dev_catalog.csv"), dtype=str)
    meta = pd.read_csv(shared("slsne", "sne_data.txt"), sep=r"\s+", dtype={"Name": str})
    # independently, by name: BTS IAU ids without their SN/AT prefix vs SLSN names
    bts_names = set(bts["IAUID"].str.replace(r"^(SN|AT)", "", regex=True))
    by_name = bts_names & set(meta["Name"])
    # independently, by position: nearest BTS object within 2 arcsec
    c_bts = SkyCoord(bts["RA"], bts["Dec"], unit=(u.hourangle, u.deg))
    c_sl = SkyCoord(meta["RA_deg"].to_numpy(float) * u.deg, meta["DEC_deg"].to_numpy(float) * u.deg)
    _, sep, _ = match_coordinates_sky(c_sl, c_bts)
    by_position = set(meta["Name"][sep.arcsec < 2])
    shared_ids = match.shared("slsne", "ztf_bts")
    assert by_name == by_position == shared_ids
    assert len(shared_ids) >= 10
    # known events: 2019ujb is "AT2019ujb" in BTS and "2019ujb" in the SLSN catalogue
    assert match.canonical("slsne", "2019ujb") == match.canonical("ztf_bts", "ZTF19ackjrru") == "2019ujb"
    assert match.canonical("slsne", "2018hsf") == match.canonical("ztf_bts", "ZTF18acbvpzj")


def test_alerce_bts_overlap_and_tde_duplicates(match: xm.CrossMatch) -> None:
    bts = pd.read_csv(shared("ztf-bts", "bts_dev_catalog.csv"), dtype=str)
    labels = pd.read_csv(shared("alerce-sne", "30_sne_labels.csv"), dtype=str)
    common = set(labels["objectId"]) & set(bts["ZTFID"])
    assert len(common) >= 1
    iau_of = dict(zip(bts["ZTFID"], bts["IAUID"], strict=False))
    assert match.shared("alerce", "ztf_bts") == {xm.normalise_name(iau_of[z]) for z in common}
    for z in common:
        assert match.canonical("alerce", z) == match.canonical("ztf_bts", z)
    # the TDE catalogue lists AT2018zr and its Pan-STARRS name PS18kh as two objects: one event
    assert match.canonical("tde", "AT2018zr") == match.canonical("tde", "PS18kh") == "2018zr"


def test_canonical_ids_of_tables(match: xm.CrossMatch, slsne: catalogs.ParseResult) -> None:
    bts_lc = catalog.parse(
        RawInput("bts", shared("ztf-bts", "bts_dev_lightcurves.csv.gz").read_bytes()), source="ztf_bts"
    ).table
    sl = xm.canonical_ids(slsne.table, match)  # catalogue read from the source column
    bt = xm.canonical_ids(bts_lc, match)
    assert len(sl) == len(set(slsne.table.column("object_id").to_pylist()))
    assert len(bt) == len(set(bts_lc.column("object_id").to_pylist())) == 1621
    overlap = sl & bt
    assert overlap and overlap <= match.shared("slsne", "ztf_bts")
    assert len(sl | bt) == len(sl) + len(bt) - len(overlap)  # each shared event counted once
    assert xm.canonical_ids(slsne.table, match, catalogue="slsne") == sl
