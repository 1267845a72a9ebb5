"""Expert labels round-trip into the next retrain's training set and its MLflow lineage (no training run).

Real parts: a lake of real BTS light curves (labelled) and real ZTF alerts (unlabelled), labels
stored through the event store (SQLite), :func:`cosmic_ray.ops.feedback.expert_training_table`
(what ``train_from_lake`` calls), the training-set builder, and MLflow with a SQLite backend.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cosmic_ray.core.config import DataConfig, Settings
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.learn import registry
from cosmic_ray.learn.features import featurize
from cosmic_ray.learn.trainset import build_training_set
from cosmic_ray.ops.feedback import expert_training_table
from cosmic_ray.ops.pipeline import LABELLED_SOURCES
from cosmic_ray.serve.labels import Labels
from cosmic_ray.serve.store import Store
from cosmic_ray.sources import catalog, ztf

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def home(tmp_path_factory, shared_data):
    """A home whose lake holds 300 real BTS objects and the 34 real alerts of SN 2021rhu."""
    root = tmp_path_factory.mktemp("expert_retrain")
    settings = Settings(home=root, mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    bts = shared_data / "ztf-bts" / "bts_dev_lightcurves.csv.gz"
    table = catalog.parse(ztf.RawInput(str(bts), bts.read_bytes())).table
    ids = sorted(set(table.column("object_id").to_pylist()))[:300]
    lake = Lake(settings.lake_dir)
    lake.append(table.filter(pc.is_in(table.column("object_id"), pa.array(ids))))
    for path in sorted((shared_data / "ztf-alerts" / "pittgoogle" / "ZTF21abiuvdk_SN2021rhu_stream").glob("*.avro")):
        lake.append(ztf.parse(ztf.RawInput(str(path), path.read_bytes())).table)
    return settings


def test_labels_reach_the_next_training_set_and_its_lineage(home):
    settings = home
    lake = Lake(settings.lake_dir)
    labelled = lake.read(sources=LABELLED_SOURCES)
    arrays0 = featurize(labelled)
    labels0 = dict(zip(arrays0["object_id"].tolist(), arrays0["label"].tolist(), strict=True))
    ia = [o for o, lab in labels0.items() if lab == "SN Ia"]
    relabel, bogus = ia[0], ia[1]
    assert "ZTF21abiuvdk" not in labels0  # the alert stream's object is not labelled data

    store = Store.open(settings.event_store_url)
    labels = Labels(store.engine)
    labels.add("ZTF21abiuvdk", "class", "SN Ia", "TNS spectrum", "ada")  # an alert object joins training
    labels.add(relabel, "class", "SN II", "", "ada")
    labels.add(relabel, "class", "SN IIn", "narrow lines after all", "bea")  # the newest answer wins
    labels.add(bogus, "bogus", None, "a subtraction artefact", "bea")
    labels.add(ia[2], "interesting", None, "", "ada")  # does not touch training
    store.close()

    table, expert = expert_training_table(settings, lake, labelled)
    arrays = featurize(table)
    got = dict(zip(arrays["object_id"].tolist(), arrays["label"].tolist(), strict=True))
    assert got["ZTF21abiuvdk"] == "SN Ia" and got[relabel] == "SN IIn"
    assert bogus not in got and got[ia[2]] == "SN Ia"
    assert set(got) == (set(labels0) | {"ZTF21abiuvdk"}) - {bogus}
    assert expert.added == ["ZTF21abiuvdk"] and expert.excluded == [bogus]
    prov = expert.provenance
    assert prov["count"] == 4 and prov["users"] == ["ada", "bea"] and prov["relabelled"] == 2

    data, _ = build_training_set(arrays, DataConfig(min_objects_per_class=3, min_points=3), 0.2, 0)
    train_labels = {o: data.class_names[k] for o, k in zip(data.object_id.tolist(), data.labels.tolist(), strict=True)}
    assert train_labels.get("ZTF21abiuvdk") == "SN Ia" and bogus not in train_labels
    if "SN IIn" in data.class_names:  # a class with enough objects in this sample
        assert train_labels[relabel] == "SN IIn"

    # the run's lineage: an MLflow dataset input with the answers, digest = the label set's digest
    import mlflow

    registry.configure(settings)
    with mlflow.start_run() as run:
        pass
    registry.log_expert_labels(settings, run.info.run_id, expert)
    logged = mlflow.get_run(run.info.run_id)
    (inp,) = [i for i in logged.inputs.dataset_inputs if i.dataset.name == "expert-labels"]
    assert inp.dataset.digest == prov["digest"]
    assert {t.key: t.value for t in inp.tags}.get("mlflow.data.context") == "expert_labels"
    assert "expert_labels" in inp.dataset.source and "event store" in inp.dataset.source
    assert "object_id" in inp.dataset.schema and '"num_rows": 4' in inp.dataset.profile
    tags = logged.data.tags
    assert tags["expert_labels.count"] == "4" and tags["expert_labels.users"] == "ada,bea"
    assert tags["expert_labels.digest"] == prov["digest"] and tags["expert_labels.newest"] == prov["newest"]

    # the same labels give the same digest; one more answer changes it
    store = Store.open(settings.event_store_url)
    _, again = expert_training_table(settings, lake, labelled)
    assert again.provenance["digest"] == prov["digest"]
    Labels(store.engine).add(relabel, "class", "SN II", "", "ada")
    store.close()
    _, changed = expert_training_table(settings, lake, labelled)
    assert changed.provenance["digest"] != prov["digest"] and changed.relabelled[relabel] == "SN II"
    assert np.isin("ZTF21abiuvdk", featurize(table)["object_id"])
