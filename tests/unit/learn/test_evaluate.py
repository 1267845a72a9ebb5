"""Evaluation maths on tiny hand-computable cases and the report's structure on real objects."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cosmic_ray.learn.evaluate.inputs import LabelledArrays, support_draws
from cosmic_ray.learn.evaluate.metrics import auroc, balanced_accuracy, classification_metrics, macro_f1
from cosmic_ray.learn.evaluate.report import REPORT_KEYS, evaluate_report, format_table, ranking_summary, summarize
from cosmic_ray.learn.evaluate.scorers import Scored
from cosmic_ray.learn.evaluate.tables import event_folds, read_table


def test_metrics_on_a_hand_computed_case():
    truth = np.array(["a", "a", "a", "b", "b", "c"], dtype=object)
    pred = np.array(["a", "a", "b", "b", "c", "c"], dtype=object)
    # a: P 2/2, R 2/3, F1 0.8 ; b: P 1/2, R 1/2, F1 0.5 ; c: P 1/2, R 1, F1 2/3
    m = classification_metrics(truth, pred, ["a", "b", "c"])
    assert m["classes"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert macro_f1(truth, pred, ["a", "b", "c"]) == pytest.approx(m["macro_f1"])
    assert balanced_accuracy(truth, pred, ["a", "b", "c"]) == pytest.approx(m["balanced_accuracy"])


def test_auroc_counts_pairs_and_ties():
    assert auroc([3, 4], [1, 2]) == 1.0
    assert auroc([1, 2], [3, 4]) == 0.0
    # pairs: (2 vs 1) win, (2 vs 2) tie, (0 vs 1) loss, (0 vs 2) loss -> 1.5 / 4
    assert auroc([2, 0], [1, 2]) == pytest.approx(0.375)


def test_summarize_kshot_recall_open_set_and_phases():
    truth = np.array(["Ia", "Ia", "II", "II", "SLSN", "SLSN"], dtype=object)
    preds = np.array(
        [
            ["Ia", "Ia", "II", "II", "SLSN", "Ia"],  # draw 0: SLSN recall 0.5
            ["Ia", "II", "II", "II", "SLSN", "SLSN"],  # draw 1: SLSN recall 1.0
        ],
        dtype=object,
    )
    scored = Scored(
        classes=["Ia", "II", "SLSN"],
        truth=truth,
        preds=preds,
        phase_truth={"3": truth[:4]},
        phase_preds={"3": preds[:, :4]},
        open_pos={"SLSN": np.array([5.0, 1.5])},
        open_neg={"SLSN": np.array([1.0, 2.0, 0.5, 0.2])},
    )
    report = summarize(scored, ["SLSN"], "models:/x/1", k=5)
    assert set(report) == set(REPORT_KEYS) - {"baseline", "baselines", "modes", "open_set_auroc_by_class", "followup"}
    assert report["kshot_recall"]["SLSN"] == pytest.approx({"mean": 0.75, "std": 0.25})
    assert report["open_set_auroc"] == pytest.approx((4 + 3) / 8)
    draw0 = macro_f1(truth, preds[0], scored.classes)
    draw1 = macro_f1(truth, preds[1], scored.classes)
    assert report["macro_f1"] == pytest.approx((draw0 + draw1) / 2)
    assert report["by_phase"]["3"]["balanced_accuracy"] == pytest.approx((1.0 + 0.75) / 2)
    assert set(report["by_phase"]) == {"3", "full"}
    assert report["classes"]["SLSN"]["support"] == 2


def test_with_class_matches_the_mean_embedding_and_leaves_the_original_alone():
    import torch

    from cosmic_ray.learn.classifier import ProtoNetClassifier
    from cosmic_ray.learn.model import LightCurveEncoder, ProtoNetConfig

    torch.manual_seed(0)
    arch = ProtoNetConfig(seq_channels=9, n_feats=4, hidden=8, embed_dim=3)
    clf = ProtoNetClassifier(
        arch=arch,
        state_dict=LightCurveEncoder(arch).state_dict(),
        class_names=["a", "b"],
        prototypes=np.zeros((2, arch.out_dim), np.float32),
        feat_mean=np.zeros(4, np.float32),
        feat_std=np.ones(4, np.float32),
        calibration=np.array([0.5, 1.0]),
        ref_embeddings=np.zeros((0, arch.out_dim), np.float32),
        ref_ids=np.array([]),
        ref_labels=np.array([]),
        max_len=6,
    )
    rng = np.random.default_rng(0)
    seq, length, feats = (
        rng.normal(size=(5, 6, 9)).astype(np.float32),
        np.array([6, 5, 4, 3, 6]),
        rng.normal(size=(5, 4)),
    )
    new = clf.with_class("SLSN-I", seq, length, feats)
    assert new.class_names == ["a", "b", "SLSN-I"] and clf.class_names == ["a", "b"]
    np.testing.assert_allclose(new.prototypes[2], clf.embed(seq, length, feats).mean(axis=0), rtol=1e-5)
    # an object at the new prototype is classified as the new class
    emb = clf.embed(seq, length, feats)
    new2 = new._copy(prototypes=np.concatenate([new.prototypes[:2] + 100.0, new.prototypes[2:]]))
    assert new2.predict_arrays(np.array(["q"]), seq[:1], length[:1], feats[:1], neighbours=0)[0].label == "SLSN-I"
    assert new.without_class("SLSN-I").class_names == ["a", "b"]
    with pytest.raises(ValueError):
        clf.with_class("x", seq[:, :, :5], length, feats)
    assert emb.shape == (5, arch.out_dim) == (5, 3 + 4)  # learned part + whitened features


def test_report_on_real_objects_has_the_issue_keys(shared_data):
    """A real (untrained-encoder) classifier on real BTS objects: structure, not quality."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import torch

    from cosmic_ray.learn.classifier import ProtoNetClassifier
    from cosmic_ray.learn.features import feature_names, featurize
    from cosmic_ray.learn.model import LightCurveEncoder, ProtoNetConfig

    table = read_table(shared_data / "ztf-bts" / "bts_dev_lightcurves.csv.gz")
    labels = dict(zip(table.column("object_id").to_pylist(), table.column("label").to_pylist(), strict=False))
    from cosmic_ray.core.taxonomy import to_coarse

    pick = {"SN Ia": [], "SN II": [], "SLSN-I": []}
    for oid, label in sorted(labels.items()):
        c = to_coarse(label)
        if c in pick and len(pick[c]) < 12:
            pick[c].append(oid)
    ids = [o for v in pick.values() for o in v]
    sub = table.filter(pc.is_in(table.column("object_id"), pa.array(ids)))
    data_ids = [o for c in pick for o in pick[c][:6]]
    data = sub.filter(pc.is_in(sub.column("object_id"), pa.array(data_ids)))
    train = sub.filter(pc.invert(pc.is_in(sub.column("object_id"), pa.array(data_ids))))
    arrays = featurize(train)
    torch.manual_seed(0)
    arch = ProtoNetConfig(seq_channels=arrays["seq"].shape[2], n_feats=len(feature_names()), hidden=8, embed_dim=4)
    clf = ProtoNetClassifier(
        arch=arch,
        state_dict=LightCurveEncoder(arch).state_dict(),
        class_names=["SN II", "SN Ia"],
        prototypes=np.zeros((2, arch.out_dim), np.float32),
        feat_mean=np.zeros(arch.n_feats, np.float32),
        feat_std=np.ones(arch.n_feats, np.float32),
        calibration=np.array([1.0]),
        ref_embeddings=np.zeros((0, arch.out_dim), np.float32),
        ref_ids=np.array([]),
        ref_labels=np.array([]),
        max_len=64,
    )
    report = evaluate_report(clf, data, train, support_table=train, k=3, draws=2, model_uri="test")
    assert set(report) == set(REPORT_KEYS)
    assert set(report["baseline"]) == set(REPORT_KEYS) - {"baseline", "baselines", "modes"}
    assert set(report["baselines"]) == {
        "balanced_random_forest",
        "logistic_regression",
        "gradient_boosting",
        "superphot_plus",
    }
    assert report["baseline"]["macro_f1"] == max(b["macro_f1"] for b in report["baselines"].values())
    assert set(report["classes"]) == {"SN II", "SN Ia", "SLSN-I"}
    assert report["classes"]["SLSN-I"]["support"] == 6 and report["draws"] == 2 and report["k"] == 3
    assert set(report["kshot_recall"]) == {"SLSN-I"} and set(report["by_phase"]) == {"3", "10", "30", "full"}
    assert 0 <= report["open_set_auroc"] <= 1 and 0 <= report["baseline"]["macro_f1"] <= 1
    assert "macro-F1" in format_table(report)


