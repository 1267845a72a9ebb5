"""Offline checks of the hardened Kubernetes deployment (issue 18, items 1 (k8s half), 4 and 7; NetworkPolicies apart).

What an attacker inside or outside the cluster would try, checked against the rendered k8s/:

* every container (init containers, the autoscaler sidecar and the job submitters included) runs
  as a numeric non-root user, without privilege escalation or capabilities, under seccomp
  RuntimeDefault, on a read-only root file system with /tmp on an emptyDir;
* PostgreSQL: one role and database per consumer, none of them the superuser; the init script is
  run against a real PostgreSQL server when its binaries are installed;
* MLflow: authentication on, the admin's password from a Secret, read-only serving credentials;
* serving pods mount the shared volume read-only; the model signing key reaches every Ray pod;
  reads need an account and the session cookie is Secure behind TLS;
* images can be pinned by digest (k8s/pin-images.sh) and the image installs with hashes.

The NetworkPolicies are checked in tests/deploy/test_k8s_network_policies.py, MLflow's
authentication on a real server in tests/deploy/test_mlflow_auth_k8s.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from test_k8s_manifests import (
    K8S,
    REPO,
    all_docs,
    by_kind,
    dockerfile_commands,
    env_of,
    find,
    iter_pod_templates,
    ray_cluster_specs,
    ray_groups,
    ray_job_specs,
    referenced_secrets,
    rendered,
)

from cosmic_ray.core.config import Settings

DOCS = REPO / "docs" / "kubernetes.md"
MODEL_KEY_SECRET = ("cosmic-ray-model-key", "COSMIC_RAY_MODEL_SIGNING_KEY")
SUPERUSER_CREDENTIALS = "cosmic-ray-postgres"


# --------------------------------------------------------------------------------------------
# securityContext of every container
# --------------------------------------------------------------------------------------------


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, PodSpec) of every pod template: workloads, Ray groups, job submitters."""
    for doc in all_docs():
        kind_name = f"{doc['kind']}/{doc['metadata'].get('name') or doc['metadata'].get('generateName')}"
        for where, template in iter_pod_templates(doc):
            yield f"{kind_name} {where}", template["spec"]


def locked_down_errors(where: str, pod_spec: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """What is missing for a container to run unprivileged, per its pod's and its own securityContext."""
    pod_context = pod_spec.get("securityContext", {})
    own = container.get("securityContext", {})
    effective = {**{k: v for k, v in pod_context.items() if k != "fsGroup"}, **own}
    name = f"{where} {container.get('name', 'autoscaler')}"
    errors = []
    if effective.get("runAsNonRoot") is not True:
        errors.append(f"{name}: runAsNonRoot")
    user = effective.get("runAsUser")
    if not isinstance(user, int) or isinstance(user, bool) or user <= 0:
        errors.append(f"{name}: a numeric runAsUser > 0")
    if own.get("allowPrivilegeEscalation") is not False:
        errors.append(f"{name}: allowPrivilegeEscalation false")
    if own.get("privileged"):
        errors.append(f"{name}: privileged")
    if "ALL" not in own.get("capabilities", {}).get("drop", []) or own.get("capabilities", {}).get("add"):
        errors.append(f"{name}: capabilities drop ALL, add none")
    if effective.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        errors.append(f"{name}: seccompProfile RuntimeDefault")
    if own.get("readOnlyRootFilesystem") is not True:
        errors.append(f"{name}: readOnlyRootFilesystem")
    else:
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
            errors.append(f"{name}: read-only root without /tmp on an emptyDir")
    return errors


def test_every_container_runs_unprivileged_on_a_read_only_root() -> None:
    errors = []
    n = 0
    for where, spec in pod_specs():
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(key):
                errors.append(f"{where}: {key}")
        errors += [f"{where}: hostPath volume" for v in spec.get("volumes", []) if "hostPath" in v]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            errors += locked_down_errors(where, spec, container)
            n += 1
    assert n >= 9, f"only {n} containers checked"
    assert errors == [], "\n".join(errors)


@pytest.mark.parametrize("owner,spec", ray_cluster_specs(), ids=[o for o, _ in ray_cluster_specs()])
def test_the_autoscaler_sidecar_is_locked_down_too(owner: str, spec: dict[str, Any]) -> None:
    """KubeRay builds the sidecar from autoscalerOptions, inside the head pod."""
    head_pod = spec["headGroupSpec"]["template"]["spec"]
    sidecar = {"name": "autoscaler", **spec["autoscalerOptions"]}
    assert locked_down_errors(owner, head_pod, sidecar) == []


def test_the_lockdown_check_can_fail() -> None:
    spec = {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000}, "volumes": [{"name": "t", "emptyDir": {}}]}
    good = {
        "name": "c",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "t", "mountPath": "/tmp"}],
    }
    assert locked_down_errors("x", spec, good) == []
    for change in (
        {"runAsUser": 0},
        {"runAsUser": "1000"},
        {"allowPrivilegeEscalation": True},
        {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}},
        {"seccompProfile": {"type": "Unconfined"}},
        {"readOnlyRootFilesystem": False},
        {"privileged": True},
    ):
        bad = {**good, "securityContext": {**good["securityContext"], **change}}
        assert locked_down_errors("x", spec, bad), change
    assert locked_down_errors("x", spec, {**good, "volumeMounts": []}), "read-only root without /tmp"


