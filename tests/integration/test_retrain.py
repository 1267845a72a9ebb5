"""The retrain pipeline: window, dataset record, retention, and the job through `ray job submit`
on a local cluster of one head and two worker nodes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cosmic_ray.ingest.lake import Lake
from cosmic_ray.ops.retrain import apply_retention, snapshot, window_for
from cosmic_ray.sources import ztf

REPO = Path(__file__).resolve().parents[2]


def _stream_lake(root: Path, shared_data: Path) -> Lake:
    lake = Lake(root)
    folder = shared_data / "ztf-alerts" / "pittgoogle" / "ZTF21abiuvdk_SN2021rhu_stream"
    for path in sorted(folder.glob("*.avro")):
        lake.append(ztf.parse(ztf.RawInput(str(path), path.read_bytes())).table)
    return lake


def test_window_snapshot_lists_exactly_the_files_in_the_window(tmp_path, shared_data):
    lake = _stream_lake(tmp_path / "lake", shared_data)
    nights = sorted({p.parent.name[6:] for p in lake.files()})
    window = window_for(lake, nights=10)
    assert window.as_of == nights[-1]
    record = snapshot(lake, window)
    expected = [p for p in lake.files() if window.first_night <= p.parent.name[6:] <= window.as_of]
    assert {f["path"] for f in record["files"]} == {str(p.relative_to(lake.root)) for p in expected}
    assert 0 < len(expected) < len(lake.files())
    import pyarrow.parquet as pq

    assert record["rows"] == sum(pq.ParquetFile(p).metadata.num_rows for p in expected)
    again = snapshot(Lake(lake.root), window)
    assert again["digest"] == record["digest"]


def test_retention_deletes_only_windowed_partitions_older_than_the_window(tmp_path, shared_data):
    lake = _stream_lake(tmp_path / "lake", shared_data)
    anchor = tmp_path / "lake" / "source=catalog" / "night=20180101"
    anchor.mkdir(parents=True)
    shutil.copy(lake.files()[0], anchor / "part-anchor.parquet")
    window = window_for(lake, nights=10)
    inside_before = {p for p in lake.files() if p.parent.name[6:] >= window.first_night or "catalog" in str(p)}
    raw = tmp_path / "raw"
    raw.mkdir()
    old, new = raw / "old.avro", raw / "new.avro"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    os.utime(old, (0, 0))
    result = apply_retention(lake, window, [raw])
    after = set(Lake(lake.root).files())
    assert after == inside_before
    assert result["partitions_removed"] and all("ztf_alert" in p for p in result["partitions_removed"])
    assert not old.exists() and new.exists() and result["raw_files_removed"] == 1


@pytest.fixture()
def three_node_cluster(monkeypatch):
    """A head (no CPUs: it only hosts the job driver) and two 1-CPU worker nodes, with the dashboard."""
    try:
        from ray_clusters import current_cluster, free_port, start_cluster
    except ImportError:  # tests/ made a package
        from tests.ray_clusters import current_cluster, free_port, start_cluster

    port = free_port()
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    cluster = start_cluster(0, [1, 1], include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=port)
    try:
        with current_cluster(cluster.address):  # jobs' drivers join the cluster this file names
            yield cluster, f"http://127.0.0.1:{port}"
    finally:
        cluster.shutdown()


def _wait_dashboard(url: str, timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/version", timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"the dashboard at {url} did not come up")


def test_retrain_job_runs_through_ray_job_submit_on_three_nodes(three_node_cluster, tmp_path, shared_data):
    from cosmic_ray.sources import catalog

    _, dashboard = three_node_cluster
    home = tmp_path / "home"
    bts = shared_data / "ztf-bts" / "bts_dev_lightcurves.csv.gz"
    Lake(home / "lake").append(catalog.parse(ztf.RawInput(str(bts), bts.read_bytes())).table)
    _stream_lake(home / "lake", shared_data)  # alerts: the windowed part
    _wait_dashboard(dashboard)
    train_cfg = yaml.safe_load((REPO / "configs" / "train.yaml").read_text())
    train_cfg.update(epochs=2)
    train_cfg["episodes"]["per_epoch"] = 15
    train_cfg["data"]["max_objects_per_class"] = 40
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(train_cfg))
    (tmp_path / "retrain.yaml").write_text(
        yaml.safe_dump({"train_config": str(tmp_path / "train.yaml"), "window_nights": 30})
    )
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    runtime_env = {"env_vars": {"COSMIC_RAY_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}}
    # No --working-dir here: on one host, the three nodes share one runtime-resources folder and a
    # worker node's clean-up removes the uploaded copy under the head's driver. The package is
    # installed in the environment, as in the KubeRay image. (The --working-dir form of the README
    # is checked below with a short job.)
    cmd = [
        str(Path(sys.executable).parent / "ray"),
        "job",
        "submit",
        "--address",
        dashboard,
        "--runtime-env-json",
        json.dumps(runtime_env),
        "--",
        "python",
        str(REPO / "jobs" / "retrain.py"),
        "--config",
        str(tmp_path / "retrain.yaml"),
    ]
    for _ in range(30):  # the job agent on the head comes up a little after the dashboard
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=REPO)
        if "No available agent" not in proc.stderr:
            break
        time.sleep(3)
    (tmp_path / "job.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr.strip().splitlines()[-1:] + [proc.stdout[-4000:]]
    assert "stage 1/4 snapshot" in proc.stdout and "stage 4/4 retention" in proc.stdout
    report = json.loads([line for line in proc.stdout.splitlines() if line.startswith('{"window"')][-1])
    assert report["train"]["version"] == "1" and report["train"]["gate"]["promoted"]
    assert report["dataset"]["files"] > 0

    # the model is registered with its dataset record
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    run = client.get_run(report["train"]["run_id"])
    assert run.inputs.dataset_inputs and run.inputs.dataset_inputs[0].dataset.digest == report["dataset"]["digest"]
    assert str(client.get_model_version_by_alias("cosmic-ray", "production").version) == "1"

    # the README's form: the repository uploaded as the job's working dir, entrypoint relative to it
    documented = [
        str(Path(sys.executable).parent / "ray"),
        "job",
        "submit",
        "--address",
        dashboard,
        "--working-dir",
        str(REPO),
        "--",
        "python",
        "jobs/retrain.py",
        "--help",
    ]
    proc = subprocess.run(documented, capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert proc.returncode == 0 and "--config" in proc.stdout and "succeeded" in proc.stdout + proc.stderr

    # training was spread over the two worker nodes (the head has no CPU): the workers gathered their
    # Ray node ids at the start of the run (dead actors are not reliably listed after the job ends)
    assert report["train"]["worker_nodes"] == 2


def test_retrain_job_fails_with_a_reason_when_the_lake_is_empty(tmp_path):
    env = {**os.environ, "COSMIC_RAY_HOME": str(tmp_path / "empty"), "RAY_USAGE_STATS_ENABLED": "0", "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    (tmp_path / "retrain.yaml").write_text(yaml.safe_dump({"train_config": str(REPO / "configs" / "train.yaml")}))
    proc = subprocess.run(
        [sys.executable, "jobs/retrain.py", "--config", str(tmp_path / "retrain.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode != 0
    assert "retrain failed" in proc.stderr and "Ingest a labelled catalogue first" in proc.stderr