def test_decision_rule_uses_class_priors_and_novelty_grows_away_from_prototypes():
    import torch

    from cosmic_ray.learn.classifier import ProtoNetClassifier
    from cosmic_ray.learn.model import LightCurveEncoder, ProtoNetConfig

    torch.manual_seed(0)
    arch = ProtoNetConfig(
        seq_channels=9,
        n_feats=4,
        hidden=8,
        embed_dim=3,
        feature_block=False,
        prior_weight=1.0,
        registered_prior_count=5.0,
    )
    protos = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]], np.float32)
    clf = ProtoNetClassifier(
        arch=arch,
        state_dict=LightCurveEncoder(arch).state_dict(),
        class_names=["common", "rare"],
        prototypes=protos,
        feat_mean=np.zeros(4, np.float32),
        feat_std=np.ones(4, np.float32),
        calibration=np.array([0.5, 1.0]),
        ref_embeddings=np.zeros((0, 3), np.float32),
        ref_ids=np.array([]),
        ref_labels=np.array([]),
        max_len=6,
        prior_counts=np.array([100.0, 1.0]),
    )
    midway = np.array([[1.0, 0.0, 0.0]], np.float32)
    logits = clf.class_logits(midway)
    np.testing.assert_allclose(
        logits[0, 0] - logits[0, 1], np.log(100.0), rtol=1e-5
    )  # equal distances: the prior decides
    equal = clf._copy(prior_counts=np.array([1.0, 1.0]))
    assert equal.class_logits(np.array([[1.2, 0.0, 0.0]], np.float32)).argmax() == 1
    assert clf.class_logits(np.array([[1.2, 0.0, 0.0]], np.float32)).argmax() == 0
    near, far = clf.novelty(np.array([[0.0, 0.0, 0.0], [0.0, 9.0, 0.0]], np.float32))
    assert far > near
    # the novelty is read in the prototypes' span: a little off it changes nothing, far along it or
    # very far off it is novel
    near, off, along = clf.novelty(np.array([[0.0, 0.0, 0.0], [0.0, 1.5, 1.5], [-9.0, 0.0, 0.0]], np.float32))
    assert off == near and along > near
    plain = clf._copy(arch=dataclasses.replace(arch, novelty_subspace=False))
    assert plain.novelty(np.array([[0.0, 1.5, 1.5]], np.float32))[0] > near
    # a registered class takes the configured prior count; removing it drops its count
    rng = np.random.default_rng(0)
    new = clf.with_class(
        "new", rng.normal(size=(2, 6, 9)).astype(np.float32), np.array([6, 4]), rng.normal(size=(2, 4))
    )
    np.testing.assert_allclose(new.counts(), [100.0, 1.0, 5.0])
    np.testing.assert_allclose(new.without_class("rare").counts(), [100.0, 5.0])
    # a model saved without priors keeps equal priors when a class is registered
    flat = clf._copy(prior_counts=None).with_class(
        "new", rng.normal(size=(2, 6, 9)).astype(np.float32), np.array([6, 4]), rng.normal(size=(2, 4))
    )
    assert flat.prior_counts is None and (flat.counts() == 1).all()


