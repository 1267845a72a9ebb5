"""Multi-node local Ray clusters for tests (``ray.cluster_utils.Cluster``), on ports of their own.

``Cluster()`` writes its address to ``/tmp/ray/ray_current_cluster``, which every
``ray.init("auto")`` / ``ray status`` on the machine reads: :func:`start_cluster` puts that file
back as it was, so the session's Ray (and anyone else's) stays the one they find.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

try:
    from web_server import free_port
except ImportError:  # tests/ made a package
    from tests.web_server import free_port

RAY_CURRENT = Path("/tmp/ray/ray_current_cluster")


def start_cluster(head_cpus: float, worker_cpus: list[float], **head_args):
    """A head with ``head_cpus`` and one worker node per entry of ``worker_cpus``; each node's
    dashboard agent on a free port (the default 52365 is taken by the session's own Ray, and a head
    whose agent cannot bind answers "No available agent to submit job")."""
    from ray.cluster_utils import Cluster

    previous = RAY_CURRENT.read_text() if RAY_CURRENT.exists() else None
    try:
        cluster = Cluster(
            initialize_head=True,
            connect=False,
            head_node_args={
                "num_cpus": head_cpus,
                "include_dashboard": False,
                "dashboard_agent_listen_port": free_port(),
                **head_args,
            },
        )
        for cpus in worker_cpus:
            add_node(cluster, cpus)
    finally:
        if previous is not None:
            RAY_CURRENT.write_text(previous)
        else:
            RAY_CURRENT.unlink(missing_ok=True)
    return cluster


def add_node(cluster, cpus: float):
    """One more worker node on ``cluster`` (its agent on a free port)."""
    return cluster.add_node(num_cpus=cpus, dashboard_agent_listen_port=free_port())


@contextmanager
def current_cluster(address: str):
    """``/tmp/ray/ray_current_cluster`` names ``address`` inside the block, then is put back.

    A job submitted to a test cluster needs it: Ray's job supervisor gives the job's driver the
    address that file names (``canonicalize_bootstrap_address_or_die("auto")``), so with the file
    put back to the session's Ray the job's driver would join the session's cluster instead.
    """
    previous = RAY_CURRENT.read_text() if RAY_CURRENT.exists() else None
    RAY_CURRENT.parent.mkdir(parents=True, exist_ok=True)
    RAY_CURRENT.write_text(address)
    try:
        yield
    finally:
        if previous is not None:
            RAY_CURRENT.write_text(previous)
        else:
            RAY_CURRENT.unlink(missing_ok=True)
