"""The local Ray cluster: start, stop, status (``cosmic-ray cluster up|down|status``) and connect.

``up`` runs ``ray start --head --block`` as a detached child with its own temp dir and ports, and
records it in ``$COSMIC_RAY_HOME/cluster.json``; ``down`` stops that head (SIGTERM: Ray drains the
node and stops the processes it started), then every process of that cluster still running (its
process tree and session, and what names its folders, such as an HAProxy that outlived its actor),
and nothing else, so other Ray clusters on the machine (other users', tests') keep running.
``ray stop`` is never called: it stops every Ray process.

By default every port of the head listens on 127.0.0.1 only (``COSMIC_RAY_RAY_NODE_IP_ADDRESS``):
Ray binds loopback when its node address is 127.0.0.1, which ``ray start`` accepts only with
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (else it swaps in the machine's address).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cosmic_ray.core.config import Settings
from cosmic_ray.ops import procs

log = logging.getLogger(__name__)

STATE_FILE = "cluster.json"
LOG_FILE = "cluster.log"


@dataclass(frozen=True)
class ClusterState:
    """The head ``up`` started: what ``down``, ``status`` and ``connect`` need to find it again."""

    pid: int  # the `ray start --block` process; also the id of its process group
    gcs_address: str  # host:port, for ray.init(address=...) and `ray status --address`
    dashboard_url: str  # for `ray job submit --address`
    temp_dir: str
    log: str
    haproxy_dir: str = ""  # HAProxy's config and sockets (high-throughput mode), or ""

    @property
    def gcs_port(self) -> int:
        return int(self.gcs_address.rsplit(":", 1)[1])


def _ray_cli() -> str:
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


#: Longest Unix socket path HAProxy 2.8 accepts (it binds ``<path>.<pid>.tmp`` first; sun_path is 108 bytes).
_MAX_SOCKET_PATH = 97
#: HAProxy's sockets lie in ``<haproxy dir>/<node id: 56 hex>/``; the longest is metrics.sock.
_HAPROXY_SOCKET_TAIL = 1 + 56 + 1 + len("metrics.sock")


def is_loopback(address: str) -> bool:
    """Whether ``address`` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def haproxy_dir(settings: Settings) -> Path:
    """HAProxy's folder (config, admin and metrics sockets, server state): ``$COSMIC_RAY_HOME/haproxy``.

    Ray's default is ``/tmp/haproxy-serve`` with a world-writable admin socket (``mode 666 level
    admin``); this folder is the user's only (0700, made by ``up``). A home whose path would make
    the sockets' paths too long for HAProxy gets a short private folder in the temp dir instead,
    ``crh-<uid>-<GCS port>``.
    """
    folder = settings.home_dir / "haproxy"
    if len(str(folder)) + _HAPROXY_SOCKET_TAIL > _MAX_SOCKET_PATH:
        folder = Path(tempfile.gettempdir()) / f"crh-{os.getuid()}-{settings.ray_port}"
    return folder