def test_support_draws_take_survey_objects_first():
    ids = np.array(["ZTF19aaaaaaa", "ZTF20bbbbbbb", "SN2019abc", "PS1-10ky", "2018hti", "ZTF21ccccccc"], dtype=object)
    coarse = np.array(["SLSN-I", "SLSN-I", "SLSN-I", "SLSN-I", "SLSN-I", "TDE"], dtype=object)
    support = LabelledArrays(ids, coarse, np.zeros((6, 4, 9), np.float32), np.full(6, 4), np.zeros((6, 3), np.float32))
    for draw in support_draws(support, ["SLSN-I", "TDE"], k=3, draws=5, seed=0):
        assert {0, 1} <= set(draw["SLSN-I"].tolist()) and len(draw["SLSN-I"]) == 3
        assert draw["TDE"].tolist() == [5]
    one = support_draws(support, ["SLSN-I"], k=1, draws=20, seed=0)
    assert all(d["SLSN-I"][0] in (0, 1) for d in one)


def test_hybrid_classifier_round_trips_with_its_whitening_and_priors(tmp_path):
    import json

    import torch

    from cosmic_ray.learn.classifier import ProtoNetClassifier
    from cosmic_ray.learn.features import feature_names
    from cosmic_ray.learn.model import LightCurveEncoder, ProtoNetConfig

    torch.manual_seed(0)
    nf = len(feature_names())  # a saved model must match the features this code computes
    arch = ProtoNetConfig(seq_channels=9, n_feats=nf, hidden=8, embed_dim=3)
    enc = LightCurveEncoder(arch)
    enc.set_feature_whitening(np.diag(np.arange(1.0, nf + 1)))
    rng = np.random.default_rng(1)
    clf = ProtoNetClassifier(
        arch=arch,
        state_dict=enc.state_dict(),
        class_names=["a", "b"],
        prototypes=rng.normal(size=(2, arch.out_dim)).astype(np.float32),
        feat_mean=np.zeros(nf, np.float32),
        feat_std=np.ones(nf, np.float32),
        calibration=np.array([0.5, 1.0]),
        ref_embeddings=np.zeros((0, arch.out_dim), np.float32),
        ref_ids=np.array([]),
        ref_labels=np.array([]),
        max_len=6,
        prior_counts=np.array([30.0, 3.0]),
    )
    seq, length, feats = rng.normal(size=(4, 6, 9)).astype(np.float32), np.array([6, 5, 4, 3]), rng.normal(size=(4, nf))
    back = ProtoNetClassifier.load(clf.save(tmp_path / "m"))
    np.testing.assert_allclose(back.counts(), [30.0, 3.0])
    np.testing.assert_allclose(back.embed(seq, length, feats), clf.embed(seq, length, feats), rtol=1e-6)
    assert [p.label for p in back.predict_arrays(np.arange(4), seq, length, feats, 0)] == [
        p.label for p in clf.predict_arrays(np.arange(4), seq, length, feats, 0)
    ]
    # a bundle written before the hybrid embedding (no feature block in its arch) still loads
    old = ProtoNetConfig(seq_channels=9, n_feats=nf, hidden=8, embed_dim=3, feature_block=False)
    legacy = clf._copy(
        arch=old,
        state_dict=LightCurveEncoder(old).state_dict(),
        prototypes=np.zeros((2, 3), np.float32),
        prior_counts=None,
    )
    folder = legacy.save(tmp_path / "old")
    bundle = json.loads((folder / "bundle.json").read_text())
    del bundle["arch"]["feature_block"], bundle["feature_names"]
    (folder / "bundle.json").write_text(json.dumps(bundle))
    loaded = ProtoNetClassifier.load(folder)
    assert loaded.embed(seq, length, feats).shape == (4, 3) and loaded.prior_counts is None


