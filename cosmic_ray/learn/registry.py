"""Model tracking and registry: the only module that imports mlflow.

Each training run logs its resolved config, per-epoch metrics and the model (an MLflow pyfunc
whose artifact is the classifier folder, signed by :mod:`cosmic_ray.learn.signing`), registers a
version, and moves the ``production`` alias only when the gate says the new version is better.

Models are read back from their signed bundle only (:func:`load_model`, :func:`load_model_uri`):
the bundle folder is downloaded, its signature checked, then its weights and arrays loaded with
formats that cannot run code. The pyfunc's pickled ``python_model`` is never loaded here, since
whoever can write to MLflow could replace it.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.pandas_dataset import from_pandas
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from cosmic_ray.core.config import Settings
from cosmic_ray.core.errors import ModelNotFoundError, UntrustedModelError
from cosmic_ray.core.lightcurve import rows_to_table
from cosmic_ray.learn.classifier import ProtoNetClassifier
from cosmic_ray.learn.evaluate.gate import gate_decision, paired_bootstrap
from cosmic_ray.learn.evaluate.report import flat_metrics
from cosmic_ray.learn.features import featurize
from cosmic_ray.learn.feedback import ExpertLabelling
from cosmic_ray.learn.signing import sign_bundle, signing_key, verify_bundle

log = logging.getLogger(__name__)

EXPERIMENT = "cosmic-ray"
PRODUCTION = "production"
#: What :class:`CosmicRayPyFunc` imports (its ``requirements.txt`` in MLflow).
_PYFUNC_PACKAGES = ("cosmic_ray", "torch", "numpy", "pandas", "pyarrow", "light-curve", "mlflow")
#: Where the classifier folder sits in a logged model (``artifacts={"bundle": ...}`` of the pyfunc).
BUNDLE_PATH = "artifacts/bundle"

SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec("string", "object_id"),
            ColSpec("double", "mjd"),
            ColSpec("string", "band"),
            ColSpec("double", "mag"),
            ColSpec("double", "magerr"),
        ]
    ),
    outputs=Schema([ColSpec("string", "object_id"), ColSpec("string", "label"), ColSpec("double", "open_set_score")]),
)


class CosmicRayPyFunc(PythonModel):
    """MLflow face of the classifier: points (long format) in, one row per object out.

    For MLflow's own tools only; cosmic-ray loads models from the signed bundle (:func:`load_model`).
    """

    def load_context(self, context: PythonModelContext) -> None:
        self.classifier = ProtoNetClassifier.load(context.artifacts["bundle"])

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        rows = model_input.assign(source="user", is_limit=False, night="").to_dict("records")
        arrays = featurize(rows_to_table(rows), self.classifier.max_len)
        preds = self.classifier.predict_features(arrays, neighbours=0)
        return pd.DataFrame(
            {
                "object_id": [p.object_id for p in preds],
                "label": [p.label for p in preds],
                "open_set_score": [p.open_set_score for p in preds],
            }
        )


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _registered(name: str, mv: ModelVersion) -> RegisteredModel:
    """A registered version as :class:`RegisteredModel`.

    Raises:
        ModelNotFoundError: the version was not logged from a run (not registered by cosmic-ray).
    """
    if mv.run_id is None:
        raise ModelNotFoundError(f"{name} version {mv.version} has no run: it was not registered by cosmic-ray")
    return RegisteredModel(name, str(mv.version), mv.run_id)


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    metric: str
    candidate: float
    production: float | None
    reason: str
    ci_low: float | None = None
    ci_high: float | None = None
    n_objects: int | None = None


@dataclass(frozen=True)
class GateData:
    """The fixed labelled validation objects (raw features) and the candidate's predictions on them."""

    object_id: np.ndarray
    truth: np.ndarray
    seq: np.ndarray
    length: np.ndarray
    feats: np.ndarray
    classes: list[str]
    candidate_pred: np.ndarray


def configure(settings: Settings) -> MlflowClient:
    """Point mlflow at the settings' tracking URI and make sure the experiment stores artifacts under home."""
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient()
    if client.get_experiment_by_name(EXPERIMENT) is None:
        location = None
        if settings.tracking_uri.startswith("sqlite:"):
            settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
            location = settings.mlflow_artifacts_dir.as_uri()
        client.create_experiment(EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT)
    return client