# --------------------------------------------------------------------------------------------
# PostgreSQL: a role and a database per consumer
# --------------------------------------------------------------------------------------------


def consumer_urls() -> dict[str, str]:
    """Consumer -> PostgreSQL URL, as the manifests give it to each."""
    deployment = find("Deployment", "mlflow")
    (mlflow,) = deployment["spec"]["template"]["spec"]["containers"]
    backend = next(a.split("=", 1)[1] for a in mlflow["args"] if a.startswith("--backend-store-uri="))
    urls = {"mlflow backend store": backend, "mlflow users": env_of(mlflow)["MLFLOW_AUTH_DATABASE_URI"]["value"]}
    for owner, group_name, group in ray_groups():
        urls[f"{owner} {group_name} event store"] = env_of(group["template"]["spec"]["containers"][0])[
            "COSMIC_RAY_STORE_URL"
        ]["value"]
    return urls


def init_script() -> str:
    config_map = find("ConfigMap", "postgres-init")
    assert config_map, "no ConfigMap postgres-init"
    scripts = {k: v for k, v in config_map["data"].items() if k.endswith(".sh")}
    assert len(scripts) == 1, f"postgres-init: one .sh script, not {sorted(config_map['data'])}"
    return next(iter(scripts.values()))


def test_each_consumer_has_its_own_role_and_database() -> None:
    urls = consumer_urls()
    roles: dict[str, set[str]] = {}
    for consumer, url in urls.items():
        parts = urlsplit(url)
        assert parts.scheme == "postgresql" and parts.hostname == "postgres", consumer
        assert parts.username and not parts.username.startswith("$("), f"{consumer}: a fixed role, not the superuser's"
        roles.setdefault(parts.username, set()).add(parts.path.lstrip("/"))
    assert roles == {"mlflow": {"mlflow", "mlflow_auth"}, "cosmic_ray": {"cosmic_ray"}}, roles
    script = init_script()
    for role, databases in roles.items():
        assert re.search(rf"CREATE ROLE {role} LOGIN PASSWORD :'\w+';", script), f"init: role {role}"
        for database in databases:
            assert f"CREATE DATABASE {database} OWNER {role};" in script, f"init: database {database}"
    assert "SUPERUSER" not in script.upper().replace("POSTGRES_USER", "")
    # The superuser's Secret is read by PostgreSQL itself and by nobody else.
    for where, spec in pod_specs():
        for container in spec["containers"]:
            reads = {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", []) if "valueFrom" in e}
            if SUPERUSER_CREDENTIALS in reads:
                assert "StatefulSet/postgres" in where, f"{where} reads the PostgreSQL superuser's Secret"


def _postgres_bin() -> Path | None:
    initdb = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    return Path(initdb).resolve().parent if initdb else None


def test_the_init_script_makes_separate_roles_on_a_real_postgres() -> None:
    """Runs the ConfigMap's script against a real PostgreSQL, then logs in as each role."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL's server binaries are not installed")
    # PostgreSQL refuses to run as root: as root, run it as the user postgres, in a folder of its own
    # (pytest's tmp_path lies under a 0700 folder of root's).
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    work = Path(tempfile.mkdtemp(prefix="cosmic-ray-pg-"))
    data, sockets, password_file = work / "data", work / "run", work / "pw"
    sockets.mkdir()
    password_file.write_text("superpass\n")
    if as_postgres:
        for path in (work, sockets, password_file):
            shutil.chown(path, "postgres")

    def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*as_postgres, *argv], capture_output=True, text=True, timeout=120, env=env)

    out = run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={password_file}", "-A", "scram-sha-256"]
    )
    assert out.returncode == 0, out.stderr
    port = str(_free_port())
    options = f"-k {sockets} -p {port} -c listen_addresses=''"
    out = run(
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-t", "60", "-l", str(work / "log"), "start"]
    )
    assert out.returncode == 0, out.stderr + (work / "log").read_text()
    try:
        base = {**os.environ, "PGHOST": str(sockets), "PGPORT": port}
        passwords = {"mlflow": 'it\'s a "test" 1', "cosmic_ray": "an0ther;pass"}
        script = work / "init.sh"
        script.write_text(init_script())
        env = {
            **base,
            "POSTGRES_USER": "postgres",
            "PGPASSWORD": "superpass",
            "MLFLOW_DB_PASSWORD": passwords["mlflow"],
            "STORE_DB_PASSWORD": passwords["cosmic_ray"],
        }
        out = run(["sh", str(script)], env=env)
        assert out.returncode == 0, out.stderr

        def login(role: str, database: str, sql: str = "SELECT 1") -> subprocess.CompletedProcess[str]:
            argv = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-U", role, "-d", database, "-tAc", sql]
            return run(argv, env={**base, "PGPASSWORD": passwords[role]})

        for role, own, foreign in (
            ("mlflow", ["mlflow", "mlflow_auth"], "cosmic_ray"),
            ("cosmic_ray", ["cosmic_ray"], "mlflow"),
        ):
            for database in own:
                out = login(role, database, "CREATE TABLE t (x int); DROP TABLE t; SELECT 1")
                assert out.returncode == 0 and out.stdout.split()[-1:] == ["1"], f"{role} in {database}: {out.stderr}"
            out = login(role, foreign)
            assert out.returncode != 0 and "permission denied" in out.stderr, f"{role} entered {foreign}"
            out = login(role, "postgres")
            assert out.returncode != 0, f"{role} entered the database postgres"
            powers = f"SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = '{role}'"
            assert login(role, own[0], powers).stdout.strip() == "f", f"{role} has powers beyond its databases"
        wrong = run(["psql", "-X", "-U", "mlflow", "-d", "mlflow", "-tAc", "SELECT 1"], env={**base, "PGPASSWORD": "x"})
        assert wrong.returncode != 0, "a wrong password was accepted"
    finally:
        run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(work, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------
# MLflow authentication, the model key, read-only serving, reads need an account
# --------------------------------------------------------------------------------------------


def secret_of(env: dict[str, dict[str, Any]], name: str) -> tuple[str, str] | None:
    ref = env.get(name, {}).get("valueFrom", {}).get("secretKeyRef")
    return (ref["name"], ref["key"]) if ref else None


def test_mlflow_requires_users_and_its_admin_password_comes_from_a_secret() -> None:
    (container,) = find("Deployment", "mlflow")["spec"]["template"]["spec"]["containers"]
    assert "--app-name=basic-auth" in container["args"], "MLflow runs without authentication"
    env = env_of(container)
    assert secret_of(env, "MLFLOW_AUTH_ADMIN_PASSWORD"), "the admin password must come from a Secret"
    assert secret_of(env, "MLFLOW_AUTH_ADMIN_USERNAME") and secret_of(env, "MLFLOW_FLASK_SERVER_SECRET_KEY")
    ini = find("ConfigMap", "mlflow-auth")["data"]["basic_auth.ini"]
    assert "admin_password" not in ini, "no admin password in a ConfigMap"
    assert re.search(r"^default_permission = READ$", ini, re.MULTILINE), "authenticated users read, no more"
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"].startswith("/tmp/")


def test_serving_reads_mlflow_with_its_own_credentials_and_training_writes_with_others() -> None:
    credentials: dict[str, set[tuple[str, str] | None]] = {"serve": set(), "train": set()}
    for owner, group_name, group in ray_groups():
        env = env_of(group["template"]["spec"]["containers"][0])
        side = "serve" if owner.startswith("RayService") else "train"
        credentials[side].add(secret_of(env, "MLFLOW_TRACKING_PASSWORD"))
        assert secret_of(env, "MLFLOW_TRACKING_USERNAME"), f"{owner} {group_name}: no MLflow user"
    assert credentials == {
        "serve": {("cosmic-ray-mlflow-serving", "password")},
        "train": {("cosmic-ray-mlflow-trainer", "password")},
    }, credentials
    (job,) = by_kind("Job")
    env = env_of(job["spec"]["template"]["spec"]["containers"][0])
    assert secret_of(env, "MLFLOW_TRACKING_PASSWORD") == ("cosmic-ray-mlflow-admin", "password")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "jobs/mlflow_users.py"]
    assert (REPO / "jobs" / "mlflow_users.py").is_file()


@pytest.mark.parametrize("owner,group_name,group", ray_groups(), ids=[f"{o}-{g}" for o, g, _ in ray_groups()])
def test_every_ray_pod_gets_the_model_signing_key(owner: str, group_name: str, group: dict[str, Any]) -> None:
    env = env_of(group["template"]["spec"]["containers"][0])
    assert secret_of(env, "COSMIC_RAY_MODEL_SIGNING_KEY") == MODEL_KEY_SECRET, f"{owner} {group_name}"


def test_the_model_key_variable_is_the_one_the_loaders_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from cosmic_ray.core.config import Settings
    from cosmic_ray.learn.signing import signing_key

    monkeypatch.setenv("COSMIC_RAY_MODEL_SIGNING_KEY", "k" * 40)
    key = signing_key(Settings())
    assert key == b"k" * 40


def test_ray_jobs_run_where_the_model_key_is() -> None:
    """The RayJob and RayCronJob run their driver on the training cluster, which has the key."""
    for owner, job in ray_job_specs():
        assert not job.get("rayClusterSpec"), f"{owner}: a cluster of its own would need the key too"
        assert find("RayCluster", job["clusterSelector"]["ray.io/cluster"]), owner


def test_serving_pods_mount_the_shared_volume_read_only() -> None:
    checked = 0
    for owner, group_name, group in ray_groups():
        spec = group["template"]["spec"]
        claims = {v["name"] for v in spec.get("volumes", []) if v.get("persistentVolumeClaim")}
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                if mount["name"] in claims:
                    serving = owner.startswith("RayService")
                    assert mount.get("readOnly", False) is serving, f"{owner} {group_name}: {mount}"
                    checked += serving
    assert checked >= 2


def test_reads_need_an_account_and_the_cookie_is_secure_on_kubernetes(monkeypatch: pytest.MonkeyPatch) -> None:
    for owner, group_name, group in ray_groups():
        if not owner.startswith("RayService"):
            continue
        env = env_of(group["template"]["spec"]["containers"][0])
        for name in list(os.environ):
            if name.startswith("COSMIC_RAY_"):
                monkeypatch.delenv(name)
        for name, var in env.items():
            if name.startswith("COSMIC_RAY_") and "value" in var and "$(" not in var["value"]:
                monkeypatch.setenv(name, var["value"])
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert settings.read_requires_auth, f"{owner} {group_name}: anonymous reads"
        assert settings.cookie_secure, f"{owner} {group_name}: the session cookie is not Secure"
    (ingress,) = by_kind("Ingress")
    (tls,) = ingress["spec"]["tls"]
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    assert sorted(tls["hosts"]) == sorted(hosts), "every host of the Ingress is served over TLS"
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    docs = DOCS.read_text()
    assert re.search(rf"kubectl create secret tls {tls['secretName']} ", docs), "docs: how to create the TLS Secret"
    assert "COSMIC_RAY_COOKIE_SECURE" in docs and "COSMIC_RAY_READ_REQUIRES_AUTH" in docs


def test_every_secret_the_manifests_read_is_one_the_docs_create() -> None:
    secrets = referenced_secrets()
    expected = {
        SUPERUSER_CREDENTIALS,
        "cosmic-ray-db-mlflow",
        "cosmic-ray-db-store",
        "cosmic-ray-mlflow-admin",
        "cosmic-ray-mlflow-trainer",
        "cosmic-ray-mlflow-serving",
        MODEL_KEY_SECRET[0],
        "cosmic-ray-ray-auth",
    }
    assert expected <= set(secrets), expected - set(secrets)
    assert MODEL_KEY_SECRET[1] in secrets[MODEL_KEY_SECRET[0]]


# --------------------------------------------------------------------------------------------
# Supply chain: images pinned by digest at release, pip installs with hashes
# --------------------------------------------------------------------------------------------


def test_the_release_step_pins_every_image_by_digest(tmp_path: Path) -> None:
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed")
    resolver = tmp_path / "resolve"
    # Stands in for the registry (which cannot be reached offline): a digest derived from the name.
    resolver.write_text('#!/bin/sh\nprintf "sha256:%s\\n" "$(printf %s "$1" | sha256sum | cut -c1-64)"\n')
    resolver.chmod(0o755)
    out = subprocess.run(
        [str(K8S / "pin-images.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RESOLVE": str(resolver)},
    )
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert len(docs) == len(rendered()[1])
    images = [c["image"] for d in docs for _, t in iter_pod_templates(d) for c in t["spec"]["containers"]]
    assert images and all(re.fullmatch(r"[^@\s]+:[^@\s]+@sha256:[0-9a-f]{64}", i) for i in images), images
    assert any(i.startswith("postgres:") for i in images) and any("-gpu@" in i for i in images)
    failing = tmp_path / "fail"
    failing.write_text("#!/bin/sh\necho 'not found' \n")
    failing.chmod(0o755)
    out = subprocess.run(
        [str(K8S / "pin-images.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RESOLVE": str(failing)},
    )
    assert out.returncode != 0, "an image without a digest must stop the release"
    assert "k8s/pin-images.sh" in DOCS.read_text(), "docs: the release step"


def lock_pins() -> dict[str, tuple[str, list[str]]]:
    """Package -> (version, hashes) of requirements/image.lock."""
    text = (REPO / "requirements" / "image.lock").read_text()
    pins = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = re.match(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s\\;]+)", block)
        if match:
            name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            pins[name] = (match.group(3), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return pins


def test_the_image_installs_its_dependencies_with_hashes() -> None:
    runs = [" ".join(c.value) for c in dockerfile_commands() if c.cmd == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert any("--require-hashes" in r and "-r /tmp/image.lock" in r and "--no-deps" in r for r in installs)
    for install in installs:
        if "--require-hashes" in install or "--index-url" in install:
            continue
        assert "--no-deps" in install, f"installs without hashes: {install}"
    pins = lock_pins()
    assert pins and all(hashes for _, hashes in pins.values()), "every lock entry has hashes"
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in map(Requirement, [*deps, "psycopg2-binary", "setuptools", "wheel"]):
        name = re.sub(r"[-_.]+", "-", dep.name).lower()
        if name == "torch":
            continue  # from its own index (TORCH_INDEX_URL)
        assert name in pins, f"requirements/image.lock lacks {dep.name}"
        assert dep.specifier.contains(pins[name][0], prereleases=True), f"lock {name}=={pins[name][0]} vs {dep}"
    assert "torch" not in pins, "torch comes from TORCH_INDEX_URL, not the lock"
