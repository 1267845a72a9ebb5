"""The Serve application's arguments (``args:`` of configs/serve.yaml), shared by both deployments."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cosmic_ray.core.config import Settings


class AppArgs(BaseModel):
    """Arguments of the application (``args:`` in configs/serve.yaml)."""

    model_config = ConfigDict(extra="forbid")

    rare_classes: list[str] = Field(default_factory=lambda: ["SLSN-I", "SLSN-II", "TDE", "SN Ibn/Icn"])
    novelty_threshold: float = Field(default=0.95, gt=0, le=1)
    model_poll_seconds: float = Field(default=15.0, gt=0)
    class_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often replicas check the store's registered classes."
    )
    neighbours: int = Field(default=5, ge=0, le=50)
    # Optional overrides of the environment's settings (tests and local runs pass them explicitly).
    home: str | None = None
    mlflow_tracking_uri: str | None = None
    store_url: str | None = None
    max_batch: int | None = None
    max_body_bytes: int | None = None
    # Per-deployment option overrides (the `deployments:` list of a Serve config) for `serve.run`.
    deployments: list[dict[str, Any]] = Field(default_factory=list)

    def settings(self) -> Settings:
        """The environment's settings with this application's overrides."""
        overrides: dict[str, Any] = {
            "home": self.home,
            "mlflow_tracking_uri": self.mlflow_tracking_uri,
            "store_url": self.store_url,
            "max_batch": self.max_batch,
            "max_body_bytes": self.max_body_bytes,
        }
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
