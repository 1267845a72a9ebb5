"""Offline checks of the KubeRay deployment: k8s/, Dockerfile, .dockerignore, docs/kubernetes.md.

No cluster and no network. What an API server and the KubeRay operator would reject, checked here:

* the kustomization renders (``kubectl kustomize``, else ``kustomize build``, else a small Python
  renderer of the few kustomize features k8s/ uses, which is compared with kubectl where both exist);
* custom resources (RayCluster, RayService, RayJob, RayCronJob) against the KubeRay v1.7 CRDs in
  ``../shared/schemas/kuberay`` (``spec.versions[].schema.openAPIV3Schema``), made strict the way
  ``kubectl apply`` is (server-side field validation rejects unknown fields), plus the spec rules the
  operator enforces itself (ray-operator/controllers/ray/utils/validation.go);
* built-in resources, and the pod templates inside the custom resources, against the Kubernetes
  OpenAPI schemas shipped by ``kubernetes-validate`` (strict);
* the wiring between objects: Services, ports, PVCs, Secrets, env, images, Ray versions, probes;
* the RayService's serveConfigV2 is configs/serve.yaml and is a valid Ray Serve config whose app
  builder exists; every job entrypoint exists; no secret value is committed.
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import os
import re
import shlex
import shutil
import subprocess
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

try:  # Dev dependencies of these tests: required, so that a missing one fails loudly.
    import dockerfile  # BuildKit's own Dockerfile parser
    import kubernetes_validate  # Kubernetes OpenAPI schemas, 1.25 to 1.37
except ImportError as exc:  # pragma: no cover
    raise ImportError(f"{exc.name} is missing: pip install kubernetes-validate dockerfile") from exc

REPO = Path(__file__).parents[2]
K8S = REPO / "k8s"
NAMESPACE = "cosmic-ray"
# Kubernetes versions the built-in objects must be valid for: an older supported one and the newest
# that kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", "latest")
RAY_KINDS = {"RayCluster", "RayService", "RayJob", "RayCronJob"}
CLUSTER_SCOPED_KINDS = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding"}
RAY_HEALTH_PATHS = {"/api/gcs_healthz", "/api/local_raylet_healthz", "/api/healthz", "/-/healthz"}
RAY_POD_ENV = (
    "COSMIC_RAY_HOME",
    "MLFLOW_TRACKING_URI",
    "COSMIC_RAY_STORE_URL",
    "RAY_AUTH_MODE",
    "RAY_USAGE_STATS_ENABLED",
)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# --------------------------------------------------------------------------------------------
# Loading and rendering
# --------------------------------------------------------------------------------------------


def load_docs(path: Path) -> list[dict[str, Any]]:
    """All non-empty YAML documents of a file."""
    return [doc for doc in yaml.load_all(path.read_text(), Loader=_YAML_LOADER) if doc]


def kustomize_py(root: Path) -> list[dict[str, Any]]:
    """Render a kustomization with the subset of kustomize that k8s/ uses.

    Supported: ``resources`` (files, or folders holding a kustomization), ``namespace``,
    ``labels`` with ``includeSelectors: false`` (metadata labels only) and ``images`` (any
    ``containers``/``initContainers`` list, custom resources included, as kustomize v5 does).
    Anything else raises, so that this fallback is faithful or loud, never silently wrong.

    Args:
        root: Folder holding ``kustomization.yaml``.

    Returns:
        The rendered objects, in resource order.
    """
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    known = {"apiVersion", "kind", "namespace", "labels", "images", "resources"}
    unsupported = set(kustomization) - known
    if unsupported:
        raise NotImplementedError(f"kustomize_py does not implement {sorted(unsupported)}; install kubectl")
    docs: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = root / entry
        docs.extend(kustomize_py(path) if path.is_dir() else load_docs(path))
    for doc in docs:
        meta = doc.setdefault("metadata", {})
        if "namespace" in kustomization and doc["kind"] not in CLUSTER_SCOPED_KINDS:
            meta["namespace"] = kustomization["namespace"]
        for label_set in kustomization.get("labels", []):
            if label_set.get("includeSelectors") or label_set.get("includeTemplates"):
                raise NotImplementedError("kustomize_py only adds labels to metadata; install kubectl")
            meta.setdefault("labels", {}).update(label_set["pairs"])
        for image in kustomization.get("images", []):
            for container in iter_containers(doc):
                container["image"] = _retag(container["image"], image)
    return docs


def _retag(ref: str, image: dict[str, str]) -> str:
    name, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "")
    if name != image["name"]:
        return ref
    name = image.get("newName", name)
    if "digest" in image:
        return f"{name}@{image['digest']}"
    tag = image.get("newTag", tag)
    return f"{name}:{tag}" if tag else name


def kustomize_version(exe: str) -> tuple[int, ...]:
    """The kustomize version of a kubectl or kustomize binary, (0,) if it does not say."""
    args = ["version", "--client", "-o", "json"] if Path(exe).name == "kubectl" else ["version"]
    out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60).stdout
    match = re.search(r"(?:kustomizeVersion\"?:\s*\"?|^)v?(\d+)\.(\d+)", out, re.MULTILINE)
    return tuple(int(n) for n in match.groups()) if match else (0,)


def render_with_cli(root: Path) -> tuple[str, list[dict[str, Any]]] | None:
    """Render with kubectl or kustomize (kustomize v5 or later) if installed, else None.

    Debian's kubernetes-client (kubectl 1.20) embeds kustomize 2, which predates the ``labels``
    field used here: such a kubectl is passed over.
    """
    for tool, args in (("kubectl", ["kustomize"]), ("kustomize", ["build"])):
        exe = shutil.which(tool)
        if exe and kustomize_version(exe) >= (5, 0):
            out = subprocess.run([exe, *args, str(root)], capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, f"{tool} {' '.join(args)} {root} failed:\n{out.stderr}"
            return tool, [d for d in yaml.load_all(out.stdout, Loader=_YAML_LOADER) if d]
    return None


@functools.cache
def rendered() -> tuple[str, tuple[dict[str, Any], ...]]:
    """The rendered kustomization and the name of the renderer that produced it."""
    result = render_with_cli(K8S)
    tool, docs = result if result else ("kustomize_py", kustomize_py(K8S))
    return tool, tuple(docs)


def job_docs() -> list[dict[str, Any]]:
    """Objects created on demand (kubectl create -f k8s/jobs/...), outside the kustomization."""
    return [doc for path in sorted((K8S / "jobs").glob("*.yaml")) for doc in load_docs(path)]


def all_docs() -> list[dict[str, Any]]:
    return [*rendered()[1], *job_docs()]


def doc_id(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata", {})
    return f"{doc['kind']}/{meta.get('name') or meta.get('generateName', '?')}"


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in all_docs() if doc["kind"] == kind]


def find(kind: str, name: str) -> dict[str, Any] | None:
    return next((d for d in rendered()[1] if d["kind"] == kind and d["metadata"]["name"] == name), None)


# --------------------------------------------------------------------------------------------
# Walking objects
# --------------------------------------------------------------------------------------------


def iter_containers(node: Any) -> Iterator[dict[str, Any]]:
    """Every container (and init container) anywhere in an object."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from (c for c in value if isinstance(c, dict))
            else:
                yield from iter_containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_containers(item)


