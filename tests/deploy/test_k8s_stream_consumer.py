"""The alert stream consumer on Kubernetes (k8s/stream.yaml): one replica with the Recreate
strategy, `cosmic-ray stream --classify --publish` with brokers and topics from its ConfigMap and
SASL credentials from a Secret, the lake on the shared volume (read-write), the event store's own
role, the RayService head as its Ray address; the container arguments parse with the real CLI."""

from __future__ import annotations

import re
from typing import Any

import typer
from test_k8s_manifests import env_of, find

from cosmic_ray.core.config import Settings
from cosmic_ray.ops.cli import app


def _deployment() -> dict[str, Any]:
    deployment = find("Deployment", "cosmic-ray-stream")
    assert deployment, "no Deployment cosmic-ray-stream in the kustomization"
    return deployment


def _container() -> dict[str, Any]:
    (container,) = _deployment()["spec"]["template"]["spec"]["containers"]
    return container


def test_one_consumer_replaced_not_rolled() -> None:
    spec = _deployment()["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    labels = spec["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "cosmic-ray-stream"
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= 30  # SIGTERM commits the batch in hand


def _expand(arg: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], arg)


def test_the_arguments_are_a_valid_stream_command_fed_by_the_config_map() -> None:
    container = _container()
    assert container["command"] == ["cosmic-ray"]
    config_map = find("ConfigMap", "cosmic-ray-stream")
    assert config_map and {"configMapRef": {"name": "cosmic-ray-stream"}} in container["envFrom"]
    data = config_map["data"]
    args = [_expand(a, data) for a in container["args"]]
    assert args[0] == "stream" and "--classify" in args
    # the real CLI parses them (typer/click; nothing runs)
    command = typer.main.get_command(app)
    ctx = command.commands["stream"].make_context("stream", args[1:])  # type: ignore[attr-defined]
    assert ctx.params["bootstrap"] == data["KAFKA_BOOTSTRAP"]
    assert ctx.params["group"] == data["KAFKA_GROUP"] and ctx.params["classify"] is True
    assert ctx.params["publish"] == data["PUBLISH_TOPIC"]
    assert ",".join(ctx.params["topic"]) == data["KAFKA_TOPICS"]
    assert str(ctx.params["heartbeat_file"]).startswith("/tmp/")  # the writable emptyDir
    # the ConfigMap's COSMIC_RAY_* keys are settings the consumer reads
    for key in (k for k in data if k.startswith("COSMIC_RAY_")):
        assert key.removeprefix("COSMIC_RAY_").lower() in Settings.model_fields, key


def test_credentials_come_from_secrets_and_the_lake_is_the_shared_volume() -> None:
    container = _container()
    env = env_of(container)
    for var in ("COSMIC_RAY_KAFKA_SASL_USERNAME", "COSMIC_RAY_KAFKA_SASL_PASSWORD"):
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "cosmic-ray-kafka" and ref["optional"] is True  # brokers without SASL need none
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "cosmic-ray-ray-auth"
    assert env["COSMIC_RAY_RAY_ADDRESS"]["value"] == "ray://cosmic-ray-head-svc:10001"
    assert env["COSMIC_RAY_STORE_URL"]["value"].startswith("postgresql://cosmic_ray:$(STORE_DB_PASSWORD)@postgres")
    home = env["COSMIC_RAY_HOME"]["value"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == home]
    assert not mount.get("readOnly")  # the consumer fills the lake the nightly retrain reads
    volumes = {v["name"]: v for v in _deployment()["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == "cosmic-ray-home"


def test_the_probes_read_the_heartbeat_the_consumer_writes() -> None:
    container = _container()
    beat = next(a.split("=", 1)[1] for a in container["args"] if a.startswith("--heartbeat-file="))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert beat in " ".join(container[probe]["exec"]["command"]), probe
