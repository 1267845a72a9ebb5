"""Hostile and malformed input to every parser: a typed error or quarantine, never a crash or a hang.

Property-based (hypothesis). The ZTF cases start from the real packets in
``$COSMIC_RAY_SHARED_DATA/ztf-alerts`` (one per schema version) and break them: fields removed (from
the record and from the Avro schema), wrong types, huge arrays, NaN/inf, negative errors, unsorted
or duplicate epochs, empty light curves, corrupted bytes. The catalogue CSV parser, TESS FITS files
built with astropy (columns and headers missing or wrong) and the JSON alert path of the API
(``ztf.alert_json_to_rows``, ``PredictRequest``, ``serve.parsing.request_to_item``) get the same treatment.

What every parser must do with any input: return rows that are usable (finite time and photometry,
a known band, non-negative errors, a ``YYYYMMDD`` night) or say why not (a ``cosmic_ray.core.errors``
type, a quarantine reason, a 422), within a per-example deadline. Examples stay few so the file
runs in well under a minute on two shared cores.
"""

from __future__ import annotations

import copy
import gzip
import io
import math
import re
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cosmic_ray.core.errors import CosmicRayError
from cosmic_ray.sources import catalog, tess, ztf
from cosmic_ray.sources.ztf import RawInput

HYPO = settings(
    max_examples=40,
    deadline=30000,  # ms per example (generous: 2 shared cores); a parser that hangs fails here, not at the CI timeout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no 'explain': its tracer is slow on 3.11
)
pytestmark = pytest.mark.timeout(120)
NIGHT = re.compile(r"^\d{8}$")
COUNTS = {"ztf_json": 0, "ztf_avro": 0, "ztf_bytes": 0, "catalog": 0, "tess": 0, "predict": 0}


# ------------------------------------------------------------------ real packets
def _load_real() -> list[tuple[dict, dict]]:
    """(writer schema, record) of the first real packet of each schema version, cutouts dropped."""
    import os

    root = (
        Path(os.environ.get("COSMIC_RAY_SHARED_DATA", Path(__file__).resolve().parents[4] / "shared" / "data"))
        / "ztf-alerts"
    )
    out: dict[str, tuple[dict, dict]] = {}
    for path in sorted(root.rglob("*.avro")):
        with open(path, "rb") as handle:
            reader = fastavro.reader(handle)
            record = next(iter(reader))
            version = str(record.get("schemavsn"))
            if "objectId" in record and version not in out:  # ZTF packets only (the folder holds a DECam one too)
                out[version] = (reader.writer_schema, record)
    assert len(out) >= 3, f"expected real ZTF packets of several schema versions under {root}"
    return [out[v] for v in sorted(out)]


REAL = _load_real()


def _avro_bytes(schema: dict, record: dict) -> bytes:
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(copy.deepcopy(schema)), [record], codec="deflate")
    return buf.getvalue()


