"""Reference models the few-shot model is measured against, each on the same inputs and draws.

* ``balanced_random_forest``: the light-curve features + a balanced random forest (the ALeRCE
  approach); every class larger than the median class is undersampled to the median in each tree
  (:func:`forest_sampling_strategy`), not every class to the rarest.
* ``logistic_regression``: class-balanced, on the features as normal scores; missing values reach
  the imputer as NaN (with missing-value indicators), never as a -999 the imputer cannot see.
* ``gradient_boosting``: histogram gradient boosting, class-balanced, with leaves small enough for
  classes of 4-12 objects (``min_samples_leaf=3``); it reads NaN natively.
* ``superphot_plus``: Superphot+-style: a parametric Villar fit per band (g, r; fluxes) with the
  ``light-curve`` package and class-weighted gradient boosting on the fit parameters.

Each reads the context the mode shows (:func:`~cosmic_ray.learn.context_features.context_matrix`)
as extra columns (NaN where missing). :func:`score_baselines` scores them like the ProtoNet
(:mod:`~cosmic_ray.learn.evaluate.scorers`): per support draw, trained on the training table plus
that draw's support objects; open set: 1 - highest probability of a model of the base classes.

scikit-learn, imbalanced-learn and light-curve are imported where a model is built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from cosmic_ray.learn.context_features import context_matrix
from cosmic_ray.learn.evaluate.inputs import EvaluationInputs, LabelledArrays
from cosmic_ray.learn.evaluate.scorers import Scored, _rare_probabilities

log = logging.getLogger(__name__)

#: Parameters of one band's Villar fit kept as features (amplitude and baseline as magnitudes).
VILLAR_NAMES = ("amp_mag", "base_rel", "t0_rel", "rise_log", "fall_log", "plateau_rel", "plateau_log", "chi2_log")
VILLAR_BANDS = ("g", "r")


def forest_sampling_strategy(labels: np.ndarray) -> dict[Any, int]:
    """Per class, how many objects each tree of the balanced forest draws: every class larger than
    the median class size is undersampled to it, smaller classes keep all their objects.

    Keys are the labels as given (imbalanced-learn calls this with its encoded labels)."""
    names, counts = np.unique(np.asarray(labels), return_counts=True)
    cap = int(np.median(counts))
    return {n.item() if hasattr(n, "item") else n: int(min(c, cap)) for n, c in zip(names, counts, strict=True)}


def balanced_forest(seed: int, labels: np.ndarray) -> Any:
    """An unfitted balanced random forest with :func:`forest_sampling_strategy` for ``labels``."""
    # deferred: imbalanced-learn pulls scikit-learn; only the baselines need it
    from imblearn.ensemble import BalancedRandomForestClassifier

    return BalancedRandomForestClassifier(
        n_estimators=200,
        sampling_strategy=forest_sampling_strategy,  # called with each fit's labels
        replacement=True,
        bootstrap=False,
        random_state=seed,
        n_jobs=1,
    )


def logistic_regression(seed: int, labels: np.ndarray) -> Any:
    """Median imputation with missing-value indicators, normal scores, class-balanced logistic regression."""
    # deferred: scikit-learn is heavy; only the baselines need it
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import QuantileTransformer

    return make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        QuantileTransformer(n_quantiles=101, output_distribution="normal", random_state=seed),
        LogisticRegression(C=0.3, class_weight="balanced", max_iter=3000),
    )


def gradient_boosting(seed: int, labels: np.ndarray) -> Any:
    """Class-balanced histogram gradient boosting (NaN handled natively), leaves of at least 3 objects."""
    # deferred: scikit-learn is heavy; only the baselines need it
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        class_weight="balanced", max_iter=200, learning_rate=0.05, min_samples_leaf=3, random_state=seed
    )


def finite_for_forest(x: np.ndarray) -> np.ndarray:
    """The forest needs finite inputs: NaN -> -999 (a value no feature takes: trees split it off)."""
    return np.nan_to_num(np.asarray(x, float), nan=-999.0, posinf=1e6, neginf=-1e6)


def with_nan(x: np.ndarray) -> np.ndarray:
    """Infinities -> NaN (missing) for the models that read NaN."""
    x = np.array(x, dtype=float, copy=True)
    x[~np.isfinite(x)] = np.nan
    return x


#: name -> (model factory (seed, labels), input preparation, which features it reads)
MODELS: dict[str, tuple[Callable[[int, np.ndarray], Any], Callable[[np.ndarray], np.ndarray], str]] = {
    "balanced_random_forest": (balanced_forest, finite_for_forest, "lc"),
    "logistic_regression": (logistic_regression, with_nan, "lc"),
    "gradient_boosting": (gradient_boosting, with_nan, "lc"),
    "superphot_plus": (gradient_boosting, with_nan, "villar"),
}


def villar_features(
    object_id: np.ndarray, mjd: np.ndarray, band: np.ndarray, mag: np.ndarray, err: np.ndarray
) -> dict[str, np.ndarray]:
    """Per object, the Villar fit of each band (g, r families) on fluxes: (len(VILLAR_BANDS) * 8,), NaN where unfit.

    Args:
        object_id, mjd, band, mag, err: cleaned points sorted by object then time
            (:func:`~cosmic_ray.learn.features.clean_points`).
    """
    # deferred: light-curve is a compiled extension only the baselines and features need
    import light_curve as lc

    from cosmic_ray.learn.features import band_family

    fit = lc.VillarFit("lmsder")
    families = np.asarray([band_family(str(b)) or "" for b in band], dtype=object)
    starts: np.ndarray = (
        np.flatnonzero(np.concatenate([[True], object_id[1:] != object_id[:-1]]))
        if len(object_id)
        else np.zeros(0, int)
    )
    ends: np.ndarray = np.concatenate([starts[1:], [len(object_id)]]) if len(starts) else np.zeros(0, int)
    out: dict[str, np.ndarray] = {}
    for s, e in zip(starts, ends, strict=False):
        row = np.full(len(VILLAR_BANDS) * len(VILLAR_NAMES), np.nan)
        t0_ref = np.nan
        for i, fam in enumerate(VILLAR_BANDS):
            sel = np.flatnonzero(families[s:e] == fam) + s
            t, m, em = mjd[sel], mag[sel], err[sel]
            keep = np.concatenate([[True], np.diff(t) > 0]) if len(t) else np.zeros(0, bool)
            t, m, em = t[keep], m[keep], em[keep]
            if len(t) < 5:
                continue
            flux = 10 ** (-0.4 * (m - 23.9))
            ferr = np.maximum(flux * np.nan_to_num(em, nan=0.1) * np.log(10) / 2.5, 1e-3)
            try:
                amp, base, t0, rise, fall, plateau, dur, chi2 = fit(t, flux, ferr, fill_value=np.nan)
            except (ValueError, RuntimeError):
                continue
            if i == 0 or not np.isfinite(t0_ref):
                t0_ref = t0
            with np.errstate(all="ignore"):
                row[i * 8 : (i + 1) * 8] = [
                    23.9 - 2.5 * np.log10(max(amp, 1e-6)),
                    base / max(abs(amp), 1e-6),
                    t0 - t0_ref,
                    np.log10(max(rise, 1e-3)),
                    np.log10(max(fall, 1e-3)),
                    plateau,
                    np.log10(max(dur, 1e-3)),
                    np.log10(max(chi2, 1e-6)),
                ]
        out[str(object_id[s])] = np.clip(np.nan_to_num(row, nan=np.nan, posinf=1e6, neginf=-1e6), -1e6, 1e6)
    return out


def villar_table_features(table: Any) -> dict[str, np.ndarray]:
    """:func:`villar_features` of a light-curve table (pyarrow, the lake's schema)."""
    # deferred: pyarrow-side cleaning lives with the features
    from cosmic_ray.learn.features import clean_points

    pts = clean_points(table)
    ids = pts.column("object_id").to_numpy(zero_copy_only=False)
    cols = [pts.column(c).to_numpy(zero_copy_only=False) for c in ("mjd", "band", "mag", "magerr")]
    return villar_features(ids, cols[0].astype(float), cols[1], cols[2].astype(float), cols[3].astype(float))


def villar_for(
    data_table: Any, train_table: Any, support_table: Any | None, phases: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """:func:`villar_features` of every object :func:`score_baselines` reads: data, training and
    support tables, and the data cut at each phase (keys ``"<days>:<object id>"``)."""
    # deferred: pyarrow-side truncation lives with the features
    from cosmic_ray.learn.features import truncate

    out: dict[str, np.ndarray] = {}
    for table in (train_table, support_table, data_table):
        if table is not None:
            out.update(villar_table_features(table))
    for days in phases:
        out.update({f"{days}:{k}": v for k, v in villar_table_features(truncate(data_table, float(days))).items()})
    return out


def blank(x: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """A copy of ``x`` with ``columns`` (a mask) set to 0: columns no training object has (histogram
    boosting cannot bin an all-missing column)."""
    out = np.array(x, dtype=float, copy=True)
    out[:, columns] = 0.0
    return out


def _inputs(
    a: LabelledArrays, rows: np.ndarray | None, kind: str, villar: Mapping[str, np.ndarray] | None, mode: str
) -> np.ndarray:
    """(n, P) what a baseline reads: light-curve features or Villar parameters, then the mode's context."""
    rows = np.arange(len(a)) if rows is None else rows
    if kind == "villar":
        width = len(VILLAR_BANDS) * len(VILLAR_NAMES)
        base = np.stack([(villar or {}).get(str(o), np.full(width, np.nan)) for o in a.object_id[rows]])
    else:
        base = np.asarray(a.feats[rows], dtype=float)
    contexts = getattr(a, "contexts", None)
    ctx = context_matrix(None if contexts is None else [contexts[i] for i in rows], len(rows), mode)
    return np.concatenate([base.reshape(len(rows), -1), ctx], axis=1)


def score_baselines(
    inputs: EvaluationInputs,
    draws: Sequence[dict[str, np.ndarray]],
    mode: str = "alert_time",
    names: Sequence[str] = tuple(MODELS),
    villar: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
) -> dict[str, Scored]:
    """Every reference model of ``names`` scored on ``inputs`` with the same support ``draws``.

    Args:
        villar: object id -> :func:`villar_features` of every object read (data, phases under the
            key ``"<days>:<object id>"``, training, support); needed by ``superphot_plus`` only.
    """
    out = {}
    rare, classes = inputs.rare, inputs.classes
    known = np.flatnonzero(np.isin(inputs.train.coarse, [c for c in classes if c not in rare]))
    for name in names:
        make, prep, kind = MODELS[name]
        xt, yt = _inputs(inputs.train, known, kind, villar, mode), inputs.train.coarse[known].astype(str)
        xd = _inputs(inputs.data, None, kind, villar, mode)
        phase_x = {}
        for days, arrays in inputs.phases.items():
            phase_villar = {k.split(":", 1)[1]: v for k, v in (villar or {}).items() if k.startswith(f"{days}:")}
            phase_x[days] = _inputs(arrays, None, kind, phase_villar, mode)
        preds, decisions = [], []
        phase_preds: dict[str, list[np.ndarray]] = {d: [] for d in inputs.phases}
        for i, draw in enumerate(draws):
            x, y = [xt], [yt]
            for c, rows in draw.items():
                if inputs.support is not None:
                    x.append(_inputs(inputs.support, rows, kind, villar, mode))
                    y.append(np.asarray([c] * len(rows)))
            y_all = np.concatenate(y)
            x_all = np.concatenate(x)
            empty = ~np.isfinite(x_all).any(axis=0)  # a column no training object has carries nothing
            model = make(seed + i, y_all).fit(prep(blank(x_all, empty)), y_all)
            probs = model.predict_proba(prep(blank(xd, empty)))
            preds.append(np.asarray(model.classes_)[probs.argmax(axis=1)].astype(object))
            decisions.append((list(model.classes_), np.log(np.maximum(probs, 1e-12))))
            for days, xp in phase_x.items():
                phase_preds[days].append(np.asarray(model.predict(prep(blank(xp, empty)))).astype(object))
        scored = Scored(
            classes=classes,
            truth=inputs.data.coarse,
            preds=np.stack(preds),
            phase_truth={d: a.coarse for d, a in inputs.phases.items()},
            phase_preds={d: np.stack(v) for d, v in phase_preds.items()},
            rare_scores=_rare_probabilities(decisions, rare, len(inputs.data)),
            class_scores=_rare_probabilities(decisions, classes, len(inputs.data)),
        )
        empty = ~np.isfinite(xt).any(axis=0)
        base_model = make(seed, yt).fit(prep(blank(xt, empty)), yt)
        score = 1.0 - base_model.predict_proba(prep(blank(xd, empty))).max(axis=1)
        is_base = np.isin(inputs.data.coarse, np.unique(yt))
        for c in rare:
            scored.open_pos[c] = score[inputs.data.coarse == c]
            scored.open_neg[c] = score[is_base]
        out[name] = scored
        log.info("baseline %s scored (%s)", name, mode)
    return out