def iter_pod_templates(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, PodTemplateSpec) for every pod template inside a custom resource."""

    def walk(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("template", "submitterPodTemplate") and isinstance(value, dict) and "spec" in value:
                    yield f"{where}.{key}", value
                else:
                    yield from walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                yield from walk(item, f"{where}[{i}]")

    yield from walk(doc.get("spec", {}), "spec")


def ray_cluster_specs() -> list[tuple[str, dict[str, Any]]]:
    """(owner, RayClusterSpec) of the RayCluster and of the RayService."""
    specs = [(doc_id(d), d["spec"]) for d in by_kind("RayCluster")]
    specs += [(doc_id(d), d["spec"]["rayClusterConfig"]) for d in by_kind("RayService")]
    return specs


def ray_groups() -> list[tuple[str, str, dict[str, Any]]]:
    """(owner, group name, group spec) for every head and worker group of every Ray cluster."""
    groups = []
    for owner, spec in ray_cluster_specs():
        groups.append((owner, "head", spec["headGroupSpec"]))
        groups += [(owner, g["groupName"], g) for g in spec.get("workerGroupSpecs", [])]
    return groups


def ray_job_specs() -> list[tuple[str, dict[str, Any]]]:
    """(owner, RayJobSpec) of every RayJob and of every RayCronJob's job template."""
    specs = [(doc_id(d), d["spec"]) for d in by_kind("RayJob")]
    specs += [(doc_id(d), d["spec"]["jobTemplate"]) for d in by_kind("RayCronJob")]
    return specs


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def quantity(value: Any) -> float:
    """A Kubernetes resource quantity ("500m", "4Gi", 2) as a number of base units."""
    factors = {
        "m": 1e-3,
        "k": 1e3,
        "K": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
    }
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    assert match and match.group(2) in ("", *factors), f"not a quantity: {value!r}"
    return float(match.group(1)) * factors.get(match.group(2), 1)


# --------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------


def kuberay_schema_dir() -> Path:
    """``<shared>/schemas/kuberay``, where shared is the parent of COSMIC_RAY_SHARED_DATA."""
    data = Path(os.environ.get("COSMIC_RAY_SHARED_DATA", "../shared/data")).expanduser()
    data = data if data.is_absolute() else REPO / data
    return data.parent / "schemas" / "kuberay"


