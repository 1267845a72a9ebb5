"""Deploy, inspect and stop the Serve application (``cosmic-ray serve up|down|status``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from cosmic_ray.core.config import Settings
from cosmic_ray.core.errors import ConfigError
from cosmic_ray.core.resources import config_file

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("configs/serve.yaml")


def load_app_config(path: Path | str = DEFAULT_CONFIG) -> dict[str, Any]:
    """The first application of a Serve config file (name, route_prefix, args, deployments).

    ``configs/serve.yaml`` missing from the working folder is read from the copy shipped with the package.
    """
    try:
        cfg = yaml.safe_load(config_file(path).read_text())
        app = cfg["applications"][0]
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} is not a Serve config with an application: {exc}") from exc
    return app


def healthy(settings: Settings, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{settings.app_url}/healthz", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_healthy(settings: Settings, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(settings):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{settings.app_url}/healthz did not answer 200 within {timeout:.0f} s")


def deploy(settings: Settings, config_path: Path | str = DEFAULT_CONFIG, wait: float = 180.0) -> str:
    """Run the application of ``config_path`` on the connected Ray cluster and wait for /healthz.

    Requires a registered production model (``cosmic-ray train``). Returns the app URL.
    """
    from ray import serve

    from cosmic_ray.learn import registry
    from cosmic_ray.serve.app import build_app

    if registry.production_version(settings) is None:
        raise ConfigError(
            f"no {settings.model_name}@production model in {settings.tracking_uri}: run `cosmic-ray train` first"
        )
    app_cfg = load_app_config(config_path)
    args = dict(app_cfg.get("args") or {})
    args.update(
        home=str(settings.home_dir),
        mlflow_tracking_uri=settings.tracking_uri,
        deployments=app_cfg.get("deployments") or [],
    )
    if settings.store_url:
        args["store_url"] = settings.store_url
    serve.start(http_options={"host": settings.host, "port": settings.app_port})
    serve.run(
        build_app(args),
        name=app_cfg.get("name", "cosmic_ray"),
        route_prefix=app_cfg.get("route_prefix", "/"),
        blocking=False,
    )
    wait_healthy(settings, wait)
    log.info("serving at %s (docs at %s/docs)", settings.app_url, settings.app_url)
    return settings.app_url


def shutdown() -> None:
    from ray import serve

    serve.shutdown()


def status() -> dict[str, Any]:
    from ray import serve

    st = serve.status()
    return {name: app.status for name, app in st.applications.items()}