def log_and_register(
    settings: Settings,
    classifier: ProtoNetClassifier,
    params: dict[str, Any],
    history: list[dict[str, float]],
    metrics: dict[str, float],
    dataset: dict[str, Any] | None = None,
    artifacts: dict[str, Any] | None = None,
    figures: dict[str, Path] | None = None,
) -> RegisteredModel:
    """Log one training run (config, per-epoch metrics, model) and register a model version.

    The classifier folder is signed with the installation's model signing key
    (:func:`cosmic_ray.learn.signing.signing_key`; a local installation without one gets a new key
    file under home), so replicas and the gate can tell it from anything else written to MLflow.
    """
    key = signing_key(settings, create=True)
    configure(settings)
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params(_flatten(params))
        mlflow.log_dict(params, "config/resolved_config.json")
        for step, h in enumerate(history):
            mlflow.log_metrics({k: float(v) for k, v in h.items() if k != "epoch"}, step=step)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        if dataset:
            mlflow.log_dict(dataset, "data/dataset.json")
        for name, value in (artifacts or {}).items():
            mlflow.log_dict(value, f"evaluation/{name}.json")
        for path in (figures or {}).values():
            mlflow.log_artifact(str(path), "figures")
        bundle = classifier.save(Path(tmp) / "bundle")
        sign_bundle(bundle, key)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=CosmicRayPyFunc(),
            artifacts={"bundle": str(bundle)},
            signature=SIGNATURE,
            pip_requirements=_pip_requirements(),
            registered_model_name=settings.model_name,
        )
        version = str(info.registered_model_version)
    log.info("registered %s version %s (run %s)", settings.model_name, version, run.info.run_id)
    return RegisteredModel(settings.model_name, version, run.info.run_id)


