"""Per-object features: pure batch functions (table in, arrays out). Ray Data only wraps them.

Two views of each light curve:
- ``seq``: the sequence tensor the encoder reads, (L, C) per object, first ``max_len`` detections;
- ``feats``: light-curve package extractors per band plus colour, (F,) per object.
Upper limits and forced photometry stay in the lake but are not model input yet, and neither are
negative-difference detections (``isdiffpos`` false: the source faded below its template, its
``magpsf`` measures the fading, not a brightening; Rubin rows with a negative flux have no
magnitude at all).

Photometry of other surveys (the SLSN/TDE catalogues, user light curves) is read through
:func:`band_family`: ``<survey>_g`` counts as g, ``<survey>_r``/``R``/ATLAS ``o`` as r and so on;
bands of no optical family (UV, infrared) are not model input. :func:`augment_points` and
:func:`augmented_views` make the physics-respecting training views (dropped epochs, early-phase
truncation, a later start, noise from the reported errors, the source moved nearer or farther
with its time dilation); :func:`truncate`
cuts light curves at a phase for early-classification figures.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any, NamedTuple

import light_curve as lc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

log = logging.getLogger(__name__)

# a training view moved nearer or farther (augment_points): its time dilation is taken at this
# typical redshift of the bright training sample (BTS median ~0.06), and points the move makes
# fainter than the survey's single-epoch depth are lost, as they would be
REFERENCE_Z = 0.06
SURVEY_LIMIT_MAG = 20.8

MODEL_SOURCES = ("ztf_alert", "catalog", "ztf_bts", "simulated", "user", "slsne", "tde", "alerce", "lsst_alert")
SEQ_CHANNELS = ("t_rel", "log_dt", "band_g", "band_r", "band_i", "band_other", "mag_rel", "mag_abs", "magerr")
FEATURE_BANDS = ("g", "r")


@functools.lru_cache(maxsize=1)
def _extractor() -> lc.Extractor:
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


_SHAPE_NAMES = ("rise_days_log", "fade_30d", "peak_rel_first", "fade_05_days_log", "fade_10_days_log")
FADE_MAGS: tuple[float, ...] = (0.5, 1.0)  # fade times: days from peak until the band is this far below peak
# light-curve shape around the peak of each band, read off the detections by linear interpolation
# (NaN outside the observed span): magnitudes below peak before and after it, the rise rate, the
# time spent within 0.75 mag of peak and the apparent peak magnitude
GRID_DAYS: tuple[float, ...] = (-20.0, -10.0, 10.0, 20.0, 40.0, 80.0)
_GRID_OFFSETS = np.asarray(GRID_DAYS)
_GRID_NAMES = (
    *(f"dm_{'m' if d < 0 else 'p'}{abs(int(d))}" for d in GRID_DAYS),
    "rise_rate",
    "width_075_log",
    "peak_mag",
)
COLOUR_DAYS: tuple[float, ...] = (-10.0, 10.0, 40.0)
_COLOUR_OFFSETS = np.asarray((0.0, 20.0, *COLOUR_DAYS))


def feature_names() -> list[str]:
    names = [f"{n}_{b}" for b in FEATURE_BANDS for n in (*_extractor().names, *_SHAPE_NAMES, *_GRID_NAMES)]
    colours = [f"color_g_r_{'m' if d < 0 else 'p'}{abs(int(d))}" for d in COLOUR_DAYS]
    return names + [
        "color_g_r_mean",
        "n_detections_log",
        "duration_all_log",
        "color_g_r_peak",
        "color_g_r_late",
        *colours,
        "color_g_r_slope",
    ]


# filter letter of ``<survey>_<filter>`` -> the ZTF-like band it is read as
_FAMILY = {"g": "g", "c": "g", "r": "r", "R": "r", "o": "r", "i": "i", "I": "i"}


def band_family(band: str) -> str | None:
    """``g``/``r``/``i`` for ZTF bands and other surveys' look-alikes; ``None`` for other bands.

    >>> band_family("ps1_g"), band_family("atlas_o"), band_family("swift_UVW2")
    ('g', 'r', None)
    """
    if band in ("g", "r", "i"):
        return band
    return _FAMILY.get(band.rsplit("_", 1)[-1]) if "_" in band else None


def clean_points(table: pa.Table) -> pa.Table:
    """Detections usable as model input, sorted by object then time, exact repeats merged."""
    mask = pc.and_(pc.invert(table.column("is_limit")), pc.is_valid(table.column("mag")))
    mask = pc.and_(mask, pc.is_in(table.column("source"), pa.array(MODEL_SOURCES)))
    if "isdiffpos" in table.column_names:  # negative differences are no brightenings (null: not difference photometry)
        positive = pc.fill_null(table.column("isdiffpos"), True)
        log.debug("%d negative-difference detections left out of the model input", pc.sum(pc.invert(positive)).as_py())
        mask = pc.and_(mask, positive)
    table = table.filter(mask).select(["object_id", "label", "mjd", "band", "mag", "magerr"])
    bands = table.column("band").to_pylist()
    if any(b not in ("g", "r", "i") for b in bands):
        family = [band_family(b or "") for b in bands]
        table = table.set_column(table.schema.get_field_index("band"), "band", pa.array(family, pa.string()))
        table = table.filter(pc.is_valid(table.column("band")))
    table = table.group_by(["object_id", "band", "mjd"], use_threads=False).aggregate(
        [("mag", "mean"), ("magerr", "max"), ("label", "first")]
    )
    table = table.rename_columns(["object_id", "band", "mjd", "mag", "magerr", "label"])
    # points of one time in several bands (catalogue photometry) in band order: a defined order
    return table.sort_by([("object_id", "ascending"), ("mjd", "ascending"), ("band", "ascending")])


def _band_features(t: np.ndarray, m: np.ndarray, e: np.ndarray) -> np.ndarray:
    n = len(_extractor().names)
    if len(t) < 2:
        return np.full(n, np.nan)
    # strictly increasing times are required by the extractors
    keep = np.concatenate([[True], np.diff(t) > 0])
    t, m, e = t[keep], m[keep], np.maximum(e[keep], 1e-3)
    return np.asarray(_extractor()(t, m, e, fill_value=np.nan), dtype=float)


def _shape_features(t: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Rise time (log days, first detection to peak), fade over 30 days after peak (mag/day), peak
    below first, and the fade times of :data:`FADE_MAGS` (log days; NaN if the band never fades so far)."""
    if len(t) < 2:
        return np.full(len(_SHAPE_NAMES), np.nan)
    k = int(np.argmin(m))
    late = (t > t[k]) & (t <= t[k] + 30)
    fade = _slope(t[late], m[late]) if late.sum() >= 2 and np.ptp(t[late]) > 0 else np.nan
    return np.asarray(
        [np.log1p(t[k] - t[0]), fade, m[0] - m[k], *(_fade_time(t, m, k, dm) for dm in FADE_MAGS)], dtype=float
    )


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` on ``x`` (``np.polyfit(x, y, 1)[0]`` without its Vandermonde
    matrix and SVD: a tenth of the time, and featurization runs per request in serving)."""
    xc = x - x.mean()
    return float(np.dot(xc, y - y.mean()) / np.dot(xc, xc))


def _fade_time(t: np.ndarray, m: np.ndarray, k: int, dm: float) -> float:
    """log1p of the days from the peak (point ``k``) until ``dm`` mag below it, interpolated; NaN if never."""
    below = np.flatnonzero(m[k + 1 :] >= m[k] + dm)
    if not len(below):
        return np.nan
    j = k + 1 + int(below[0])
    t0, t1, m0, m1 = t[j - 1], t[j], m[j - 1], m[j]
    when = t0 + (m[k] + dm - m0) / (m1 - m0) * (t1 - t0) if m1 != m0 else t1
    return float(np.log1p(max(when - t[k], 0.0)))


def _grid_features(t: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Shape around the band's peak (see ``_GRID_NAMES``); NaN where the light curve does not reach."""
    out = np.full(len(_GRID_NAMES), np.nan)
    if len(t) < 2:
        return out
    k = int(np.argmin(m))
    tk, mk = t[k], m[k]
    n = len(GRID_DAYS)
    when = tk + _GRID_OFFSETS
    inside = (when >= t[0]) & (when <= t[-1])
    out[:n] = np.where(inside, np.interp(when, t, m) - mk, np.nan)
    out[n] = (m[0] - mk) / (tk - t[0]) if tk - t[0] >= 1.0 else np.nan
    near = t[m <= mk + 0.75]
    out[n + 1] = np.log1p(near[-1] - near[0])
    out[n + 2] = mk
    return out


def _colours_at(tg: np.ndarray, mg: np.ndarray, tr: np.ndarray, mr: np.ndarray, when: np.ndarray) -> np.ndarray:
    """g - r at each time of ``when``, each band interpolated linearly (NaN outside either band's span)."""
    if len(tg) < 2 or len(tr) < 2:
        return np.full(len(when), np.nan)
    inside = (when >= max(tg[0], tr[0])) & (when <= min(tg[-1], tr[-1]))
    return np.where(inside, np.interp(when, tg, mg) - np.interp(when, tr, mr), np.nan)


def _colour_slope(tg: np.ndarray, mg: np.ndarray, tr: np.ndarray, mr: np.ndarray, peak: float) -> float:
    """Change of g - r per 10 days over the 60 days after peak (least squares on the g epochs)."""
    if len(tg) < 2 or len(tr) < 2:
        return np.nan
    sel = (tg >= max(peak, tr[0])) & (tg <= min(peak + 60.0, tr[-1]))
    if sel.sum() < 2 or np.ptp(tg[sel]) < 5.0:
        return np.nan
    colour = mg[sel] - np.interp(tg[sel], tr, mr)
    return _slope(tg[sel] - peak, colour) * 10.0


def object_arrays(
    mjd: np.ndarray, band: np.ndarray, mag: np.ndarray, magerr: np.ndarray, max_len: int
) -> tuple[np.ndarray, int, np.ndarray]:
    """One object's sorted detections -> (seq (L, C), length, feats (F,))."""
    seq = np.zeros((max_len, len(SEQ_CHANNELS)), dtype=np.float32)
    n = min(len(mjd), max_len)
    t, b, m, e = mjd[:n], band[:n], mag[:n], magerr[:n]
    if n:
        dt = np.diff(t, prepend=t[0])
        seq[:n, 0] = (t - t[0]) / 100.0
        seq[:n, 1] = np.log1p(dt) / 5.0
        is_g, is_r, is_i = b == "g", b == "r", b == "i"
        seq[:n, 2] = is_g
        seq[:n, 3] = is_r
        seq[:n, 4] = is_i
        seq[:n, 5] = ~(is_g | is_r | is_i)
        seq[:n, 6] = (m - m.min()) / 2.0
        seq[:n, 7] = (m - 19.0) / 2.0
        seq[:n, 8] = np.clip(e, 0, 2) * 5.0
    feats = []
    means = {}
    for name in FEATURE_BANDS:
        sel = b == name
        feats.append(_band_features(t[sel], m[sel], e[sel]))
        feats.append(_shape_features(t[sel], m[sel]))
        feats.append(_grid_features(t[sel], m[sel]))
        means[name] = m[sel].mean() if sel.any() else np.nan
    g, r = b == "g", b == "r"
    peak = t[int(np.argmin(m))] if n else 0.0
    extra = [
        means["g"] - means["r"],
        np.log1p(n),
        np.log1p(t[-1] - t[0]) if n else 0.0,
        *_colours_at(t[g], m[g], t[r], m[r], peak + _COLOUR_OFFSETS),  # at peak, +20 d, then COLOUR_DAYS
        _colour_slope(t[g], m[g], t[r], m[r], peak),
    ]
    return seq, n, np.concatenate(feats + [np.asarray(extra, dtype=float)]).astype(np.float32)


def _objects(pts: pa.Table) -> Iterator[tuple[Any, str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Cleaned, sorted points -> (object_id, label, mjd, band, mag, magerr) per object, in order."""
    ids = pts.column("object_id").to_numpy(zero_copy_only=False)
    mjd = pts.column("mjd").to_numpy()
    band = pts.column("band").to_numpy(zero_copy_only=False)
    mag = pts.column("mag").to_numpy()
    err = np.nan_to_num(pts.column("magerr").to_numpy(zero_copy_only=False).astype(float), nan=0.1)
    labels = pts.column("label").to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    ends = np.concatenate([starts[1:], [len(ids)]])
    for s, e in zip(starts, ends, strict=False):
        label = labels[s] if labels[s] is not None else ""
        yield ids[s], label, mjd[s:e], band[s:e], mag[s:e], err[s:e]


def _stack(rows: list[tuple[Any, Any, np.ndarray, int, np.ndarray]]) -> dict[str, np.ndarray]:
    """(object_id, label, seq, length, feats) rows -> the arrays :func:`featurize` returns."""
    return {
        "object_id": np.asarray([r[0] for r in rows], dtype=object),
        "label": np.asarray([r[1] for r in rows], dtype=object),
        "seq": np.stack([r[2] for r in rows]).astype(np.float32),
        "length": np.asarray([r[3] for r in rows], dtype=np.int64),
        "feats": np.stack([r[4] for r in rows]).astype(np.float32),
    }


def featurize(table: pa.Table, max_len: int = 64) -> dict[str, np.ndarray]:
    """Light-curve points of many objects -> per-object arrays.

    Returns:
        ``object_id`` (N,), ``label`` (N,), ``seq`` (N, L, C), ``length`` (N,), ``feats`` (N, F).
    """
    pts = clean_points(table)
    if pts.num_rows == 0:
        return _empty(max_len)
    rows = [(oid, label, *object_arrays(t, b, m, e, max_len)) for oid, label, t, b, m, e in _objects(pts)]
    return _stack(rows)


def featurize_objects(objects: list[list[dict[str, Any]]], max_len: int = 64) -> dict[str, np.ndarray]:
    """Per-object arrays of light curves given as lists of lake-schema row dicts, one list per object.

    The same arrays as :func:`featurize` of those rows with ``object_id`` the object's index in
    ``objects`` (the same cleaning: detections of model sources, band families, exact repeats
    merged, sorted by time), without building an Arrow table: for the small batches of serving,
    where the table, its group-by and sort cost more than the features. Objects without a usable
    detection are left out (the ``object_id`` column names the ones that are there).
    """
    rows = []
    for index, points in enumerate(objects):
        c = _clean_object(points)
        if c is not None:
            rows.append((str(index), c.label, *object_arrays(c.mjd, c.band, c.mag, c.magerr, max_len)))
    return _stack(rows) if rows else _empty(max_len)


class ObjectPoints(NamedTuple):
    """One object's cleaned detections, sorted by time (what :func:`object_arrays` reads)."""

    label: str
    mjd: np.ndarray  # (n,)
    band: np.ndarray  # (n,) g, r, i
    mag: np.ndarray  # (n,)
    magerr: np.ndarray  # (n,) 0.1 where none was given


def _clean_object(points: list[dict[str, Any]]) -> ObjectPoints | None:
    """One object's rows -> its points as :func:`clean_points` + :func:`_objects` give them, or None."""
    kept: list[tuple[str, float, float, float, Any]] = []
    for p in points:
        if p.get("is_limit") or p.get("mag") is None or p.get("source") not in MODEL_SOURCES:
            continue
        if p.get("isdiffpos") is False:  # a negative difference: no brightening (see clean_points)
            continue
        band = p["band"] if p["band"] in ("g", "r", "i") else band_family(p["band"] or "")
        if band is not None:
            kept.append(
                (
                    band,
                    float(p["mjd"]),
                    float(p["mag"]),
                    np.nan if p.get("magerr") is None else float(p["magerr"]),
                    p.get("label"),
                )
            )
    if not kept:
        return None
    # exact repeats of (band, mjd): mean magnitude, largest error; then by time, and band at equal times
    first: dict[tuple[str, float], int] = {}
    group = np.empty(len(kept), dtype=np.int64)
    for i, (b, t, *_rest) in enumerate(kept):
        group[i] = first.setdefault((b, t), len(first))
    n = len(first)
    mag = np.asarray([k[2] for k in kept])
    err = np.asarray([k[3] for k in kept])
    label = next((k[4] for k in kept if k[4] is not None), None)
    if n == len(kept):
        band = np.asarray([k[0] for k in kept], dtype=object)
        mjd = np.asarray([k[1] for k in kept])
    else:
        keys = list(first)
        band = np.asarray([b for b, _ in keys], dtype=object)
        mjd = np.asarray([m for _, m in keys])
        total, count = np.zeros(n), np.zeros(n)
        np.add.at(total, group, mag)
        np.add.at(count, group, 1.0)
        mag = total / count
        worst = np.full(n, -np.inf)
        np.fmax.at(worst, group, err)  # NaN (no error given) only where the whole group has none
        err = np.where(np.isinf(worst), np.nan, worst)
    order = np.lexsort((band.astype(str), mjd))
    return ObjectPoints(
        label if label is not None else "", mjd[order], band[order], mag[order], np.nan_to_num(err[order], nan=0.1)
    )


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
    # deferred: Ray is heavy and only this parallel path needs it (serving featurizes in-process)
    import ray

    if table.num_rows == 0:
        return _empty(max_len)
    table = table.sort_by("object_id")
    ids = table.column("object_id").to_numpy(zero_copy_only=False)
    # cut into contiguous blocks on object boundaries
    bounds = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    cuts = [bounds[int(i)] for i in np.linspace(0, len(bounds), blocks + 1)[1:-1].round()]
    edges = [0, *cuts, table.num_rows]
    parts = [table.slice(a, b - a) for a, b in zip(edges[:-1], edges[1:], strict=False) if b > a]
    ds = ray.data.from_arrow(parts).map_batches(
        lambda batch: featurize(batch, max_len), batch_format="pyarrow", batch_size=None
    )
    rows = ds.take_all()
    if not rows:
        return _empty(max_len)
    return _stack([(r["object_id"], r["label"], r["seq"], r["length"], r["feats"]) for r in rows])


# ----------------------------------------------------------------------------- phases and augmentation


def truncate(table: pa.Table, days: float) -> pa.Table:
    """Rows of ``table`` up to ``days`` after each object's first usable detection (same schema)."""
    pts = clean_points(table)
    if pts.num_rows == 0:
        return table.slice(0, 0)
    first = pts.group_by("object_id", use_threads=False).aggregate([("mjd", "min")])
    start = dict(zip(first.column("object_id").to_pylist(), first.column("mjd_min").to_pylist(), strict=False))
    ids = table.column("object_id").to_pylist()
    limit = np.asarray([start.get(o, -np.inf) + days for o in ids])
    return table.filter(pa.array(table.column("mjd").to_numpy() <= limit))


def augment_points(
    mjd: np.ndarray, band: np.ndarray, mag: np.ndarray, magerr: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One physics-respecting random view of one sorted light curve.

    In turn, each with some probability: a later start (the first detections missed), truncation
    at an early phase (3 to 60 days after the first kept detection), dropped epochs, Gaussian noise
    of the reported errors, and the source moved nearer or farther (:func:`move_source`: one
    magnitude shift for all bands, its time dilation, points below the survey depth lost). Colours
    and the band of every point are kept. At least two points stay.
    """
    n = len(mjd)
    keep = np.ones(n, dtype=bool)
    if n > 4 and rng.random() < 0.3:  # discovered later
        keep[: rng.integers(1, max(2, n // 4))] = False
    if rng.random() < 0.4:  # early phase only
        start = mjd[keep][0]
        keep &= mjd <= start + rng.choice([3.0, 5.0, 10.0, 20.0, 30.0, 60.0])
    if rng.random() < 0.5:  # dropped epochs
        keep &= rng.random(n) > rng.uniform(0.1, 0.4)
    if keep.sum() < 2:
        keep[np.flatnonzero(keep | (np.arange(n) < 2))[:2]] = True
    m, e = mag[keep], magerr[keep]
    m = m + rng.normal(0.0, 1.0, len(m)) * np.clip(e, 0.0, 0.5)
    t, m = move_source(mjd[keep], m, rng.uniform(-0.7, 0.7))
    b = band[keep]
    visible = m <= SURVEY_LIMIT_MAG
    if visible.sum() >= 2 and not visible.all():
        t, b, m, e = t[visible], b[visible], m[visible], e[visible]
    return t, b, m, e


def move_source(
    mjd: np.ndarray, mag: np.ndarray, dm: float, z_ref: float = REFERENCE_Z
) -> tuple[np.ndarray, np.ndarray]:
    """The same light curve seen from ``dm`` magnitudes farther (``dm`` > 0) or nearer.

    Distance scales with redshift at these depths (Hubble law), so the source moves from ``z_ref``
    to ``z_ref * 10**(dm / 5)`` and its observed time scale stretches by ``(1 + z) / (1 + z_ref)``
    about the first point (about +2% for 0.7 mag farther at z 0.06). No K-correction.
    """
    stretch = (1.0 + z_ref * 10.0 ** (dm / 5.0)) / (1.0 + z_ref)
    mjd = np.asarray(mjd, dtype=float)
    return (mjd[0] + (mjd - mjd[0]) * stretch if len(mjd) else mjd), np.asarray(mag, dtype=float) + dm


def augmented_views(table: pa.Table, n_views: int, seed: int, max_len: int = 64) -> dict[str, np.ndarray]:
    """``n_views`` random views (:func:`augment_points`) of every object, featurized like :func:`featurize`.

    Returns:
        The arrays of :func:`featurize` for ``N * n_views`` views, object-major (views of object
        ``i`` are rows ``i * n_views ... (i + 1) * n_views - 1``, objects in ``object_id`` order).
    """
    pts = clean_points(table)
    if pts.num_rows == 0 or n_views == 0:
        return _empty(max_len)
    rng = np.random.default_rng(seed)
    rows = [
        (oid, label, *object_arrays(*augment_points(t, b, m, e, rng), max_len))
        for oid, label, t, b, m, e in _objects(pts)
        for _ in range(n_views)
    ]
    return _stack(rows)
