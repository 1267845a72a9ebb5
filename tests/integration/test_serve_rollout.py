"""Model rollout on the running app: promote under load with zero failures; a bad version keeps the old one."""

from __future__ import annotations

import threading
import time

import httpx


def _infos(calls: int = 16) -> dict[str, dict]:
    from ray import serve

    from cosmic_ray.serve.replica import MODEL_DEPLOYMENT

    handle = serve.get_deployment_handle(MODEL_DEPLOYMENT, app_name="cosmic_ray")
    out = {}
    for _ in range(calls):
        info = handle.info.remote().result()
        out[info["replica"]] = info
    return out


def _wait_all(predicate, timeout: float) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        infos = _infos()
        if infos and all(predicate(i) for i in infos.values()):
            return infos
        assert time.monotonic() < deadline, {k: (v["version"], v["last_reload_error"]) for k, v in infos.items()}
        time.sleep(0.5)


class Load:
    """Closed-loop /predict load from a few threads, bounded in time and count."""

    def __init__(self, url: str, threads: int = 4, max_seconds: float = 120, max_requests: int = 20_000):
        self.url, self.threads, self.max_seconds, self.max_requests = url, threads, max_seconds, max_requests
        self.stop_event = threading.Event()
        self.ok, self.failures, self.versions = 0, [], set()
        self.lock = threading.Lock()
        self.workers = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i: int) -> None:
        lc = {
            "object_id": f"load{i}",
            "points": [
                {"mjd": 59000.0 + 2 * k, "band": "gr"[k % 2], "mag": 19.0 - 0.1 * k, "magerr": 0.05} for k in range(8)
            ],
        }
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(timeout=30) as client:
            while (
                not self.stop_event.is_set()
                and time.monotonic() < deadline
                and self.ok + len(self.failures) < self.max_requests
            ):
                try:
                    answer = client.post(f"{self.url}/predict", json={"lightcurve": lc})
                    with self.lock:
                        if answer.status_code == 200:
                            self.ok += 1
                            self.versions.add(answer.json()["model_version"])
                        else:
                            self.failures.append((answer.status_code, answer.text[:200]))
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures.append(("error", repr(exc)))

    def __enter__(self) -> Load:
        for w in self.workers:
            w.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        for w in self.workers:
            w.join()


def _corrupt(settings, name: str, version: str) -> int:
    """Overwrite the weights of a registered version's artifact; returns how many files were spoiled."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    mv = client.get_model_version(name, version)
    # MLflow 3 keeps a version's files under the logged model its source names (models:/m-...)
    keys = [k for k in (getattr(mv, "model_id", None), mv.source.rsplit("/", 1)[-1], mv.run_id) if k]
    candidates = {p for p in settings.mlflow_artifacts_dir.rglob("weights.pt") if any(k in str(p) for k in keys)}
    spoiled = 0
    for path in candidates:
        path.write_bytes(b"not a torch file")
        spoiled += 1
    return spoiled


def test_promotion_under_load_and_a_bad_version(served, trained, settings):
    from mlflow.tracking import MlflowClient

    from cosmic_ray.learn import registry

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    classifier, _ = registry.load_model(settings)
    classifier.meta = {**classifier.meta, "note": "rollout test copy"}
    good = registry.log_and_register(settings, classifier, {"rollout": "good"}, [], {"balanced_accuracy": 0.0})
    bad = registry.log_and_register(settings, classifier, {"rollout": "bad"}, [], {"balanced_accuracy": 0.0})
    assert _corrupt(settings, settings.model_name, bad.version) >= 1
    try:
        with Load(served) as load:
            time.sleep(1.0)
            client.set_registered_model_alias(settings.model_name, "production", good.version)
            _wait_all(lambda i: i["version"] == good.version, timeout=45)
            time.sleep(1.0)
        assert load.failures == [], load.failures[:5]
        assert load.ok >= 20 and {trained.version, good.version} <= load.versions
        assert httpx.get(f"{served}/model", timeout=30).json()["version"] == good.version

        client.set_registered_model_alias(settings.model_name, "production", bad.version)
        infos = _wait_all(lambda i: bool(i["last_reload_error"]), timeout=45)
        assert all(
            i["version"] == good.version and f"version {bad.version}" in i["last_reload_error"] for i in infos.values()
        )
        # through HTTP too: a replica the sampled handle calls did not reach (one the autoscaler added
        # under the load) reports the failure on its next poll; the bad version is never served
        deadline = time.monotonic() + 45
        while True:
            info = httpx.get(f"{served}/model", timeout=30).json()
            assert info["version"] == good.version, info
            if info["last_reload_error"]:
                break
            assert time.monotonic() < deadline, info
            time.sleep(0.5)
        lc = {
            "object_id": "after",
            "points": [{"mjd": 59000.0 + k, "band": "g", "mag": 19.0, "magerr": 0.05} for k in range(5)],
        }
        answer = httpx.post(f"{served}/predict", json={"lightcurve": lc}, timeout=60)
        assert answer.status_code == 200 and answer.json()["model_version"] == good.version
    finally:  # leave the session's app as it was
        client.set_registered_model_alias(settings.model_name, "production", trained.version)
        _wait_all(lambda i: i["version"] == trained.version and i["last_reload_error"] is None, timeout=45)
