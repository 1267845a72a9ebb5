"""`cosmic-ray serve up` applies configs/serve.yaml like `serve deploy` (same config: nothing
redeployed; edited config: applied in place), and `serve down` deletes this application only.

Runs on the session's Ray and app (``served``); the CLI attaches to it with ``RAY_ADDRESS``.
The app is put back to configs/serve.yaml at the end, for the tests that follow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from conftest import REPO
from ray import serve

BIN = Path(sys.executable).parent
APP = "cosmic_ray"


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
class Echo:
    """A second, unrelated Serve application."""

    def __call__(self, request: object) -> str:
        return "echo"


def _details(deployment: str) -> dict:
    """Serve's view of one deployment of the app: its live replicas and running config."""
    from ray.serve.context import _get_global_client

    return _get_global_client().get_serve_details()["applications"][APP]["deployments"][deployment]


def _replica_ids(deployment: str) -> set[str]:
    return {r["replica_id"] for r in _details(deployment)["replicas"] if str(r["state"]).endswith("RUNNING")}


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def _serve_cli(settings, *args: str) -> dict:
    import ray

    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "COSMIC_RAY_HOME": str(settings.home_dir),
        "COSMIC_RAY_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "COSMIC_RAY_APP_PORT": str(settings.app_port),
    }
    env.pop("COSMIC_RAY_RAY_ADDRESS", None)
    proc = subprocess.run(
        [str(BIN / "cosmic-ray"), "serve", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_serve_up_applies_an_edited_config_in_place_and_serve_down_removes_only_this_app(served, settings, tmp_path):
    from cosmic_ray.ops import deploy as serving

    base = yaml.safe_load((REPO / "configs" / "serve.yaml").read_text())
    ingress = next(d for d in base["applications"][0]["deployments"] if d["name"] == "Ingress")
    assert ingress["num_replicas"] == 1
    models = _replica_ids("ProtoNetModel")
    assert len(models) >= 2

    try:
        # the same config again: nothing redeployed
        same = _serve_cli(settings, "up")
        assert same["already_running"] is True and same["app"] == APP
        assert _replica_ids("ProtoNetModel") == models

        # an edited copy: one more ingress replica, a smaller model batch
        edited = yaml.safe_load((REPO / "configs" / "serve.yaml").read_text())
        for d in edited["applications"][0]["deployments"]:
            if d["name"] == "Ingress":
                d["num_replicas"] = 2
            if d["name"] == "ProtoNetModel":
                d["user_config"]["max_batch_size"] = 32
        path = tmp_path / "serve.yaml"
        path.write_text(yaml.safe_dump(edited))
        applied = _serve_cli(settings, "up", "--config", str(path))
        assert applied["already_running"] is False
        _wait(lambda: len(_replica_ids("Ingress")) == 2, 120, "the second ingress replica did not come up")
        _wait(
            lambda: _details("ProtoNetModel")["deployment_config"]["user_config"]["max_batch_size"] == 32,
            60,
            "the model's user_config was not updated",
        )
        assert _replica_ids("ProtoNetModel") == models  # user_config reconfigured in place, no restart
        assert httpx.get(f"{served}/healthz", timeout=30).status_code == 200
        assert _serve_cli(settings, "up", "--config", str(path))["already_running"] is True

        # another application on the cluster, then `serve down`
        other = serve.run(Echo.bind(), name="other_app", route_prefix="/other")
        assert other.remote(None).result(timeout_s=60) == "echo"
        assert _serve_cli(settings, "down") == {"stopped": True}
        apps = serve.status().applications
        assert APP not in apps
        assert apps["other_app"].status == "RUNNING"
        assert other.remote(None).result(timeout_s=60) == "echo"
        assert not serving.healthy(settings)
        assert _serve_cli(settings, "down") == {"stopped": False}
    finally:
        # back to configs/serve.yaml for the tests that follow; the other app goes
        if "other_app" in serve.status().applications:
            serve.delete("other_app")
        result = serving.apply(settings)
    assert result.changed is True
    _wait(lambda: len(_replica_ids("Ingress")) == 1, 120, "the ingress did not scale back to 1")
    assert httpx.get(f"{served}/healthz", timeout=30).status_code == 200
