"""Episode sampling and prototype maths (plain numpy/torch, no Ray)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cosmic_ray.learn.episodes import sample_episode, stratified_split
from cosmic_ray.learn.model import episode_loss, prototypes, squared_distances


def test_episode_support_and_query_are_disjoint_and_class_pure():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), [30, 12, 10, 9, 40, 3])
    for _ in range(200):
        e = sample_episode(labels, n_way=4, k_shot=5, n_query=4, rng=rng)
        assert e.support.shape == (4, 5) and e.query.shape == (4, 4)
        assert not set(e.support.ravel()) & set(e.query.ravel())
        for c, sup, qry in zip(e.classes, e.support, e.query, strict=False):
            assert (labels[sup] == c).all() and (labels[qry] == c).all()
        assert 5 not in e.classes  # class 5 has too few objects for 5 + 4


def test_episode_needs_two_eligible_classes():
    with pytest.raises(ValueError):
        sample_episode(np.array([0] * 20 + [1] * 3), 2, 5, 5, np.random.default_rng(0))


def test_split_is_object_disjoint_and_keeps_each_class():
    labels = np.repeat(np.arange(3), [50, 10, 2])
    train, val = stratified_split(labels, 0.2, np.random.default_rng(1))
    assert not set(train) & set(val)
    assert set(train) | set(val) == set(range(len(labels)))
    assert set(labels[val]) == {0, 1, 2} and set(labels[train]) == {0, 1, 2}


def test_prototypes_are_class_means():
    emb = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]])
    labels = torch.tensor([0, 0, 1, 1])
    protos = prototypes(emb, labels, 3)
    assert torch.allclose(protos[:2], torch.tensor([[1.0, 0.0], [0.0, 5.0]]))
    assert torch.isnan(protos[2]).all()
    d = squared_distances(torch.tensor([[1.0, 1.0]]), protos[:2])
    assert torch.allclose(d, torch.tensor([[1.0, 17.0]]))


def test_episode_loss_prefers_well_separated_embeddings():
    support = torch.tensor([[0.0, 0.0], [0.2, 0.0], [5.0, 5.0], [5.2, 5.0]])  # 2-way 2-shot
    good_query = torch.tensor([[0.1, 0.1], [5.1, 5.1]])
    bad_query = good_query.flip(0)
    good_loss, good_acc = episode_loss(support, good_query, 2)
    bad_loss, bad_acc = episode_loss(support, bad_query, 2)
    assert good_acc.item() == 1.0 and bad_acc.item() == 0.0
    assert good_loss.item() < 0.01 < bad_loss.item()


def test_small_classes_join_with_repeats_but_stay_disjoint():
    from cosmic_ray.learn.episodes import sample_episode

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), [40, 3, 2, 12])
    for _ in range(200):
        e = sample_episode(labels, n_way=4, k_shot=5, n_query=5, rng=rng, min_objects=2)
        assert e.support.shape == (4, 5) and e.query.shape == (4, 5)
        for c, sup, qry in zip(e.classes, e.support, e.query, strict=False):
            assert (labels[sup] == c).all() and (labels[qry] == c).all()
            assert not set(sup) & set(qry)  # repeats only within a side


def test_fixed_validation_depends_on_the_object_alone():
    from cosmic_ray.learn.episodes import fixed_validation

    ids = np.asarray([f"ZTF{i:05d}" for i in range(200)], dtype=object)
    labels = np.repeat([0, 1], [180, 20])
    mask = fixed_validation(ids, labels, 0.2)
    assert mask[labels == 0].sum() == 36 and mask[labels == 1].sum() == 4
    order = np.random.default_rng(3).permutation(200)
    assert (fixed_validation(ids[order], labels[order], 0.2) == mask[order]).all()


def test_augmented_views_keep_bands_and_order_and_shrink_or_keep_length():
    from cosmic_ray.learn.features import augment_points

    rng = np.random.default_rng(0)
    mjd = np.arange(20, dtype=float) * 2.0  # 38 days: a 2% time dilation moves no point by half a step
    band = np.asarray(["g", "r"] * 10, dtype=object)
    mag = 18 + 0.05 * np.arange(20)
    err = np.full(20, 0.05)
    stretched = 0
    for _ in range(100):
        t, b, m, e = augment_points(mjd, band, mag, err, rng)
        assert 2 <= len(t) <= 20 and np.all(np.diff(t) > 0) and t[0] in set(mjd)
        src = np.abs(mjd[None, :] - t[:, None]).argmin(axis=1)  # the original point of each kept one
        assert np.all(np.abs(t - mjd[src]) <= 0.025 * (t - t[0]) + 1e-9)  # time dilation of at most ~2%
        assert all(b[i] == band[src[i]] for i in range(len(t)))
        stretched += bool(np.any(t != mjd[src]))
        # one magnitude shift for the whole curve + noise of the errors: the colour-free trend survives
        shift = m - mag[src]
        assert np.ptp(shift) < 0.5 and np.abs(shift).max() < 0.7 + 0.5
    assert stretched > 50


def test_a_source_moved_farther_is_fainter_and_slower_and_nearer_the_reverse():
    from cosmic_ray.learn.features import REFERENCE_Z, move_source

    t, m = np.array([100.0, 110.0, 130.0]), np.array([18.0, 17.5, 18.5])
    far_t, far_m = move_source(t, m, 0.5)
    np.testing.assert_allclose(far_m, m + 0.5)
    z = REFERENCE_Z * 10**0.1  # 0.5 mag farther: distance x 10**0.1
    np.testing.assert_allclose(far_t, 100.0 + (t - 100.0) * (1 + z) / (1 + REFERENCE_Z))
    near_t, near_m = move_source(t, m, -0.5)
    assert near_t[0] == 100.0 and near_t[-1] < 130.0 < far_t[-1] and (near_m < m).all()
    same_t, same_m = move_source(t, m, 0.0)
    np.testing.assert_allclose(same_t, t)
    np.testing.assert_allclose(same_m, m)


def test_a_view_moved_farther_loses_the_points_below_the_survey_depth():
    from cosmic_ray.learn.features import SURVEY_LIMIT_MAG, augment_points

    rng = np.random.default_rng(1)
    mjd = np.arange(20, dtype=float) * 3.0
    mag = np.linspace(18.0, SURVEY_LIMIT_MAG - 0.1, 20)  # a fading tail down to the depth
    lost = 0
    for _ in range(200):
        t, b, m, e = augment_points(mjd, np.asarray(["g", "r"] * 10, dtype=object), mag, np.full(20, 0.01), rng)
        assert m.max() <= SURVEY_LIMIT_MAG  # nothing fainter than the survey sees
        lost += len(t) < 20 and m.max() > mag.max() - 0.5
    assert lost > 20


def test_within_class_whitening_gives_unit_within_class_covariance():
    from cosmic_ray.learn.model import within_class_whitening

    rng = np.random.default_rng(0)
    cov = np.array([[4.0, 1.5, 0.0], [1.5, 2.0, 0.3], [0.0, 0.3, 0.5]])
    means = np.array([[0.0, 0.0, 0.0], [5.0, -3.0, 1.0]])
    labels = np.repeat([0, 1], [4000, 300])
    feats = means[labels] + rng.multivariate_normal(np.zeros(3), cov, size=len(labels))
    w = within_class_whitening(feats, labels, shrinkage=0.0)
    z = feats @ w
    resid = np.concatenate([z[labels == c] - z[labels == c].mean(axis=0) for c in (0, 1)])
    np.testing.assert_allclose(np.cov(resid.T), np.eye(3), atol=0.05)
    # shrinkage keeps it defined when a class has a single object and features are constant
    w1 = within_class_whitening(np.array([[1.0, 0.0], [2.0, 0.0], [5.0, 0.0]]), np.array([0, 0, 1]), shrinkage=0.2)
    assert np.isfinite(w1).all()


def test_hybrid_encoder_appends_whitened_features_and_bounds_the_learned_part():
    from cosmic_ray.learn.model import LightCurveEncoder, ProtoNetConfig

    torch.manual_seed(0)
    arch = ProtoNetConfig(seq_channels=9, n_feats=4, hidden=8, embed_dim=3, learned_scale=2.0, quantile_features=False)
    enc = LightCurveEncoder(arch).eval()
    w = np.diag([1.0, 2.0, 3.0, 4.0]).astype(np.float32)
    enc.set_feature_whitening(w)
    seq, length, feats = torch.randn(5, 6, 9), torch.tensor([6, 5, 4, 3, 2]), torch.randn(5, 4)
    with torch.no_grad():
        out = enc(seq, length, feats)
    assert out.shape == (5, arch.out_dim) == (5, 7)
    torch.testing.assert_close(out[:, 3:], feats @ torch.from_numpy(w))
    torch.testing.assert_close(out[:, :3].norm(dim=1), torch.full((5,), 2.0))
    assert "feat_whiten" in enc.state_dict()  # the whitening travels with the weights


def test_normal_scores_follow_the_training_distribution():
    from cosmic_ray.learn.model import feature_quantiles, normal_scores

    rng = np.random.default_rng(0)
    train = np.stack([rng.lognormal(0.0, 2.0, 5000), rng.normal(3.0, 0.5, 5000)], axis=1)  # heavy tail, Gaussian
    train[:100, 0] = np.nan  # missing on some objects: left out of the quantiles
    q = feature_quantiles(train)
    assert q.shape == (101, 2) and np.isfinite(q).all()
    z = normal_scores(torch.from_numpy(train.astype(np.float32)), torch.from_numpy(q)).numpy()
    ok = np.isfinite(train[:, 0])
    # each feature comes out close to a standard normal, the heavy tail included
    for col in (z[ok, 0], z[:, 1]):
        assert abs(col.mean()) < 0.05 and abs(col.std() - 1.0) < 0.05
    exact = (train[:, 1] - 3.0) / 0.5
    central = np.abs(exact) < 2.0
    np.testing.assert_allclose(z[central, 1], exact[central], atol=0.1)  # a Gaussian feature keeps its z-score
    assert (z[~ok, 0] == 0).all()  # missing -> the median's score
    # monotone, bounded beyond the training range, ties scored at the middle of their quantiles
    probe = torch.tensor([[-1e9, 0.0], [1e9, 1e9]], dtype=torch.float32)
    np.testing.assert_allclose(normal_scores(probe, torch.from_numpy(q)).numpy(), [[-3.0, -3.0], [3.0, 3.0]], atol=1e-3)
    x = torch.linspace(0.01, 50, 200)[:, None].repeat(1, 2)
    assert (np.diff(normal_scores(x, torch.from_numpy(q)).numpy()[:, 0]) >= 0).all()
    constant = torch.from_numpy(feature_quantiles(np.ones((50, 1))))
    assert normal_scores(torch.ones(3, 1), constant).abs().max() < 1e-4


def test_encoder_feature_block_reads_normal_scores():
    from cosmic_ray.learn.model import LightCurveEncoder, ProtoNetConfig, feature_quantiles, normal_scores

    torch.manual_seed(0)
    arch = ProtoNetConfig(seq_channels=9, n_feats=4, hidden=8, embed_dim=3)
    enc = LightCurveEncoder(arch).eval()
    q = feature_quantiles(np.random.default_rng(1).standard_cauchy((500, 4)))
    w = np.diag([1.0, 2.0, 3.0, 4.0]).astype(np.float32)
    enc.set_feature_quantiles(q)
    enc.set_feature_whitening(w)
    seq, length, feats = torch.randn(5, 6, 9), torch.tensor([6, 5, 4, 3, 2]), torch.randn(5, 4)
    feats[0, 1] = float("nan")  # a missing feature
    with torch.no_grad():
        out = enc(seq, length, feats)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[:, 3:], normal_scores(feats, torch.from_numpy(q)) @ torch.from_numpy(w))
    assert out[0, 4] == 0.0
    assert "feat_quantiles" in enc.state_dict()  # the quantiles travel with the weights


def test_fade_times_read_off_the_decline():
    from cosmic_ray.learn.features import FEATURE_BANDS, feature_names, object_arrays

    t = np.arange(0.0, 60.0, 2.0)
    m = np.where(t <= 10, 19.0 - 0.1 * t, 18.0 + 0.05 * (t - 10))  # peak at day 10, 0.05 mag/day after
    band = np.asarray(["g"] * len(t), dtype=object)
    feats = dict(zip(feature_names(), object_arrays(t, band, m, np.full(len(t), 0.05), 64)[2], strict=False))
    assert FEATURE_BANDS == ("g", "r")
    np.testing.assert_allclose(feats["fade_05_days_log_g"], np.log1p(10.0), rtol=1e-4)
    np.testing.assert_allclose(feats["fade_10_days_log_g"], np.log1p(20.0), rtol=1e-4)
    assert np.isnan(feats["fade_05_days_log_r"])  # no r points


def test_episodes_train_the_learned_part_alone():
    from cosmic_ray.learn.model import LightCurveEncoder, ProtoNetConfig

    torch.manual_seed(0)
    enc = LightCurveEncoder(ProtoNetConfig(seq_channels=9, n_feats=4, hidden=8, embed_dim=3)).eval()
    seq, length, feats = torch.randn(3, 6, 9), torch.tensor([6, 4, 2]), torch.randn(3, 4)
    with torch.no_grad():
        learned, full = enc(seq, length, feats, learned_only=True), enc(seq, length, feats)
    assert learned.shape == (3, 3)
    torch.testing.assert_close(full[:, :3], enc.cfg.learned_scale * torch.nn.functional.normalize(learned, dim=-1))


def test_held_out_classes_rotate_through_every_class_and_leave_two():
    from cosmic_ray.learn.episodes import held_out_classes

    classes = np.array([0, 2, 3, 5, 6, 7, 9])
    per_epoch = [held_out_classes(classes, 2, epoch, seed=4) for epoch in range(4)]  # 4 epochs x 2 >= 7 classes
    assert all(len(h) == 2 and set(h) <= set(classes) for h in per_epoch)
    assert set(np.concatenate(per_epoch)) == set(classes)  # each class has been the novel one
    assert len({tuple(h) for h in per_epoch}) == 4  # a different split every epoch
    assert (held_out_classes(classes, 2, 1, seed=4) == per_epoch[1]).all()  # same on every worker
    assert held_out_classes(np.array([1, 4, 8]), 3, 0, seed=0).tolist() in ([1], [4], [8])  # two always stay
    assert len(held_out_classes(np.array([1, 4]), 1, 0, seed=0)) == 0
    assert len(held_out_classes(classes, 0, 5, seed=0)) == 0


def test_an_epoch_with_a_held_out_class_never_shows_it_and_validation_registers_it():
    from cosmic_ray.learn.model import LightCurveEncoder, ProtoNetConfig
    from cosmic_ray.learn.train import _tensors, episode_rows, epoch_held_out, validation_metrics

    rng = np.random.default_rng(0)
    n, labels = 90, np.repeat(np.arange(3), 30)
    config = {
        "episodes": {"n_way": 3, "k_shot": 3, "n_query": 3, "per_epoch": 5, "min_objects": 2, "held_out_per_epoch": 1},
        "seed": 11,
        "labels": labels,
        "train_idx": np.arange(n)[np.arange(n) % 5 != 0],
        "val_idx": np.arange(n)[np.arange(n) % 5 == 0],
        "n_views": 0,
        "n_objects": n,
        "class_names": ["a", "b", "c"],
        "seq": rng.normal(size=(n, 6, 9)).astype(np.float32),
        "length": np.full(n, 6),
        "feats": rng.normal(size=(n, 4)).astype(np.float32),
    }
    seen = set()
    for epoch in range(3):
        held = epoch_held_out(config, epoch)
        assert len(held) == 1
        seen |= set(held.tolist())
        pool = config["train_idx"][~np.isin(labels[config["train_idx"]], held)]
        for _ in range(20):
            rows, n_support, n_way = episode_rows(config, rng, pool)
            assert n_way == 2 and not np.isin(labels[rows], held).any()
    assert seen == {0, 1, 2}
    # embedding = the features alone (learned part scaled to 0): class c sits at 10 * e_c
    enc = LightCurveEncoder(
        ProtoNetConfig(seq_channels=9, n_feats=4, hidden=8, embed_dim=3, learned_scale=0.0, quantile_features=False)
    ).eval()
    config["feats"] = (10.0 * np.eye(4)[labels] + rng.normal(0, 0.1, (n, 4))).astype(np.float32)
    held = epoch_held_out(config, 0)
    metrics = validation_metrics(enc, _tensors(config), torch.device("cpu"), held_out=held, k_shot=3)
    assert metrics["val_novel_accuracy"] == 1.0 and metrics["val_accuracy"] == 1.0
    other = [c for c in range(3) if c != held[0]][0]
    config["feats"][labels == held[0]] = config["feats"][labels == other]  # the novel class now looks like another one
    confused = validation_metrics(enc, _tensors(config), torch.device("cpu"), held_out=held, k_shot=3)[
        "val_novel_accuracy"
    ]
    assert confused < 0.8
    assert "val_novel_accuracy" not in validation_metrics(enc, _tensors(config), torch.device("cpu"))