# ------------------------------------------------------------------ what a usable row is
def _check_rows(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        assert math.isfinite(row["mjd"]), row
        assert row["band"] in ("g", "r", "i"), row
        assert NIGHT.match(row["night"]), row
        if row["source"] == "ztf_fp":
            assert math.isfinite(row["flux"]), row
            assert row["flux_err"] is None or (math.isfinite(row["flux_err"]) and row["flux_err"] >= 0), row
        else:
            assert math.isfinite(row["mag"]), row
            if not row["is_limit"]:
                assert math.isfinite(row["magerr"]) and row["magerr"] >= 0, row
                assert math.isfinite(row["flux"]), row


def _check_table(table) -> None:
    if table.num_rows == 0:
        return
    mjd = table.column("mjd").to_numpy(zero_copy_only=False)
    assert np.isfinite(mjd).all()
    for name in ("mag", "magerr", "flux", "flux_err"):
        values = np.asarray(table.column(name).to_pylist(), dtype=object)
        present = np.array([v for v in values if v is not None], dtype=float)
        assert np.isfinite(present).all(), (name, present[~np.isfinite(present)][:5])
        if name in ("magerr", "flux_err"):
            assert (present >= 0).all(), name
    assert all(NIGHT.match(n) for n in table.column("night").to_pylist())
    assert table.column("object_id").null_count == 0


# ------------------------------------------------------------------ mutations of a ZTF record
NUMERIC = ("jd", "magpsf", "sigmapsf", "diffmaglim", "fid", "ra", "dec", "rb", "drb")
FORCED_NUMERIC = ("jd", "fid", "forcediffimflux", "forcediffimfluxunc", "magzpsci")
SPECIAL = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, -1e30, 1e30, 1e308, 2450000.5, 2459000.5])
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _mutate_json(data, record: dict) -> dict:
    """Anything a JSON client can send: types need not match the Avro schema."""
    rec = copy.deepcopy({k: v for k, v in record.items() if not k.startswith("cutout")})
    for _ in range(data.draw(st.integers(1, 4), label="n_mutations")):
        op = data.draw(
            st.sampled_from(
                [
                    "drop_top",
                    "drop_cand",
                    "drop_prv",
                    "wrong_type",
                    "special",
                    "prv_order",
                    "prv_huge",
                    "prv_kind",
                    "fp",
                ]
            ),
            label="op",
        )
        cand = rec.get("candidate") if isinstance(rec.get("candidate"), dict) else None
        prv = rec.get("prv_candidates") if isinstance(rec.get("prv_candidates"), list) else None
        if op == "drop_top" and rec:
            rec.pop(data.draw(st.sampled_from(sorted(rec)), label="key"), None)
        elif op == "drop_cand" and cand:
            cand.pop(data.draw(st.sampled_from(sorted(cand)), label="key"), None)
        elif op == "drop_prv" and prv:
            i = data.draw(st.integers(0, len(prv) - 1))
            if isinstance(prv[i], dict) and prv[i]:
                prv[i].pop(data.draw(st.sampled_from(sorted(prv[i]))), None)
        elif op == "wrong_type":
            where = data.draw(st.sampled_from(["top", "cand", "prv_item", "prv"]), label="where")
            value = data.draw(ANY_JSON, label="value")
            if where == "top":
                rec[
                    data.draw(
                        st.sampled_from(["objectId", "candid", "candidate", "prv_candidates", "fp_hists", "schemavsn"])
                    )
                ] = value
            elif where == "cand" and cand is not None:
                cand[data.draw(st.sampled_from([*NUMERIC, "isdiffpos", "candid"]))] = value
            elif where == "prv_item" and prv:
                prv[data.draw(st.integers(0, len(prv) - 1))] = value
            elif where == "prv" and prv:
                prv[data.draw(st.integers(0, len(prv) - 1))] = {
                    "candid": value,
                    "jd": value,
                    "fid": value,
                    "magpsf": value,
                }
        elif op == "special":
            target = (
                cand
                if (cand is not None and (not prv or data.draw(st.booleans())))
                else (data.draw(st.sampled_from(prv)) if prv else None)
            )
            if isinstance(target, dict):
                target[data.draw(st.sampled_from(NUMERIC))] = data.draw(SPECIAL)
        elif op == "prv_order" and prv:
            how = data.draw(st.sampled_from(["reverse", "shuffle", "duplicate", "empty", "none"]))
            if how == "reverse":
                prv.reverse()
            elif how == "shuffle":
                rec["prv_candidates"] = data.draw(st.permutations(prv))
            elif how == "duplicate":
                rec["prv_candidates"] = prv + copy.deepcopy(prv)
            elif how == "empty":
                rec["prv_candidates"] = []
            else:
                rec["prv_candidates"] = None
        elif op == "prv_huge":
            seed = (
                copy.deepcopy(prv[0])
                if prv and isinstance(prv[0], dict)
                else {"jd": 2459000.5, "fid": 1, "diffmaglim": 20.0}
            )
            rec["prv_candidates"] = [dict(seed) for _ in range(data.draw(st.sampled_from([5_000, 20_000])))]
        elif op == "prv_kind" and prv:  # a limit that claims to be a detection and the reverse
            i = data.draw(st.integers(0, len(prv) - 1))
            if isinstance(prv[i], dict):
                prv[i]["candid"] = None if prv[i].get("candid") is not None else 123
        elif op == "fp":
            fps = rec.get("fp_hists") if isinstance(rec.get("fp_hists"), list) else []
            if fps and isinstance(fps[0], dict):
                fps[0][data.draw(st.sampled_from(FORCED_NUMERIC))] = data.draw(SPECIAL | ANY_JSON)
            else:
                rec["fp_hists"] = data.draw(
                    st.lists(st.fixed_dictionaries({k: SPECIAL for k in FORCED_NUMERIC}), max_size=3) | ANY_JSON
                )
    return rec


