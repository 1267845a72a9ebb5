"""Episodic ProtoNet training on Ray Train: ``train_loop_per_worker`` + the TorchTrainer call.

Importable with torch + ray alone (the GPU machine has nothing else). Ray touch-points are
numbered in comments.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from cosmic_ray.core.errors import TrainingError
from cosmic_ray.learn.context_features import encoder_inputs, field_dropout
from cosmic_ray.learn.episodes import eligible_classes, held_out_classes, objects_needed, sample_episode
from cosmic_ray.learn.model import (
    LightCurveEncoder,
    ProtoNetConfig,
    episode_loss,
    feature_quantiles,
    normal_scores,
    proto_logits,
    prototypes,
    within_class_whitening,
)

log = logging.getLogger(__name__)

#: The file of a Ray Train checkpoint folder: weights, optimizer and scheduler state, epoch, history.
CHECKPOINT_FILE = "model.pt"


@dataclass
class TrainingSet:
    """Per-object model inputs with integer labels; features already normalised.

    ``aug_*`` hold ``n_views`` augmented views of every object, object-major (the views of
    object ``i`` are rows ``i * n_views ... (i + 1) * n_views - 1``); training draws an object's
    original or one of its views, validation uses originals only.
    """

    object_id: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) int
    class_names: list[str]
    seq: np.ndarray  # (N, L, C) float32
    length: np.ndarray  # (N,) int64
    feats: np.ndarray  # (N, F) float32, normalised (NaN where a feature is missing)
    train_idx: np.ndarray
    val_idx: np.ndarray
    aug_seq: np.ndarray | None = None  # (N * n_views, L, C)
    aug_length: np.ndarray | None = None  # (N * n_views,)
    aug_feats: np.ndarray | None = None  # (N * n_views, F), normalised
    n_views: int = 0
    class_counts: np.ndarray | None = None  # (K,) labelled objects per class before any per-class cap (class priors)
    # (N, len(FEATURE_FIELDS)) standardised context (context_features.ContextStats), NaN where missing;
    # None: no object has any
    context: np.ndarray | None = None
    context_mean: np.ndarray | None = None  # (len(FEATURE_FIELDS),) the standardisation's centre ...
    context_std: np.ndarray | None = None  # ... and scale (transformed values)
    context_fields: tuple[str, ...] = ()  # the columns of ``context`` (FEATURE_FIELDS)


@dataclass
class TrainOutput:
    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, float]]
    seconds: float
    episodes_per_second: float


def loop_config(
    data: TrainingSet, arch: ProtoNetConfig, *, epochs: int, lr: float, episodes: dict[str, int], seed: int
) -> dict[str, Any]:
    """Everything one training loop needs, as plain numpy + Python (what Ray ships to each worker)."""
    n = len(data.labels)
    has_views = data.n_views > 0 and data.aug_seq is not None
    # fixed maps of the normalised features, from the training objects only: their quantiles
    # (-> normal scores) and the within-class whitening of the hybrid embedding's feature block
    train_feats = data.feats[data.train_idx]
    quantiles = feature_quantiles(train_feats) if arch.quantile_features else None
    if quantiles is not None:
        train_feats = normal_scores(
            torch.from_numpy(np.ascontiguousarray(train_feats, dtype=np.float32)), torch.from_numpy(quantiles)
        ).numpy()
    context = None
    if arch.context_fields:
        if data.context is not None:
            base = data.context[:, [data.context_fields.index(f) for f in arch.context_fields]]
        else:
            base = np.full((n, len(arch.context_fields)), np.nan)
        context = base.astype(np.float32)  # (N, C) what the encoder reads
        if has_views:  # a view has its object's context
            context = np.concatenate([context, np.repeat(context, data.n_views, axis=0)])
    return {
        "context": context,
        "arch": arch.to_dict(),
        "episodes": dict(episodes),
        "epochs": epochs,
        "lr": lr,
        "seed": seed,
        "seq": np.concatenate([data.seq, data.aug_seq]) if has_views else data.seq,
        "length": np.concatenate([data.length, data.aug_length]) if has_views else data.length,
        "feats": np.concatenate([data.feats, data.aug_feats]) if has_views else data.feats,
        "n_objects": n,
        "n_views": data.n_views if has_views else 0,
        "labels": data.labels.astype(np.int64),
        "train_idx": data.train_idx,
        "val_idx": data.val_idx,
        "class_names": list(data.class_names),
        "feat_quantiles": quantiles,
        "feat_whiten": within_class_whitening(
            np.nan_to_num(train_feats), data.labels[data.train_idx], arch.whiten_shrinkage
        )
        if arch.feature_block
        else None,
    }


def new_encoder(arch: ProtoNetConfig, config: dict[str, Any]) -> LightCurveEncoder:
    """A fresh encoder with the loop's fixed feature quantiles and whitening installed."""
    model = LightCurveEncoder(arch)
    model.set_feature_quantiles(config.get("feat_quantiles"))
    model.set_feature_whitening(config.get("feat_whiten"))
    return model


