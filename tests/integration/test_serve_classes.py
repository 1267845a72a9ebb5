"""Classes registered at runtime: live on every model replica, persisted, surviving a re-deploy."""

from __future__ import annotations

import time

import httpx
import pyarrow.compute as pc
import pytest

NEW = "Test-Peculiar"


def _replica_infos(app_name: str = "cosmic_ray", calls: int = 24) -> dict[str, dict]:
    """info() of each model replica, by replica id (calls go to replicas at random)."""
    from ray import serve

    from cosmic_ray.serve.replica import MODEL_DEPLOYMENT

    handle = serve.get_deployment_handle(MODEL_DEPLOYMENT, app_name=app_name)
    infos = {}
    for _ in range(calls):
        info = handle.info.remote().result()
        infos[info["replica"]] = info
    return infos


def _wait_all_replicas(predicate, timeout: float = 30.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        infos = _replica_infos()
        if len(infos) >= 2 and all(predicate(i) for i in infos.values()):
            return infos
        assert time.monotonic() < deadline, {
            k: (v["registered_classes"], v["classes_version"]) for k, v in infos.items()
        }
        time.sleep(0.5)


@pytest.fixture(scope="module")
def support_ids(settings, trained):
    """Lake objects of a labelled class the model was not trained on (else any well-sampled ones)."""
    from cosmic_ray.ingest.lake import Lake

    table = Lake(settings.lake_dir).read(sources=["catalog"]).select(["object_id", "label", "is_limit"])
    table = table.filter(pc.invert(table.column("is_limit")))
    counts = table.group_by(["object_id", "label"]).aggregate([("is_limit", "count")]).to_pylist()
    good = [c for c in counts if c["is_limit_count"] >= 8 and c["label"]]
    unseen = [c for c in good if c["label"] not in trained.classes]
    chosen = (unseen or good)[:5]
    assert len(chosen) == 5
    return [c["object_id"] for c in chosen]


def test_register_a_class_live_on_every_replica_persisted_and_removed(served, trained, accounts, support_ids, settings):
    from cosmic_ray.ops import deploy as serving

    auth = {"Authorization": f"Bearer {accounts['astronomer']}"}
    before = _replica_infos()
    assert len(before) >= 2, "configs/serve.yaml should run at least two model replicas"
    try:
        created = httpx.post(
            f"{served}/classes", json={"name": NEW, "object_ids": support_ids}, headers=auth, timeout=60
        )
        assert created.status_code == 201, created.text
        assert created.json()["support_objects"] == support_ids and created.json()["created_by"] == "ada"
        start = time.monotonic()
        infos = _wait_all_replicas(lambda i: NEW in i["classes"], timeout=20)
        assert time.monotonic() - start < 20
        assert all(i["version"] == trained.version for i in infos.values())
        listed = httpx.get(f"{served}/classes", timeout=30).json()
        assert {"name": NEW, "source": "registered"}.items() <= next(c for c in listed if c["name"] == NEW).items()
        model_classes = next(iter(before.values()))["classes"]
        assert [c["name"] for c in listed if c["source"] == "model"] == model_classes

        # the new class takes part in predictions
        lc = {
            "object_id": "probe",
            "points": [
                {"mjd": 59000.0 + 3 * i, "band": "gr"[i % 2], "mag": 19.5 - 0.2 * i, "magerr": 0.05} for i in range(10)
            ],
        }
        answer = httpx.post(f"{served}/predict", json={"lightcurve": lc}, timeout=60).json()
        assert NEW in answer["probabilities"] and abs(sum(answer["probabilities"].values()) - 1) < 1e-4

        # refusals
        again = httpx.post(f"{served}/classes", json={"name": NEW, "object_ids": support_ids}, headers=auth, timeout=60)
        assert again.status_code == 409
        trained_name = httpx.post(
            f"{served}/classes", json={"name": trained.classes[0], "object_ids": support_ids}, headers=auth, timeout=60
        )
        assert trained_name.status_code == 409
        missing = httpx.post(
            f"{served}/classes", json={"name": "Ghost", "object_ids": ["ZTF00nothere"]}, headers=auth, timeout=60
        )
        assert missing.status_code == 422 and "ZTF00nothere" in missing.text
        limits_only = {
            "name": "Ghost",
            "lightcurves": [{"object_id": "x", "points": [{"mjd": 1, "band": "g", "mag": 20, "is_limit": True}]}],
        }
        assert httpx.post(f"{served}/classes", json=limits_only, headers=auth, timeout=60).status_code == 422
        assert httpx.post(f"{served}/classes", json={"name": "Ghost"}, headers=auth, timeout=60).status_code == 422
        too_many = httpx.post(
            f"{served}/classes",
            json={"name": "Ghost", "object_ids": [f"o{i}" for i in range(settings.max_support + 1)]},
            headers=auth,
            timeout=60,
        )
        assert too_many.status_code == 413

        # restart: the app goes away and comes back; the class is read back from the store
        from ray import serve

        serve.delete("cosmic_ray")
        assert not serving.healthy(settings)
        serving.deploy(settings)
        infos = _wait_all_replicas(lambda i: NEW in i["registered_classes"], timeout=30)
        assert all(i["classes"][-1] == NEW for i in infos.values())
    finally:
        removed = httpx.delete(f"{served}/classes/{NEW}", headers=auth, timeout=60)
    assert removed.status_code == 204, removed.text
    _wait_all_replicas(lambda i: NEW not in i["classes"], timeout=20)
    assert httpx.delete(f"{served}/classes/{NEW}", headers=auth, timeout=60).status_code == 404
    assert httpx.delete(f"{served}/classes/{trained.classes[0]}", headers=auth, timeout=60).status_code == 409
    assert httpx.get(f"{served}/model", timeout=30).json()["classes"] == next(iter(before.values()))["classes"]
