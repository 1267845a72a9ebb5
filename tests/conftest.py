"""Shared fixtures: one local Ray per test session, the real shared data, a temporary home."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption("--remote-data", action="store_true", default=False, help="run tests that need the live network")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--remote-data"):
        return
    skip = pytest.mark.skip(reason="needs the live network: run with --remote-data")
    for item in items:
        if "remote_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(os.environ.get("COSMIC_RAY_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
    assert path.is_dir(), f"the shared real data is missing at {path}: set COSMIC_RAY_SHARED_DATA"
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray cluster for the whole session (4 logical CPUs on 2 cores: train + serve fit)."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    try:
        from ray import serve

        serve.shutdown()
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def session_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cosmic_ray_home")


@pytest.fixture(scope="session")
def settings(session_home, shared_data):
    from cosmic_ray.config import Settings

    return Settings(
        home=session_home,
        shared_data=shared_data,
        mlflow_tracking_uri=f"sqlite:///{session_home / 'mlflow.db'}",
        app_port=free_port(),
    )