def make_strict(schema: Any) -> Any:
    """Reject unknown fields, as the API server's strict field validation (kubectl's default) does.

    A CRD schema lists ``properties`` but, being structural, prunes what it does not list instead of
    rejecting it; ``kubectl apply`` asks for strict validation, which turns that into an error.
    """
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            make_strict(value)
    elif isinstance(schema, list):
        for value in schema:
            make_strict(value)
    return schema


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> strict validator, for every served version of every KubeRay CRD."""
    folder = kuberay_schema_dir()
    files = sorted(folder.glob("*.yaml"))
    if not files:
        pytest.fail(f"no KubeRay CRDs in {folder}: set COSMIC_RAY_SHARED_DATA or provide ../shared")
    validators = {}
    for path in files:
        for crd in load_docs(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served", True):
                    schema = make_strict(version["schema"]["openAPIV3Schema"])
                    validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators


def crd_errors(doc: dict[str, Any]) -> list[str]:
    validator = crd_validators().get((doc["apiVersion"], doc["kind"]))
    assert validator, f"no KubeRay CRD serves {doc['apiVersion']} {doc['kind']} ({doc_id(doc)})"
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(doc)]


def kubernetes_errors(doc: dict[str, Any], version: str) -> list[str]:
    """Errors of a built-in object against the Kubernetes schemas of ``version`` (strict)."""
    if version == "latest":
        version = kubernetes_validate.latest_version()
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path)) or '<root>'}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [exc.message]
    return []


DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
DNS_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
CRON_FIELD = re.compile(r"(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*")


def kuberay_operator_errors(doc: dict[str, Any]) -> list[str]:
    """Spec rules the KubeRay operator enforces beyond the CRD schema (validation.go, KubeRay 1.7)."""
    errors = []
    meta = doc["metadata"]
    name = meta.get("name") or meta["generateName"] + "x" * 5
    max_len = {"RayCluster": 53, "RayService": 47, "RayJob": 47, "RayCronJob": 47}[doc["kind"]]
    if len(name) > max_len or not DNS_1035.fullmatch(name):
        errors.append(f"name {name!r}: must be a DNS-1035 label of at most {max_len} characters")
    spec = doc["spec"]
    clusters = {"RayCluster": [spec], "RayService": [spec.get("rayClusterConfig")]}.get(doc["kind"], [])
    jobs = {"RayJob": [spec], "RayCronJob": [spec.get("jobTemplate")]}.get(doc["kind"], [])
    clusters += [job["rayClusterSpec"] for job in jobs if job.get("rayClusterSpec")]
    for cluster in clusters:
        groups = [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
        for group in groups:
            params = group.get("rayStartParams", {})
            if group.get("resources") and any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")):
                errors.append("resources set both in rayStartParams and in the group's resources")
            if "labels" in params:
                errors.append("rayStartParams['labels'] is not supported; use the group's labels")
            if not group["template"]["spec"].get("containers"):
                errors.append("a group has no container")
        if cluster.get("authOptions", {}).get("mode") == "token":
            version = tuple(int(p) for p in re.findall(r"\d+", cluster.get("rayVersion", ""))[:3])
            if version < (2, 52, 0):
                errors.append("authOptions.mode token needs rayVersion >= 2.52.0")
    for job in jobs:
        selector = job.get("clusterSelector") or {}
        if not job.get("rayClusterSpec") and not selector:
            errors.append("one of rayClusterSpec or clusterSelector must be set")
        if selector and not selector.get("ray.io/cluster"):
            errors.append("clusterSelector needs the key ray.io/cluster")
        if job.get("suspend") and (selector or not job.get("shutdownAfterJobFinishes")):
            errors.append("suspend needs shutdownAfterJobFinishes and no clusterSelector")
        if not job.get("shutdownAfterJobFinishes") and job.get("ttlSecondsAfterFinished", 0) > 0:
            errors.append("ttlSecondsAfterFinished needs shutdownAfterJobFinishes")
        try:
            yaml.safe_load(job.get("runtimeEnvYAML", "") or "{}")
        except yaml.YAMLError as exc:
            errors.append(f"runtimeEnvYAML is not YAML: {exc}")
    if doc["kind"] == "RayCronJob":
        fields = spec["schedule"].split()
        if not spec["schedule"].startswith("@") and (len(fields) != 5 or not all(map(CRON_FIELD.fullmatch, fields))):
            errors.append(f"schedule {spec['schedule']!r} is not a standard 5-field cron expression")
    return errors


# --------------------------------------------------------------------------------------------
# (3) The kustomization renders
# --------------------------------------------------------------------------------------------


def test_kustomization_renders_everything_into_the_namespace() -> None:
    tool, docs = rendered()
    kinds = {d["kind"] for d in docs}
    expected = {
        "Namespace",
        "PersistentVolumeClaim",
        "StatefulSet",
        "Deployment",
        "Service",
        "ConfigMap",
        "RayCluster",
        "RayService",
        "RayCronJob",
    }
    assert expected <= kinds, f"{tool}: missing {expected - kinds}"
    assert find("Namespace", NAMESPACE), f"{tool}: no Namespace {NAMESPACE}"
    ids = [doc_id(d) for d in docs]
    assert len(ids) == len(set(ids)), f"duplicate objects: {ids}"
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED_KINDS:
            assert doc["metadata"].get("namespace") == NAMESPACE, doc_id(doc)
        assert doc["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "cosmic-ray", doc_id(doc)
    for doc in job_docs():
        assert doc["metadata"].get("namespace") == NAMESPACE, f"{doc_id(doc)}: created outside kustomize"


def test_python_renderer_matches_kubectl() -> None:
    """The fallback renderer (used where neither kubectl nor kustomize exists) renders k8s/ as kubectl does."""
    result = render_with_cli(K8S)
    if result is None:
        pytest.skip("neither kubectl nor kustomize is installed: nothing to compare with")
    key = lambda d: (d["apiVersion"], d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(kustomize_py(K8S), key=key) == sorted(result[1], key=key)


def test_every_manifest_is_in_the_kustomization_or_created_on_demand() -> None:
    listed = {(K8S / r).resolve() for r in yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]}
    for path in K8S.rglob("*.y*ml"):
        if path.name != "kustomization.yaml" and (K8S / "jobs") not in path.parents:
            assert path.resolve() in listed, f"{path.relative_to(REPO)} is not in k8s/kustomization.yaml"


# --------------------------------------------------------------------------------------------
# (1) Custom resources against the KubeRay v1.7 CRDs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", [d for d in all_docs() if d["kind"] in RAY_KINDS], ids=doc_id)
def test_custom_resource_matches_kuberay_crd(doc: dict[str, Any]) -> None:
    assert crd_errors(doc) == []
    assert kuberay_operator_errors(doc) == []


def test_every_kuberay_kind_is_used() -> None:
    assert {d["kind"] for d in all_docs()} >= RAY_KINDS


def test_crd_validation_rejects_bad_custom_resources() -> None:
    """The CRD check can fail: unknown fields, wrong types and missing fields are caught."""
    cluster = copy.deepcopy(find("RayCluster", "cosmic-ray-train"))
    assert cluster and crd_errors(cluster) == []
    unknown = copy.deepcopy(cluster)
    unknown["spec"]["workerGroupSpecs"][0]["maxReplica"] = 4
    wrong_type = copy.deepcopy(cluster)
    wrong_type["spec"]["enableInTreeAutoscaling"] = "yes"
    missing = copy.deepcopy(cluster)
    del missing["spec"]["workerGroupSpecs"][0]["groupName"]
    nested = copy.deepcopy(cluster)
    nested["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resource"] = {}
    for bad in (unknown, wrong_type, missing, nested):
        assert crd_errors(bad), "a broken RayCluster passed the CRD check"
    service = copy.deepcopy(find("RayService", "cosmic-ray"))
    service["spec"]["serveConfigV2"] = {"applications": []}
    assert crd_errors(service)


def test_operator_rules_reject_bad_specs() -> None:
    cron = copy.deepcopy(find("RayCronJob", "cosmic-ray-nightly"))
    cron["spec"]["schedule"] = "every night"
    cron["spec"]["jobTemplate"]["ttlSecondsAfterFinished"] = 60
    cron["metadata"]["name"] = "Nightly_Retrain"
    assert len(kuberay_operator_errors(cron)) == 3


# --------------------------------------------------------------------------------------------
# (2) Built-in resources against the Kubernetes schemas
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("doc", [d for d in rendered()[1] if d["kind"] not in RAY_KINDS], ids=doc_id)
def test_builtin_resource_matches_kubernetes_schema(doc: dict[str, Any], version: str) -> None:
    assert kubernetes_errors(doc, version) == []
    name = doc["metadata"]["name"]
    pattern = DNS_1035 if doc["kind"] == "Service" else DNS_1123
    assert pattern.fullmatch(name) and len(name) <= 63, f"{doc_id(doc)}: invalid name"


@pytest.mark.parametrize("doc", [d for d in all_docs() if d["kind"] in RAY_KINDS], ids=doc_id)
def test_pod_templates_in_custom_resources_match_kubernetes_schema(doc: dict[str, Any]) -> None:
    """The pod templates that KubeRay turns into Pods, checked as core/v1 PodTemplates."""
    templates = list(iter_pod_templates(doc))
    assert templates, f"{doc_id(doc)} has no pod template"
    for where, template in templates:
        pod_template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template}
        for version in KUBERNETES_VERSIONS:
            assert kubernetes_errors(pod_template, version) == [], f"{doc_id(doc)} {where}"


def test_kubernetes_validation_rejects_bad_objects() -> None:
    """The Kubernetes check can fail: an unknown field and a wrong type are caught."""
    deployment = copy.deepcopy(find("Deployment", "mlflow"))
    assert deployment and kubernetes_errors(deployment, "latest") == []
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    assert kubernetes_errors(deployment, "latest")
    service = copy.deepcopy(find("Service", "mlflow"))
    service["spec"]["ports"][0]["port"] = "five thousand"
    assert kubernetes_errors(service, "latest")
    unknown_kind = {"apiVersion": "v1", "kind": "Podd", "metadata": {"name": "x"}}
    assert kubernetes_errors(unknown_kind, "latest")


# --------------------------------------------------------------------------------------------
# (4) serveConfigV2 is configs/serve.yaml and a valid Ray Serve config; (5) its app builder exists
# --------------------------------------------------------------------------------------------


def serve_config() -> dict[str, Any]:
    (service,) = by_kind("RayService")
    assert isinstance(service["spec"]["serveConfigV2"], str)
    return yaml.safe_load(service["spec"]["serveConfigV2"])


def test_serve_config_is_configs_serve_yaml() -> None:
    assert serve_config() == yaml.safe_load((REPO / "configs" / "serve.yaml").read_text()), (
        "k8s/rayservice.yaml serveConfigV2 differs from configs/serve.yaml: copy the file into it"
    )


def test_serve_config_is_a_ray_serve_config() -> None:
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import DeploymentSchema, ServeApplicationSchema, ServeDeploySchema

    config = serve_config()
    parsed = ServeDeploySchema.model_validate(config)
    assert parsed.applications
    # The schema ignores unknown keys: check names too (old ones like max_concurrent_queries are gone).
    assert set(config) <= set(ServeDeploySchema.model_fields)
    for app in config["applications"]:
        assert set(app) <= set(ServeApplicationSchema.model_fields), app["name"]
        for deployment in app.get("deployments", []):
            assert set(deployment) <= set(DeploymentSchema.model_fields), deployment["name"]
            assert set(deployment.get("autoscaling_config", {})) <= set(AutoscalingConfig.model_fields)
            batch = deployment.get("user_config", {}).get("max_batch_size")
            if batch and "max_ongoing_requests" in deployment:
                assert deployment["max_ongoing_requests"] >= batch, deployment["name"]


@pytest.mark.parametrize("app", serve_config()["applications"], ids=lambda a: a["name"])
def test_serve_app_builder_exists_and_takes_the_args(app: dict[str, Any]) -> None:
    module_name, _, attr = app["import_path"].partition(":")
    module_file = REPO.joinpath(*module_name.split(".")).with_suffix(".py")
    assert module_file.is_file(), f"{app['import_path']}: {module_file.relative_to(REPO)} does not exist"
    module = importlib.import_module(module_name)
    builder = getattr(module, attr, None)
    assert callable(builder), f"{app['import_path']}: {module_name} has no callable {attr}"
    # What `serve deploy` and the RayService do with it: check the signature, validate `args`
    # (against the builder's pydantic annotation, if any), call it, expect an Application.
    # Building binds deployments; it starts nothing.
    from ray.serve import Application
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    built = call_user_app_builder_with_args_if_necessary(builder, app.get("args", {}))
    assert isinstance(built, Application), f"{app['import_path']} returned {type(built)}"


# --------------------------------------------------------------------------------------------
# (6) Job entrypoints exist; the training cluster they target is defined
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("owner,job", ray_job_specs(), ids=[o for o, _ in ray_job_specs()])
def test_job_entrypoint_files_exist(owner: str, job: dict[str, Any]) -> None:
    argv = shlex.split(job["entrypoint"])
    assert argv[0] == "python", f"{owner}: run the entrypoint with the image's python"
    files = [a for a in argv[1:] if re.search(r"\.(py|ya?ml|json)$", a)]
    assert files, f"{owner}: no script in {job['entrypoint']!r}"
    for name in files:
        assert (REPO / name).is_file(), f"{owner}: {name} (in {job['entrypoint']!r}) does not exist in the repo"
        assert Path(name).parts[0] in dockerfile_app_dirs(), f"{owner}: the Dockerfile does not copy {name}"
    # Relative paths resolve in the job's working_dir: the image's app folder.
    runtime_env = yaml.safe_load(job.get("runtimeEnvYAML") or "{}")
    assert runtime_env.get("working_dir") == final_workdir(), f"{owner}: runtimeEnvYAML working_dir"


@pytest.mark.parametrize("owner,job", ray_job_specs(), ids=[o for o, _ in ray_job_specs()])
def test_jobs_target_the_training_cluster_safely(owner: str, job: dict[str, Any]) -> None:
    cluster = job["clusterSelector"]["ray.io/cluster"]
    assert find("RayCluster", cluster), f"{owner}: no RayCluster {cluster} in the kustomization"
    # With a clusterSelector KubeRay deletes the selected cluster on a retry or at shutdown.
    assert job.get("backoffLimit", 0) == 0 and not job.get("shutdownAfterJobFinishes"), owner
    env = env_of(job["submitterPodTemplate"]["spec"]["containers"][0])
    assert env["RAY_AUTH_MODE"]["value"] == "token" and "RAY_AUTH_TOKEN" in env, f"{owner}: submitter lacks the token"


def test_nightly_schedule_is_valid() -> None:
    (cron,) = by_kind("RayCronJob")
    zoneinfo.ZoneInfo(cron["spec"].get("timeZone", "Etc/UTC"))
    assert not cron["spec"].get("suspend")


# --------------------------------------------------------------------------------------------
# (7) No secret value is committed; every Secret the manifests need is documented
# --------------------------------------------------------------------------------------------


def committed_docs() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.rglob("*.y*ml")):
        for doc in load_docs(path):
            yield path, doc


def iter_env(node: Any) -> Iterator[dict[str, Any]]:
    for container in iter_containers(node):
        yield from container.get("env", [])


def test_no_secret_value_is_committed() -> None:
    secret_name = re.compile(r"PASSWORD|TOKEN|SECRET|CREDENTIAL|API_?KEY", re.IGNORECASE)
    url_with_password = re.compile(r"://[^/:@\s]+:(?!\$\()[^@\s]+@")
    for path, doc in committed_docs():
        where = path.relative_to(REPO)
        if doc.get("kind") == "Secret":
            assert not doc.get("data") and not doc.get("stringData"), f"{where}: Secret {doc_id(doc)} holds values"
        for generator in doc.get("secretGenerator", []):
            assert not generator.get("literals"), f"{where}: secretGenerator literals"
            for entry in [*generator.get("envs", []), *generator.get("files", [])]:
                tracked = subprocess.run(
                    ["git", "ls-files", str(K8S / entry.split("=")[-1])], cwd=REPO, capture_output=True, text=True
                ).stdout
                assert not tracked, f"{where}: secretGenerator reads the committed file {entry}"
        for var in iter_env(doc):
            if secret_name.search(var["name"]):
                assert "value" not in var, f"{where}: {var['name']} has a literal value; use a secretKeyRef"
        for text in re.findall(r"\w+://\S+", yaml.safe_dump(doc, width=10_000)):
            assert not url_with_password.search(text), f"{where}: password in URL {text}"


def referenced_secrets() -> dict[str, set[str]]:
    """Secret name -> keys, for every secret the manifests read."""
    secrets: dict[str, set[str]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("secretKeyRef")
            if isinstance(ref, dict):
                secrets.setdefault(ref["name"], set()).add(ref["key"])
            if "authOptions" in node and node["authOptions"].get("secretName"):
                secrets.setdefault(node["authOptions"]["secretName"], set()).add("auth_token")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for doc in all_docs():
        walk(doc)
    return secrets


def test_every_secret_is_documented_not_defined() -> None:
    docs = (REPO / "docs" / "kubernetes.md").read_text()
    secrets = referenced_secrets()
    assert secrets, "the manifests read no Secret: where do the credentials come from?"
    defined = {d["metadata"]["name"] for d in rendered()[1] if d["kind"] == "Secret"}
    for name, keys in secrets.items():
        assert name not in defined, f"Secret {name} is defined in k8s/: the user must create it"
        command = re.search(rf"kubectl create secret generic {re.escape(name)}\b[^\n]*(\\\n[^\n]*)*", docs)
        assert command, f"docs/kubernetes.md does not show `kubectl create secret generic {name}`"
        for key in keys:
            assert f"--from-literal={key}=" in command.group(0), f"docs: secret {name} lacks key {key}"


# --------------------------------------------------------------------------------------------
# Images, Ray versions and the Dockerfile
# --------------------------------------------------------------------------------------------


def project_version() -> str:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def dockerfile_commands() -> list[Any]:
    return list(dockerfile.parse_file(str(REPO / "Dockerfile")))


def dockerfile_app_dirs() -> set[str]:
    """Top-level folders the Dockerfile copies into the app folder (the pods' workingDir)."""
    workdir = final_workdir()
    copies = [c.value[-1] for c in dockerfile_commands() if c.cmd == "COPY"]
    return {Path(dest).name for dest in copies if dest.startswith(workdir)}


def final_workdir() -> str:
    return [c.value[0] for c in dockerfile_commands() if c.cmd == "WORKDIR"][-1]


def test_ray_version_is_the_same_everywhere() -> None:
    import ray

    commands = dockerfile_commands()
    args = dict(c.value[0].split("=", 1) for c in commands if c.cmd == "ARG" and "=" in c.value[0])
    base = [c.value[0] for c in commands if c.cmd == "FROM"][-1]  # the final stage is the image
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
    assert base == f"rayproject/ray:{ray.__version__}-py311", f"Dockerfile FROM {base}"
    for owner, spec in ray_cluster_specs():
        assert spec["rayVersion"] == ray.__version__, owner
    docs = (REPO / "docs" / "kubernetes.md").read_text()
    assert f"RAY_IMAGE=rayproject/ray:{ray.__version__}-py311-gpu" in docs, "docs: how to build the GPU image"


def test_every_pod_runs_the_project_image() -> None:
    version = project_version()
    for doc in all_docs():
        if doc["kind"] == "StatefulSet" and doc["metadata"]["name"] == "postgres":
            continue
        for container in iter_containers(doc):
            gpu = "nvidia.com/gpu" in container.get("resources", {}).get("limits", {})
            expected = f"cosmic-ray:{version}-gpu" if gpu else f"cosmic-ray:{version}"
            assert container["image"] == expected, f"{doc_id(doc)} {container['name']}: {container['image']}"


def test_dockerfile_installs_the_project_and_copies_what_jobs_need() -> None:
    commands = dockerfile_commands()
    runs = " ".join(" ".join(c.value) for c in commands if c.cmd == "RUN")
    assert re.search(r"pip install (--[-\w]+ )*\.(\s|$)", runs), "the Dockerfile must `pip install .` the project"
    assert {"configs", "jobs"} <= dockerfile_app_dirs()
    # the wheel's build step needs its own script, the pages and the npm files they load
    build_inputs = {c.value[-2] for c in commands if c.cmd == "COPY"} | {
        src for c in commands if c.cmd == "COPY" for src in c.value[:-1]
    }
    assert {"setup.py", "web", "/web/node_modules"} <= build_inputs, build_inputs
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".venv", ".git"} <= set(ignored), ".dockerignore must keep .venv and .git out of the build"
    for command in commands:
        if command.cmd == "COPY" and not any(f.startswith("--from") for f in command.flags):
            for source in command.value[:-1]:
                assert (REPO / source).exists(), f"Dockerfile copies {source}, which does not exist"
                assert source not in ignored, f"Dockerfile copies {source}, which .dockerignore excludes"
    for _, group_name, group in ray_groups():
        for container in group["template"]["spec"]["containers"]:
            assert container.get("workingDir") == final_workdir(), f"{group_name}: workingDir"


