"""`cosmic-ray cluster up` + `serve up` as a user runs them, then `cluster down`, `cluster up`, `serve up`:

- by default nothing of the cluster or the app listens beyond 127.0.0.1 (Ray's GCS, raylet, agents,
  Serve's proxy and actors included);
- `cluster down` leaves no process of the stopped cluster, and the app's port free, so the next
  `cluster up` + `serve up` works;
- in the opt-in high-throughput mode, HAProxy's files are in a 0700 folder of the home (not /tmp),
  and `cluster down` stops HAProxy too (it survived and kept the app's port before).

Each cluster has its own home, temp dir and ports, and serves the session's registered model.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import REPO, free_port

from cosmic_ray.ops import procs

BIN = Path(sys.executable).parent


def _env(tmp_path: Path, settings, **extra: str) -> dict[str, str]:
    home = tmp_path / "user"  # a new user's home: Ray's token is made there
    home.mkdir(exist_ok=True)
    cr_home = tmp_path / "cr"
    cr_home.mkdir(exist_ok=True)
    shutil.copy(settings.home_dir / "mlflow.db", cr_home / "mlflow.db")  # the session's registered model
    shutil.copy(settings.model_signing_key_file, cr_home / settings.model_signing_key_file.name)  # and its key
    env = {
        **os.environ,
        "HOME": str(home),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "RAY_USAGE_STATS_ENABLED": "0",
        "COSMIC_RAY_HOME": str(cr_home),
        "COSMIC_RAY_MLFLOW_TRACKING_URI": f"sqlite:///{cr_home / 'mlflow.db'}",
        "COSMIC_RAY_RAY_PORT": str(free_port()),
        "COSMIC_RAY_DASHBOARD_PORT": str(free_port()),
        "COSMIC_RAY_APP_PORT": str(free_port()),
        "COSMIC_RAY_SERVE_HIGH_THROUGHPUT": "false",
        **extra,
    }
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS", "COSMIC_RAY_RAY_ADDRESS", "RAY_AUTH_MODE"):
        env.pop(name, None)
    return env


def _cli(env: dict[str, str], *args: str, timeout: float = 400) -> dict:
    proc = subprocess.run(
        [str(BIN / "cosmic-ray"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _state(env: dict[str, str]) -> dict:
    return json.loads((Path(env["COSMIC_RAY_HOME"]) / "cluster.json").read_text())


def _members(state: dict) -> list[procs.Proc]:
    """The processes of a running cluster: the head's tree and session, and what names its temp dir."""
    return procs.family(state["pid"], folders=[state["temp_dir"]])


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _healthy(env: dict[str, str]) -> bool:
    answer = httpx.get(f"http://127.0.0.1:{env['COSMIC_RAY_APP_PORT']}/healthz", timeout=10)
    return answer.status_code == 200 and answer.json()["status"] == "ok"


