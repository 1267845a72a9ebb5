"""The promotion gate: paired bootstrap on the same validation objects.

Real BTS objects and labels; the two models' predictions are constructed (a stated error rate
applied to the true labels), so the right decision is known.
"""

from __future__ import annotations

import numpy as np
import pytest

from cosmic_ray.core.taxonomy import to_coarse
from cosmic_ray.learn.evaluate.gate import gate_decision, paired_bootstrap


@pytest.fixture(scope="module")
def truth(shared_data):
    import pandas as pd

    df = pd.read_csv(
        shared_data / "ztf-bts" / "bts_dev_lightcurves.csv.gz", usecols=["object_id", "label"]
    ).drop_duplicates("object_id")
    coarse = np.asarray([to_coarse(x) for x in df["label"]], dtype=object)
    keep = np.isin(coarse, ["SN Ia", "SN II", "SN Ibc", "SN IIn"])
    return coarse[keep][:400]


def _corrupt(truth: np.ndarray, rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    classes = np.unique(truth)
    pred = truth.copy()
    flip = rng.random(len(truth)) < rate
    pred[flip] = rng.choice(classes, flip.sum())
    return pred


def test_clearly_better_model_is_promoted(truth):
    classes = sorted(set(truth))
    good, bad = _corrupt(truth, 0.1, 1), _corrupt(truth, 0.6, 2)
    result = paired_bootstrap(truth, good, bad, classes, "macro_f1", n_boot=500)
    promoted, reason = gate_decision(result)
    assert promoted and result.ci_low > 0 and "beats" in reason
    assert result.n_objects == len(truth)


def test_equal_or_worse_model_is_not_promoted(truth):
    classes = sorted(set(truth))
    same = _corrupt(truth, 0.3, 3)
    assert not gate_decision(paired_bootstrap(truth, same, same.copy(), classes, "balanced_accuracy", n_boot=300))[0]
    # a different model of the same quality: the interval straddles 0
    other = _corrupt(truth, 0.3, 4)
    assert not gate_decision(paired_bootstrap(truth, other, same, classes, "macro_f1", n_boot=300))[0]
    worse = _corrupt(truth, 0.6, 5)
    result = paired_bootstrap(truth, worse, same, classes, "macro_f1", n_boot=300)
    assert not gate_decision(result)[0] and result.ci_high < 0


def test_min_gain_raises_the_bar(truth):
    classes = sorted(set(truth))
    a, b = _corrupt(truth, 0.2, 6), _corrupt(truth, 0.3, 7)
    result = paired_bootstrap(truth, a, b, classes, "macro_f1", n_boot=300)
    assert not gate_decision(result, min_gain=0.5)[0]


def test_paired_bootstrap_needs_the_same_objects(truth):
    with pytest.raises(ValueError):
        paired_bootstrap(truth, truth[:-1], truth, ["SN Ia"], "macro_f1")
