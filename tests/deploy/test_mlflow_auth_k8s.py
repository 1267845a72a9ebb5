"""MLflow's authentication as k8s/ configures it, on a real MLflow server (SQLite stores here).

The server is started with the Deployment's own start script, arguments and environment (each
Secret key filled with a value made up here; PostgreSQL, the only thing swapped, becomes SQLite),
then the Job mlflow-users runs ``jobs/mlflow_users.py`` with the Job's environment. Checked: no
anonymous access, the admin is the Secret's, the trainer (as the training pods log in) registers
and promotes a model, the serving user (as the serving pods log in) reads it and can change
nothing, and running the Job again rotates passwords.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from test_k8s_manifests import REPO, by_kind, find, ray_groups

from cosmic_ray.learn.registry import EXPERIMENT
from tests.web_server import free_port

MODEL = "cosmic-ray"


class SecretValues(dict[tuple[str, str], str]):
    """Made-up values for every (Secret, key) the manifests read; the same key gives the same value."""

    def __missing__(self, ref: tuple[str, str]) -> str:
        self[ref] = "admin" if ref == ("cosmic-ray-mlflow-admin", "username") else secrets.token_hex(12)
        if ref[1] == "username" and ref[0] != "cosmic-ray-mlflow-admin":
            self[ref] = ref[0].removeprefix("cosmic-ray-mlflow-")
        return self[ref]


def container_env(container: dict[str, Any], values: SecretValues) -> dict[str, str]:
    """The environment Kubernetes would give ``container``: Secret keys filled, $(VAR) expanded."""
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "valueFrom" in var:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = values[(ref["name"], ref["key"])]
        else:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], var["value"])
    return env


@pytest.fixture(scope="module")
def values() -> SecretValues:
    return SecretValues()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, values: SecretValues) -> Iterator[str]:
    """The MLflow Deployment's container, run here on 127.0.0.1."""
    (container,) = find("Deployment", "mlflow")["spec"]["template"]["spec"]["containers"]
    home = tmp_path_factory.mktemp("mlflow")
    (home / "etc").mkdir()
    (home / "etc" / "basic_auth.ini").write_text(find("ConfigMap", "mlflow-auth")["data"]["basic_auth.ini"])
    assert container["command"] == ["sh", "-c"]
    script = container["args"][0].replace("/etc/mlflow/", f"{home}/etc/")
    port = free_port()
    replaced = {
        "--host": "127.0.0.1",
        "--port": str(port),
        "--workers": "1",
        "--backend-store-uri": f"sqlite:///{home}/mlflow.db",
        "--artifacts-destination": str(home / "artifacts"),
    }
    args = [
        a if a.split("=")[0] not in replaced else f"{a.split('=')[0]}={replaced[a.split('=')[0]]}"
        for a in container["args"][1:]
    ]
    env = container_env(container, values)
    assert env["MLFLOW_AUTH_DATABASE_URI"].startswith("postgresql://mlflow:")
    env.update(
        MLFLOW_AUTH_DATABASE_URI=f"sqlite:///{home}/auth.db",
        MLFLOW_AUTH_CONFIG_PATH=str(home / "run-basic_auth.ini"),
        HOME=str(home),
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    )
    log = (home / "server.log").open("w")
    process = subprocess.Popen(["sh", "-c", script, *args], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, (home / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "MLflow did not start in 300 s"
            time.sleep(0.5)
        ini = home / "run-basic_auth.ini"
        assert f"database_uri = sqlite:///{home}/auth.db" in ini.read_text(), "the start script fills the URL in"
        assert stat.S_IMODE(ini.stat().st_mode) == 0o600, "the filled-in config holds a password: 0600"
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def run_users_job(url: str, values: SecretValues) -> subprocess.CompletedProcess[str]:
    (job,) = by_kind("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {**os.environ, **container_env(container, values), "MLFLOW_TRACKING_URI": url, "PYTHONPATH": str(REPO)}
    env["HOME"] = os.environ.get("HOME", "/tmp")
    return subprocess.run(
        [sys.executable, *container["command"][1:]], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def pod_credentials(serving: bool, values: SecretValues) -> tuple[str, str]:
    """The MLflow user and password a training or serving pod gets."""
    for owner, _, group in ray_groups():
        if owner.startswith("RayService") == serving:
            env = container_env(group["template"]["spec"]["containers"][0], values)
            return env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]
    raise AssertionError("no such Ray group")


@contextmanager
def logged_in(url: str, username: str, password: str) -> Iterator[MlflowClient]:
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = username, password
    try:
        yield MlflowClient(url)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def refused(action: Any) -> str:
    try:
        action()
    except MlflowException as exc:
        return str(exc.error_code)
    return "allowed"


def test_mlflow_on_kubernetes_needs_users_and_serving_only_reads(mlflow_server: str, values: SecretValues) -> None:
    url = mlflow_server
    search = f"{url}/api/2.0/mlflow/registered-models/search"
    assert httpx.get(search, timeout=120).status_code == 401, "anonymous requests must be refused"
    admin = (values[("cosmic-ray-mlflow-admin", "username")], values[("cosmic-ray-mlflow-admin", "password")])
    assert httpx.get(search, auth=admin, timeout=120).status_code == 200, "the admin is the Secret's"
    assert httpx.get(search, auth=("admin", "password1234"), timeout=120).status_code == 401, (
        "no default admin password"
    )

    out = run_users_job(url, values)
    assert out.returncode == 0, out.stderr[-3000:]
    trainer, serving = pod_credentials(False, values), pod_credentials(True, values)
    assert trainer[0] != serving[0]

    # The Job made the experiment, so a serving replica (which creates a missing one when it looks for
    # a model) cannot own it; the trainer manages it.
    with logged_in(url, *serving) as client:
        found = client.get_experiment_by_name(EXPERIMENT)
        assert found is not None, "the Job creates the experiment"
        experiment = found.experiment_id
        assert refused(lambda: client.create_run(experiment)) == "PERMISSION_DENIED"
    with logged_in(url, *trainer) as client:
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "f1", 0.9)
        client.create_registered_model(MODEL)
        version = client.create_model_version(MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        client.set_registered_model_alias(MODEL, "production", version.version)

    with logged_in(url, *serving) as client:
        assert client.get_model_version_by_alias(MODEL, "production").version == version.version
        assert client.get_run(run.info.run_id).data.metrics["f1"] == 0.9
        assert refused(lambda: client.set_registered_model_alias(MODEL, "production", "1")) == "PERMISSION_DENIED"
        assert refused(lambda: client.create_model_version(MODEL, "runs:/x/model")) == "PERMISSION_DENIED"
        assert refused(lambda: client.log_metric(run.info.run_id, "f1", 1.0)) == "PERMISSION_DENIED"
        assert refused(lambda: client.delete_registered_model(MODEL)) == "PERMISSION_DENIED"
    with logged_in(url, serving[0], "wrong") as client:
        assert refused(lambda: client.search_registered_models()) == "UNAUTHENTICATED"

    # Running the Job again (e.g. after rotating a Secret) resets the password and keeps the grants.
    old = trainer[1]
    values[("cosmic-ray-mlflow-trainer", "password")] = secrets.token_hex(12)
    out = run_users_job(url, values)
    assert out.returncode == 0, out.stderr[-3000:]
    with logged_in(url, trainer[0], old) as client:
        assert refused(lambda: client.search_registered_models()) == "UNAUTHENTICATED"
    with logged_in(url, *pod_credentials(False, values)) as client:
        client.set_registered_model_alias(MODEL, "candidate", version.version)