# --------------------------------------------------------------------------------------------
# Wiring: env, volumes, services, ports, probes, resources
# --------------------------------------------------------------------------------------------


def service_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url.replace("$(", "").replace(")", ""))
    return parts.hostname or "", parts.port or 0


def assert_service_exists(host: str, port: int, what: str) -> None:
    service = find("Service", host)
    assert service, f"{what}: no Service {host}"
    assert port in [p["port"] for p in service["spec"]["ports"]], f"{what}: Service {host} has no port {port}"


@pytest.mark.parametrize("owner,group_name,group", ray_groups(), ids=[f"{o}-{g}" for o, g, _ in ray_groups()])
def test_ray_pods_get_the_project_environment(owner: str, group_name: str, group: dict[str, Any]) -> None:
    spec = group["template"]["spec"]
    ray = spec["containers"][0]
    env = env_of(ray)
    where = f"{owner} {group_name}"
    assert set(RAY_POD_ENV) <= set(env), f"{where}: missing {set(RAY_POD_ENV) - set(env)}"
    assert env["RAY_AUTH_MODE"]["value"] == "token" and env["RAY_USAGE_STATS_ENABLED"]["value"] == "0", where
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000", where
    assert_service_exists(*service_address(env["MLFLOW_TRACKING_URI"]["value"]), where)
    store_url = env["COSMIC_RAY_STORE_URL"]["value"]
    assert store_url.startswith("postgresql://"), where
    assert_service_exists(*service_address(store_url), where)
    # $(VAR) references only work for variables defined earlier in the same list.
    names = [e["name"] for e in ray["env"]]
    for i, var in enumerate(ray["env"]):
        for ref in re.findall(r"\$\((\w+)\)", var.get("value", "")):
            assert ref in names[:i], f"{where}: {var['name']} uses $({ref}) before it is defined"
    mounts = {m["mountPath"]: m["name"] for m in ray.get("volumeMounts", [])}
    home = env["COSMIC_RAY_HOME"]["value"]
    assert home in mounts, f"{where}: COSMIC_RAY_HOME {home} is not a mounted volume"
    volume = {v["name"]: v for v in spec.get("volumes", [])}[mounts[home]]
    claim = volume["persistentVolumeClaim"]["claimName"]
    pvc = find("PersistentVolumeClaim", claim)
    assert pvc and "ReadWriteMany" in pvc["spec"]["accessModes"], f"{where}: {claim} must be ReadWriteMany"


