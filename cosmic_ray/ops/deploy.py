"""Deploy, inspect and stop the Serve application (``cosmic-ray serve up|down|status``).

``serve up`` has ``serve deploy`` semantics: the application of ``configs/serve.yaml`` is applied
declaratively through the Serve controller, as the dashboard's ``PUT /api/serve/applications/``
does, but on any connected cluster (the dashboard is optional). The same config twice changes
nothing; an edited replica count or ``user_config`` is applied in place (no restart of the code);
other applications on the cluster are left as they are. ``serve down`` deletes this application only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml

from cosmic_ray.core.config import Settings
from cosmic_ray.core.errors import ConfigError
from cosmic_ray.core.resources import config_file

if TYPE_CHECKING:
    from ray.serve.schema import ServeApplicationSchema

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("configs/serve.yaml")
DEFAULT_APP_NAME = "cosmic_ray"
#: Application statuses of a live app (a deleted one is gone from ``serve.status()`` or DELETING).
LIVE = {"RUNNING", "DEPLOYING", "UNHEALTHY"}


@dataclass(frozen=True)
class ServeConfig:
    """What ``configs/serve.yaml`` declares: the proxies' placement and this project's application."""

    proxy_location: str
    app: dict[str, Any]  # one entry of `applications:` (name, route_prefix, import_path, args, deployments)

    @property
    def app_name(self) -> str:
        return str(self.app.get("name", DEFAULT_APP_NAME))


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply`` did: ``changed`` is False when the running application already had this config."""

    app_name: str
    url: str
    changed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_serve_config(path: Path | str = DEFAULT_CONFIG) -> ServeConfig:
    """The proxy location and first application of a Serve config file.

    ``configs/serve.yaml`` missing from the working folder is read from the copy shipped with the package.

    Raises:
        ConfigError: not a Serve config with an application.
    """
    try:
        cfg = yaml.safe_load(config_file(path).read_text())
        app = dict(cfg["applications"][0])
        proxy_location = str(cfg.get("proxy_location", "EveryNode"))
    except (OSError, KeyError, IndexError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} is not a Serve config with an application: {exc}") from exc
    if "import_path" not in app:
        raise ConfigError(f"{path}: the application has no import_path")
    return ServeConfig(proxy_location=proxy_location, app=app)


def load_app_config(path: Path | str = DEFAULT_CONFIG) -> dict[str, Any]:
    """The first application of a Serve config file (name, route_prefix, args, deployments)."""
    return load_serve_config(path).app


def app_config(settings: Settings, config: ServeConfig) -> dict[str, Any]:
    """The application as deployed: the file's, with this machine's state locations in its args."""
    app = dict(config.app)
    args = dict(app.get("args") or {})
    args.update(home=str(settings.home_dir), mlflow_tracking_uri=settings.tracking_uri)
    if settings.store_url:
        args["store_url"] = settings.store_url
    app["args"] = args
    app.setdefault("name", DEFAULT_APP_NAME)
    app.setdefault("route_prefix", "/")
    return app