def high_throughput_env(settings: Settings | None = None) -> dict[str, str]:
    """Ray Serve's high-throughput mode; read by Serve when Ray's processes start (set before `ray start`).

    Given ``settings``, HAProxy's config and sockets go to :func:`haproxy_dir` instead of ``/tmp``.
    """
    env = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
    if settings is not None:
        folder = haproxy_dir(settings)
        env.update(
            RAY_SERVE_HAPROXY_CONFIG_FILE_LOC=str(folder / "haproxy.cfg"),
            RAY_SERVE_HAPROXY_SOCKET_PATH=str(folder / "admin.sock"),
            RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH=str(folder / "metrics.sock"),
            RAY_SERVE_HAPROXY_SERVER_STATE_BASE=str(folder),
            RAY_SERVE_HAPROXY_SERVER_STATE_FILE=str(folder / "server-state"),
        )
    return env


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("RAY_AUTH_MODE", settings.ray_auth_mode)
    if is_loopback(settings.ray_node_ip_address):
        # `ray start` replaces a loopback --node-ip-address by the machine's address unless Ray thinks
        # it runs where clusters are single-node (ray._private.services.get_node_ip_address); with a
        # node address of exactly 127.0.0.1, Ray's gRPC servers and agents bind loopback only.
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    else:  # a head other nodes join: not the single-node flag an earlier in-process cluster may have set
        env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    if settings.serve_high_throughput:
        env.update(high_throughput_env(settings))
    # Serve replaces a dead HTTP proxy after 3 failed health checks: 10 s apart by default (~30 s
    # outage, bench/fault_bench.py), 2 s apart here (~9 s)
    env.setdefault("RAY_SERVE_PROXY_HEALTH_CHECK_PERIOD_S", "2")
    # a SIGTERM'd head drains first (30 s by default); a local dev cluster needs only a few seconds
    env.setdefault("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "5")
    return env


# ----------------------------------------------------------------------------- auth token
def token_path(env: dict[str, str]) -> Path:
    """Where Ray 2.60 reads its auth token: ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``.

    (``ray._private.authentication.authentication_token_setup._get_default_token_path``.)
    """
    explicit = env.get("RAY_AUTH_TOKEN_PATH")
    if explicit:
        return Path(explicit).expanduser()
    home = env.get("HOME")
    return (Path(home) if home else Path.home()) / ".ray" / "auth_token"


def ensure_auth_token(env: dict[str, str]) -> Path | None:
    """Create Ray's auth token when token auth is on and none exists; the token file's path, or None.

    ``ray start`` refuses to start in token mode without a token (only an in-process ``ray.init``
    creates one), so a fresh machine could not start the cluster. The token is made as Ray's own
    ``ray get-auth-token --generate`` makes it (``secrets.token_hex(32)`` in the file Ray reads), but
    created owner-only (mode 0600) in one step instead of under the umask.
    """
    if env.get("RAY_AUTH_MODE", "").lower() != "token" or env.get("RAY_AUTH_TOKEN"):
        return None
    path = token_path(env)
    if path.exists():
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made meanwhile by another process: use that one
        return path
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    log.info("created a Ray auth token in %s (mode 0600)", path)
    return path


# ----------------------------------------------------------------------------- state
def state_path(settings: Settings) -> Path:
    return settings.home_dir / STATE_FILE


def read_state(settings: Settings) -> ClusterState | None:
    """The recorded head of ``settings``' home, or None when ``up`` recorded none."""
    try:
        return ClusterState(**json.loads(state_path(settings).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_state(settings: Settings, state: ClusterState) -> None:
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(state), indent=2) + "\n")


def _is_our_head(pid: int) -> bool:
    """Whether ``pid`` is alive and still a ``ray start`` process (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        try:
            os.kill(pid, 0)  # no /proc (macOS): trust the pid
        except OSError:
            return False
        return True
    return b"start" in cmdline and any(part.endswith(b"ray") for part in cmdline)


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def running_state(settings: Settings) -> ClusterState | None:
    """The recorded head if its process is alive and its GCS port answers, else None."""
    state = read_state(settings)
    if state is None or not _is_our_head(state.pid) or not _port_open(state.gcs_port):
        return None
    return state


def is_running(settings: Settings | None = None) -> bool:
    """Whether the cluster ``up`` started for these settings answers."""
    return running_state(settings or Settings()) is not None


def default_temp_dir(settings: Settings) -> Path:
    """Ray's temp dir for this head: per user and GCS port, short (Ray's socket paths must stay < 108 chars)."""
    return Path(tempfile.gettempdir()) / f"cosmic_ray-{os.getuid()}-{settings.ray_port}"


# ----------------------------------------------------------------------------- up / down
def up(settings: Settings, num_cpus: int | None = None, timeout: float = 180.0) -> bool:
    """Start a local head node (GCS on ``settings.ray_port``, dashboard on the settings' host/port).

    A no-op if the head recorded under the settings' home still runs.

    Returns:
        True if a cluster was started, False if it was already running.

    Raises:
        RuntimeError: ``ray start`` failed or the head did not come up within ``timeout``.
    """
    if running_state(settings) is not None:
        return False
    stop_leftovers(settings)
    env = _env(settings)
    ensure_auth_token(env)
    temp_dir = default_temp_dir(settings)
    temp_dir.mkdir(parents=True, exist_ok=True)
    hap_dir = ""
    if settings.serve_high_throughput:
        hap_dir = str(_private_dir(haproxy_dir(settings)))
        if len(hap_dir) + _HAPROXY_SOCKET_TAIL > _MAX_SOCKET_PATH:
            raise RuntimeError(f"HAProxy's socket paths under {hap_dir} would be too long: set a shorter TMPDIR")
    address_file = temp_dir / "ray_current_cluster"  # Ray writes the GCS address here once the head runs
    address_file.unlink(missing_ok=True)
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.home_dir / LOG_FILE
    # Logical CPUs above the physical count let training and serving share a small machine.
    cpus = num_cpus or max(os.cpu_count() or 2, 4)
    cmd = [
        _ray_cli(),
        "start",
        "--head",
        "--block",
        f"--port={settings.ray_port}",
        f"--node-ip-address={_node_ip(settings)}",
        f"--temp-dir={temp_dir}",
        f"--dashboard-host={settings.dashboard_host}",
        f"--dashboard-port={settings.dashboard_port}",
        "--include-dashboard=true",
        # every port of its own, so it can run beside other Ray clusters (defaults are fixed: 10001, 52365, ...)
        f"--ray-client-server-port={_free_port()}",
        f"--dashboard-agent-listen-port={_free_port()}",
        "--min-worker-port=0",
        "--max-worker-port=0",
        f"--num-cpus={cpus}",
        "--disable-usage-stats",
    ]
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while not (address_file.exists() and _port_open(settings.dashboard_port, settings.dashboard_host)):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop_process_group(proc.pid, grace=10.0)
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"`ray start` did not bring a head up (log {log_path}):\n{tail}")
        time.sleep(0.5)
    state = ClusterState(
        pid=proc.pid,
        gcs_address=address_file.read_text().strip(),
        dashboard_url=settings.dashboard_url,
        temp_dir=str(temp_dir),
        log=str(log_path),
        haproxy_dir=hap_dir,
    )
    _write_state(settings, state)
    log.info("started a local Ray cluster at %s; dashboard at %s", state.gcs_address, state.dashboard_url)
    return True


def _node_ip(settings: Settings) -> str:
    """The head's node address: 127.0.0.1 for any loopback name (Ray binds loopback for exactly that)."""
    return "127.0.0.1" if is_loopback(settings.ray_node_ip_address) else settings.ray_node_ip_address


def _private_dir(folder: Path) -> Path:
    """``folder``, created if missing, owner-only (0700) whatever it was before.

    Raises:
        RuntimeError: ``folder`` is a symlink, not a folder, or another user's.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RuntimeError(f"{folder} is not a folder of this user (a symlink, or made by someone else)")
    os.chmod(folder, 0o700)
    return folder


def _folders(settings: Settings, state: ClusterState | None) -> list[str]:
    """The folders only this cluster's processes name on their command line (temp dir, HAProxy's)."""
    folders = {str(default_temp_dir(settings))}
    if settings.serve_high_throughput:
        folders.add(str(haproxy_dir(settings)))
    if state is not None:
        folders.update(f for f in (state.temp_dir, state.haproxy_dir) if f)
    return sorted(folders)


def processes(settings: Settings, state: ClusterState | None = None) -> list[procs.Proc]:
    """Every process of this settings' cluster: the head's tree and session, and what names its folders."""
    state = state or read_state(settings)
    root = state.pid if state is not None and _is_our_head(state.pid) else -1
    # the head's session outlives it (its id is the head's pid): what a killed head left is found by it
    return procs.family(root, folders=_folders(settings, state), session=state.pid if state is not None else None)


def listening(settings: Settings) -> list[procs.Listener]:
    """What this settings' cluster listens on (address, port, process)."""
    return procs.listeners(processes(settings))