def _tensors(config: dict[str, Any]) -> dict[str, Any]:
    context = config.get("context")
    return {
        "context_raw": context,  # (N_total, C) standardised, NaN missing: dropped out per episode
        "context": None if context is None else torch.from_numpy(encoder_inputs(context)),  # (N_total, 2C)
        "context_dropout": float(config.get("arch", {}).get("context_dropout", 0.0)),
        "seq": torch.from_numpy(config["seq"]),
        "length": torch.from_numpy(config["length"]),
        "feats": torch.from_numpy(config["feats"]),
        "labels": torch.from_numpy(config["labels"]),
        "train_idx": torch.from_numpy(config["train_idx"]),
        "val_idx": torch.from_numpy(config["val_idx"]),
        "n_classes": len(config["class_names"]),
        "n_objects": config["n_objects"],
    }


def _embed_all(
    model: torch.nn.Module,
    seq: torch.Tensor,
    length: torch.Tensor,
    feats: torch.Tensor,
    device: torch.device,
    batch: int = 512,
    context: torch.Tensor | None = None,
) -> torch.Tensor:
    """(N, L, C), (N,), (N, F) [, (N, 2C) context inputs] -> (N, D) embeddings, ``batch`` objects at a time."""
    outs = []
    for i in range(0, len(seq), batch):
        ctx = None if context is None else context[i : i + batch].to(device)
        outs.append(
            model(seq[i : i + batch].to(device), length[i : i + batch], feats[i : i + batch].to(device), context=ctx)
        )
    return torch.cat(outs)


