"""Episodic ProtoNet training on Ray Train: ``train_loop_per_worker`` + the TorchTrainer call.

Importable with torch + ray alone (the GPU machine has nothing else). Ray touch-points are
numbered in comments.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cosmic_ray.episodes import sample_episode
from cosmic_ray.model import LightCurveEncoder, ProtoNetConfig, episode_loss, prototypes, proto_logits

log = logging.getLogger(__name__)


@dataclass
class TrainingSet:
    """Per-object model inputs with integer labels; features already normalised."""

    object_id: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) int
    class_names: list[str]
    seq: np.ndarray  # (N, L, C) float32
    length: np.ndarray  # (N,) int64
    feats: np.ndarray  # (N, F) float32, normalised
    train_idx: np.ndarray
    val_idx: np.ndarray


@dataclass
class TrainOutput:
    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, float]]
    seconds: float
    episodes_per_second: float


def _embed_all(model: torch.nn.Module, seq, length, feats, device, batch: int = 512) -> torch.Tensor:
    outs = []
    for i in range(0, len(seq), batch):
        outs.append(model(seq[i : i + batch].to(device), length[i : i + batch], feats[i : i + batch].to(device)))
    return torch.cat(outs)


def validation_metrics(model: torch.nn.Module, data: dict[str, Any], device: torch.device) -> dict[str, float]:
    """Accuracy and balanced accuracy of nearest-prototype classification on the validation objects."""
    model.eval()
    with torch.no_grad():
        labels = data["labels"]
        tr, va = data["train_idx"], data["val_idx"]
        emb = _embed_all(model, data["seq"], data["length"], data["feats"], device)
        protos = prototypes(emb[tr], labels[tr].to(device), data["n_classes"])  # (K, D)
        pred = proto_logits(emb[va], torch.nan_to_num(protos, nan=1e6)).argmax(dim=1).cpu()
    model.train()
    truth = labels[va]
    recalls = [(pred[truth == c] == c).float().mean().item() for c in torch.unique(truth)]
    return {"val_accuracy": (pred == truth).float().mean().item(), "val_balanced_accuracy": float(np.mean(recalls))}


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One worker's episodic training loop (Ray Train calls this on every worker)."""
    import ray.train
    import ray.train.torch

    # (1) Ray: who am I
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    arch = ProtoNetConfig(**config["arch"])
    ep = config["episodes"]
    rng = np.random.default_rng(config["seed"] + 1000 * rank)
    torch.manual_seed(config["seed"])

    data = {
        "seq": torch.from_numpy(config["seq"]),
        "length": torch.from_numpy(config["length"]),
        "feats": torch.from_numpy(config["feats"]),
        "labels": torch.from_numpy(config["labels"]),
        "train_idx": torch.from_numpy(config["train_idx"]),
        "val_idx": torch.from_numpy(config["val_idx"]),
        "n_classes": len(config["class_names"]),
    }
    train_labels = config["labels"][config["train_idx"]]

    # (2) Ray: model on this worker's device, wrapped for data-parallel gradients
    model = ray.train.torch.prepare_model(LightCurveEncoder(arch))
    device = ray.train.torch.get_device()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=1e-4)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    # (3) Ray: resume from the last checkpoint after a failure
    start_epoch, history = 0, []
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / "model.pt", map_location="cpu", weights_only=False)
        _unwrap(model).load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, history = state["epoch"] + 1, state["history"]

    for epoch in range(start_epoch, config["epochs"]):
        t0 = time.perf_counter()
        losses, accs = [], []
        for _ in range(ep["per_epoch"]):
            e = sample_episode(train_labels, ep["n_way"], ep["k_shot"], ep["n_query"], rng)
            idx = data["train_idx"][torch.from_numpy(np.concatenate([e.support.ravel(), e.query.ravel()]))]
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                emb = model(data["seq"][idx].to(device), data["length"][idx], data["feats"][idx].to(device))
                n_sup = e.support.size
                loss, acc = episode_loss(emb[:n_sup].float(), emb[n_sup:].float(), len(e.classes))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.item())
            accs.append(acc.item())
        seconds = time.perf_counter() - t0
        metrics = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "train_episode_accuracy": float(np.mean(accs)),
            "episodes_per_second": ep["per_epoch"] / seconds,
        }
        if rank == 0:
            metrics.update(validation_metrics(_unwrap(model), data, device))
        history.append(metrics)
        # (4) Ray: report metrics with a checkpoint (rank 0 writes it) every epoch
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if rank == 0:
                state = {
                    "state_dict": {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()},
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch,
                    "history": history,
                }
                torch.save(state, Path(tmp) / "model.pt")
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=ckpt)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def fit(
    data: TrainingSet,
    arch: ProtoNetConfig,
    *,
    epochs: int,
    lr: float,
    episodes: dict[str, int],
    seed: int,
    num_workers: int,
    use_gpu: bool,
    storage_path: Path | str,
    name: str = "protonet",
    max_failures: int = 2,
) -> TrainOutput:
    """Run :func:`train_loop_per_worker` on ``num_workers`` Ray Train workers; return the final weights."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    config = {
        "arch": arch.to_dict(),
        "episodes": dict(episodes),
        "epochs": epochs,
        "lr": lr,
        "seed": seed,
        "seq": data.seq,
        "length": data.length,
        "feats": data.feats,
        "labels": data.labels.astype(np.int64),
        "train_idx": data.train_idx,
        "val_idx": data.val_idx,
        "class_names": list(data.class_names),
    }
    start = time.perf_counter()
    # (5) Ray: the trainer; workers, GPU, checkpoints and retries come from config
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
        run_config=RunConfig(
            name=name,
            storage_path=str(Path(storage_path).resolve()),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            failure_config=FailureConfig(max_failures=max_failures),
        ),
    )
    result = trainer.fit()
    seconds = time.perf_counter() - start
    if result.checkpoint is None:
        raise RuntimeError(f"training produced no checkpoint: {result.error}")
    with result.checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / "model.pt", map_location="cpu", weights_only=False)
    history = state["history"]
    eps = float(np.mean([h["episodes_per_second"] for h in history[1:] or history]))
    return TrainOutput(state_dict=state["state_dict"], history=history, seconds=seconds, episodes_per_second=eps)