def test_a_model_trained_on_another_feature_set_is_refused_with_a_reason(tmp_path):
    """A model of an older release (other features) could only answer /predict with errors: loading
    it fails with a message that says to retrain, so a rollout keeps the serving model."""
    import json

    import pytest

    from cosmic_ray.core.errors import IncompatibleModelError
    from cosmic_ray.learn.classifier import ProtoNetClassifier
    from cosmic_ray.learn.features import feature_names
    from cosmic_ray.learn.model import LightCurveEncoder, ProtoNetConfig

    nf = len(feature_names())
    arch = ProtoNetConfig(seq_channels=9, n_feats=nf, hidden=8, embed_dim=3)
    clf = ProtoNetClassifier(
        arch=arch,
        state_dict=LightCurveEncoder(arch).state_dict(),
        class_names=["a", "b"],
        prototypes=np.zeros((2, arch.out_dim), np.float32),
        feat_mean=np.zeros(nf, np.float32),
        feat_std=np.ones(nf, np.float32),
        calibration=np.array([0.5, 1.0]),
        ref_embeddings=np.zeros((0, arch.out_dim), np.float32),
        ref_ids=np.array([]),
        ref_labels=np.array([]),
        max_len=6,
    )
    folder = clf.save(tmp_path / "m")
    assert ProtoNetClassifier.load(folder).arch.n_feats == nf
    bundle = json.loads((folder / "bundle.json").read_text())
    renamed = {**bundle, "feature_names": [*bundle["feature_names"][:-1], "an_old_feature"]}
    (folder / "bundle.json").write_text(json.dumps(renamed))
    with pytest.raises(IncompatibleModelError, match="retrain"):
        ProtoNetClassifier.load(folder)
    # a bundle from before feature names were saved: its feature count decides
    legacy = {k: v for k, v in bundle.items() if k != "feature_names"}
    legacy["arch"] = {**bundle["arch"], "n_feats": 33}
    (folder / "bundle.json").write_text(json.dumps(legacy))
    with pytest.raises(IncompatibleModelError, match="33 light-curve features"):
        ProtoNetClassifier.load(folder)


