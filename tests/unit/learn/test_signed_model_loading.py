"""Whoever writes to MLflow cannot run code in a replica or the gate (issue 18, item 1).

A real MLflow registry (SQLite, artifacts under a temporary home) holds versions of a tiny real
classifier; the tests rewrite their stored files as an attacker with write access to MLflow
would: a pickled payload in the pyfunc's ``python_model.pkl`` or in ``weights.pt``, changed
weights, a removed signature, a signature made with another key. The registry's loader, the model
replica (the Serve deployment's class, constructed outside Serve) and the retrain gate refuse
each one, and no payload ever runs. No Ray cluster is needed.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from cosmic_ray.core.config import Settings
from cosmic_ray.core.errors import UntrustedModelError
from cosmic_ray.learn import registry
from cosmic_ray.learn.classifier import ProtoNetClassifier
from cosmic_ray.learn.features import feature_names
from cosmic_ray.learn.model import LightCurveEncoder, ProtoNetConfig
from cosmic_ray.learn.signing import KEY_ENV, SIGNATURE_FILE, sign_bundle
from cosmic_ray.serve.replica import ProtoNetModel


class Payload:
    """Unpickling this creates ``marker``: proof that a loader ran code from MLflow's files."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def tiny_classifier() -> ProtoNetClassifier:
    nf = len(feature_names())
    arch = ProtoNetConfig(seq_channels=9, n_feats=nf, hidden=8, embed_dim=3)
    return ProtoNetClassifier(
        arch=arch,
        state_dict=LightCurveEncoder(arch).state_dict(),
        class_names=["a", "b"],
        prototypes=np.random.default_rng(0).normal(size=(2, arch.out_dim)).astype(np.float32),
        feat_mean=np.zeros(nf, np.float32),
        feat_std=np.ones(nf, np.float32),
        calibration=np.array([0.5, 1.0]),
        ref_embeddings=np.zeros((0, arch.out_dim), np.float32),
        ref_ids=np.array([]),
        ref_labels=np.array([]),
        max_len=6,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("signed_registry")


@pytest.fixture(scope="module")
def settings(home) -> Settings:
    mp = pytest.MonkeyPatch()
    mp.delenv(KEY_ENV, raising=False)  # the key file under home, made by the first registration
    yield Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    mp.undo()


@pytest.fixture(scope="module")
def production(settings) -> registry.RegisteredModel:
    first = registry.log_and_register(settings, tiny_classifier(), {"test": "signed"}, [], {"balanced_accuracy": 0.5})
    MlflowClient(tracking_uri=settings.tracking_uri).set_registered_model_alias(
        settings.model_name, registry.PRODUCTION, first.version
    )
    return first


def _register(settings: Settings, note: str, metric: float = 0.5) -> registry.RegisteredModel:
    return registry.log_and_register(settings, tiny_classifier(), {"test": note}, [], {"balanced_accuracy": metric})


def _stored(settings: Settings, version: str) -> Path:
    """The files MLflow keeps for a version (the logged model's ``artifacts`` folder)."""
    mv = MlflowClient(tracking_uri=settings.tracking_uri).get_model_version(settings.model_name, version)
    model_id = mv.source.rsplit("/", 1)[-1]  # models:/m-...
    (folder,) = [p for p in settings.mlflow_artifacts_dir.rglob(model_id) if p.is_dir()]
    return folder / "artifacts"


def _pickled_pyfunc(model: Path, marker: Path) -> None:
    (model / "python_model.pkl").write_bytes(pickle.dumps(Payload(marker)))


def _pickled_weights(model: Path, marker: Path) -> None:
    torch.save({"encoder": Payload(marker)}, model / "artifacts" / "bundle" / "weights.pt")


def _changed_weights(model: Path, marker: Path) -> None:
    path = model / "artifacts" / "bundle" / "weights.pt"
    state = torch.load(path, weights_only=True)
    torch.save({k: v * 2 if v.is_floating_point() else v for k, v in state.items()}, path)


def _no_signature(model: Path, marker: Path) -> None:
    (model / "artifacts" / "bundle" / SIGNATURE_FILE).unlink()


def _other_key(model: Path, marker: Path) -> None:
    _changed_weights(model, marker)
    sign_bundle(model / "artifacts" / "bundle", b"an attacker's own key, long enough to pass")


TAMPERINGS = [_pickled_weights, _changed_weights, _no_signature, _other_key]


def test_the_pickled_pyfunc_is_never_loaded(settings, production, tmp_path):
    """Replacing the pyfunc's pickle (what ``mlflow.pyfunc.load_model`` unpickles) changes nothing."""
    marker = tmp_path / "payload-ran"
    version = _register(settings, "pyfunc").version
    _pickled_pyfunc(_stored(settings, version), marker)
    classifier, registered = registry.load_model(settings, version)
    assert registered.version == version and classifier.class_names == ["a", "b"]
    assert not marker.exists()


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=lambda f: f.__name__.strip("_"))
def test_the_registry_loader_refuses_a_tampered_bundle(settings, production, tmp_path, tamper):
    marker = tmp_path / "payload-ran"
    version = _register(settings, tamper.__name__).version
    tamper(_stored(settings, version), marker)
    with pytest.raises(UntrustedModelError, match=f"version {version}: .*refused"):
        registry.load_model(settings, version)
    with pytest.raises(UntrustedModelError):
        registry.load_model_uri(settings, f"models:/{settings.model_name}/{version}")
    assert not marker.exists()


