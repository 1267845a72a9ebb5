"""Issue 16's model side: finite-gradient distances, context as model input (missing indicators,
field dropout, the missing-aware context block), the tuned prior weight, age-matched prototypes, and
the fixed reference models on hand-checkable inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cosmic_ray.core.context import FEATURE_FIELDS
from cosmic_ray.learn.context_features import (
    context_matrix,
    context_stats,
    encoder_inputs,
    field_dropout,
    fit_context_block,
)
from cosmic_ray.learn.decision import age_bucket, ages_from_sequences, leave_one_out, tune_prior_weight
from cosmic_ray.learn.model import ProtoNetConfig, squared_distances


def test_squared_distances_have_finite_gradients_at_zero_distance():
    x = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], requires_grad=True)
    protos = torch.tensor([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0]], requires_grad=True)
    d2 = squared_distances(x, protos)
    assert d2[0, 0].item() == pytest.approx(0.0, abs=1e-6) and d2[1, 1].item() == pytest.approx(1.0)
    d2.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(protos.grad).all()
    # a batch large enough for the matrix-product path, with a query equal to a prototype
    big = torch.randn(64, 40)
    q = big.clone().requires_grad_(True)
    p = big[:8].clone().requires_grad_(True)
    d = squared_distances(q, p)
    assert (d >= 0).all() and d[3, 3].item() == pytest.approx(0.0, abs=1e-3)
    d.sum().backward()
    assert torch.isfinite(q.grad).all() and torch.isfinite(p.grad).all()


def test_context_matrix_never_reads_position_and_modes_hide_fields():
    ctx = [
        {"ra": 10.0, "dec": -5.0},  # position only: nothing the model may read
        {"gal_b": -30.0, "host_mag": 18.0, "redshift": 0.1, "a_v": None},
        None,
    ]
    m = context_matrix(ctx, 3, "with_redshift")
    assert m.shape == (3, len(FEATURE_FIELDS))
    assert np.isnan(m[0]).all() and np.isnan(m[2]).all()
    row = dict(zip(FEATURE_FIELDS, m[1], strict=True))
    assert row["gal_b"] == pytest.approx(30.0) and row["host_mag"] == pytest.approx(18.0)
    assert row["redshift"] == pytest.approx(-1.0) and np.isnan(row["a_v"])
    alert = dict(zip(FEATURE_FIELDS, context_matrix(ctx, 3, "alert_time")[1], strict=True))
    assert np.isnan(alert["redshift"]) and alert["host_mag"] == pytest.approx(18.0)
    assert np.isnan(context_matrix(ctx, 3, "light_curve")).all()
    with pytest.raises(ValueError):
        context_matrix(ctx, 3, "everything")


def test_encoder_inputs_mark_missing_fields_instead_of_imputing_a_median():
    x = np.array([[0.5, np.nan], [np.nan, np.nan], [-1.0, 2.0]])
    inp = encoder_inputs(x)
    np.testing.assert_allclose(inp[:, :2], [[0.5, 0.0], [0.0, 0.0], [-1.0, 2.0]])
    np.testing.assert_allclose(inp[:, 2:], [[0, 1], [1, 1], [0, 0]])


def test_field_dropout_hides_fields_at_the_asked_rate_and_never_reveals_missing_ones():
    rng = np.random.default_rng(0)
    x = np.ones((20000, 5), np.float32)
    x[:, 4] = np.nan
    out = field_dropout(x, 0.3, rng, all_rate=0.0)
    assert np.isnan(out[:, :4]).mean() == pytest.approx(0.3, abs=0.01)
    assert np.isnan(out[:, 4]).all()
    whole = field_dropout(x, 0.0001, np.random.default_rng(1), all_rate=0.5)
    assert np.isnan(whole[:, :4]).all(axis=1).mean() == pytest.approx(0.5, abs=0.02)
    assert np.isfinite(x[:, :4]).all()  # the input is not modified


def test_context_block_reads_only_the_fields_an_object_has():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 200)
    x = rng.normal(size=(400, 2)) + np.where(labels[:, None] == 1, [3.0, 0.0], [0.0, 0.0])
    block = fit_context_block(x, labels, shrinkage=0.0)
    assert block is not None
    means = block.prototypes(x, labels, 2)
    np.testing.assert_allclose(means[1] - means[0], [3.0, 0.0], atol=0.3)
    q = np.array([[3.0, 0.0], [3.0, np.nan], [np.nan, np.nan]])
    d = block.distances(q, means)
    # field 2 missing: the distance is the 1-d marginal one over field 1
    var0 = block.covariance[0, 0]
    np.testing.assert_allclose(d[1], (3.0 - means[:, 0]) ** 2 / var0, rtol=1e-6)
    assert d[0, 1] < d[0, 0] and d[1, 1] < d[1, 0]
    np.testing.assert_allclose(d[2], [0.0, 0.0])  # nothing known: no class favoured
    assert fit_context_block(np.full((5, 2), np.nan), np.zeros(5, int)) is None


def test_context_stats_standardise_over_present_values_only():
    stats = context_stats(np.array([[1.0], [3.0], [np.nan]]))
    assert stats.mean[0] == pytest.approx(2.0)
    z = stats.standardise(np.array([[2.0], [np.nan]]))
    assert z[0, 0] == pytest.approx(0.0) and np.isnan(z[1, 0])


def test_tuned_prior_weight_and_leave_one_out_on_a_hand_checked_case():
    # class 0 is common (count 100), class 1 rare (count 1): objects halfway between the two prototypes
    d2 = np.array([[1.0, 1.2], [1.0, 1.2], [1.2, 1.0], [1.2, 1.0]])
    labels = np.array([0, 0, 1, 1])
    weight, scores = tune_prior_weight(d2, labels, np.array([100.0, 1.0]))
    assert weight == 0.0 and scores["0"] == pytest.approx(1.0) and scores["1"] < 1.0
    loo = leave_one_out(np.array([[1.0, 4.0], [4.0, 1.0]]), np.array([0, 1]), np.array([3, 2]))
    np.testing.assert_allclose(loo, [[(3 / 2) ** 2, 4.0], [4.0, 4.0]])


def test_age_matched_prototypes_are_chosen_by_the_light_curves_age():
    np.testing.assert_array_equal(
        age_bucket(np.array([0.0, 3.0, 5.0, 10.0, 29.0, 31.0, 300.0])),
        ["3", "3", "10", "10", "30", "full", "full"],
    )
    seq = np.zeros((2, 4, 3), np.float32)
    seq[0, :, 0] = [0.0, 0.02, 0.05, 0.5]  # t_rel = days / 100
    seq[1, :, 0] = [0.0, 0.08, 0.0, 0.0]
    np.testing.assert_allclose(ages_from_sequences(seq, np.array([3, 2]), 100.0), [5.0, 8.0])

    from cosmic_ray.learn.classifier import ProtoNetClassifier
    from cosmic_ray.learn.model import LightCurveEncoder

    arch = ProtoNetConfig(seq_channels=3, n_feats=2, hidden=4, embed_dim=2, feature_block=False)
    clf = ProtoNetClassifier(
        arch=arch,
        state_dict=LightCurveEncoder(arch).state_dict(),
        class_names=["a", "b"],
        prototypes=np.array([[0.0, 0.0], [10.0, 0.0]], np.float32),
        feat_mean=np.zeros(2, np.float32),
        feat_std=np.ones(2, np.float32),
        calibration=np.array([0.5]),
        ref_embeddings=np.zeros((0, 2), np.float32),
        ref_ids=np.array([]),
        ref_labels=np.array([]),
        max_len=4,
        age_prototypes={"3": np.array([[10.0, 0.0], [0.0, 0.0]], np.float32)},  # swapped for young objects
    )
    emb = np.zeros((2, 2), np.float32)
    logits = clf.age_matched_logits(emb, np.array([2.0, 100.0]))
    assert logits[0].argmax() == 1 and logits[1].argmax() == 0  # the 2-day-old one reads the 3-day set
    assert clf.age_matched_logits(emb, None).argmax(axis=1).tolist() == [0, 0]
    both = clf.with_class("c", np.zeros((1, 4, 3), np.float32), np.array([2]), np.zeros((1, 2)))
    assert both.age_prototypes["3"].shape == (3, 2)


def test_forest_keeps_every_object_of_classes_up_to_the_median_size():
    from cosmic_ray.learn.evaluate.baselines import balanced_forest, forest_sampling_strategy

    labels = np.array(["Ia"] * 100 + ["II"] * 20 + ["Ibc"] * 10 + ["SLSN"] * 4 + ["TDE"] * 3)
    strategy = forest_sampling_strategy(labels)
    assert strategy == {"Ia": 10, "II": 10, "Ibc": 10, "SLSN": 4, "TDE": 3}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(labels), 3))
    forest = balanced_forest(0, labels).fit(x, labels)
    assert set(forest.classes_) == set(labels)


def test_logistic_regression_imputer_sees_missing_values():
    from cosmic_ray.learn.evaluate.baselines import logistic_regression, with_nan

    x = np.array([[1.0, 0.0], [np.nan, 1.0], [3.0, np.inf], [5.0, 2.0], [7.0, 3.0], [np.nan, 4.0]])
    y = np.array(["a", "a", "a", "b", "b", "b"])
    model = logistic_regression(0, y).fit(with_nan(x), y)
    imputer = model.steps[0][1]
    assert imputer.statistics_[0] == pytest.approx(4.0)  # median of 1, 3, 5, 7: NaN not counted as a value
    assert imputer.transform(with_nan(x)).shape[1] == 4  # two values + two missing-value indicators


def test_gradient_boosting_leaves_fit_classes_of_four_objects():
    from cosmic_ray.learn.evaluate.baselines import gradient_boosting

    assert gradient_boosting(0, np.array([])).min_samples_leaf <= 4


def test_a_classifier_with_context_block_age_sets_and_tuned_prior_round_trips(tmp_path):
    from cosmic_ray.learn.classifier import ProtoNetClassifier
    from cosmic_ray.learn.features import feature_names
    from cosmic_ray.learn.model import LightCurveEncoder

    nf, nc = len(feature_names()), len(FEATURE_FIELDS)
    arch = ProtoNetConfig(seq_channels=9, n_feats=nf, hidden=8, embed_dim=3, context_fields=("host_mag",))
    rng = np.random.default_rng(0)
    d = arch.out_dim + nc
    clf = ProtoNetClassifier(
        arch=arch,
        state_dict=LightCurveEncoder(arch).state_dict(),
        class_names=["a", "b"],
        prototypes=rng.normal(size=(2, d)).astype(np.float32),
        feat_mean=np.zeros(nf, np.float32),
        feat_std=np.ones(nf, np.float32),
        calibration=np.array([0.5, 1.0]),
        ref_embeddings=np.zeros((0, d), np.float32),
        ref_ids=np.array([]),
        ref_labels=np.array([]),
        max_len=6,
        prior_counts=np.array([30.0, 3.0]),
        context_mean=np.zeros(nc),
        context_std=np.ones(nc),
        context_cov=np.eye(nc),
        tuned_prior_weight=0.5,
        age_prototypes={"10": rng.normal(size=(2, d)).astype(np.float32)},
    )
    seq, length, feats = rng.normal(size=(3, 6, 9)).astype(np.float32), np.array([6, 5, 4]), rng.normal(size=(3, nf))
    contexts = [{"host_mag": 19.0, "redshift": 0.1}, None, {"gal_b": 40.0}]
    back = ProtoNetClassifier.load(clf.save(tmp_path / "m"))
    assert back.tuned_prior_weight == 0.5 and back.prior_weight() == 0.5 and set(back.age_prototypes) == {"10"}
    emb = back.embed(seq, length, feats, contexts, "alert_time")
    assert emb.shape == (3, d)
    np.testing.assert_allclose(emb, clf.embed(seq, length, feats, contexts, "alert_time"), rtol=1e-5)
    assert np.isnan(emb[1, arch.out_dim :]).all()  # nothing known about the second object
    assert np.isnan(emb[0, arch.out_dim + FEATURE_FIELDS.index("redshift")])  # alert time hides redshift
    labels = [p.label for p in back.predict_arrays(np.arange(3), seq, length, feats, 0, contexts, "with_redshift")]
    assert labels == [
        p.label for p in clf.predict_arrays(np.arange(3), seq, length, feats, 0, contexts, "with_redshift")
    ]
