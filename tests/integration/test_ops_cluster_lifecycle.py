"""`cosmic-ray cluster up|down` as a new user runs them: an empty home, no Ray token yet, other Ray
clusters on the machine (the session's). The head gets its own temp dir and ports, runs a real
`ray job submit`, and `cluster down` stops it and nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, free_port

BIN = Path(sys.executable).parent


def _env(home: Path, cosmic_home: Path, ray_port: int, dashboard_port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "HOME": str(home),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "RAY_USAGE_STATS_ENABLED": "0",
        "COSMIC_RAY_HOME": str(cosmic_home),
        "COSMIC_RAY_RAY_PORT": str(ray_port),
        "COSMIC_RAY_DASHBOARD_PORT": str(dashboard_port),
    }
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS", "COSMIC_RAY_RAY_ADDRESS", "RAY_AUTH_MODE"):
        env.pop(name, None)
    return env


def _cli(env: dict[str, str], *args: str, timeout: float = 240) -> dict:
    proc = subprocess.run(
        [str(BIN / "cosmic-ray"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (from /proc)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(int(pid))
        except OSError:
            continue
    return pids


def _session_answers(ray) -> bool:
    """A task round trip on the session's own cluster (another Ray cluster of this machine)."""

    @ray.remote(num_cpus=0)
    def one() -> int:
        return 1

    return ray.get(one.remote(), timeout=60) == 1


def test_cluster_up_on_a_fresh_home_runs_a_job_and_down_stops_only_it(ray_session, tmp_path):
    home = tmp_path / "home"  # a new user's empty home: no ~/.ray/auth_token
    home.mkdir()
    ray_port, dashboard_port = free_port(), free_port()
    env = _env(home, tmp_path / "cosmic_ray_home", ray_port, dashboard_port)
    assert _session_answers(ray_session)
    temp_dir = None
    try:
        up = _cli(env, "cluster", "up", "--num-cpus", "3")
        assert up["started"] is True and up["address"].endswith(f":{ray_port}")
        state = json.loads((tmp_path / "cosmic_ray_home" / "cluster.json").read_text())
        temp_dir = state["temp_dir"]
        assert str(ray_port) in temp_dir and Path(temp_dir, "ray_current_cluster").exists()

        token = home / ".ray" / "auth_token"
        assert token.exists() and len(token.read_text()) == 64
        assert stat.S_IMODE(token.stat().st_mode) == 0o600

        assert _cli(env, "cluster", "up")["started"] is False  # idempotent

        # a real job through the dashboard of this head, authenticated by the token it made
        job_env = {**env, "RAY_AUTH_MODE": "token"}
        entry = "import ray; ray.init(); print('job-sees-cpus', int(ray.cluster_resources()['CPU']))"
        job = subprocess.run(
            [
                str(BIN / "ray"),
                "job",
                "submit",
                f"--address=http://127.0.0.1:{dashboard_port}",
                "--",
                "python",
                "-c",
                entry,
            ],
            env=job_env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert job.returncode == 0, (job.stdout + job.stderr)[-3000:]
        assert "job-sees-cpus 3" in job.stdout, job.stdout[-3000:]  # its driver joined this head, not another
        assert _processes_mentioning(temp_dir)
    finally:
        down = _cli(env, "cluster", "down", timeout=180)
    assert down["stopped"] is True
    deadline = time.monotonic() + 30
    while _processes_mentioning(temp_dir) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_mentioning(temp_dir)  # every process of that head is gone
    assert not (tmp_path / "cosmic_ray_home" / "cluster.json").exists()
    assert _cli(env, "cluster", "down")["stopped"] is False  # nothing left to stop
    assert _session_answers(ray_session)  # the other cluster on this machine still runs
    shutil.rmtree(temp_dir, ignore_errors=True)
