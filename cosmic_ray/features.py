"""Per-object features: pure batch functions (table in, arrays out). Ray Data only wraps them.

Two views of each light curve:
- ``seq``: the sequence tensor the encoder reads, (L, C) per object, first ``max_len`` detections;
- ``feats``: light-curve package extractors per band plus colour, (F,) per object.
Upper limits and forced photometry stay in the lake but are not model input yet.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MODEL_SOURCES = ("ztf_alert", "catalog", "ztf_bts", "simulated", "user")
SEQ_CHANNELS = ("t_rel", "log_dt", "band_g", "band_r", "band_i", "band_other", "mag_rel", "mag_abs", "magerr")
FEATURE_BANDS = ("g", "r")


@functools.lru_cache(maxsize=1)
def _extractor():
    import light_curve as lc

    return lc.Extractor(
        lc.Amplitude(),
        lc.StetsonK(),
        lc.Skew(),
        lc.StandardDeviation(),
        lc.LinearFit(),
        lc.BeyondNStd(1.0),
        lc.InterPercentileRange(0.1),
        lc.Duration(),
        lc.MaximumSlope(),
    )


def feature_names() -> list[str]:
    names = [f"{n}_{b}" for b in FEATURE_BANDS for n in _extractor().names]
    return names + ["color_g_r_mean", "n_detections_log", "duration_all_log"]


def clean_points(table: pa.Table) -> pa.Table:
    """Detections usable as model input, sorted by object then time, exact repeats merged."""
    mask = pc.and_(pc.invert(table.column("is_limit")), pc.is_valid(table.column("mag")))
    mask = pc.and_(mask, pc.is_in(table.column("source"), pa.array(MODEL_SOURCES)))
    table = table.filter(mask).select(["object_id", "label", "mjd", "band", "mag", "magerr"])
    table = table.group_by(["object_id", "band", "mjd"], use_threads=False).aggregate(
        [("mag", "mean"), ("magerr", "max"), ("label", "first")]
    )
    table = table.rename_columns(["object_id", "band", "mjd", "mag", "magerr", "label"])
    return table.sort_by([("object_id", "ascending"), ("mjd", "ascending")])


def _band_features(t: np.ndarray, m: np.ndarray, e: np.ndarray) -> np.ndarray:
    n = len(_extractor().names)
    if len(t) < 2:
        return np.full(n, np.nan)
    # strictly increasing times are required by the extractors
    keep = np.concatenate([[True], np.diff(t) > 0])
    t, m, e = t[keep], m[keep], np.maximum(e[keep], 1e-3)
    return np.asarray(_extractor()(t, m, e, fill_value=np.nan), dtype=float)


def object_arrays(mjd: np.ndarray, band: np.ndarray, mag: np.ndarray, magerr: np.ndarray, max_len: int) -> tuple[np.ndarray, int, np.ndarray]:
    """One object's sorted detections -> (seq (L, C), length, feats (F,))."""
    seq = np.zeros((max_len, len(SEQ_CHANNELS)), dtype=np.float32)
    n = min(len(mjd), max_len)
    t, b, m, e = mjd[:n], band[:n], mag[:n], magerr[:n]
    if n:
        dt = np.diff(t, prepend=t[0])
        seq[:n, 0] = (t - t[0]) / 100.0
        seq[:n, 1] = np.log1p(dt) / 5.0
        seq[:n, 2] = b == "g"
        seq[:n, 3] = b == "r"
        seq[:n, 4] = b == "i"
        seq[:n, 5] = ~np.isin(b, ("g", "r", "i"))
        seq[:n, 6] = (m - m.min()) / 2.0
        seq[:n, 7] = (m - 19.0) / 2.0
        seq[:n, 8] = np.clip(e, 0, 2) * 5.0
    feats = []
    means = {}
    for name in FEATURE_BANDS:
        sel = b == name
        feats.append(_band_features(t[sel], m[sel], e[sel]))
        means[name] = m[sel].mean() if sel.any() else np.nan
    extra = [means["g"] - means["r"], np.log1p(n), np.log1p(t[-1] - t[0]) if n else 0.0]
    return seq, n, np.concatenate(feats + [np.asarray(extra, dtype=float)]).astype(np.float32)


def featurize(table: pa.Table, max_len: int = 64) -> dict[str, np.ndarray]:
    """Light-curve points of many objects -> per-object arrays.

    Returns:
        ``object_id`` (N,), ``label`` (N,), ``seq`` (N, L, C), ``length`` (N,), ``feats`` (N, F).
    """
    pts = clean_points(table)
    ids = pts.column("object_id").to_numpy(zero_copy_only=False)
    out: dict[str, list[Any]] = {"object_id": [], "label": [], "seq": [], "length": [], "feats": []}
    if len(ids) == 0:
        return _empty(max_len)
    mjd = pts.column("mjd").to_numpy()
    band = pts.column("band").to_numpy(zero_copy_only=False)
    mag = pts.column("mag").to_numpy()
    err = np.nan_to_num(pts.column("magerr").to_numpy(zero_copy_only=False).astype(float), nan=0.1)
    labels = pts.column("label").to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    ends = np.concatenate([starts[1:], [len(ids)]])
    for s, e in zip(starts, ends):
        seq, n, feats = object_arrays(mjd[s:e], band[s:e], mag[s:e], err[s:e], max_len)
        out["object_id"].append(ids[s])
        out["label"].append(labels[s] if labels[s] is not None else "")
        out["seq"].append(seq)
        out["length"].append(n)
        out["feats"].append(feats)
    return {
        "object_id": np.asarray(out["object_id"], dtype=object),
        "label": np.asarray(out["label"], dtype=object),
        "seq": np.stack(out["seq"]).astype(np.float32),
        "length": np.asarray(out["length"], dtype=np.int64),
        "feats": np.stack(out["feats"]).astype(np.float32),
    }


def _empty(max_len: int) -> dict[str, np.ndarray]:
    return {
        "object_id": np.asarray([], dtype=object),
        "label": np.asarray([], dtype=object),
        "seq": np.zeros((0, max_len, len(SEQ_CHANNELS)), dtype=np.float32),
        "length": np.zeros(0, dtype=np.int64),
        "feats": np.zeros((0, len(feature_names())), dtype=np.float32),
    }


def featurize_with_ray(table: pa.Table, max_len: int = 64, blocks: int = 4) -> dict[str, np.ndarray]:
    """:func:`featurize` over many objects in parallel with Ray Data (objects never split across blocks)."""
    import ray

    if table.num_rows == 0:
        return _empty(max_len)
    table = table.sort_by("object_id")
    ids = table.column("object_id").to_numpy(zero_copy_only=False)
    # cut into contiguous blocks on object boundaries
    bounds = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    cuts = [bounds[int(i)] for i in np.linspace(0, len(bounds), blocks + 1)[1:-1].round()]
    edges = [0, *cuts, table.num_rows]
    parts = [table.slice(a, b - a) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    ds = ray.data.from_arrow(parts)
    ds = ds.map_batches(lambda batch: featurize(batch, max_len), batch_format="pyarrow", batch_size=None)
    rows = ds.take_all()
    if not rows:
        return _empty(max_len)
    return {
        "object_id": np.asarray([r["object_id"] for r in rows], dtype=object),
        "label": np.asarray([r["label"] for r in rows], dtype=object),
        "seq": np.stack([r["seq"] for r in rows]).astype(np.float32),
        "length": np.asarray([r["length"] for r in rows], dtype=np.int64),
        "feats": np.stack([r["feats"] for r in rows]).astype(np.float32),
    }