def describe_listening(settings: Settings, found: list[procs.Listener]) -> list[str]:
    """Lines saying what listens where (``cluster up`` and ``serve up`` print them)."""
    exposed = [item for item in found if not item.loopback]
    lines = [f"listening on {len(found)} port(s), {len(exposed)} beyond 127.0.0.1:"]
    lines += [f"  {item}{'' if item.loopback else '  <- reachable from other machines'}" for item in found]
    if settings.serve_high_throughput:
        lines.append(
            "  high-throughput mode (COSMIC_RAY_SERVE_HIGH_THROUGHPUT): once the app is served, HAProxy's stats "
            "(8404) and metrics (9101) listen on all interfaces, without authentication"
        )
    return lines


def stop_leftovers(settings: Settings, grace: float = 5.0) -> list[procs.Proc]:
    """Stop processes of an earlier cluster of these settings whose head is gone (an orphaned HAProxy).

    Returns:
        The processes that were stopped.
    """
    state = read_state(settings)
    if state is not None and _is_our_head(state.pid):
        return []
    left = processes(settings, state)
    if left:
        log.warning("stopping %d process(es) left by an earlier cluster: %s", len(left), _describe(left))
        procs.terminate(left, grace)
    return left


def _describe(found: list[procs.Proc]) -> str:
    return ", ".join(f"{proc.name} (pid {proc.pid})" for proc in found)