@HYPO
@given(data=st.data(), which=st.integers(0, len(REAL) - 1))
def test_alert_json_gives_usable_rows_or_a_typed_error(data, which):
    record = _mutate_json(data, REAL[which][1])
    COUNTS["ztf_json"] += 1
    try:
        rows = ztf.alert_json_to_rows(record)
    except CosmicRayError:
        return
    _check_rows(rows)
    assert rows and not rows[0]["is_limit"]  # the triggering detection comes first


def test_the_real_packets_parse_unchanged():
    """The baseline the mutations start from: every real packet gives rows (so a 'pass' above is not a parser that refuses all)."""
    for schema, record in REAL:
        rows = ztf.alert_json_to_rows(record)
        assert len(rows) >= 1
        _check_rows(rows)
        result = ztf.parse(RawInput("real", _avro_bytes(schema, record)))
        assert result.quarantined == [] and result.table.num_rows == len(rows)


# ------------------------------------------------------------------ Avro packets that the schema allows
def _records_named(schema: Any, suffix: str) -> list[dict]:
    found = []
    if isinstance(schema, dict):
        if schema.get("type") == "record" and str(schema.get("name", "")).endswith(suffix):
            found.append(schema)
        for value in schema.values():
            found.extend(_records_named(value, suffix))
    elif isinstance(schema, list):
        for value in schema:
            found.extend(_records_named(value, suffix))
    return found


def _avro_field_type(schema: dict, record_suffix: str, name: str):
    for rec in _records_named(schema, record_suffix):
        for f in rec["fields"]:
            if f["name"] == name:
                return f["type"]
    return None


def _mutate_avro(data, schema: dict, record: dict) -> tuple[dict, dict]:
    """Mutations a valid Avro packet can carry (values the writer schema accepts, fields removed from the schema)."""
    schema = copy.deepcopy(schema)
    rec = copy.deepcopy({k: v for k, v in record.items() if not k.startswith("cutout")})
    for key in [k for k in record if k.startswith("cutout")]:  # keep packets small: cutouts present but empty
        rec[key] = None
    for f in schema["fields"]:
        if f["name"].startswith("cutout"):
            f["type"] = ["null", "bytes"] if f["type"] != "null" else "null"
            f["default"] = None
    for _ in range(data.draw(st.integers(1, 4), label="n_mutations")):
        op = data.draw(
            st.sampled_from(["special", "null", "prv_order", "prv_huge", "drop_field", "drop_top", "fid"]), label="op"
        )
        prv = rec.get("prv_candidates") or []
        targets = (
            [("candidate", rec["candidate"])] + [("prv_candidate", p) for p in prv]
            if isinstance(rec.get("candidate"), dict)
            else []
        )
        if op == "special" and targets:
            suffix, target = data.draw(st.sampled_from(targets))
            field = data.draw(st.sampled_from(["jd", "magpsf", "sigmapsf", "diffmaglim", "ra", "dec", "rb", "drb"]))
            kind = _avro_field_type(schema, suffix, field)
            if kind is not None and field in target:
                target[field] = data.draw(SPECIAL)
        elif op == "null" and targets:
            suffix, target = data.draw(st.sampled_from(targets))
            field = data.draw(st.sampled_from(["jd", "magpsf", "sigmapsf", "diffmaglim", "fid", "isdiffpos", "candid"]))
            kind = _avro_field_type(schema, suffix, field)
            if isinstance(kind, list) and "null" in kind:
                target[field] = None
        elif op == "fid" and targets:
            suffix, target = data.draw(st.sampled_from(targets))
            target["fid"] = data.draw(st.sampled_from([0, -1, 4, 99, 2**31 - 1, 2]))
        elif op == "prv_order" and rec.get("prv_candidates"):
            how = data.draw(st.sampled_from(["reverse", "shuffle", "duplicate", "empty", "none"]))
            if how == "reverse":
                rec["prv_candidates"].reverse()
            elif how == "shuffle":
                rec["prv_candidates"] = data.draw(st.permutations(prv))
            elif how == "duplicate":
                rec["prv_candidates"] = prv + copy.deepcopy(prv)
            elif how == "empty":
                rec["prv_candidates"] = []
            else:
                rec["prv_candidates"] = None
        elif op == "prv_huge" and rec.get("prv_candidates"):
            rec["prv_candidates"] = [copy.deepcopy(prv[0]) for _ in range(data.draw(st.sampled_from([2_000, 10_000])))]
        elif op == "drop_field":  # the field is gone from the writer schema and the record
            suffix = data.draw(st.sampled_from(["candidate", "prv_candidate"]))
            recs = _records_named(schema, suffix)
            if recs:
                name = data.draw(
                    st.sampled_from(["jd", "magpsf", "sigmapsf", "fid", "diffmaglim", "candid", "isdiffpos"])
                )
                for r in recs:
                    r["fields"] = [f for f in r["fields"] if f["name"] != name]
                for _, target in targets:
                    if (suffix == "candidate") == (target is rec.get("candidate")):
                        target.pop(name, None)
        elif op == "drop_top":
            name = data.draw(
                st.sampled_from(["objectId", "candid", "candidate", "prv_candidates", "fp_hists", "schemavsn"])
            )
            schema["fields"] = [f for f in schema["fields"] if f["name"] != name]
            rec.pop(name, None)
    return schema, rec


