"""A real HTTP server for browser tests: uvicorn in a thread, on a free loopback port.

Example:
    >>> from fastapi import FastAPI
    >>> with serve_app(FastAPI()) as base_url:
    ...     pass  # base_url is "http://127.0.0.1:<port>"
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_app(app: FastAPI, start_timeout: float = 20.0) -> Iterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1 until the ``with`` block ends.

    Args:
        app: Any ASGI app.
        start_timeout: Seconds to wait for the server to accept connections.

    Yields:
        The base URL, without a trailing slash.

    Raises:
        RuntimeError: The server did not start in time (the port may have been taken).
    """
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        ws="none",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port} within {start_timeout} s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
