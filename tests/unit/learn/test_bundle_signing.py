"""Signed model bundles and weights-only checkpoints on real files (issue 18, item 1).

A bundle the trainer signed loads; one whose weights changed, whose signature is missing, made
with another key or edited, or that gained a file, is refused before anything in it is read. A
pickled payload never runs, even inside a correctly signed bundle or a training checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from cosmic_ray.core.config import Settings
from cosmic_ray.core.errors import TrainingError, UntrustedModelError
from cosmic_ray.learn.classifier import ProtoNetClassifier
from cosmic_ray.learn.features import feature_names
from cosmic_ray.learn.model import LightCurveEncoder, ProtoNetConfig
from cosmic_ray.learn.signing import KEY_ENV, SIGNATURE_FILE, sign_bundle, signing_key, verify_bundle
from cosmic_ray.learn.train import load_checkpoint, make_optimizer, save_checkpoint

KEY = b"0123456789abcdef0123456789abcdef-test-key"


class Payload:
    """Unpickling this creates ``marker``: proof that a loader ran code from a file."""

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


@pytest.fixture
def signed(tmp_path) -> Path:
    folder = tiny_classifier().save(tmp_path / "bundle")
    sign_bundle(folder, KEY)
    return folder


def test_a_signed_bundle_verifies_and_loads(signed):
    verify_bundle(signed, KEY)
    assert ProtoNetClassifier.load(signed).class_names == ["a", "b"]
    assert set(json.loads((signed / SIGNATURE_FILE).read_text())["files"]) == {
        "weights.pt",
        "arrays.npz",
        "bundle.json",
    }


def _changed_weights(folder: Path) -> None:
    state = torch.load(folder / "weights.pt", weights_only=True)
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in state.items()}, folder / "weights.pt")


def _no_signature(folder: Path) -> None:
    (folder / SIGNATURE_FILE).unlink()


def _other_key(folder: Path) -> None:
    sign_bundle(folder, b"another key that is long enough to be accepted")


def _hash_rewritten(folder: Path) -> None:
    """What a plain hash would allow: change the weights and write their new hash into the signature."""
    _changed_weights(folder)
    signature = json.loads((folder / SIGNATURE_FILE).read_text())
    signature["files"]["weights.pt"] = hashlib.sha256((folder / "weights.pt").read_bytes()).hexdigest()
    (folder / SIGNATURE_FILE).write_text(json.dumps(signature))


def _extra_file(folder: Path) -> None:
    (folder / "python_model.pkl").write_bytes(b"\x80\x04N.")


def _missing_file(folder: Path) -> None:
    (folder / "arrays.npz").unlink()


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_changed_weights, "changed after signing"),
        (_no_signature, "not signed"),
        (_other_key, "does not match the signing key"),
        (_hash_rewritten, "does not match the signing key"),
        (_extra_file, "unsigned: \\['python_model.pkl'\\]"),
        (_missing_file, "missing: \\['arrays.npz'\\]"),
    ],
)
def test_a_tampered_bundle_is_refused(signed, tamper, message):
    tamper(signed)
    with pytest.raises(UntrustedModelError, match=message):
        verify_bundle(signed, KEY)


def test_a_pickled_payload_never_runs_even_when_signed(signed, tmp_path):
    """A key leak or a compromised trainer still cannot make a loader run code: weights-only loading."""
    marker = tmp_path / "payload-ran"
    torch.save({"encoder": Payload(marker)}, signed / "weights.pt")
    sign_bundle(signed, KEY)
    verify_bundle(signed, KEY)  # the signature is fine; the content is not
    with pytest.raises(UntrustedModelError, match="pickled objects"):
        ProtoNetClassifier.load(signed)
    assert not marker.exists()


def test_object_arrays_in_a_signed_bundle_are_refused(signed):
    with np.load(signed / "arrays.npz") as npz:
        arrays = dict(npz)
    arrays["ref_ids"] = np.array([{"not": "a string"}], dtype=object)
    np.savez(signed / "arrays.npz", **arrays)
    with pytest.raises(UntrustedModelError, match="pickled objects"):
        ProtoNetClassifier.load(signed)


def test_the_signing_key_comes_from_the_environment_or_a_private_file_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(UntrustedModelError, match=KEY_ENV):  # loaders never make a key
        signing_key(settings)
    made = signing_key(settings, create=True)  # the trainer of a local installation does
    path = settings.model_signing_key_file
    assert len(made) >= 64 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing_key(settings) == made == signing_key(settings, create=True)
    monkeypatch.setenv(KEY_ENV, "k" * 40)  # a Kubernetes Secret's value wins over the file
    assert signing_key(Settings(home=tmp_path / "home")) == b"k" * 40
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(UntrustedModelError, match="fewer than 32"):
        signing_key(Settings(home=tmp_path / "home"))


def test_a_training_checkpoint_round_trips_with_weights_only_loading(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer, scheduler = make_optimizer(model, {"lr": 1e-3, "epochs": 2, "episodes": {"per_epoch": 5}})
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    state = {
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": 0,
        "history": [{"epoch": 0, "worker_nodes": 1, "train_loss": 0.5, "episodes_per_second": 12.5}],
    }
    back = load_checkpoint(save_checkpoint(state, tmp_path).parent)
    assert back["epoch"] == 0 and back["history"] == state["history"]
    assert torch.equal(back["state_dict"]["weight"], model.state_dict()["weight"])
    fresh, fresh_scheduler = make_optimizer(model, {"lr": 1e-3, "epochs": 2, "episodes": {"per_epoch": 5}})
    fresh.load_state_dict(back["optimizer"])
    fresh_scheduler.load_state_dict(back["scheduler"])
    assert fresh_scheduler.last_epoch == scheduler.last_epoch


def test_a_checkpoint_with_a_pickled_payload_is_refused(tmp_path):
    marker = tmp_path / "payload-ran"
    save_checkpoint({"state_dict": {}, "epoch": 0, "history": [Payload(marker)]}, tmp_path)
    with pytest.raises(TrainingError, match="weights-only"):
        load_checkpoint(tmp_path)
    assert not marker.exists()