def validation_metrics(
    model: torch.nn.Module,
    data: dict[str, Any],
    device: torch.device,
    held_out: np.ndarray | None = None,
    k_shot: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Nearest-prototype classification of the validation objects: accuracy and balanced accuracy
    with every class's prototype from all its training objects, and, for the ``held_out`` classes
    (this epoch's novel ones), ``val_novel_accuracy``: their validation objects classified among all
    classes once their prototypes come from ``k_shot`` training objects each, as a class registered
    from examples would."""
    model.eval()
    n = data.get("n_objects", len(data["labels"]))
    with torch.no_grad():
        labels = data["labels"]
        tr, va = data["train_idx"], data["val_idx"]
        ctx = data.get("context")
        emb = _embed_all(
            model,
            data["seq"][:n],
            data["length"][:n],
            data["feats"][:n],
            device,
            context=None if ctx is None else ctx[:n],
        )
        protos = torch.nan_to_num(prototypes(emb[tr], labels[tr].to(device), data["n_classes"]), nan=1e6)  # (K, D)
        pred = proto_logits(emb[va], protos).argmax(dim=1).cpu()
        novel = _novel_accuracy(emb, labels, tr, va, protos, held_out, k_shot, seed)
    model.train()
    truth = labels[va]
    if len(truth) == 0:
        return {}
    recalls = [(pred[truth == c] == c).float().mean().item() for c in torch.unique(truth)]
    out = {"val_accuracy": (pred == truth).float().mean().item(), "val_balanced_accuracy": float(np.mean(recalls))}
    return out if novel is None else {**out, "val_novel_accuracy": novel}


def _novel_accuracy(
    emb: torch.Tensor,
    labels: torch.Tensor,
    tr: torch.Tensor,
    va: torch.Tensor,
    protos: torch.Tensor,
    held_out: np.ndarray | None,
    k_shot: int,
    seed: int,
) -> float | None:
    """Validation accuracy on the ``held_out`` classes with their prototypes from ``k_shot`` objects."""
    if held_out is None or len(held_out) == 0:
        return None
    rng = np.random.default_rng(seed)
    few = protos.clone()
    for c in np.asarray(held_out).tolist():
        members = tr[labels[tr] == c].numpy()
        if len(members):
            few[c] = emb[torch.from_numpy(rng.choice(members, min(k_shot, len(members)), replace=False))].mean(dim=0)
    rows = va[torch.from_numpy(np.isin(labels[va].numpy(), held_out))]
    if len(rows) == 0:
        return None
    pred = proto_logits(emb[rows], few).argmax(dim=1).cpu()
    return (pred == labels[rows]).float().mean().item()


def epoch_held_out(config: dict[str, Any], epoch: int) -> np.ndarray:
    """This epoch's novel classes (:func:`~cosmic_ray.learn.episodes.held_out_classes` of the classes
    that can take part in episodes); none when ``held_out_per_epoch`` is 0 or absent."""
    ep = config["episodes"]
    per = int(ep.get("held_out_per_epoch", 0))
    if per <= 0:
        return np.zeros(0, dtype=np.int64)
    train_labels = config["labels"][config["train_idx"]]
    classes = eligible_classes(train_labels, objects_needed(ep["k_shot"], ep["n_query"], ep.get("min_objects")))
    return held_out_classes(classes, per, epoch, config["seed"])


def episode_rows(
    config: dict[str, Any], rng: np.random.Generator, pool: np.ndarray | None = None
) -> tuple[np.ndarray, int, int]:
    """Rows of the (original + views) pool for one episode: support first, class-major.

    Args:
        pool: the training objects to draw from (default: all of ``train_idx``; an epoch with
            held-out classes passes the others).

    Returns:
        (rows, n_support, n_way)
    """
    ep = config["episodes"]
    pool = config["train_idx"] if pool is None else pool
    e = sample_episode(
        config["labels"][pool], ep["n_way"], ep["k_shot"], ep["n_query"], rng, min_objects=ep.get("min_objects")
    )
    rows = pool[np.concatenate([e.support.ravel(), e.query.ravel()])]
    v = config["n_views"]
    if v:
        # each object shows up as itself (70% of the time) or as one of its augmented views
        augmented = rng.random(len(rows)) < config.get("augment_probability", 0.3)
        pick = rng.integers(0, v, len(rows))
        rows = np.where(augmented, config["n_objects"] + rows * v + pick, rows)
    return rows, e.support.size, len(e.classes)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    data: dict[str, Any],
    rows: np.ndarray,
    n_support: int,
    n_way: int,
    device: torch.device,
    use_amp: bool,
    rng: np.random.Generator | None = None,
) -> tuple[float, float]:
    """One episode: embed support + query, prototypical loss, one optimiser step. Returns (loss, accuracy).

    With context the encoder reads the episode's objects' context with fields hidden at random
    (``context_dropout``; ``rng`` draws which)."""
    idx = torch.from_numpy(rows)
    context = None
    if data.get("context_raw") is not None:
        raw = data["context_raw"][rows]
        if rng is not None:
            raw = field_dropout(raw, data.get("context_dropout", 0.0), rng)
        context = torch.from_numpy(encoder_inputs(raw)).to(device, non_blocking=True)  # (B, 2C)
    arch = getattr(_unwrap(model), "cfg", None)
    learned_only = arch is None or arch.episode_distance != "embedding"
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
        # episodes train the learned part of the embedding (the whitened feature block is fixed):
        # alone ("learned_only") or inside the whole embedding the classifier reads ("embedding")
        emb = model(
            data["seq"][idx].to(device, non_blocking=True),
            data["length"][idx],
            data["feats"][idx].to(device, non_blocking=True),
            learned_only=learned_only,
            context=context,
        )
    loss, acc = episode_loss(emb[:n_support].float(), emb[n_support:].float(), n_way)  # (n_way*k, D), (n_way*q, D)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    scaler.step(optimizer)
    scaler.update()
    return loss.item(), acc.item()


def make_optimizer(
    model: torch.nn.Module, config: dict[str, Any]
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW with a cosine learning-rate schedule over all the run's episodes."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=1e-4)
    total = max(1, config["epochs"] * config["episodes"]["per_epoch"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=0.1 * config["lr"])
    return optimizer, scheduler


def run_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    data: dict[str, Any],
    config: dict[str, Any],
    rng: np.random.Generator,
    device: torch.device,
    use_amp: bool,
    epoch: int = 0,
) -> dict[str, float]:
    """``per_epoch`` episodes over the classes not held out this epoch (:func:`epoch_held_out`);
    the loop shared by Ray Train workers, :func:`fit_local` and the bench."""
    per_epoch = config["episodes"]["per_epoch"]
    t0 = time.perf_counter()
    held_out = epoch_held_out(config, epoch)
    pool = config["train_idx"]
    if len(held_out):
        pool = pool[~np.isin(config["labels"][pool], held_out)]
    losses, accs = [], []
    for _ in range(per_epoch):
        rows, n_sup, n_way = episode_rows(config, rng, pool)
        loss, acc = train_step(model, optimizer, scaler, data, rows, n_sup, n_way, device, use_amp, rng)
        scheduler.step()
        losses.append(loss)
        accs.append(acc)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {
        "train_loss": float(np.mean(losses)),
        "train_episode_accuracy": float(np.mean(accs)),
        "episodes_per_second": per_epoch / seconds,
    }


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One worker's episodic training loop (Ray Train calls this on every worker)."""
    # deferred: Ray is heavy; fit_local (benches, tests) trains without it
    import ray.train
    import ray.train.torch

    # (1) Ray: who am I
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    arch = ProtoNetConfig(**config["arch"])
    rng = np.random.default_rng(config["seed"] + 1000 * rank)
    torch.manual_seed(config["seed"])
    data = _tensors(config)

    # (2) Ray: model on this worker's device, wrapped for data-parallel gradients
    model = ray.train.torch.prepare_model(new_encoder(arch, config))
    device = ray.train.torch.get_device()
    optimizer, scheduler = make_optimizer(model, config)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    # (3) Ray: resume from the last checkpoint after a failure
    start_epoch, history = 0, []
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(folder)
        _unwrap(model).load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history = state["epoch"] + 1, state["history"]

    nodes = _distinct_worker_nodes()  # where this attempt's workers run (after a restart, too)
    for epoch in range(start_epoch, config["epochs"]):
        metrics = {
            "epoch": epoch,
            "worker_nodes": nodes,
            **run_epoch(model, optimizer, scheduler, scaler, data, config, rng, device, use_amp, epoch),
        }
        if rank == 0 and (config.get("validate_every_epoch", True) or epoch == config["epochs"] - 1):
            metrics.update(validation_metrics(_unwrap(model), data, device, **_novel_args(config, epoch)))
        history.append(metrics)
        # (4) Ray: report metrics with a checkpoint (rank 0 writes it) every epoch
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if rank == 0:
                state = {
                    "state_dict": {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()},
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch,
                    "history": history,
                }
                save_checkpoint(state, tmp)
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=ckpt)


