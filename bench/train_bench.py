"""Ray Train vs plain PyTorch: episodes/s of the same episodic loop at steady state, same device, same run.

Both sides run cosmic_ray.learn.train.run_epoch (episode sampling, forward, prototypical loss, step) on
the same arrays; Ray Train runs it in one TorchTrainer worker (DDP-wrapped model, checkpoint and
report every epoch), plain PyTorch in this process. Steady state = every epoch after the first.
The arrays are random with the shapes of the BTS training set (a speed benchmark, no quality
figure). Needs torch + ray only.

Machine load drifts (the 2 CPU cores here are shared), so the two sides alternate: ``--rounds``
Ray Train runs, each between two plain runs (plain, Ray, plain, Ray, ..., plain); each round's
ratio is Ray over the mean of its two neighbouring plain runs, and the figure is the median ratio.

    .venv/bin/python bench/train_bench.py            # CPU, ~4 minutes on 2 cores
    python bench/train_bench.py --gpu                # one GPU, AMP (bf16)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def synthetic_set(
    n: int = 1200, max_len: int = 64, channels: int = 9, n_feats: int = 59, classes: int = 7, seed: int = 0
):
    from cosmic_ray.learn.train import TrainingSet

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    idx = np.arange(n)
    return TrainingSet(
        object_id=np.asarray([f"obj{i}" for i in idx], dtype=object),
        labels=labels.astype(np.int64),
        class_names=[f"c{i}" for i in range(classes)],
        seq=rng.normal(size=(n, max_len, channels)).astype(np.float32),
        length=rng.integers(3, max_len + 1, n).astype(np.int64),
        feats=rng.normal(size=(n, n_feats)).astype(np.float32),
        train_idx=idx[idx % 5 != 0],
        val_idx=idx[idx % 5 == 0],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Ray Train vs plain PyTorch episodes/s")
    parser.add_argument("--gpu", action="store_true", help="one GPU worker vs plain PyTorch on cuda")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--per-epoch", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="Ray Train runs, each between two plain runs")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import torch

    from cosmic_ray.learn.model import ProtoNetConfig
    from cosmic_ray.learn.train import fit, fit_local

    if not args.gpu:
        torch.set_num_threads(1)  # a Ray Train CPU worker gets OMP_NUM_THREADS=1: same for the baseline
    data = synthetic_set()
    arch = ProtoNetConfig(seq_channels=data.seq.shape[2], n_feats=data.feats.shape[1], hidden=args.hidden)
    episodes = {"n_way": 7, "k_shot": 5, "n_query": 5, "per_epoch": args.per_epoch, "min_objects": 2}
    common = dict(epochs=args.epochs, lr=1e-3, episodes=episodes, seed=0)

    device = "cuda" if args.gpu else "cpu"
    steady = lambda out: float(np.mean([h["episodes_per_second"] for h in out.history[1:]]))  # noqa: E731
    plain_eps = [steady(fit_local(data, arch, device=device, **common))]
    ray_eps, ray_wall = [], []
    ray.init(address="local", num_cpus=2, num_gpus=1 if args.gpu else 0, include_dashboard=False, log_to_driver=False)
    try:
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                rayrun = fit(data, arch, num_workers=1, use_gpu=args.gpu, storage_path=tmp, name="bench", **common)
            ray_eps.append(steady(rayrun))
            ray_wall.append(rayrun.seconds)
            plain_eps.append(steady(fit_local(data, arch, device=device, **common)))  # drifts in machine load cancel
    finally:
        ray.shutdown()
    ratios = [r / ((a + b) / 2) for r, a, b in zip(ray_eps, plain_eps[:-1], plain_eps[1:], strict=False)]
    ratio = float(np.median(ratios))
    result = {
        "device": device,
        "torch": torch.__version__,
        "ray": ray.__version__,
        "episodes_per_epoch": args.per_epoch,
        "epochs": args.epochs,
        "rounds": args.rounds,
        "plain_pytorch_episodes_per_s": [round(x, 2) for x in plain_eps],
        "ray_train_episodes_per_s": [round(x, 2) for x in ray_eps],
        "ratios": [round(x, 3) for x in ratios],
        "ratio_ray_over_plain": round(ratio, 3),
        "within_10_percent": bool(abs(ratio - 1) <= 0.10),
        "ray_fit_wall_s": [round(x, 1) for x in ray_wall],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
