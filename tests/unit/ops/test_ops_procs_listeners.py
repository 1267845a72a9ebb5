"""What `cluster down` and `cluster up` read from /proc, on real processes and sockets (no Ray):
a process tree with a member that left its parent's session, what listens where, and the cluster's
environment (loopback node address, HAProxy's files in a 0700 folder of the home).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cosmic_ray.core.config import Settings
from cosmic_ray.ops import cluster, procs

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")

# A parent that starts a child in a session of its own (as a daemon or an actor's subprocess would),
# the child naming a folder on its command line, and listening on loopback and on all interfaces.
TREE = """
import socket, subprocess, sys, time
folder = sys.argv[1]
child = subprocess.Popen(
    [sys.executable, "-c", "import socket, time\\n"
     "a = socket.socket(); a.bind(('127.0.0.1', 0)); a.listen()\\n"
     "b = socket.socket(); b.bind(('0.0.0.0', 0)); b.listen()\\n"
     "print(a.getsockname()[1], b.getsockname()[1], flush=True)\\n"
     "time.sleep(120)", "--config=" + folder + "/x.cfg"],
    start_new_session=True, stdout=sys.stdout,
)
time.sleep(120)
"""


def _wait(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_family_finds_a_detached_child_lists_its_sockets_and_terminate_stops_all(tmp_path):
    folder = tmp_path / "cluster-folder"
    parent = subprocess.Popen(
        [sys.executable, "-c", TREE, str(folder)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        ports = [int(p) for p in parent.stdout.readline().split()]  # type: ignore[union-attr]
        members = procs.family(parent.pid, folders=[str(folder)])
        assert len(members) == 2 and parent.pid in {p.pid for p in members}
        child = next(p for p in members if p.pid != parent.pid)
        assert child.session == child.pid != parent.pid  # outside the parent's session and group

        found = procs.listeners(members)
        assert {(item.port, item.loopback) for item in found} == {(ports[0], True), (ports[1], False)}
        assert all(item.pid == child.pid for item in found)
        assert str(next(item for item in found if item.loopback)).startswith(f"127.0.0.1:{ports[0]} ")

        # the parent gone (killed, as a crashed actor), the child is an orphan: found by the folder it names
        parent.kill()
        parent.wait()
        orphans = procs.family(-1, folders=[str(folder)])
        assert [p.pid for p in orphans] == [child.pid]
        assert not procs.family(-1, folders=[str(tmp_path / "cluster-fold")])  # a prefix is not the folder

        procs.terminate(orphans, grace=5)
        assert not procs.alive(child)
        assert not procs.family(-1, folders=[str(folder)])
    finally:
        for proc in procs.family(parent.pid, folders=[str(folder)]):
            os.kill(proc.pid, 9)


def test_the_cluster_binds_loopback_and_keeps_haproxy_files_in_a_private_folder_of_the_home(tmp_path):
    home = tmp_path / "h"
    settings = Settings(home=home, serve_high_throughput=True)
    env = cluster._env(settings)
    assert env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"  # else `ray start` swaps 127.0.0.1 for the machine's IP
    assert cluster._node_ip(settings) == "127.0.0.1"
    assert cluster._node_ip(Settings(home=home, ray_node_ip_address="localhost")) == "127.0.0.1"
    exposed = Settings(home=home, ray_node_ip_address="192.0.2.7")
    assert cluster._node_ip(exposed) == "192.0.2.7" and "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in cluster._env(exposed)

    folder = cluster.haproxy_dir(settings)
    assert folder.parent == home.resolve() or folder.name.startswith(f"crh-{os.getuid()}-")
    for name in (
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC",
        "RAY_SERVE_HAPROXY_SOCKET_PATH",
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH",
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE",
    ):
        assert Path(env[name]).parent == folder, name  # never /tmp/haproxy-serve
    # Serve puts the sockets in <folder>/<node id: 56 hex>/: the path must fit HAProxy's limit (97)
    assert len(env["RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH"]) + 57 <= 97

    long_home = Settings(home=tmp_path / ("x" * 60), serve_high_throughput=True)
    assert cluster.haproxy_dir(long_home).name == f"crh-{os.getuid()}-{long_home.ray_port}"
    short_home = Settings(home=Path("/h"), serve_high_throughput=True)
    assert cluster.haproxy_dir(short_home) == Path("/h/haproxy")

    made = cluster._private_dir(tmp_path / "hap")  # as `up` makes haproxy_dir(settings)
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    os.chmod(made, 0o755)
    assert stat.S_IMODE(cluster._private_dir(made).stat().st_mode) == 0o700
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RuntimeError, match="symlink"):
        cluster._private_dir(tmp_path / "link")  # a planted symlink is refused

    assert not Settings(home=home).serve_high_throughput  # opt-in
    assert "RAY_SERVE_ENABLE_HA_PROXY" not in cluster._env(Settings(home=home))


def test_replica_grpc_addresses_on_all_interfaces_become_loopback():
    from cosmic_ray.serve.loopback import loopback_address

    assert loopback_address("[::]:0") == "127.0.0.1:0"
    assert loopback_address("0.0.0.0:5000") == "127.0.0.1:5000"
    assert loopback_address("10.0.0.5:5000") == "10.0.0.5:5000"  # a chosen address is kept