def _stop_process_group(pid: int, grace: float) -> None:
    """SIGTERM ``pid`` (a session leader we started), wait ``grace`` s, then SIGKILL what is left of its group."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)  # our child: reap it
        except ChildProcessError:  # not our child (another process ran `up`)
            finished = 0 if _is_our_head(pid) else pid
        if finished:
            break
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)  # stragglers of that group only (its id is the head's pid)
    except (ProcessLookupError, PermissionError):
        pass


def down(settings: Settings, grace: float = 60.0) -> bool:
    """Stop the head ``up`` started for these settings, then every process of its cluster still running.

    Its process tree and session (also when the head itself died first) and whatever names its temp
    dir or HAProxy folder; no other Ray cluster of the machine. A no-op when none is recorded.

    Returns:
        True if a running head was stopped.
    """
    state = read_state(settings)
    if state is None:
        stop_leftovers(settings)
        return False
    stopped = _is_our_head(state.pid)
    members = processes(settings, state)  # before the head goes: its children are still its children
    if stopped:
        _stop_process_group(state.pid, grace)
        log.info("stopped the Ray cluster at %s", state.gcs_address)
    left = [proc for proc in members if procs.alive(proc)]
    left += [proc for proc in processes(settings, state) if proc not in left]
    if left:
        log.warning("stopping %d process(es) the head left running: %s", len(left), _describe(left))
        procs.terminate(left)
    state_path(settings).unlink(missing_ok=True)
    return stopped


def status(settings: Settings) -> str:
    """``ray status`` of this cluster, or a line saying it is not running."""
    state = running_state(settings)
    if state is None:
        return "no cosmic-ray cluster is running (`cosmic-ray cluster up`)"
    proc = subprocess.run(
        [_ray_cli(), "status", f"--address={state.gcs_address}"],
        capture_output=True,
        text=True,
        env=_env(settings),
        timeout=60,
    )
    return (
        proc.stdout if proc.returncode == 0 else f"the cluster at {state.gcs_address} does not answer:\n{proc.stderr}"
    )


def connect(settings: Settings, start_local: bool = True, persistent: bool = True) -> None:
    """``ray.init`` against ``RAY_ADDRESS`` if set, else this settings' local cluster.

    Args:
        settings: where the cluster's state is recorded.
        start_local: start a local cluster when none runs.
        persistent: start it with ``ray start`` (outlives this process, dashboard on the settings'
            port) rather than in-process (gone when this process exits).

    Raises:
        RuntimeError: no cluster runs and ``start_local`` is False.
    """
    # Ray reads RAY_AUTH_MODE from the environment: clients of a token cluster need it too.
    os.environ.setdefault("RAY_AUTH_MODE", settings.ray_auth_mode)
    loopback = is_loopback(settings.ray_node_ip_address)
    if loopback:  # an in-process cluster keeps 127.0.0.1 too (read when ray is first imported)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray  # deferred: ray is heavy and only commands that use the cluster need it

    if ray.is_initialized():
        return
    if settings.ray_address:
        ray.init(address=settings.ray_address)
        return
    state = running_state(settings)
    if state is None and start_local and persistent:
        up(settings)
        state = running_state(settings)
    if state is not None:
        ray.init(address=state.gcs_address)  # a driver of a loopback head sees itself at 127.0.0.1
    elif start_local:
        # "local": a new in-process cluster, never one of the other clusters running on this machine
        ray.init(
            address="local",
            num_cpus=max(os.cpu_count() or 2, 4),
            include_dashboard=False,
            _node_ip_address=_node_ip(settings) if loopback else None,
        )
    else:
        raise RuntimeError("no cosmic-ray cluster is running: `cosmic-ray cluster up`")