@pytest.mark.parametrize("owner,group_name,group", ray_groups(), ids=[f"{o}-{g}" for o, g, _ in ray_groups()])
def test_ray_groups_are_sized_explicitly(owner: str, group_name: str, group: dict[str, Any]) -> None:
    where = f"{owner} {group_name}"
    ray = group["template"]["spec"]["containers"][0]
    requests, limits = ray["resources"]["requests"], ray["resources"]["limits"]
    for resource in ("cpu", "memory"):
        assert quantity(requests[resource]) == quantity(limits[resource]), f"{where}: {resource} requests != limits"
    object_store = quantity(group["rayStartParams"]["object-store-memory"])
    assert 2**26 <= object_store <= 0.5 * quantity(limits["memory"]), f"{where}: object store vs memory limit"
    if group_name != "head":
        assert 0 <= group["minReplicas"] <= group.get("replicas", group["minReplicas"]) <= group["maxReplicas"], where
        assert group["maxReplicas"] > group["minReplicas"], f"{where}: nothing to autoscale"


@pytest.mark.parametrize("owner,spec", ray_cluster_specs(), ids=[o for o, _ in ray_cluster_specs()])
def test_ray_clusters_autoscale_and_expose_dashboard_and_metrics(owner: str, spec: dict[str, Any]) -> None:
    assert spec["enableInTreeAutoscaling"] is True, owner
    assert spec["authOptions"]["mode"] == "token", owner
    assert spec["autoscalerOptions"]["resources"]["limits"], f"{owner}: autoscaler sidecar unsized"
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0", owner
    ports = {p["name"]: p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    assert ports["dashboard"] == 8265 and ports["metrics"] == int(head["rayStartParams"]["metrics-export-port"]), owner
    assert spec["workerGroupSpecs"], f"{owner}: no worker group"


def test_training_cluster_has_cpu_and_gpu_workers() -> None:
    cluster = find("RayCluster", "cosmic-ray-train")
    gpus = {
        g["groupName"]: quantity(g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu", 0))
        for g in cluster["spec"]["workerGroupSpecs"]
    }
    assert any(n == 0 for n in gpus.values()) and any(n >= 1 for n in gpus.values()), gpus


def test_every_long_running_container_has_probes() -> None:
    long_running = {"Deployment", "StatefulSet", "RayCluster", "RayService"}  # not job submitters
    for doc in rendered()[1]:
        if doc["kind"] not in long_running:
            continue
        for container in iter_containers(doc):
            for probe_name in ("readinessProbe", "livenessProbe"):
                probe = container.get(probe_name)
                assert probe, f"{doc_id(doc)} {container['name']}: no {probe_name}"
                http = probe.get("httpGet")
                if http and isinstance(http["port"], str):
                    names = [p["name"] for p in container.get("ports", [])]
                    assert http["port"] in names, f"{doc_id(doc)} {container['name']}: no port {http['port']}"
                if http and doc["kind"] in RAY_KINDS:
                    assert http["path"] in RAY_HEALTH_PATHS, f"{doc_id(doc)}: {http['path']} is not a Ray health path"


def test_ray_health_paths_answer_without_the_auth_token() -> None:
    """The probes run without Ray's token: the paths they use must be public in this Ray."""
    from ray.dashboard import http_server_agent, http_server_head

    head_source = inspect.getsource(http_server_head)
    for path in RAY_HEALTH_PATHS - {"/api/local_raylet_healthz"}:
        assert f'"{path}"' in head_source.split("public_exact_paths", 1)[1].split("}", 1)[0], path
    assert "/api/local_raylet_healthz" in http_server_agent.PUBLIC_EXACT_PATHS


def test_rayservice_workers_are_ready_only_when_serve_answers() -> None:
    (service,) = by_kind("RayService")
    for group in service["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
        probe = group["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]
        assert (probe["path"], probe["port"]) == ("/-/healthz", 8000), group["groupName"]


def test_services_select_pods_and_target_their_ports() -> None:
    workloads = [d for d in rendered()[1] if d["kind"] in ("Deployment", "StatefulSet")]
    for service in by_kind("Service"):
        selector = service["spec"]["selector"]
        templates = [w["spec"]["template"] for w in workloads]
        pods = [t for t in templates if selector.items() <= t["metadata"]["labels"].items()]
        assert pods, f"{doc_id(service)} selects no pod"
        ports = {p.get("name") for pod in pods for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports | {port["port"]}, f"{doc_id(service)}: targetPort {port['targetPort']}"
    for workload in workloads:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items(), doc_id(workload)
        if workload["kind"] == "StatefulSet":
            assert find("Service", workload["spec"]["serviceName"]), doc_id(workload)


def test_referenced_claims_and_configmaps_exist() -> None:
    for doc in all_docs():
        for where, template in [*iter_pod_templates(doc), ("spec.template", doc.get("spec", {}).get("template"))]:
            for volume in (template or {}).get("spec", {}).get("volumes", []):
                claim = volume.get("persistentVolumeClaim", {}).get("claimName")
                config_map = volume.get("configMap", {}).get("name")
                assert not claim or find("PersistentVolumeClaim", claim), f"{doc_id(doc)} {where}: no PVC {claim}"
                assert not config_map or find("ConfigMap", config_map), f"{doc_id(doc)} {where}: no {config_map}"


def test_mlflow_server_uses_postgres_and_the_artifact_volume() -> None:
    from mlflow.server.security_utils import is_allowed_host_header

    deployment = find("Deployment", "mlflow")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    # `sh -c SCRIPT mlflow ARGS...`: the script fills the auth config in, then `exec mlflow server "$@"`.
    assert container["command"] == ["sh", "-c"] and 'exec mlflow server "$@"' in container["args"][0]
    argv = ["mlflow", "server", *container["args"][2:]]
    options = dict(a.removeprefix("--").split("=", 1) for a in argv[2:] if "=" in a)
    store = options["backend-store-uri"]
    assert store.startswith("postgresql://") and store.endswith("/mlflow")
    assert_service_exists(*service_address(store), "mlflow backend store")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert options["artifacts-destination"] in mounts
    assert "--serve-artifacts" in argv and options["host"] == "0.0.0.0"
    assert_service_exists("mlflow", int(options["port"]), "mlflow")
    # MLflow 3 answers 403 to Host headers it does not allow: in-cluster and port-forward must pass.
    allowed = env_of(container)["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")
    for host in ("mlflow:5000", f"mlflow.{NAMESPACE}.svc.cluster.local:5000", "localhost:5000", "127.0.0.1:5000"):
        assert is_allowed_host_header(allowed, host), host
    assert not is_allowed_host_header(allowed, "attacker.example:5000")