def save_checkpoint(state: dict[str, Any], folder: Path | str) -> Path:
    """Write a training checkpoint (tensors, numbers, strings, lists and dicts of them) into ``folder``."""
    path = Path(folder) / CHECKPOINT_FILE
    torch.save(state, path)
    return path


def load_checkpoint(folder: Path | str) -> dict[str, Any]:
    """Read a checkpoint :func:`save_checkpoint` wrote, with ``weights_only`` loading (no code runs).

    Raises:
        TrainingError: the file holds pickled objects other than tensors and plain containers.
    """
    path = Path(folder) / CHECKPOINT_FILE
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise TrainingError(
            f"checkpoint {path} holds objects weights-only loading refuses (not written by this trainer): {exc}"
        ) from exc
    return state


def _distinct_worker_nodes() -> int:
    """How many Ray nodes this run's workers are on (every rank takes part in the gather)."""
    # deferred: Ray is heavy; fit_local (benches, tests) trains without it
    import ray

    node = ray.get_runtime_context().get_node_id()
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    nodes: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(nodes, node)
    return len(set(nodes))


def fit_local(
    data: TrainingSet,
    arch: ProtoNetConfig,
    *,
    epochs: int,
    lr: float,
    episodes: dict[str, int],
    seed: int,
    device: str = "cpu",
) -> TrainOutput:
    """The same loop in one process without Ray (cross-validation folds, the benchmark's baseline)."""
    config = loop_config(data, arch, epochs=epochs, lr=lr, episodes=episodes, seed=seed)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    dev = torch.device(device)
    tensors = _tensors(config)
    model = new_encoder(arch, config).to(dev)
    optimizer, scheduler = make_optimizer(model, config)
    use_amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start, history = time.perf_counter(), []
    for epoch in range(epochs):
        metrics = {
            "epoch": epoch,
            **run_epoch(model, optimizer, scheduler, scaler, tensors, config, rng, dev, use_amp, epoch),
        }
        history.append(metrics)
    history[-1].update(validation_metrics(model, tensors, dev, **_novel_args(config, epochs - 1)))
    eps = float(np.mean([h["episodes_per_second"] for h in history[1:] or history]))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return TrainOutput(state_dict=state, history=history, seconds=time.perf_counter() - start, episodes_per_second=eps)


def _novel_args(config: dict[str, Any], epoch: int) -> dict[str, Any]:
    return {
        "held_out": epoch_held_out(config, epoch),
        "k_shot": config["episodes"]["k_shot"],
        "seed": config["seed"] + epoch,
    }


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a data-parallel wrapper (what Ray Train's ``prepare_model`` returns), or ``model``."""
    inner = getattr(model, "module", model)
    return inner if isinstance(inner, torch.nn.Module) else model


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
    # deferred: Ray is heavy; fit_local (benches, tests) trains without it
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    config = loop_config(data, arch, epochs=epochs, lr=lr, episodes=episodes, seed=seed)
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
        state = load_checkpoint(folder)
    history = state["history"]
    eps = float(np.mean([h["episodes_per_second"] for h in history[1:] or history]))
    return TrainOutput(state_dict=state["state_dict"], history=history, seconds=seconds, episodes_per_second=eps)
