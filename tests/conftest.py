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
    from cosmic_ray.core.config import Settings

    return Settings(
        home=session_home,
        shared_data=shared_data,
        mlflow_tracking_uri=f"sqlite:///{session_home / 'mlflow.db'}",
        app_port=free_port(),
    )


# ------------------------------------------------------------------ the real pipeline, once per session
# A small but real run: the lake from the shared data, a trained and registered model, the Serve app.
from cosmic_ray.core.config import DataConfig, EpisodeConfig, ScalingConfig, TrainConfig  # noqa: E402

SMALL = TrainConfig(
    seed=0,
    epochs=3,
    lr=3e-3,
    data=DataConfig(max_objects_per_class=80),
    episodes=EpisodeConfig(n_way=4, k_shot=5, n_query=5, per_epoch=25),
    scaling=ScalingConfig(num_workers=2),
)


@pytest.fixture(scope="session")
def ingested(ray_session, settings):
    from cosmic_ray.ops import pipeline

    inputs = pipeline.default_inputs(settings)
    assert not inputs.simulated
    return pipeline.ingest_defaults(settings, inputs)


@pytest.fixture(scope="session")
def trained(ingested, settings):
    from cosmic_ray.ops import pipeline

    return pipeline.train_from_lake(settings, SMALL)


@pytest.fixture(scope="session")
def served(trained, settings):
    from cosmic_ray.ops import deploy as serving

    url = serving.deploy(settings)
    yield url
    serving.shutdown()


@pytest.fixture(scope="session")
def event_store(settings):
    """The event store the served app uses (SQLite under the session home): ``.events``, ``.accounts``."""
    from cosmic_ray.serve.store import Store

    store = Store.open(settings.event_store_url)
    yield store
    store.close()


@pytest.fixture(scope="session")
def accounts(event_store):
    """An astronomer and a viewer, each with an API token: ``{"astronomer": token, "viewer": token}``."""
    event_store.accounts.add_user("ada", "astronomer password 1", role="astronomer")
    event_store.accounts.add_user("vic", "viewer password 1", role="viewer")
    return {
        "astronomer": event_store.accounts.create_token("ada", "tests").token,
        "viewer": event_store.accounts.create_token("vic", "tests").token,
    }


# ------------------------------------------------------------------ Kafka
@pytest.fixture(scope="session")
def kafka_broker():
    """A real Kafka-protocol broker (tansu, in-memory) on loopback for the session: its bootstrap address.

    Tests use topics and consumer groups of their own names; the broker stops at the end.
    """
    from cosmic_ray.stream.broker import EmbeddedBroker

    broker = EmbeddedBroker()
    broker.start()
    yield broker.bootstrap
    broker.stop()
