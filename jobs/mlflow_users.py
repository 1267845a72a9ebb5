"""Create MLflow's trainer and serving users (the Kubernetes Job mlflow-users).

    MLFLOW_TRACKING_URI=http://mlflow:5000 MLFLOW_TRACKING_USERNAME=<admin> MLFLOW_TRACKING_PASSWORD=... \
    MLFLOW_TRAINER_USERNAME=... MLFLOW_TRAINER_PASSWORD=... MLFLOW_SERVING_USERNAME=... \
    MLFLOW_SERVING_PASSWORD=... python jobs/mlflow_users.py

Exits non-zero with the reason when a variable is missing or the server refuses.
"""

from __future__ import annotations

import logging
import os
import sys


def main() -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from mlflow.exceptions import MlflowException

    from cosmic_ray.core.config import Settings
    from cosmic_ray.learn.registry import EXPERIMENT
    from cosmic_ray.ops.mlflow_users import ensure_users, users_from_env

    settings = Settings()
    try:
        if not settings.mlflow_tracking_uri:
            raise ValueError("MLFLOW_TRACKING_URI is not set")
        users = users_from_env(os.environ, settings.model_name, EXPERIMENT)
        ensure_users(settings.mlflow_tracking_uri, users)
    except (ValueError, MlflowException) as exc:
        logging.getLogger("mlflow_users").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