def _replica(settings: Settings) -> ProtoNetModel:
    args = {
        "home": str(settings.home),
        "mlflow_tracking_uri": settings.tracking_uri,
        "store_url": f"sqlite:///{settings.home_dir / 'events.db'}",
        "class_poll_seconds": 3600,
        "model_poll_seconds": 3600,
    }
    return ProtoNetModel.func_or_class(args)


def test_the_replica_keeps_serving_and_never_loads_a_tampered_version(settings, production, tmp_path):
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    replica = _replica(settings)
    try:
        assert replica.info()["version"] == production.version
        for tamper in [_pickled_pyfunc, *TAMPERINGS]:
            marker = tmp_path / f"{tamper.__name__}-ran"
            bad = _register(settings, f"replica {tamper.__name__}").version
            _pickled_pyfunc(_stored(settings, bad), marker)  # every bad version also carries a pickled pyfunc
            if tamper is not _pickled_pyfunc:
                tamper(_stored(settings, bad), marker)
            client.set_registered_model_alias(settings.model_name, registry.PRODUCTION, bad)
            served = replica.check_for_new_model()
            assert not marker.exists()
            if tamper is _pickled_pyfunc:  # its signed bundle is intact: served, the pickle untouched
                assert served == bad and replica.last_reload_error is None
                continue
            assert served != bad and replica.info()["version"] == served
            assert f"version {bad}: UntrustedModelError" in (replica.last_reload_error or "")
        # a replica that starts while production is tampered refuses to start
        with pytest.raises(UntrustedModelError, match="refused"):
            _replica(settings)
    finally:
        replica._stop.set()
        client.set_registered_model_alias(settings.model_name, registry.PRODUCTION, production.version)


def _gate_data(settings: Settings) -> registry.GateData:
    clf = tiny_classifier()
    rng = np.random.default_rng(3)
    n, nf = 12, clf.arch.n_feats
    seq = rng.normal(size=(n, clf.max_len, clf.arch.seq_channels)).astype(np.float32)
    length = np.full(n, clf.max_len)
    feats = rng.normal(size=(n, nf)).astype(np.float32)
    ids = np.asarray([f"o{i}" for i in range(n)])
    preds = clf.predict_arrays(ids, seq, length, feats, neighbours=0)
    return registry.GateData(
        object_id=ids,
        truth=np.asarray(rng.choice(clf.class_names, n), dtype=object),
        seq=seq,
        length=length,
        feats=feats,
        classes=list(clf.class_names),
        candidate_pred=np.asarray([p.label for p in preds], dtype=object),
    )


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=lambda f: f.__name__.strip("_"))
def test_the_gate_refuses_a_tampered_candidate(settings, production, tmp_path, tamper):
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    marker = tmp_path / "payload-ran"
    candidate = _register(settings, f"gate {tamper.__name__}", metric=1.0)  # would beat production's 0.5
    tamper(_stored(settings, candidate.version), marker)
    with pytest.raises(UntrustedModelError, match="refused"):
        registry.promote_if_better(settings, candidate, "balanced_accuracy")
    assert not marker.exists()
    alias = client.get_model_version_by_alias(settings.model_name, registry.PRODUCTION)
    assert str(alias.version) == production.version
    tags = client.get_run(candidate.run_id).data.tags
    assert tags["gate.promoted"] == "False" and f"candidate v{candidate.version} refused" in tags["gate.reason"]


def test_the_gate_never_runs_a_tampered_production_and_replaces_it(settings, production, tmp_path):
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    marker = tmp_path / "payload-ran"
    old = _register(settings, "gate production")
    model = _stored(settings, old.version)
    _pickled_pyfunc(model, marker)
    _changed_weights(model, marker)
    client.set_registered_model_alias(settings.model_name, registry.PRODUCTION, old.version)
    try:
        candidate = _register(settings, "gate candidate")
        decision = registry.promote_if_better(
            settings, candidate, "balanced_accuracy", validation=_gate_data(settings), n_boot=50
        )
        assert not marker.exists()
        assert decision.promoted and f"production v{old.version} refused" in decision.reason
        alias = client.get_model_version_by_alias(settings.model_name, registry.PRODUCTION)
        assert str(alias.version) == candidate.version
    finally:
        client.set_registered_model_alias(settings.model_name, registry.PRODUCTION, production.version)
