"""The local Ray cluster: start, stop, status (``cosmic-ray cluster up|down|status``) and connect."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cosmic_ray.core.config import Settings

log = logging.getLogger(__name__)


def _ray_cli() -> str:
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


def _env(settings: Settings | None = None) -> dict[str, str]:
    settings = settings or Settings()
    env = dict(os.environ)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("RAY_AUTH_MODE", settings.ray_auth_mode)
    if settings.serve_high_throughput:
        env.update(high_throughput_env())
    # Serve replaces a dead HTTP proxy after 3 failed health checks: 10 s apart by default (~30 s
    # outage, bench/fault_bench.py), 2 s apart here (~9 s)
    env.setdefault("RAY_SERVE_PROXY_HEALTH_CHECK_PERIOD_S", "2")
    return env


def is_running() -> bool:
    """Whether a local Ray cluster answers (``ray status``)."""
    proc = subprocess.run([_ray_cli(), "status"], capture_output=True, text=True, env=_env(), timeout=60)
    return proc.returncode == 0


def high_throughput_env() -> dict[str, str]:
    """Ray Serve's high-throughput mode; read by Serve when Ray's processes start (set before `ray start`)."""
    return {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}


def up(settings: Settings, num_cpus: int | None = None) -> bool:
    """Start a local head node with the dashboard on the settings' host/port; no-op if one runs.

    Returns:
        True if a cluster was started, False if one was already running.
    """
    if is_running():
        return False
    # Logical CPUs above the physical count let training and serving share a small machine.
    cpus = num_cpus or max(os.cpu_count() or 2, 4)
    cmd = [
        _ray_cli(),
        "start",
        "--head",
        f"--dashboard-host={settings.dashboard_host}",
        f"--dashboard-port={settings.dashboard_port}",
        "--include-dashboard=true",
        f"--num-cpus={cpus}",
        "--disable-usage-stats",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(settings), timeout=180)
    if proc.returncode != 0:
        raise RuntimeError(f"`ray start` failed:\n{proc.stderr[-2000:]}")
    log.info("started a local Ray cluster; dashboard at %s", settings.dashboard_url)
    return True


def down() -> None:
    subprocess.run([_ray_cli(), "stop", "--force"], capture_output=True, text=True, env=_env(), timeout=120)


def status() -> str:
    proc = subprocess.run([_ray_cli(), "status"], capture_output=True, text=True, env=_env(), timeout=60)
    return proc.stdout if proc.returncode == 0 else "no Ray cluster is running"


def connect(settings: Settings, start_local: bool = True, persistent: bool = True) -> None:
    """``ray.init`` against ``RAY_ADDRESS`` if set, else the local cluster.

    Args:
        start_local: start a local cluster when none runs.
        persistent: start it with ``ray start`` (outlives this process, dashboard on the settings'
            port) rather than in-process (gone when this process exits).
    """
    import ray

    if ray.is_initialized():
        return
    # RAY_AUTH_MODE is read when ray is imported: set it in the environment, not here.
    if settings.ray_address:
        ray.init(address=settings.ray_address)
    elif is_running():
        ray.init(address="auto")
    elif start_local and persistent:
        up(settings)
        ray.init(address="auto")
    elif start_local:
        ray.init(num_cpus=max(os.cpu_count() or 2, 4), include_dashboard=False)
    else:
        raise RuntimeError("no Ray cluster is running: `cosmic-ray cluster up`")
