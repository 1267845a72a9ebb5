"""Keep a replica's internal gRPC server on 127.0.0.1 when its Ray node is a loopback-only node.

Ray 2.60 Serve starts a gRPC server in every replica for calls between deployments, bound to
``[::]:0`` (all interfaces, ``ray.serve._private.replica.ReplicaBase._on_initialized``) whatever the
node's address; no setting moves it. On a node whose address is 127.0.0.1 (``cosmic-ray cluster
up`` on a workstation) nothing else can reach it anyway (Serve dials replicas at their node's
address), so a replica's constructor calls :func:`bind_replica_grpc_to_loopback` first and the
server binds 127.0.0.1. On any other node (a KubeRay pod) nothing changes.

Ray glue: it wraps the ``add_port_to_grpc_server`` that Serve's replica module imported. If a Ray
version renames it, it logs a warning and does nothing
(tests/integration/test_ops_cluster_restart_loopback.py then fails: something listens beyond loopback).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_ALL_INTERFACES = ("[::]:", "0.0.0.0:")
_PATCHED = "_cosmic_ray_loopback"


def loopback_address(address: str) -> str:
    """``address`` with an all-interfaces host replaced by 127.0.0.1 (``"[::]:0"`` -> ``"127.0.0.1:0"``)."""
    for prefix in _ALL_INTERFACES:
        if address.startswith(prefix):
            return "127.0.0.1:" + address[len(prefix) :]
    return address


def bind_replica_grpc_to_loopback() -> bool:
    """In a Serve replica on a 127.0.0.1 node, make its internal gRPC server bind loopback.

    Returns:
        True if this process's replica module now binds loopback.
    """
    import ray  # deferred: only replicas (which run in Ray) call this
    from ray.serve._private import replica as ray_replica

    if ray.util.get_node_ip_address() != "127.0.0.1":
        return False
    add_port: Callable[..., Any] | None = getattr(ray_replica, "add_port_to_grpc_server", None)
    if add_port is None:
        log.warning("Ray's replica module has no add_port_to_grpc_server: its gRPC server binds all interfaces")
        return False
    if getattr(add_port, _PATCHED, False):
        return True

    @functools.wraps(add_port)
    def on_loopback(server: Any, address: str) -> Any:
        return add_port(server, loopback_address(address))

    setattr(on_loopback, _PATCHED, True)
    ray_replica.add_port_to_grpc_server = on_loopback
    return True
