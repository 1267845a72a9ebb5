"""The gate through the real MLflow registry: a candidate no better than production stays out.

Uses the session's trained + registered model (tests/conftest.py ``trained``); the candidate is a
new registered version of the same classifier, scored on real BTS validation objects, so its
predictions equal production's and the paired bootstrap must refuse it. (The promotion branch
is checked by the pure-function tests in test_gate.py; moving the alias here would change the
model the other session tests serve.)
"""

from __future__ import annotations

import numpy as np


def test_equal_candidate_is_not_promoted_and_the_decision_is_recorded(trained, settings, shared_data):
    import pyarrow as pa
    import pyarrow.compute as pc
    from mlflow.tracking import MlflowClient

    from cosmic_ray.core.taxonomy import to_coarse
    from cosmic_ray.learn import registry
    from cosmic_ray.learn.evaluate.tables import read_table
    from cosmic_ray.learn.features import featurize

    production, current = registry.load_model(settings)
    table = read_table(shared_data / "ztf-bts" / "bts_dev_lightcurves.csv.gz")
    ids = sorted(set(table.column("object_id").to_pylist()))[::12]
    arrays = featurize(table.filter(pc.is_in(table.column("object_id"), pa.array(ids))), production.max_len)
    truth = np.asarray([to_coarse(x) for x in arrays["label"]], dtype=object)
    keep = np.isin(truth, production.class_names) & (arrays["length"] >= 3)
    preds = production.predict_arrays(
        arrays["object_id"][keep], arrays["seq"][keep], arrays["length"][keep], arrays["feats"][keep], neighbours=0
    )
    gate_data = registry.GateData(
        object_id=arrays["object_id"][keep],
        truth=truth[keep],
        seq=arrays["seq"][keep],
        length=arrays["length"][keep],
        feats=arrays["feats"][keep],
        classes=list(production.class_names),
        candidate_pred=np.asarray([p.label for p in preds], dtype=object),
    )
    candidate = registry.log_and_register(settings, production, {"test": "gate"}, [], {"balanced_accuracy": 1.0})
    decision = registry.promote_if_better(settings, candidate, "balanced_accuracy", validation=gate_data, n_boot=300)
    assert not decision.promoted and "paired bootstrap" in decision.reason
    assert decision.ci_low <= 0 <= decision.ci_high and decision.n_objects == int(keep.sum())
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    assert str(client.get_model_version_by_alias(settings.model_name, "production").version) == current.version
    run = client.get_run(candidate.run_id)
    assert run.data.tags["gate.promoted"] == "False" and "gate_ci_low" in run.data.metrics
    assert "decision.json" in {a.path.split("/")[-1] for a in client.list_artifacts(candidate.run_id, "gate")}
