#!/usr/bin/env bash
# The GPU checks of the training path in one call on a lent GPU machine (the `device` tool's `run`).
# That machine has Python 3.12 and PyTorch but no Ray and none of this project's other
# dependencies; the training path (cosmic_ray.learn.train / model / episodes) imports torch + numpy +
# ray only, so Ray's wheels are all it needs. Before the call, on this machine:
#
#   ../shared/tools/device_ray_bundle.sh .whl && echo /.whl/ >> .git/info/exclude
#
# then run it with carry [".whl"] and a timeout_s that leaves time for a second try:
#
#   bash bench/gpu_check.sh            # ~4 min once the machine is up
#
# What it runs: bench/train_bench.py --gpu (Ray Train TorchTrainer with ScalingConfig(use_gpu=True),
# one GPU worker, bf16 autocast, checkpoints every epoch, against the same loop in plain PyTorch on
# the same GPU, alternated). Results land in $OUT (the device tool fetches them) or ./gpu_out.
set -euo pipefail
out=${OUT:-gpu_out}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" RAY_USAGE_STATS_ENABLED=0
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch, ray; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'ray', ray.__version__)"; } | tee "$out/environment.txt"
timeout 480 python3 bench/train_bench.py --gpu --rounds 3 --epochs 4 > "$out/train_bench_gpu.json" 2> "$out/train_bench_gpu.err" || {
  rc=$?; echo "train_bench --gpu failed (exit $rc); last lines of its log:"; tail -40 "$out/train_bench_gpu.err"; exit "$rc"; }
cat "$out/train_bench_gpu.json"