def _down_leaves_nothing(env: dict[str, str], members: list[procs.Proc], temp_dir: str) -> None:
    assert _cli(env, "cluster", "down", timeout=180)["stopped"] is True
    left = [proc for proc in members if procs.alive(proc)]
    assert not left, [(proc.name, proc.pid) for proc in left]  # every process of that cluster is gone
    assert not procs.family(-1, folders=[temp_dir])
    assert not _port_open(int(env["COSMIC_RAY_APP_PORT"]))  # nobody holds the app's port
    assert not _port_open(int(env["COSMIC_RAY_RAY_PORT"]))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_by_default_only_loopback_listens_and_down_up_serve_up_works(trained, settings, tmp_path):
    env = _env(tmp_path, settings)
    try:
        up = _cli(env, "cluster", "up", "--num-cpus", "4")
        assert up["started"] is True and up["address"].startswith("127.0.0.1:")
        assert up["listening"] and up["high_throughput"] is False
        served = _cli(env, "serve", "up")
        assert _healthy(env)
        state = _state(env)
        members = _members(state)
        listening = procs.listeners(members)
        ports = {item.port for item in listening}
        assert {int(env["COSMIC_RAY_RAY_PORT"]), int(env["COSMIC_RAY_APP_PORT"])} <= ports
        exposed = [str(item) for item in listening if not item.loopback]
        assert not exposed, exposed  # nothing beyond 127.0.0.1 (Ray's gRPC servers and agents included)
        assert all(item.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")) for item in served["listening"])

        _down_leaves_nothing(env, members, state["temp_dir"])

        # up, serve up again: the app answers from the new cluster
        assert _cli(env, "cluster", "up", "--num-cpus", "4")["started"] is True
        _cli(env, "serve", "up")
        assert _healthy(env)
        state = _state(env)
        members = _members(state)
    finally:
        if (Path(env["COSMIC_RAY_HOME"]) / "cluster.json").exists():
            _cli(env, "cluster", "down", timeout=180)
    left = [proc for proc in members if procs.alive(proc)]
    assert not left, [(proc.name, proc.pid) for proc in left]
    shutil.rmtree(state["temp_dir"], ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_high_throughput_mode_keeps_haproxy_private_and_down_stops_it(trained, settings, tmp_path):
    env = _env(
        tmp_path,
        settings,
        COSMIC_RAY_SERVE_HIGH_THROUGHPUT="true",
        # Ray's fixed stats/metrics ports, moved off any other HAProxy of this machine
        RAY_SERVE_HAPROXY_STATS_PORT=str(free_port()),
        RAY_SERVE_HAPROXY_METRICS_PORT=str(free_port()),
    )
    state: dict = {}
    try:
        up = _cli(env, "cluster", "up", "--num-cpus", "4")
        assert up["high_throughput"] is True
        _cli(env, "serve", "up")
        assert _healthy(env)
        state = _state(env)
        members = _members(state)
        haproxy = [proc for proc in members if "haproxy" in proc.name]
        assert haproxy, [proc.name for proc in members]
        folder = Path(state["haproxy_dir"])
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and folder.stat().st_uid == os.getuid()
        assert any(procs.names_folder(procs.cmdline(proc.pid), str(folder)) for proc in haproxy)  # its config there
        assert list(folder.rglob("admin.sock*"))  # the admin socket too, not in /tmp/haproxy-serve

        _down_leaves_nothing(env, members, state["temp_dir"])
        assert not procs.family(-1, folders=[str(folder)])  # no HAProxy naming that folder either
    finally:
        if (Path(env["COSMIC_RAY_HOME"]) / "cluster.json").exists():
            _cli(env, "cluster", "down", timeout=180)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and state and procs.family(-1, folders=[state["temp_dir"]]):
            time.sleep(0.5)
    if state:
        shutil.rmtree(state["temp_dir"], ignore_errors=True)
        shutil.rmtree(state["haproxy_dir"], ignore_errors=True)


@pytest.mark.timeout(600)
def test_down_after_the_head_died_stops_what_it_left_and_up_starts_clean(tmp_path):
    """The `ray start` process killed (OOM, a closed terminal): its GCS, raylet and workers run on,
    holding the cluster's ports. `cluster down` stops them all; `cluster up` then starts afresh."""
    env = _env_no_model(tmp_path)
    state: dict = {}
    try:
        assert _cli(env, "cluster", "up", "--num-cpus", "2")["started"] is True
        state = _state(env)
        members = _members(state)
        assert len(members) > 3
        os.kill(state["pid"], 9)  # only the head process
        time.sleep(2)
        orphans = [proc for proc in members if procs.alive(proc)]
        assert orphans  # the head's children outlive it
        assert _cli(env, "cluster", "down", timeout=180)["stopped"] is False  # no head to stop
        left = [proc for proc in members if procs.alive(proc)]
        assert not left, [(proc.name, proc.pid) for proc in left]
        assert not _port_open(int(env["COSMIC_RAY_RAY_PORT"]))
        assert _cli(env, "cluster", "up", "--num-cpus", "2")["started"] is True
        state = _state(env)
        members = _members(state)
    finally:
        if (Path(env["COSMIC_RAY_HOME"]) / "cluster.json").exists():
            _cli(env, "cluster", "down", timeout=180)
    assert not [proc for proc in members if procs.alive(proc)]
    shutil.rmtree(state["temp_dir"], ignore_errors=True)


def _env_no_model(tmp_path: Path) -> dict[str, str]:
    """A cluster's environment with no model (`cluster up|down` only)."""
    env = {**os.environ, "HOME": str(tmp_path), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.update(
        RAY_USAGE_STATS_ENABLED="0",
        COSMIC_RAY_HOME=str(tmp_path / "cr"),
        COSMIC_RAY_RAY_PORT=str(free_port()),
        COSMIC_RAY_DASHBOARD_PORT=str(free_port()),
        COSMIC_RAY_SERVE_HIGH_THROUGHPUT="false",
    )
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS", "COSMIC_RAY_RAY_ADDRESS", "RAY_AUTH_MODE"):
        env.pop(name, None)
    return env