def test_event_folds_keep_each_event_whole_and_spread_every_class():
    # two objects of one event (a catalogue copy of a ZTF object) and classes of 5, 3 and 20 objects
    coarse = np.asarray(["TDE"] * 5 + ["SLSN-I"] * 3 + ["SN Ia"] * 20 + ["SN Ia"], dtype=object)
    events = np.asarray([f"e{i}" for i in range(28)] + ["e27"], dtype=object)  # the last object repeats event e27
    fold = event_folds(coarse, events, 5, seed=3)
    assert fold[27] == fold[28]
    assert sorted(set(fold[:5].tolist())) == [0, 1, 2, 3, 4]  # 5 TDE events: one per fold
    assert len(set(fold[5:8].tolist())) == 3  # 3 SLSN-I events in 3 different folds
    assert np.bincount(fold[8:28], minlength=5).tolist() == [4, 4, 4, 4, 4]
    assert (event_folds(coarse, events, 5, seed=3) == fold).all()
    assert not (event_folds(coarse, events, 5, seed=4) == fold).all()


def test_ranking_summary_reads_a_follow_up_list_off_the_rare_class_probability():
    truth = np.asarray(["SN Ia"] * 96 + ["SLSN-I"] * 4, dtype=object)
    score = np.linspace(0.5, 0.0, 100)  # object i is ranked i-th
    order = np.r_[96, 97, 98, np.arange(0, 46), 99, np.arange(46, 96)]  # the SLSN-I at ranks 1, 2, 3 and 50
    probs = np.empty(100)
    probs[order] = score
    scored = Scored(
        classes=["SN Ia", "SLSN-I"],
        truth=truth,
        preds=np.full((2, 100), "SN Ia", dtype=object),
        rare_scores={"SLSN-I": np.stack([probs, probs])},
    )
    got = ranking_summary(scored)["SLSN-I"]
    assert got["recall_at_top"] == {"1%": 0.25, "2%": 0.5, "5%": 0.75, "10%": 0.75}
    assert got["auroc"] == pytest.approx((3 * 96 + 50) / (4 * 96))
    scored.rare_scores["SLSN-I"][1] = np.nan  # a draw without the class does not count
    assert ranking_summary(scored)["SLSN-I"]["auroc"] == pytest.approx(got["auroc"])
