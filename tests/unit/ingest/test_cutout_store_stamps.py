"""The cutout store beside the lake (issue 19, item 4), on real ZTF packets of every schema version.

Stamps go in with the per-alert rows (``Lake.append_alerts``), as every ingest path appends them:
each alert keeps its three stamps (valid FITS once read back), the ``_alerts`` table holds no
images, the same stamp stored twice is one file, an oversized stamp is refused with its reason
(the alert is still stored), and ``prune`` drops what is older than the retention.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from astropy.io import fits

from cosmic_ray.ingest import prefilter
from cosmic_ray.ingest.cutouts import CutoutStore
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.sources import ztf
from cosmic_ray.sources.base import RawInput
from cosmic_ray.sources.ztf_stamps import STAMP_COLUMNS


def _packets(shared_data: Path) -> list[Path]:
    return sorted(p for p in (shared_data / "ztf-alerts").rglob("*.avro") if "DC21" not in p.name)


@pytest.fixture(scope="module")
def parsed(shared_data):
    raws = [RawInput(str(p), p.read_bytes()) for p in _packets(shared_data)]
    return ztf.parse_many(raws)


def _open(data: bytes) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ZTF's SIMPLE card is not strictly standard
        with fits.open(io.BytesIO(data), ignore_missing_simple=True) as hdus:
            return np.asarray(hdus[0].data)


def test_every_schema_version_keeps_three_real_stamps_per_alert(parsed, tmp_path):
    versions = set(parsed.alert_meta.column("schemavsn").to_pylist())
    assert {"2.0", "3.1", "3.2", "3.3", "3.5", "4.02"} <= versions
    lake = Lake(tmp_path / "lake")
    assert lake.append_alerts(prefilter.apply(parsed.alert_meta)) == parsed.alert_meta.num_rows
    stored = lake.read_alerts()
    assert not set(STAMP_COLUMNS.values()) & set(stored.column_names), "images leaked into _alerts"
    store = CutoutStore(tmp_path / "lake")
    by_version: dict[str, int] = {}
    for object_id, candid, version in zip(
        *(parsed.alert_meta.column(c).to_pylist() for c in ("object_id", "alert_candid", "schemavsn")), strict=True
    ):
        alert = store.alert(object_id, candid)
        assert alert is not None and sorted(alert.stamps) == ["difference", "science", "template"], (object_id, candid)
        science = _open(store.read_fits(alert.stamps["science"]))
        assert science.ndim == 2 and 40 <= science.shape[0] <= 63 and 40 <= science.shape[1] <= 63
        assert alert.ra is not None and alert.context["distpsnr1"] is not None
        by_version[version] = by_version.get(version, 0) + 1
    assert len(by_version) >= 6


def test_the_latest_alert_with_stamps_is_the_default(parsed, tmp_path):
    Lake(tmp_path / "lake").append_alerts(parsed.alert_meta)
    store = CutoutStore(tmp_path / "lake")
    alerts = store.alerts("ZTF21abiuvdk")
    assert len(alerts) == 34 and [a.mjd for a in alerts] == sorted(a.mjd for a in alerts)
    assert store.alert("ZTF21abiuvdk").candid == alerts[-1].candid
    assert store.alert("ZTF21abiuvdk", 123) is None and store.alerts("../etc") == []


def test_content_addressing_stores_a_stamp_once(parsed, tmp_path):
    meta = parsed.alert_meta.slice(0, 5)
    store = CutoutStore(tmp_path / "lake", max_bytes=1 << 20)
    first = store.put_table(meta)
    assert first.alerts == 5 and first.stamps == 15 and first.new_blobs == 15
    # the same packets under other object ids and candids (a replay): no new blob, 5 more alerts
    again = meta.set_column(0, "object_id", pa.array([f"{o}x" for o in meta.column("object_id").to_pylist()]))
    again = again.set_column(1, "alert_candid", pa.array([c + 1 for c in meta.column("alert_candid").to_pylist()]))
    second = store.put_table(again)
    assert second.alerts == 5 and second.stamps == 15 and second.new_blobs == 0
    assert len(list((tmp_path / "lake" / "_cutouts" / "blobs").rglob("*.fits.gz"))) == 15
    a, b = store.alert(meta.column("object_id")[0].as_py()), store.alert(f"{meta.column('object_id')[0].as_py()}x")
    assert a is not None and b is not None and a.stamps == b.stamps


def test_an_oversized_stamp_is_refused_with_its_reason_and_the_alert_is_kept(parsed, tmp_path, monkeypatch):
    meta = parsed.alert_meta.slice(0, 3)
    monkeypatch.setenv("COSMIC_RAY_CUTOUT_MAX_BYTES", "10000")  # a ZTF stamp inflates to ~20 kB
    lake = Lake(tmp_path / "lake")
    assert lake.append_alerts(meta) == 3
    assert lake.read_alerts().num_rows == 3
    alert = CutoutStore(tmp_path / "lake").alert(
        meta.column("object_id")[0].as_py(), meta.column("alert_candid")[0].as_py()
    )
    assert alert is not None and alert.stamps == {}
    assert "over COSMIC_RAY_CUTOUT_MAX_BYTES=10000" in alert.refused["science"]
    assert not (tmp_path / "lake" / "_cutouts" / "blobs").exists()


def test_a_stamp_that_lies_about_its_size_is_refused_when_read(tmp_path):
    fits_bytes = _fits_stamp()
    liar = bytearray(gzip.compress(fits_bytes + b"\0" * 200_000))
    liar[-4:] = (1000).to_bytes(4, "little")  # the trailer claims 1000 bytes
    store = CutoutStore(tmp_path / "lake", max_bytes=50_000)
    ref, _ = store.put_blob(bytes(liar))
    with pytest.raises(Exception, match="inflates beyond 50000 bytes"):
        store.read_fits(ref)
    assert store.check_stamp(gzip.compress(b"\0" * 60_000), "science", 50_000) is not None
    assert store.check_stamp(b"not a stamp", "science", 50_000) == "science stamp is neither gzip nor FITS"


def _fits_stamp() -> bytes:
    out = io.BytesIO()
    fits.PrimaryHDU(np.arange(63 * 63, dtype=np.float32).reshape(63, 63)).writeto(out)
    return out.getvalue()


def test_prune_drops_what_is_older_than_the_retention(parsed, tmp_path):
    store = CutoutStore(tmp_path / "lake", max_bytes=1 << 20)
    old, recent = parsed.alert_meta.slice(0, 4), parsed.alert_meta.slice(4, 2)
    long_ago = time.time() - 40 * 86400.0
    store.put_table(old, now=long_ago)
    store.put_table(recent)
    old_digests, recent_digests = _digests(store, old), _digests(store, recent)
    for path in (tmp_path / "lake" / "_cutouts" / "blobs").rglob("*.fits*"):
        if path.name.split(".")[0] in old_digests:  # a blob's file time is when it was last stored
            os.utime(path, (long_ago, long_ago))
    summary = store.prune(retention_days=30)
    assert summary.alerts_removed == 4 and summary.alerts_kept == 2
    assert summary.blobs_removed == len(old_digests - recent_digests) > 0 and summary.bytes_freed > 0
    for object_id, candid in zip(*(old.column(c).to_pylist() for c in ("object_id", "alert_candid")), strict=True):
        assert store.alert(object_id, candid) is None
    for object_id, candid in zip(*(recent.column(c).to_pylist() for c in ("object_id", "alert_candid")), strict=True):
        alert = store.alert(object_id, candid)
        assert alert is not None and all(store.blob_path(r).exists() for r in alert.stamps.values())
    assert store.prune(retention_days=30).alerts_removed == 0  # idempotent
    everything = store.prune(retention_days=0, now=time.time() + 1)
    assert everything.alerts_removed == 2 and everything.alerts_kept == 0
    assert [p for p in store.root.rglob("*") if not p.is_dir()] == []
    assert list((store.root / "blobs").iterdir()) == [] and list((store.root / "alerts").iterdir()) == []


def _digests(store: CutoutStore, meta: pa.Table) -> set[str]:
    out: set[str] = set()
    for object_id, candid in zip(*(meta.column(c).to_pylist() for c in ("object_id", "alert_candid")), strict=True):
        path = store.root / "alerts" / object_id / f"{candid}.json"
        if path.exists():
            out.update(s["digest"] for s in json.loads(path.read_text())["stamps"].values())
    return out
