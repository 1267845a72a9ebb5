"""The MLflow users the Job mlflow-users creates, as read from its environment (no server)."""

from __future__ import annotations

import pytest

from cosmic_ray.ops.mlflow_users import MlflowUser, users_from_env

ENV = {
    "MLFLOW_TRAINER_USERNAME": "trainer",
    "MLFLOW_TRAINER_PASSWORD": "t-secret",
    "MLFLOW_SERVING_USERNAME": "serving",
    "MLFLOW_SERVING_PASSWORD": "s-secret",
}


def test_the_trainer_manages_the_model_and_serving_manages_nothing() -> None:
    trainer, serving = users_from_env(ENV, "cosmic-ray", "exp")
    assert trainer == MlflowUser("trainer", "t-secret", manages=("cosmic-ray",), manages_experiments=("exp",))
    assert serving == MlflowUser("serving", "s-secret")
    assert "secret" not in repr(trainer) + repr(serving), "passwords never reach a log line"


@pytest.mark.parametrize("missing", sorted(ENV))
def test_a_missing_or_empty_variable_names_its_secret(missing: str) -> None:
    for env in ({k: v for k, v in ENV.items() if k != missing}, {**ENV, missing: ""}):
        with pytest.raises(ValueError, match=missing):
            users_from_env(env, "cosmic-ray", "exp")


def test_one_user_cannot_be_both() -> None:
    with pytest.raises(ValueError, match="two users"):
        users_from_env({**ENV, "MLFLOW_SERVING_USERNAME": "trainer"}, "cosmic-ray", "exp")
