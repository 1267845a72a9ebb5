"""Faults that need clusters of their own (``ray.cluster_utils.Cluster``, own ports, own processes):
a worker node removed during Ray Train, and the whole local cluster shut down and started again.

Neither touches the session's Ray: each test starts its cluster, drives it from a subprocess
(the session's driver stays connected to its own cluster) and stops it with ``Cluster.shutdown()``.
Figures (restart epoch, seconds) are printed; ``pytest -s`` shows them.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
try:
    from ray_clusters import add_node, free_port, start_cluster
except ImportError:  # tests/ made a package
    from tests.ray_clusters import add_node, free_port, start_cluster


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for name in ("RAY_ADDRESS", "COSMIC_RAY_RAY_ADDRESS", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    env.update(extra)
    return env


def _real_lightcurve_table(shared_data: Path):
    """One real ZTF alert (with its 30-day history) as a light-curve table."""
    from cosmic_ray.sources import ztf

    path = sorted((shared_data / "ztf-alerts" / "pittgoogle" / "ZTF21abiuvdk_SN2021rhu_stream").glob("*.avro"))[-1]
    return ztf.parse(ztf.RawInput(str(path), path.read_bytes())).table


# ----------------------------------------------------------------------------- worker node removed during training
TRAIN_DRIVER = """
import json, os, sys
import ray
from cosmic_ray.ops import pipeline
from cosmic_ray.core.config import Settings, TrainConfig
ray.init(address=os.environ["FAULT_RAY_ADDRESS"], log_to_driver=True)
settings = Settings(home=os.environ["COSMIC_RAY_HOME"], mlflow_tracking_uri=os.environ["FAULT_TRACKING_URI"])
cfg = TrainConfig.model_validate_json(os.environ["FAULT_TRAIN_CONFIG"])
report = pipeline.train_from_lake(settings, cfg, storage_path=os.environ["FAULT_STORAGE"])
print("REPORT " + json.dumps(report.to_dict(), default=str), flush=True)
"""


class CheckpointWatch:
    """Every checkpoint Ray Train writes, in the order it appears: (seen at, folder, epoch)."""

    def __init__(self, root: Path):
        self.root, self.seen, self.order = root, set(), []

    def poll(self) -> None:
        import torch

        for folder in sorted(self.root.glob("*/checkpoint_*"), key=lambda p: p.stat().st_mtime if p.exists() else 0):
            if folder in self.seen or not (folder / "model.pt").exists():
                continue
            try:
                epoch = int(torch.load(folder / "model.pt", map_location="cpu", weights_only=False)["epoch"])
            except Exception:  # still being written: next poll
                continue
            self.seen.add(folder)
            self.order.append((time.monotonic(), folder.name, epoch))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_worker_node_removed_during_training_resumes_from_checkpoint_and_registers(tmp_path, shared_data):
    from cosmic_ray.core.config import DataConfig, EpisodeConfig, ScalingConfig, TrainConfig
    from cosmic_ray.ingest.lake import Lake
    from cosmic_ray.sources import catalog, ztf

    home = tmp_path / "home"
    bts = shared_data / "ztf-bts" / "bts_dev_lightcurves.csv.gz"
    Lake(home / "lake").append(catalog.parse(ztf.RawInput(str(bts), bts.read_bytes())).table)
    epochs = 6
    cfg = TrainConfig(
        seed=0,
        epochs=epochs,
        lr=3e-3,
        data=DataConfig(max_objects_per_class=40),
        episodes=EpisodeConfig(n_way=4, k_shot=5, n_query=5, per_epoch=40),
        scaling=ScalingConfig(num_workers=2),
    )
    storage = tmp_path / "checkpoints"
    tracking = f"sqlite:///{home / 'mlflow.db'}"
    # the head only hosts the driver and the Train controller; one training worker per worker node
    cluster = start_cluster(0, [1, 1])
    log_path = tmp_path / "driver.log"
    try:
        env = _env(
            FAULT_RAY_ADDRESS=cluster.address,
            COSMIC_RAY_HOME=str(home),
            FAULT_TRACKING_URI=tracking,
            FAULT_TRAIN_CONFIG=cfg.model_dump_json(),
            FAULT_STORAGE=str(storage),
        )
        watch = CheckpointWatch(storage)
        with log_path.open("w") as log:
            driver = subprocess.Popen(
                [sys.executable, "-c", TRAIN_DRIVER],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
            deadline = time.monotonic() + 600
            # two checkpoint folders: the first is then committed (a folder appears before every worker
            # has reported that epoch; a fault in between rightly restarts from the previous commit)
            while len(watch.order) < 2 and driver.poll() is None and time.monotonic() < deadline:
                watch.poll()
                time.sleep(0.1)
            assert len(watch.order) >= 2, (
                f"no checkpoints appeared; driver rc={driver.poll()}: {log_path.read_text()[-3000:]}"
            )
            # (fault) one worker node disappears at once (processes killed, no draining)
            victim = next(iter(cluster.worker_nodes))
            cluster.remove_node(victim, allow_graceful=False)
            removed_at = time.monotonic()
            before = list(watch.order)
            time.sleep(3)
            watch.poll()
            add_node(cluster, 1)  # the node comes back
            added_at = time.monotonic()
            while driver.poll() is None and time.monotonic() < deadline:
                watch.poll()
                time.sleep(0.2)
            out, _ = driver.communicate(timeout=max(1, deadline - time.monotonic()))
        watch.poll()
    finally:
        cluster.shutdown()
    log_text = log_path.read_text()
    assert driver.returncode == 0, log_text[-4000:]
    report = json.loads(next(line[7:] for line in out.splitlines() if line.startswith("REPORT ")))

    # the fault hit mid-run: at the removal, the last checkpoint was not the final epoch
    assert before[-1][2] < epochs - 1, before
    # a worker group failed and was retried (the controller's failure policy, streamed to the driver)
    assert "RETRY" in log_text, log_text[-3000:]
    # resumed, not restarted: the first checkpoint written after the removal continues from a
    # committed one (at least epoch 0 was committed: an epoch 0 here would mean a fresh start), and
    # from there the epochs go up one by one to the last
    epochs_seen = [e for _, _, e in watch.order]
    after = [(t, e) for t, _, e in watch.order if t > removed_at]
    assert after, watch.order
    restart_epoch = after[0][1]
    assert 0 < restart_epoch <= before[-1][2] + 1, (before, after)
    assert [e for _, e in after] == list(range(restart_epoch, epochs)), watch.order
    assert set(epochs_seen) == set(range(epochs))
    print(
        f"\nnode removed after checkpoint epoch {before[-1][2]}; node added back {added_at - removed_at:.1f} s later; "
        f"first checkpoint after the fault: epoch {restart_epoch} ({after[0][0] - removed_at:.1f} s after removal); "
        f"checkpoint epochs in order {epochs_seen}; training {report['seconds']:.0f} s"
    )
    # the history carried through the checkpoint has every epoch once
    assert [h["epoch"] for h in report["history"]] == list(range(epochs))

    # the final model is complete: registered, loads, and classifies a real alert's light curve
    from cosmic_ray.core.config import Settings
    from cosmic_ray.learn import registry
    from cosmic_ray.learn.features import featurize

    settings = Settings(home=home, mlflow_tracking_uri=tracking)
    classifier, registered = registry.load_model(settings, report["version"])
    assert registered.version == report["version"] == "1"
    assert registry.production_version(settings).version == "1"
    assert classifier.class_names == report["classes"] and len(classifier.class_names) >= 3
    table = _real_lightcurve_table(shared_data)
    preds = classifier.predict_features(featurize(table, classifier.max_len), neighbours=0)
    assert len(preds) == 1 and preds[0].label in classifier.class_names
    assert abs(sum(preds[0].probabilities.values()) - 1) < 1e-4


# ----------------------------------------------------------------------------- the whole cluster restarted
NEW_CLASS = "Fault-Restart-Class"


def _serve_up(cluster, home: Path, tracking: str, port: int, log: Path) -> float:
    """`cosmic-ray serve up` against ``cluster``: the operator's one command. Returns its seconds."""
    env = _env(
        RAY_ADDRESS=cluster.address,
        COSMIC_RAY_HOME=str(home),
        COSMIC_RAY_MLFLOW_TRACKING_URI=tracking,
        COSMIC_RAY_APP_PORT=str(port),
    )
    start = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "cosmic-ray"), "serve", "up"], cwd=REPO, env=env, capture_output=True, text=True, timeout=400
    )
    with log.open("a") as f:
        f.write(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["already_running"] is False
    return time.monotonic() - start


def _listeners(port: int) -> set[str]:
    """Names of the processes listening on 127.0.0.1/any-address TCP ``port`` (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(fields[9])
    names = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
            if any(f"socket:[{inode}]" in links for inode in inodes):
                names.add(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:  # gone meanwhile, or not ours
            continue
    return names


def _support_lightcurves(shared_data: Path, avoid: list[str], k: int = 5) -> tuple[str, list[dict]]:
    """K real BTS light curves of one class the model was not trained on (else of any class)."""
    import csv

    rows: dict[str, list[dict]] = {}
    labels: dict[str, str] = {}
    with gzip.open(shared_data / "ztf-bts" / "bts_dev_lightcurves.csv.gz", "rt") as f:
        for row in csv.DictReader(f):
            rows.setdefault(row["object_id"], []).append(row)
            labels[row["object_id"]] = row["label"]
    good = [o for o, pts in rows.items() if len(pts) >= 8]
    unseen = [o for o in good if labels[o] not in avoid]
    by_label: dict[str, list[str]] = {}
    for o in unseen or good:
        by_label.setdefault(labels[o], []).append(o)
    label, objects = max(by_label.items(), key=lambda kv: len(kv[1]))
    curves = [
        {
            "object_id": o,
            "points": [
                {"mjd": float(p["mjd"]), "band": p["band"], "mag": float(p["mag"]), "magerr": float(p["magerr"])}
                for p in rows[o][:64]
            ],
        }
        for o in objects[:k]
    ]
    return label, curves


def _alert_lightcurve(shared_data: Path) -> dict:
    table = _real_lightcurve_table(shared_data).to_pylist()
    points = [
        {"mjd": r["mjd"], "band": r["band"], "mag": r["mag"], "magerr": r["magerr"] or 0.0, "is_limit": r["is_limit"]}
        for r in table
        if r["mag"] is not None
    ]
    return {"object_id": table[0]["object_id"], "points": points}


def _predict_with_class(url: str, lightcurve: dict, timeout: float = 60) -> dict:
    """/predict once every replica answers with the registered class (replicas poll the store)."""
    deadline, streak = time.monotonic() + timeout, 0
    while True:
        answer = httpx.post(f"{url}/predict", json={"lightcurve": lightcurve}, timeout=120).json()
        streak = streak + 1 if NEW_CLASS in answer["probabilities"] else 0
        if streak >= 8:
            return answer
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_whole_cluster_restart_keeps_classes_users_classifications_and_serves_the_production_model(
    trained, settings, shared_data, tmp_path, monkeypatch
):
    from cosmic_ray.serve.store import Store

    # the clusters start as `cosmic-ray cluster up` starts them by default: Serve's own proxy (HAProxy
    # mode is opt-in; tests/integration/test_ops_cluster_restart_loopback.py covers it)
    for name in ("RAY_SERVE_ENABLE_HA_PROXY", "RAY_SERVE_THROUGHPUT_OPTIMIZED"):
        monkeypatch.delenv(name, raising=False)

    # state of this deployment: its own home and event store; the real registered model of the session
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(settings.home_dir / "mlflow.db", home / "mlflow.db")
    shutil.copy(settings.model_signing_key_file, home / settings.model_signing_key_file.name)  # the trainer's key
    tracking = f"sqlite:///{home / 'mlflow.db'}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve_up.log"
    store = Store.open(f"sqlite:///{home / 'events.db'}")
    store.accounts.add_user("rita", "restart password 1", role="astronomer")
    token = store.accounts.create_token("rita", "restart test").token
    auth = {"Authorization": f"Bearer {token}"}

    first = start_cluster(4, [])
    try:
        up_first = _serve_up(first, home, tracking, port, log)
        from cosmic_ray.core.config import Settings
        from cosmic_ray.learn import registry

        production = registry.production_version(Settings(home=home, mlflow_tracking_uri=tracking))
        listeners = _listeners(port)
        assert listeners and not any("haproxy" in name for name in listeners), listeners  # Serve's proxy answers
        version = httpx.get(f"{url}/model", timeout=30).json()["version"]
        assert production is not None and version == production.version  # served without naming a version
        label, curves = _support_lightcurves(shared_data, trained.classes)
        created = httpx.post(
            f"{url}/classes", json={"name": NEW_CLASS, "lightcurves": curves}, headers=auth, timeout=120
        )
        assert created.status_code == 201, created.text
        probe = _alert_lightcurve(shared_data)
        answer = _predict_with_class(url, probe)
        assert answer["model_version"] == version
        # classifications stored by the live path's store call, from this model's real answer
        candids = [9_100_000_000_000_000_000 + i for i in range(3)]
        store.events.record_classifications(
            [
                {
                    "candid": c,
                    "object_id": probe["object_id"],
                    "class": answer["class"],
                    "probabilities": answer["probabilities"],
                    "open_set_score": answer["open_set_score"],
                    "novel": answer["novel"],
                    "rare": False,
                    "model_version": version,
                }
                for c in candids
            ]
        )
        stored_before = store.events.count_classifications()
    finally:
        t0 = time.monotonic()
        first.shutdown()  # the whole cluster: GCS, raylet, Serve controller, proxy, replicas
        down_s = time.monotonic() - t0
    store.close()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/healthz", timeout=3)

    second = start_cluster(4, [])  # a fresh cluster: nothing of the first one's GCS is left
    try:
        up_second = _serve_up(second, home, tracking, port, log)
        print(
            f"\nserve up {up_first:.1f} s; whole cluster down {down_s:.1f} s; fresh cluster + serve up {up_second:.1f} s"
        )
        info = httpx.get(f"{url}/model", timeout=30).json()
        assert info["version"] == version and NEW_CLASS in info["classes"]
        again = _predict_with_class(url, probe)
        assert again["model_version"] == version and again["class"] == answer["class"]
        assert again["probabilities"].keys() == answer["probabilities"].keys()
        classes = httpx.get(f"{url}/classes", headers=auth, timeout=30).json()  # signed in: created_by shown
        mine = next(c for c in classes if c["name"] == NEW_CLASS)
        assert mine["source"] == "registered" and mine["created_by"] == "rita"
        assert httpx.get(f"{url}/auth/me", headers=auth, timeout=30).json() == {
            "username": "rita",
            "role": "astronomer",
        }
        login = httpx.post(f"{url}/auth/login", json={"username": "rita", "password": "restart password 1"}, timeout=60)
        assert login.status_code == 200
        alerts = httpx.get(f"{url}/alerts", params={"limit": 1000}, timeout=30).json()
        assert {c for c in candids} <= {a["candid"] for a in alerts}
        reopened = Store.open(f"sqlite:///{home / 'events.db'}")
        assert reopened.events.count_classifications() == stored_before
        reopened.close()
    finally:
        second.shutdown()