def _pip_requirements() -> list[str]:
    """The pyfunc's requirements, declared: MLflow would otherwise infer them by loading the model in a
    subprocess (~20 s per registration on 2 busy cores)."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in _PYFUNC_PACKAGES]


def production_version(settings: Settings) -> RegisteredModel | None:
    client = configure(settings)
    try:
        mv = client.get_model_version_by_alias(settings.model_name, PRODUCTION)
    except mlflow.exceptions.MlflowException:
        return None
    return _registered(settings.model_name, mv)


def promote_if_better(
    settings: Settings,
    candidate: RegisteredModel,
    metric: str,
    min_gain: float = 0.0,
    validation: GateData | None = None,
    n_boot: int = 2000,
) -> GateDecision:
    """Move ``production`` to ``candidate`` if it beats the current production model.

    With ``validation`` (the fixed labelled validation objects), both models predict the same
    objects and a paired bootstrap decides (:func:`cosmic_ray.learn.evaluate.gate.paired_bootstrap`): the
    candidate wins when the lower end of the 95% interval of its gain exceeds ``min_gain``.
    Without it, the runs' logged ``metric`` values are compared. The decision and its figures are
    recorded on the candidate's run (metrics, tags and ``gate/decision.json``).

    The candidate is read back from MLflow and verified first; a production model whose bundle
    does not verify is never deserialised and is replaced by the candidate.

    Raises:
        UntrustedModelError: the candidate's stored bundle is unsigned, signed with another key or
            changed since the trainer signed it (the alias is not moved).
    """
    client = configure(settings)
    try:  # the candidate as MLflow holds it now: signed by the trainer and unchanged since
        load_model(settings, candidate.version)
    except UntrustedModelError as exc:
        reason = f"candidate v{candidate.version} refused: {exc}"
        client.set_tag(candidate.run_id, "gate.promoted", "False")
        client.set_tag(candidate.run_id, "gate.reason", reason)
        log.error("gate: %s", reason)
        raise
    current = production_version(settings)
    value = client.get_run(candidate.run_id).data.metrics[metric]
    figures: dict[str, Any] = {}
    if current is None:
        decision = GateDecision(True, metric, value, None, "no model in production yet")
    elif validation is not None:
        try:
            production, _ = load_model(settings, current.version)
            preds = production.predict_arrays(
                validation.object_id, validation.seq, validation.length, validation.feats, neighbours=0
            )
            prod_pred = np.asarray([p.label for p in preds], dtype=object)
        except UntrustedModelError as exc:  # never deserialised; the signed candidate replaces it
            log.error("production v%s refused (%s): promoting the candidate", current.version, exc)
            decision = GateDecision(True, metric, value, None, f"production v{current.version} refused: {exc}")
        except Exception as exc:  # a production model this code cannot load or run is replaced
            log.warning(
                "production v%s cannot score the validation set (%s): promoting the candidate", current.version, exc
            )
            decision = GateDecision(
                True, metric, value, None, f"production v{current.version} cannot be evaluated: {exc}"
            )
        else:
            result = paired_bootstrap(
                validation.truth, validation.candidate_pred, prod_pred, validation.classes, metric, n_boot=n_boot
            )
            better, reason = gate_decision(result, min_gain)
            decision = GateDecision(
                better,
                metric,
                result.candidate,
                result.production,
                f"{reason} (production v{current.version})",
                result.ci_low,
                result.ci_high,
                result.n_objects,
            )
            figures = result.to_dict()
    else:
        prod = client.get_run(current.run_id).data.metrics.get(metric, float("-inf"))
        better = value - prod > min_gain
        reason = f"{metric} {value:.4f} vs production v{current.version} {prod:.4f} (min gain {min_gain})"
        decision = GateDecision(better, metric, value, prod, ("beats " if better else "does not beat ") + reason)
    if decision.promoted:
        client.set_registered_model_alias(settings.model_name, PRODUCTION, candidate.version)
    client.set_tag(candidate.run_id, "gate.promoted", str(decision.promoted))
    client.set_tag(candidate.run_id, "gate.reason", decision.reason)
    client.log_metric(candidate.run_id, "gate_promoted", float(decision.promoted))
    for name in ("candidate", "production", "ci_low", "ci_high"):
        if getattr(decision, name) is not None:
            client.log_metric(candidate.run_id, f"gate_{name}", float(getattr(decision, name)))
    client.log_dict(
        candidate.run_id, {"decision": decision.__dict__, "paired_bootstrap": figures}, "gate/decision.json"
    )
    log.info("gate: %s", decision.reason)
    return decision


def log_evaluation(settings: Settings, run_id: str, report: dict[str, Any]) -> None:
    """Record an evaluation report on a run: flat metrics and the report as ``evaluation/report.json``."""
    client = configure(settings)
    for name, value in flat_metrics(report).items():
        client.log_metric(run_id, name, value)
    client.log_dict(run_id, report, "evaluation/report.json")


def run_of_model(settings: Settings, uri: str) -> str | None:
    """The run id behind a ``models:/name/version`` or ``models:/name@alias`` URI (None if unknown)."""
    client = configure(settings)
    try:
        body = uri.split("models:/", 1)[1]
        if "@" in body:
            name, alias = body.split("@", 1)
            return client.get_model_version_by_alias(name, alias).run_id
        name, version = body.rsplit("/", 1)
        return client.get_model_version(name, version).run_id
    except (IndexError, ValueError, mlflow.exceptions.MlflowException):
        return None


def _load_signed(settings: Settings, uri: str) -> ProtoNetClassifier:
    """Download the bundle folder of the model at ``uri``, verify its signature, then load it.

    Raises:
        ModelNotFoundError: no bundle at that URI.
        UntrustedModelError: the bundle is unsigned, signed with another key or changed since.
    """
    key = signing_key(settings)  # no key, no model: checked before any download
    with tempfile.TemporaryDirectory() as tmp:
        try:
            folder = mlflow.artifacts.download_artifacts(artifact_uri=f"{uri.rstrip('/')}/{BUNDLE_PATH}", dst_path=tmp)
        except (mlflow.exceptions.MlflowException, OSError) as exc:
            raise ModelNotFoundError(
                f"no model bundle at {uri} in {settings.tracking_uri}: run `cosmic-ray train` first or pass --model"
            ) from exc
        verify_bundle(folder, key)
        return ProtoNetClassifier.load(folder)


def load_model_uri(settings: Settings, uri: str) -> ProtoNetClassifier:
    """The classifier behind any MLflow model URI (``models:/cosmic-ray@production``, ``runs:/<id>/model``).

    Raises:
        ModelNotFoundError: nothing loadable at that URI.
        UntrustedModelError: its bundle is not signed by this installation's trainer (see :func:`load_model`).
    """
    configure(settings)
    return _load_signed(settings, uri)


def load_model(settings: Settings, version: str | None = None) -> tuple[ProtoNetClassifier, RegisteredModel]:
    """The classifier of a registered version (default: the one under the production alias).

    Only the version's bundle folder is read, after its signature is checked
    (:func:`cosmic_ray.learn.signing.verify_bundle`); MLflow's pickled pyfunc is never loaded.

    Raises:
        ModelNotFoundError: nothing is registered under that name/alias.
        UntrustedModelError: the bundle is unsigned, signed with another key, changed after signing,
            or holds anything but plain tensors and arrays; nothing of it was deserialised.
    """
    client = configure(settings)
    try:
        if version is None:
            mv = client.get_model_version_by_alias(settings.model_name, PRODUCTION)
        else:
            mv = client.get_model_version(settings.model_name, version)
    except mlflow.exceptions.MlflowException as exc:
        raise ModelNotFoundError(
            f"no model {settings.model_name}@{version or PRODUCTION} in {settings.tracking_uri}: run `cosmic-ray train` first"
        ) from exc
    registered = _registered(settings.model_name, mv)
    try:
        classifier = _load_signed(settings, registered.uri)
    except UntrustedModelError as exc:
        raise UntrustedModelError(f"{settings.model_name} version {registered.version}: {exc}") from exc
    return classifier, registered


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value, default=str) if isinstance(value, (list, tuple)) else str(value)
    return out


def log_dataset_record(settings: Settings, run_id: str, record: dict[str, Any]) -> None:
    """Attach the exact training window (file list + hashes + row counts) to a run as an MLflow dataset input."""
    configure(settings)
    files = pd.DataFrame(record["files"] or [{"path": "", "source": "", "night": "", "sha256": "", "rows": 0}])
    dataset = from_pandas(
        files, source=record["lake"], name=f"lake-window-{record['window']['as_of']}", digest=record["digest"]
    )
    with mlflow.start_run(run_id=run_id):
        mlflow.log_input(dataset, context="training")
        mlflow.log_dict(record, "data/window.json")


#: Where the expert answers a run trained on come from (a name, never the store's URL: it may hold a password).
EXPERT_LABELS_SOURCE = "cosmic_ray event store: expert_labels"


def log_expert_labels(settings: Settings, run_id: str, labelling: ExpertLabelling) -> None:
    """Record the expert answers a run trained on in its dataset lineage: an MLflow dataset input
    (context ``expert_labels``; the answers with who and when; digest = the label set's digest) and
    tags with the provenance (count, users, newest answer, digest)."""
    configure(settings)
    prov = labelling.provenance
    frame = pd.DataFrame(
        [
            {
                "object_id": a.object_id,
                "kind": a.kind,
                "class": a.class_name or "",
                "user": a.username,
                "created_at": a.created_at.isoformat() + "Z",
            }
            for a in labelling.answers
        ]
        or [{"object_id": "", "kind": "", "class": "", "user": "", "created_at": ""}]
    )
    dataset = from_pandas(frame, source=EXPERT_LABELS_SOURCE, name="expert-labels", digest=str(prov["digest"]))
    with mlflow.start_run(run_id=run_id):
        mlflow.log_input(dataset, context="expert_labels")
        mlflow.set_tags(
            {
                "expert_labels.count": str(prov["count"]),
                "expert_labels.users": ",".join(prov["users"]),  # type: ignore[arg-type]
                "expert_labels.newest": str(prov["newest"]),
                "expert_labels.digest": str(prov["digest"]),
            }
        )
        mlflow.log_dict(prov, "data/expert_labels.json")