@HYPO
@given(data=st.data(), which=st.integers(0, len(REAL) - 1))
def test_avro_packets_parse_to_usable_rows_or_quarantine(data, which):
    schema, record = _mutate_avro(data, *REAL[which])
    raw = RawInput(f"mutated-{which}.avro", _avro_bytes(schema, record))
    COUNTS["ztf_avro"] += 1
    result = ztf.parse(raw)  # never raises
    assert result.alerts + len(result.quarantined) >= 1
    assert all(isinstance(reason, str) and reason for _, reason in result.quarantined)
    _check_table(result.table)
    # the vectorised Avro path and the per-record JSON path agree on every packet
    decoded = ztf.read_records(raw.data)[0]
    try:
        rows = ztf.alert_to_rows(decoded)
    except CosmicRayError:
        assert result.alerts == 0 and result.table.num_rows == 0 and len(result.quarantined) == 1
    else:
        assert result.alerts == 1 and result.table.num_rows == len(rows)


@HYPO
@given(
    which=st.integers(0, len(REAL) - 1),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8),
    codec=st.sampled_from(["null", "deflate"]),
)
def test_corrupted_avro_bytes_are_quarantined_not_raised(which, cut, flips, codec):
    schema, record = REAL[which]
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(copy.deepcopy(schema)), [record], codec=codec)
    data = bytearray(buf.getvalue())
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    data = bytes(data[: max(0, int(cut * len(data)))] if cut < 0.98 else data)
    COUNTS["ztf_bytes"] += 1
    result = ztf.parse_many([RawInput("corrupt.avro", data), RawInput("empty.avro", b"")])
    assert any(name == "empty.avro" for name, _ in result.quarantined)
    _check_table(result.table)


def test_tarball_garbage_is_one_bad_input():
    names = [raw.name for raw in ztf.iter_tarball_bytes("x.tar.gz", b"\x1f\x8b not a tarball")]
    result = ztf.parse_many(ztf.iter_tarball_bytes("x.tar.gz", b"\x1f\x8b not a tarball"))
    assert names and result.table.num_rows == 0 and len(result.quarantined) == len(names)


# ------------------------------------------------------------------ catalogue CSV
CELL = st.one_of(
    st.sampled_from(
        [
            "",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "-1",
            "0",
            "1e400",
            "19.5",
            "0.05",
            "58000.5",
            "abc",
            "true",
            "g",
            '"a,b"',
            "null",
        ]
    ),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters='\r\n,"'), max_size=6),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