def healthy(settings: Settings, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{settings.app_url}/healthz", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_healthy(settings: Settings, timeout: float = 120.0, app_name: str | None = None) -> None:
    """Wait for /healthz to answer 200 (and, given ``app_name``, for Serve to report it RUNNING).

    Args:
        settings: where the app listens.
        timeout: seconds.
        app_name: also wait until every replica of this application runs, and fail fast when Serve
            reports it DEPLOY_FAILED (needs a connected Ray).

    Raises:
        ConfigError: the application failed to deploy (Serve's message).
        TimeoutError: not ready within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = "RUNNING"
        if app_name is not None:
            from ray import serve  # deferred: ray is heavy

            app = serve.status().applications.get(app_name)
            status = _status({"status": app.status}) if app is not None else "NOT_STARTED"
            if app is not None and status == "DEPLOY_FAILED":
                raise ConfigError(f"Serve could not deploy {app_name!r}: {app.message[-2000:]}")
        if status == "RUNNING" and healthy(settings):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{settings.app_url}/healthz did not answer 200 within {timeout:.0f} s")


def apply(settings: Settings, config_path: Path | str = DEFAULT_CONFIG, wait: float = 180.0) -> ApplyResult:
    """Apply the application of ``config_path`` to the connected Ray cluster; wait for /healthz.

    Declarative and idempotent: unchanged config, nothing redeployed; edited deployment options
    (replicas, autoscaling, ``user_config``) applied in place; other applications kept.

    Raises:
        ConfigError: no production model is registered (``cosmic-ray train``), or a bad config.
        TimeoutError: /healthz did not answer 200 within ``wait`` seconds.
    """
    # deferred: ray and the registry (mlflow) are heavy; only deploying commands need them
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeApplicationSchema, ServeDeploySchema

    from cosmic_ray.learn import registry

    if registry.production_version(settings) is None:
        raise ConfigError(
            f"no {settings.model_name}@production model in {settings.tracking_uri}: run `cosmic-ray train` first"
        )
    config = load_serve_config(config_path)
    try:
        wanted = ServeApplicationSchema.model_validate(app_config(settings, config))
    except ValueError as exc:  # pydantic's ValidationError
        raise ConfigError(f"{config_path}: {exc}") from exc
    serve.start(proxy_location=config.proxy_location, http_options={"host": settings.host, "port": settings.app_port})
    # Ray glue: the controller's declarative API (what `serve deploy` reaches through the dashboard)
    client = _get_global_client()
    if client is None:  # serve.start() just ran: only a controller that died meanwhile gets here
        raise RuntimeError("the Serve controller is not running")
    deployed = _declarative_apps(client.get_serve_details())
    current = deployed.get(wanted.name)
    changed = current is None or not _same(current, wanted)
    if changed:
        others = [app for name, app in deployed.items() if name != wanted.name]
        client.deploy_apps(
            ServeDeploySchema.model_validate(
                {
                    "proxy_location": config.proxy_location,
                    "http_options": {"host": settings.host, "port": settings.app_port},
                    "applications": [*others, wanted],  # the other config-deployed apps, as they run
                }
            )
        )
        log.info("applied %s (application %r)", config_path, wanted.name)
    else:
        log.info("application %r already runs with %s: nothing to apply", wanted.name, config_path)
    wait_healthy(settings, wait, app_name=wanted.name)
    log.info("serving at %s (docs at %s/docs)", settings.app_url, settings.app_url)
    return ApplyResult(app_name=wanted.name, url=settings.app_url, changed=changed)


def _declarative_apps(details: dict[str, Any]) -> dict[str, ServeApplicationSchema]:
    """The live applications deployed from a config, by name, as ``ServeApplicationSchema``."""
    from ray.serve.schema import ServeApplicationSchema  # deferred: ray is heavy

    out = {}
    for name, app in (details.get("applications") or {}).items():
        config = app.get("deployed_app_config")
        if config and str(app.get("source", "")).lower().endswith("declarative") and _status(app) in LIVE:
            out[name] = ServeApplicationSchema.model_validate(config)
    return out


def _status(app: dict[str, Any]) -> str:
    status = app.get("status", "")
    return str(getattr(status, "value", status)).upper().rsplit(".", 1)[-1]


def _same(a: ServeApplicationSchema, b: ServeApplicationSchema) -> bool:
    """Whether two ``ServeApplicationSchema`` declare the same application (fields set in either)."""
    return a.model_dump(exclude_unset=True) == b.model_dump(exclude_unset=True)


def deploy(settings: Settings, config_path: Path | str = DEFAULT_CONFIG, wait: float = 180.0) -> str:
    """``apply`` the application of ``config_path``; returns the app URL.

    Requires a registered production model (``cosmic-ray train``).
    """
    return apply(settings, config_path, wait).url


def shutdown(app_name: str = DEFAULT_APP_NAME) -> bool:
    """Delete this application only (other Serve applications keep running).

    With no application left, Serve itself stops too (its controller and HTTP proxies, HAProxy in
    the high-throughput mode), so nothing keeps the app's port; ``serve up`` starts it again.

    Returns:
        True if the application was running and is now deleted.
    """
    from ray import serve  # deferred: ray is heavy

    if app_name not in serve.status().applications:
        return False
    serve.delete(app_name)
    if not serve.status().applications:
        serve.shutdown()
        log.info("no Serve application left: Serve stopped")
    return True


def status() -> dict[str, Any]:
    from ray import serve  # deferred: ray is heavy

    st = serve.status()
    return {name: app.status for name, app in st.applications.items()}
