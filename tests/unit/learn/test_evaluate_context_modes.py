"""Issue 16, item 2: the evaluation report in three context modes side by side, on real BTS objects
and the real shared context table (an untrained encoder: structure and invariances, not quality).

- ``modes`` holds light_curve, alert_time and with_redshift, each with the top-level keys; the top
  level is alert_time's; ``followup`` and ``open_set_auroc_by_class`` are present and sane;
- in light_curve mode a hidden field changes nothing: with the real context, with none at all, or
  with a redshift that gives the class away, the light_curve figures are identical, while the
  with_redshift baseline (which sees that redshift) gets better;
- the classifier is handed each object's context masked by mode (recorded by a subclass that
  passes every call through).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cosmic_ray.core.context import FEATURE_FIELDS, MODES
from cosmic_ray.core.taxonomy import to_coarse
from cosmic_ray.ingest.context import merge_context, parse_context_file
from cosmic_ray.learn.classifier import ProtoNetClassifier
from cosmic_ray.learn.evaluate.report import REPORT_KEYS, evaluate_report
from cosmic_ray.learn.evaluate.tables import read_table

LABEL_REDSHIFT = {"SN Ia": 0.11, "SN II": 0.011, "SLSN-I": 1.1}  # a redshift that gives the class away


@dataclasses.dataclass
class RecordingClassifier(ProtoNetClassifier):
    """A real classifier that also keeps the context of every ``embed`` call (then embeds as usual)."""

    seen: list = dataclasses.field(default_factory=list)

    def embed(self, seq, length, feats, contexts=None, mode="alert_time"):  # noqa: ANN001, ANN201 - the parent's
        self.seen.append(contexts)
        return super().embed(seq, length, feats, contexts, mode)


@pytest.fixture(scope="module")
def objects(shared_data) -> dict[str, Any]:
    table = read_table(shared_data / "ztf-bts" / "bts_dev_lightcurves.csv.gz")
    labels = dict(zip(table.column("object_id").to_pylist(), table.column("label").to_pylist(), strict=False))
    pick: dict[str, list[str]] = {"SN Ia": [], "SN II": [], "SLSN-I": []}
    for oid, label in sorted(labels.items()):
        c = to_coarse(label)
        if c in pick and len(pick[c]) < 10:
            pick[c].append(oid)
    ids = [o for v in pick.values() for o in v]
    sub = table.filter(pc.is_in(table.column("object_id"), pa.array(ids)))
    data_ids = [o for c in pick for o in pick[c][:5]]
    data = sub.filter(pc.is_in(sub.column("object_id"), pa.array(data_ids)))
    train = sub.filter(pc.invert(pc.is_in(sub.column("object_id"), pa.array(data_ids))))
    context = merge_context(parse_context_file(shared_data / "ztf-bts" / "bts_dev_context.csv").table)
    coarse = {o: c for c, v in pick.items() for o in v}
    return {"data": data, "train": train, "context": context, "coarse": coarse}


def _classifier() -> RecordingClassifier:
    import torch

    from cosmic_ray.learn.features import feature_names
    from cosmic_ray.learn.model import LightCurveEncoder, ProtoNetConfig

    torch.manual_seed(0)
    arch = ProtoNetConfig(seq_channels=9, n_feats=len(feature_names()), hidden=8, embed_dim=4)
    return RecordingClassifier(
        arch=arch,
        state_dict=LightCurveEncoder(arch).state_dict(),
        class_names=["SN II", "SN Ia"],
        prototypes=np.random.default_rng(0).normal(size=(2, arch.out_dim)).astype(np.float32),
        feat_mean=np.zeros(arch.n_feats, np.float32),
        feat_std=np.ones(arch.n_feats, np.float32),
        calibration=np.array([1.0]),
        ref_embeddings=np.zeros((0, arch.out_dim), np.float32),
        ref_ids=np.array([]),
        ref_labels=np.array([]),
        max_len=64,
    )


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal figures, NaN equal to NaN (a held-out class with no known class left is NaN)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _report(
    objects: dict[str, Any], clf: ProtoNetClassifier, context: pa.Table | None, modes: tuple[str, ...] = tuple(MODES)
) -> dict[str, Any]:
    return evaluate_report(
        clf,
        objects["data"],
        objects["train"],
        support_table=objects["train"],
        k=3,
        draws=1,
        context=context,
        modes=modes,
        baseline_models=("balanced_random_forest",),  # the one reference model this test reads (fast)
    )


def test_three_modes_side_by_side_and_hidden_fields_change_nothing(objects):
    clf = _classifier()
    with_ctx = _report(objects, clf, objects["context"])
    assert set(with_ctx) == set(REPORT_KEYS) and set(with_ctx["modes"]) == set(MODES)
    for mode, rep in with_ctx["modes"].items():
        assert set(rep) == set(REPORT_KEYS) - {"modes"}, mode
        assert set(rep["baseline"]) == set(REPORT_KEYS) - {"modes", "baseline", "baselines"}, mode
        assert set(rep["baselines"]) == {"balanced_random_forest"}, mode
    assert _same({k: v for k, v in with_ctx.items() if k != "modes"}, with_ctx["modes"]["alert_time"])
    # follow-up: every class, shares in 0..1 that grow with the list
    for mode in MODES:
        follow = with_ctx["modes"][mode]["followup"]
        assert set(follow) == {"SN Ia", "SN II", "SLSN-I"}
        for v in follow.values():
            assert 0.0 <= v["top1"] <= v["top5"] <= v["top10"] <= 1.0
    # every class held out in turn; the rare class's term is today's open_set_auroc (one rare class)
    by_class = with_ctx["open_set_auroc_by_class"]
    assert set(by_class) == {"SN Ia", "SN II", "SLSN-I"}
    assert by_class["SLSN-I"] == pytest.approx(with_ctx["open_set_auroc"])
    assert all(np.isnan(v) or 0.0 <= v <= 1.0 for v in by_class.values())

    # the classifier was handed the context masked by mode
    seen = [c for c in clf.seen if c is not None]
    shown = [{f for row in call for f in FEATURE_FIELDS if row[f] is not None} for call in seen]
    assert set() in shown  # light_curve: every field hidden
    assert any("host_mag" in s and "redshift" not in s for s in shown)  # alert_time
    assert any("redshift" in s and "host_mag" in s for s in shown)  # with_redshift
    assert all(set(row) == set(FEATURE_FIELDS) for call in seen for row in call)

    # without any context all three modes are the same figures, and light_curve equals the run with context
    without = _report(objects, _classifier(), None)
    assert _same(without["modes"]["light_curve"], without["modes"]["alert_time"])
    assert _same(without["modes"]["light_curve"], without["modes"]["with_redshift"])
    assert _same(without["modes"]["light_curve"], with_ctx["modes"]["light_curve"])

    # a redshift (and host) that gives the class away: light_curve unchanged, the with_redshift baseline sees it
    rows = objects["context"].to_pylist()
    for row in rows:
        c = objects["coarse"].get(row["object_id"])
        if c is not None:
            row["redshift"], row["host_mag"] = LABEL_REDSHIFT[c], 10.0 + LABEL_REDSHIFT[c]
    leaky_context = pa.Table.from_pylist(rows, schema=objects["context"].schema)
    leaky = _report(objects, _classifier(), leaky_context, modes=("light_curve", "with_redshift"))
    assert _same(leaky["modes"]["light_curve"], with_ctx["modes"]["light_curve"])
    assert not _same(leaky["modes"]["with_redshift"], with_ctx["modes"]["with_redshift"])
    told = leaky["modes"]["with_redshift"]["baseline"]["macro_f1"]
    assert told > with_ctx["modes"]["with_redshift"]["baseline"]["macro_f1"]  # 0.80 against 0.73 here (seeded)
