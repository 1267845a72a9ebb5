"""Settings (environment + .env) and the typed job configs loaded from configs/*.yaml.

Nothing here touches the disk or the network at import: paths are computed, not created.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PositiveInt, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from cosmic_ray.core.errors import ConfigError
from cosmic_ray.core.resources import config_file


class Settings(BaseSettings):
    """Where state lives and how to reach each service. Every field is an env var ``COSMIC_RAY_*``."""

    model_config = SettingsConfigDict(env_prefix="COSMIC_RAY_", env_file=".env", extra="ignore", populate_by_name=True)

    home: Path = Field(default=Path("~/.cosmic_ray"), description="Folder holding all state.")
    shared_data: Path = Field(default=Path("../shared/data"), description="Real public data.")
    host: str = "127.0.0.1"
    app_port: int = 8000
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8265
    ray_port: int = Field(default=6379, description="GCS port of the head `cosmic-ray cluster up` starts.")
    ray_address: str | None = Field(
        default=None, validation_alias=AliasChoices("RAY_ADDRESS", "COSMIC_RAY_RAY_ADDRESS")
    )
    ray_auth_mode: str = Field(
        default="token",
        validation_alias=AliasChoices("RAY_AUTH_MODE", "COSMIC_RAY_RAY_AUTH_MODE"),
        description="Ray 2.60 token auth: clients connecting by address need RAY_AUTH_MODE=token.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "COSMIC_RAY_MLFLOW_TRACKING_URI")
    )
    ray_node_ip_address: str = Field(
        default="127.0.0.1",
        description="Node address of the head `cosmic-ray cluster up` starts. 127.0.0.1 (default): every Ray port "
        "listens on loopback only and no other machine can join; the machine's address: a head other nodes can join.",
    )
    serve_high_throughput: bool = Field(
        default=False,
        description="Start local clusters in Ray Serve's high-throughput mode (HAProxy in front of ingress replicas "
        "that serve HTTP themselves; ~3x the requests/s of the Python proxy on 2 cores, bench/serve_load.py). "
        "Opt-in: Ray 2.60's HAProxy then listens on all interfaces for its stats (8404) and metrics (9101), "
        "without authentication, and cannot be bound to loopback.",
    )
    model_name: str = "cosmic-ray"
    model_signing_key: SecretStr | None = Field(
        default=None,
        description="HMAC key the trainer signs model bundles with and every loader checks (a Kubernetes Secret "
        "fills it; never stored in MLflow). Unset: the key file under home (cosmic_ray/learn/signing.py).",
    )
    store_url: str | None = Field(default=None, description="Event store; SQLite under home by default.")
    max_batch: PositiveInt = Field(default=1000, description="Largest /predict/batch request.")
    max_body_bytes: PositiveInt = Field(default=8 * 1024 * 1024, description="Largest request body.")
    # --- accounts and the API (cosmic_ray/serve/auth.py) ---
    read_requires_auth: bool = Field(default=False, description="GET routes need a token or session too.")
    cookie_secure: bool = Field(default=False, description="Mark the session cookie Secure (set it behind HTTPS).")
    session_hours: float = Field(default=12.0, gt=0, description="Lifetime of a web login session.")
    token_days: float = Field(default=30.0, gt=0, description="Lifetime of a new API token (days).")
    login_attempts_per_account: PositiveInt = Field(
        default=5,
        description="Login attempts an account's bucket holds; it leaks as many per window (then one per "
        "window/attempts seconds, 429 with Retry-After). Shared by every replica through the event store.",
    )
    login_attempts_per_address: PositiveInt = Field(
        default=20, description="Login attempts a client address's bucket holds (as per account); successes refunded."
    )
    login_concurrency: PositiveInt = Field(default=2, description="Password checks (argon2) at once per replica.")
    login_queue_s: float = Field(
        default=10.0, gt=0, description="How long a login waits for a password-check slot before a 429."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Peer addresses (a load balancer, an ingress controller) whose X-Forwarded-For names the client. "
        "Serve's HAProxy mode adds no such header: behind it, every client shares HAProxy's address.",
    )
    login_window_s: float = Field(default=300.0, gt=0, description="The login buckets' leak period.")
    max_support: PositiveInt = Field(
        default=100, description="Most support light curves of a class registered at runtime."
    )
    read_concurrency: PositiveInt = Field(
        default=8,
        description="Most requests in flight per expensive read route (/objects/{id}/lightcurve, /similar) in "
        "one ingress process; more are answered 503 with Retry-After, so reads cannot starve /predict.",
    )
    # --- hostile input (cosmic_ray/sources/bounded.py reads the same variable where it inflates) ---
    max_decompressed_bytes: PositiveInt = Field(
        default=256 * 1024 * 1024,
        description="Most bytes one input may inflate to (Avro deflate blocks, gzip files, tar members, HTTP "
        "answers) or a mailbox file may hold; beyond it the input is quarantined unread.",
    )
    # --- live path (cosmic_ray/serve/live.py) ---
    rare_webhook_url: str | None = Field(default=None, description="Slack-compatible webhook notified of rare events.")
    # --- web pages (cosmic_ray/serve/web.py) ---
    apod_api_key: str | None = Field(
        default="DEMO_KEY", description="api.nasa.gov key of the dashboard's APOD widget; empty: off."
    )
    mlflow_ui_url: str = Field(default="http://127.0.0.1:5000", description="Where the dashboard links the MLflow UI.")
    # --- per-object context (cosmic_ray/core/context.py, ingest/context.py, sources/ztf_context.py) ---
    context_host_max_arcsec: float = Field(
        default=3.0,
        gt=0,
        description="An alert's nearest PS1 source is its host only if galaxy-like (sgscore1 < 0.5) and this close.",
    )
    context_mode: Literal["light_curve", "alert_time", "with_redshift"] = Field(
        default="alert_time",
        description="Context /predict lets the model see: light_curve (none), alert_time (all but redshift), "
        "with_redshift (all).",
    )
    # --- the object table and cone search (cosmic_ray/serve/routes/sky.py) ---
    cone_max_radius_deg: float = Field(
        default=1.0, gt=0, le=180, description="Largest cone search radius (degrees) of GET /objects; more is a 422."
    )
    # --- objects on the sky: cutouts and cross-matches (cosmic_ray/ingest/cutouts.py, serve/routes/cutouts.py) ---
    cutout_max_bytes: PositiveInt = Field(
        default=1024 * 1024,
        description="Most bytes one alert stamp may inflate to (a ZTF stamp is ~20 kB of FITS); a larger one is "
        "not kept (the alert still is).",
    )
    cutout_retention_days: float = Field(
        default=30.0, gt=0, description="`cosmic-ray cutouts prune` drops stamps stored longer ago than this."
    )
    crossmatch_radius_arcsec: float = Field(
        default=5.0, gt=0, le=600, description="Radius of the object page's positional catalogue matches."
    )
    # --- Kafka stream consumer and publisher (cosmic_ray/stream/) ---
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How `cosmic-ray stream` talks to the brokers (librdkafka security.protocol)."
    )
    kafka_sasl_mechanism: str | None = Field(
        default=None, description="SASL mechanism of the brokers (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); unset: none."
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name (from a Secret on Kubernetes).")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password; never logged.")
    # --- watchlists and webhook notifications (cosmic_ray/serve/subscriptions.py, delivery.py) ---
    webhook_key: SecretStr | None = Field(
        default=None,
        description="Fernet key that encrypts webhook URLs at rest (a Kubernetes Secret fills it). Unset: the key "
        "file webhook.key under home, made on first use.",
    )
    webhook_allow: list[str] = Field(
        default_factory=list,
        description="Webhook hosts, addresses or networks (CIDR) allowed although private, loopback or link-local "
        "(refused otherwise: no path to Ray, MLflow or a metadata service).",
    )
    webhook_timeout_s: float = Field(default=5.0, gt=0, description="Timeout of one webhook POST.")
    webhook_max_attempts: PositiveInt = Field(
        default=12, description="Delivery attempts of one notification before it is kept as dead in the outbox."
    )
    webhook_backoff_s: float = Field(
        default=5.0, gt=0, description="First retry delay of a failed delivery; doubles each attempt (at most 1 h)."
    )

    # --- derived paths (never created here) ---
    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def lake_dir(self) -> Path:
        return self.home_dir / "lake"

    @property
    def quarantine_dir(self) -> Path:
        return self.home_dir / "quarantine"

    @property
    def checkpoints_dir(self) -> Path:
        return self.home_dir / "checkpoints"

    @property
    def model_signing_key_file(self) -> Path:
        """The model signing key when ``COSMIC_RAY_MODEL_SIGNING_KEY`` is unset (made by the first local training)."""
        return self.home_dir / "model-signing.key"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home_dir / "mlflow-artifacts"

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def event_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.home_dir / 'events.db'}"

    @property
    def shared_data_dir(self) -> Path | None:
        """The shared real-data folder if it exists here, else None (fresh machine)."""
        path = self.shared_data.expanduser().resolve()
        return path if path.is_dir() else None

    @property
    def app_url(self) -> str:
        return f"http://{self.host}:{self.app_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.dashboard_host}:{self.dashboard_port}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    max_len: PositiveInt = Field(default=64, description="Points kept per light curve (latest first dropped).")
    min_points: PositiveInt = Field(default=3, description="Objects with fewer detections are not trained on.")
    min_objects_per_class: PositiveInt = Field(default=6, description="Classes with fewer objects are support-only.")
    max_objects_per_class: PositiveInt | None = Field(default=None, description="Cap per class (fast runs).")


class EpisodeConfig(_Strict):
    n_way: PositiveInt = 4
    k_shot: PositiveInt = 5
    n_query: PositiveInt = 5
    per_epoch: PositiveInt = 50
    held_out_per_epoch: int = Field(
        default=1,
        ge=0,
        description="Base classes left out of each epoch's episodes, a different set every epoch (rotating base/novel split); "
        "validation then registers them from k_shot examples (val_novel_accuracy). 0: every class in every epoch.",
    )


class ModelConfig(_Strict):
    """The encoder and prototypical head (cosmic_ray.learn.model.ProtoNetConfig takes these fields as they are)."""

    hidden: PositiveInt = 64
    embed_dim: PositiveInt = 32
    layers: PositiveInt = 1
    dropout: float = Field(default=0.1, ge=0, lt=1)
    feature_block: bool = Field(
        default=True, description="Append the within-class whitened features to the learned embedding (LDA block)."
    )
    learned_scale: float = Field(
        default=0.5, ge=0, description="Norm of the learned part of the embedding when a feature block is on."
    )
    whiten_shrinkage: float = Field(
        default=0.2, ge=0, le=1, description="Shrinkage of the within-class covariance of the whitening."
    )
    quantile_features: bool = Field(
        default=True, description="Features enter as normal scores of their ranks among the training objects."
    )
    novelty_subspace: bool = Field(default=True, description="Open-set score read in the span of the prototypes.")
    prior_weight: float = Field(
        default=1.0, ge=0, description="Weight of log class prior counts in the decision (0: equal priors)."
    )
    registered_prior_count: float = Field(
        default=20.0, gt=0, description="Prior count of a class registered from examples."
    )
    context_fields: tuple[str, ...] = Field(
        default=(), description="Context fields the learned encoder reads (values + missing indicators)."
    )
    context_dropout: float = Field(
        default=0.3, ge=0, lt=1, description="Chance a context field is hidden from the encoder in training."
    )
    novelty_rule: Literal["mixture", "min_distance"] = Field(
        default="mixture", description="Open-set score: prior-weighted mixture density or minimum class distance."
    )
    episode_distance: Literal["learned_only", "embedding"] = Field(
        default="learned_only", description="What episodes train: the learned part alone or the whole embedding."
    )
    tune_prior_weight: bool = Field(
        default=False, description="Choose the prior weight for macro-F1 on the training objects (leave-one-out)."
    )


class ScalingConfig(_Strict):
    num_workers: PositiveInt = 2
    use_gpu: bool = False


class TrainConfig(_Strict):
    seed: int = 0
    epochs: PositiveInt = 3
    lr: float = Field(default=2e-3, gt=0)
    data: DataConfig = DataConfig()
    episodes: EpisodeConfig = EpisodeConfig()
    model: ModelConfig = ModelConfig()
    scaling: ScalingConfig = ScalingConfig()
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)


class GateConfig(_Strict):
    metric: Literal["balanced_accuracy", "macro_f1"] = "balanced_accuracy"
    min_gain: float = Field(default=0.0, description="Promote only if new - production exceeds this.")


class RetentionConfig(_Strict):
    delete_raw_outside_window: bool = False


class RetrainConfig(_Strict):
    train_config: Path = Path("configs/train.yaml")
    window_nights: PositiveInt = 30
    gate: GateConfig = GateConfig()
    retention: RetentionConfig = RetentionConfig()


def load_yaml_config(path: Path | str, model: type[BaseModel]) -> BaseModel:
    """Read a YAML file into a validated config model.

    A default path such as ``configs/train.yaml`` that is not in the working folder is read from
    the copy shipped with the package (``resources.config_file``).

    Raises:
        ConfigError: the file is missing or does not match the model.
    """
    path = config_file(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return model.model_validate(raw)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} not found") from exc
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"config file {path} is invalid: {exc}") from exc


def load_train_config(path: Path | str) -> TrainConfig:
    return load_yaml_config(path, TrainConfig)  # type: ignore[return-value]


def load_retrain_config(path: Path | str) -> RetrainConfig:
    return load_yaml_config(path, RetrainConfig)  # type: ignore[return-value]
