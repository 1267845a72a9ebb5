# syntax=docker/dockerfile:1
# cosmic_ray on the official Ray image; every Ray and MLflow pod in k8s/ runs this image.
#   CPU: docker build -t cosmic-ray:0.1.0 .
#   GPU: docker build -t cosmic-ray:0.1.0-gpu \
#          --build-arg RAY_IMAGE=rayproject/ray:2.60.0-py311-gpu \
#          --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
# The Ray version of RAY_IMAGE must equal rayVersion in k8s/*.yaml (tests/deploy/test_k8s_manifests.py).
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311
ARG NODE_IMAGE=node:22-bookworm-slim

# The npm files the web pages load (three.js, d3, ...), pinned by web/package-lock.json. A build
# stage only: the wheel built below copies the files the pages use; the image carries no Node.
FROM ${NODE_IMAGE} AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM ${RAY_IMAGE}

# Where PyTorch comes from: CPU-only wheels by default, so the CPU image carries no CUDA.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0

ENV RAY_USAGE_STATS_ENABLED=0 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# PyTorch first, in its own layer: the largest dependency, and the one that changes least.
# Its own index is not locked here (docs/kubernetes.md: the release step adds its hash).
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# Every other dependency from the hashed lock (requirements/image.lock, made from
# requirements/image.in): pip refuses any file whose hash is not in it, and installs nothing
# the lock does not list (--no-deps: the lock is complete).
COPY requirements/image.lock /tmp/image.lock
RUN pip install --require-hashes --no-deps -r /tmp/image.lock && rm /tmp/image.lock

# The package (non-editable) alone: its dependencies, the PostgreSQL driver (event store, MLflow's
# backend store) and the build backend came from the lock; no index is asked again.
# The image runs as the Ray image's user (uid 1000, gid 100).
# setup.py's build step ships the web pages, the npm files they load and the default configs in
# the wheel (cosmic_ray/_bundled/), so the Serve app in the image serves working pages.
COPY --chown=1000:100 pyproject.toml setup.py MANIFEST.in README.md /tmp/src/
COPY --chown=1000:100 cosmic_ray /tmp/src/cosmic_ray
COPY --chown=1000:100 configs /tmp/src/configs
COPY --chown=1000:100 web /tmp/src/web
COPY --from=web --chown=1000:100 /web/node_modules /tmp/src/web/node_modules
WORKDIR /tmp/src
RUN pip install --no-deps --no-build-isolation . \
    && cd / && rm -rf /tmp/src \
    && python -c "import ray, cosmic_ray, psycopg2; assert ray.__version__ == '2.60.0', ray.__version__"

# Job entrypoints and configs. RayJobs run
# `python jobs/retrain.py --config configs/retrain.yaml` from here (the pods' workingDir).
COPY --chown=1000:100 configs /home/ray/app/configs
COPY --chown=1000:100 jobs /home/ray/app/jobs
WORKDIR /home/ray/app
USER 1000
