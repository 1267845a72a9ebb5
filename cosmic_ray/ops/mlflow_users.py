"""MLflow's users on Kubernetes: a trainer that registers models and a serving user that reads.

MLflow's basic-auth app (k8s/mlflow.yaml) creates only its admin. The Job ``mlflow-users``
(k8s/mlflow-users.yaml) runs ``jobs/mlflow_users.py`` with the admin's credentials
(``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``, as every MLflow client reads them),
which calls :func:`ensure_users`: each user is created, or its password reset to the Secret's
value, and made a non-admin; the trainer gets MANAGE on the registered model and on the
experiment, which the Job creates first: otherwise the first client to touch it would own it, and
that may be a serving replica (replicas create a missing experiment when they look for a model).
Reading needs no grant: the server's ``default_permission`` is READ for every authenticated user.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlflow.exceptions import RestException
from mlflow.server.auth.client import AuthServiceClient
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

#: The permission the trainer holds on its experiment and registered model (edit, alias, delete).
TRAINER_PERMISSION = "MANAGE"


@dataclass(frozen=True)
class MlflowUser:
    """One MLflow account, the registered models and the experiments (by name) it may change."""

    username: str
    password: str
    manages: tuple[str, ...] = ()
    manages_experiments: tuple[str, ...] = ()

    def __repr__(self) -> str:  # never print a password
        return (
            f"MlflowUser(username={self.username!r}, manages={self.manages!r}, "
            f"manages_experiments={self.manages_experiments!r})"
        )


def users_from_env(env: Mapping[str, str], model_name: str, experiment: str) -> list[MlflowUser]:
    """The trainer and serving users named by the Job's environment.

    Args:
        env: Holds ``MLFLOW_{TRAINER,SERVING}_{USERNAME,PASSWORD}`` (from the Secrets).
        model_name: The registered model the trainer manages.
        experiment: The experiment the trainer logs its runs to.

    Raises:
        ValueError: A variable is missing or empty, or both users have the same name.
    """
    values = {}
    for role in ("TRAINER", "SERVING"):
        for part in ("USERNAME", "PASSWORD"):
            name = f"MLFLOW_{role}_{part}"
            if not env.get(name):
                raise ValueError(f"{name} is not set: create the Secret cosmic-ray-mlflow-{role.lower()}")
            values[name] = env[name]
    if values["MLFLOW_TRAINER_USERNAME"] == values["MLFLOW_SERVING_USERNAME"]:
        raise ValueError("the trainer and the serving user must be two users")
    return [
        MlflowUser(
            values["MLFLOW_TRAINER_USERNAME"],
            values["MLFLOW_TRAINER_PASSWORD"],
            manages=(model_name,),
            manages_experiments=(experiment,),
        ),
        MlflowUser(values["MLFLOW_SERVING_USERNAME"], values["MLFLOW_SERVING_PASSWORD"]),
    ]


def ensure_users(tracking_uri: str, users: Sequence[MlflowUser]) -> list[str]:
    """Create or update ``users`` on the MLflow server, as the admin of the client's credentials.

    Args:
        tracking_uri: The server (``http://mlflow:5000``).
        users: The accounts to have, with the models each may change.

    Returns:
        The usernames created now (the others existed and got their password reset).

    Raises:
        mlflow.exceptions.RestException: The server refused (e.g. the caller is not an admin).
    """
    client = AuthServiceClient(tracking_uri)
    tracking = MlflowClient(tracking_uri)
    created = []
    for user in users:
        try:
            client.create_user(user.username, user.password)
            created.append(user.username)
            log.info("created MLflow user %s", user.username)
        except RestException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            client.update_user_password(user.username, user.password)
            log.info("MLflow user %s exists: password reset to the Secret's", user.username)
        client.update_user_admin(user.username, False)
        for model in user.manages:
            _grant(client, user.username, "registered_model", model)
            log.info("MLflow user %s may manage the registered model %s", user.username, model)
        for name in user.manages_experiments:
            experiment = tracking.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else tracking.create_experiment(name)
            _grant(client, user.username, "experiment", experiment_id)
            log.info("MLflow user %s may manage the experiment %s (%s)", user.username, name, experiment_id)
    return created


def _grant(client: AuthServiceClient, username: str, resource_type: str, resource_id: str) -> None:
    """Give ``username`` MANAGE on a resource, replacing whatever permission it had there."""
    try:
        client.grant_user_permission(username, resource_type, resource_id, TRAINER_PERMISSION)
    except RestException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        client.revoke_user_permission(username, resource_type, resource_id)
        client.grant_user_permission(username, resource_type, resource_id, TRAINER_PERMISSION)