COLUMNS = ["object_id", "label", "mjd", "band", "mag", "magerr", "is_limit", "source"]


@HYPO
@given(
    columns=st.lists(st.sampled_from(COLUMNS + ["extra"]), min_size=1, max_size=9, unique=True),
    rows=st.lists(st.lists(CELL, min_size=9, max_size=9), max_size=6),
    compress=st.sampled_from(["none", "gzip", "broken-gzip"]),
)
def test_catalog_csv_gives_usable_rows_or_quarantine(columns, rows, compress):
    text = ",".join(columns) + "\n" + "".join(",".join(r[: len(columns)]) + "\n" for r in rows)
    data = text.encode()
    if compress == "gzip":
        data = gzip.compress(data)
    elif compress == "broken-gzip":
        data = gzip.compress(data)[: max(3, len(data) // 2)]
    COUNTS["catalog"] += 1
    result = catalog.parse(RawInput("hostile.csv", data))
    _check_table(result.table)
    for source in set(result.table.column("source").to_pylist()):
        assert "/" not in source and "\\" not in source and source not in (".", ".."), source


def test_catalog_source_column_cannot_pick_a_lake_path(tmp_path):
    """A ``source`` value is a lake partition folder: ``../`` in it must not write outside the lake."""
    from cosmic_ray.ingest.lake import Lake

    csv = b"object_id,label,mjd,band,mag,magerr,source\nA,SN Ia,59000.5,g,19.0,0.1,../../../escaped\nB,SN Ia,59000.5,g,19.0,0.1,ztf_bts\n"
    result = catalog.parse(RawInput("evil.csv", csv))
    assert result.table.column("object_id").to_pylist() == ["B"]
    assert any("source" in reason for _, reason in result.quarantined)
    lake_root = tmp_path / "a" / "b" / "lake"
    bad = result.table.set_column(
        1, "source", __import__("pyarrow").array(["../../../escaped"] * result.table.num_rows)
    )
    with pytest.raises(CosmicRayError):
        Lake(lake_root).append(bad)
    assert not any(p for p in tmp_path.rglob("*") if "escaped" in str(p))


# ------------------------------------------------------------------ TESS FITS built with astropy
def _fits_bytes(cols: dict[str, np.ndarray], header: dict[str, Any], primary: dict[str, Any], extname: str) -> bytes:
    from astropy.io import fits

    hdu = fits.BinTableHDU.from_columns(
        [fits.Column(name=k, array=v, format=_fmt(v)) for k, v in cols.items()]
        or [fits.Column(name="DUMMY", array=np.zeros(1), format="D")],
        name=extname,
    )
    for k, v in header.items():
        hdu.header[k] = v
    prim = fits.PrimaryHDU()
    for k, v in primary.items():
        prim.header[k] = v
    buf = io.BytesIO()
    fits.HDUList([prim, hdu]).writeto(buf)
    return buf.getvalue()


def _fmt(values: np.ndarray) -> str:
    if values.dtype.kind in "US":
        return f"{max(1, values.dtype.itemsize)}A"
    return {"i": "K", "u": "K", "b": "L"}.get(values.dtype.kind, "D")


FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from([math.nan, -1.0, 0.0, 1e300])


@HYPO
@given(
    n=st.integers(0, 40),
    present=st.sets(
        st.sampled_from(["TIME", "QUALITY", "PDCSAP_FLUX", "PDCSAP_FLUX_ERR", "KSPSAP_FLUX", "SAP_FLUX"]), max_size=6
    ),
    time_kind=st.sampled_from(["float", "string", "int"]),
    values=st.lists(FLOATS, min_size=1, max_size=8),
    header=st.dictionaries(
        st.sampled_from(["TICID", "OBJECT", "TIMESYS", "BJDREFI", "BJDREFF", "RA_OBJ", "DEC_OBJ"]),
        st.one_of(
            st.sampled_from(["TIC 123", "TDB", "UTC", "abc", "", "TIC"]),
            st.integers(-5, 10**9),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        max_size=7,
    ),
    extname=st.sampled_from(["LIGHTCURVE", "PIXELS", "OTHER"]),
    transform=st.sampled_from(["none", "gzip", "truncate"]),
)
def test_tess_fits_gives_usable_rows_or_quarantine(n, present, time_kind, values, header, extname, transform):
    cols: dict[str, np.ndarray] = {}
    for name in sorted(present):
        if name == "QUALITY":
            cols[name] = (np.arange(n) % 3 == 0).astype(np.int64)
        elif name == "TIME" and time_kind == "string":
            cols[name] = np.array(["t"] * n)
        elif name == "TIME" and time_kind == "int":
            cols[name] = np.arange(n, dtype=np.int64)
        else:
            cols[name] = np.resize(np.array(values, dtype=float), n)
    data = _fits_bytes(cols, header, {"TICID": header.get("TICID", 7)} if "TICID" in header else {}, extname)
    if transform == "gzip":
        data = gzip.compress(data)
    elif transform == "truncate":
        data = data[: len(data) // 2]
    COUNTS["tess"] += 1
    result = tess.parse(RawInput("hostile.fits", data))
    assert (result.table.num_rows > 0) or result.quarantined
    if result.table.num_rows:
        mjd = result.table.column("mjd").to_numpy(zero_copy_only=False)
        flux = result.table.column("flux").to_numpy(zero_copy_only=False)
        assert np.isfinite(mjd).all() and np.isfinite(flux).all()
        assert all(NIGHT.match(x) for x in result.table.column("night").to_pylist())


@HYPO
@given(data=st.binary(max_size=3000))
def test_random_bytes_are_quarantined_by_every_file_parser(data):
    for parse in (ztf.parse, tess.parse, catalog.parse):
        result = parse(RawInput("noise.bin", data))
        _check_table(result.table)


# ------------------------------------------------------------------ the API's JSON path
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["mjd", "band", "mag", "magerr", "is_limit", "object_id", "points", "x"])
            | st.text(max_size=4),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)
POINT = st.fixed_dictionaries(
    {"mjd": FLOATS | st.integers(-(2**70), 2**70), "band": st.text(max_size=20), "mag": FLOATS},
    optional={"magerr": FLOATS, "is_limit": st.booleans() | st.text(max_size=3), "junk": JSONISH},
)
BODY = st.one_of(
    JSONISH,
    st.fixed_dictionaries(
        {},
        optional={
            "lightcurve": st.fixed_dictionaries(
                {},
                optional={
                    "object_id": st.text(max_size=140) | JSONISH,
                    "points": st.lists(POINT, max_size=6) | JSONISH,
                },
            ),
            "alert": JSONISH,
        },
    ),
)


@HYPO
@given(body=BODY, which=st.integers(0, len(REAL) - 1), use_real=st.booleans())
def test_predict_request_is_valid_or_a_422_never_a_crash(body, which, use_real):
    from fastapi import HTTPException
    from pydantic import ValidationError

    from cosmic_ray.serve.parsing import request_to_item
    from cosmic_ray.serve.schemas import PredictRequest

    if use_real and isinstance(body, dict):
        body = {"alert": {k: v for k, v in REAL[which][1].items() if not k.startswith("cutout")}}
    COUNTS["predict"] += 1
    try:
        request = PredictRequest.model_validate(body)
    except ValidationError:
        return
    assert (request.alert is None) != (request.lightcurve is None)
    if request.lightcurve is not None:
        assert all(
            math.isfinite(p.mjd) and math.isfinite(p.mag) and 0 <= p.magerr <= 10 for p in request.lightcurve.points
        )
    try:
        item = request_to_item(request)
    except HTTPException as exc:
        assert exc.status_code == 422 and exc.detail
        return
    assert any(not r["is_limit"] for r in item.rows)
    _check_rows([r for r in item.rows if r["source"] != "user"])


def test_report_counts(capsys):
    """Prints how many inputs each property tried (pytest -s shows it)."""
    with capsys.disabled():
        print(f"\nhostile inputs tried: {COUNTS}")
    assert sum(COUNTS.values()) > 0
