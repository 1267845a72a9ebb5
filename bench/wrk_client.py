"""Closed-loop HTTP load with wrk (a C load generator) for the serving benchmark.

On a 2-core machine the load generator shares the cores with the server it measures: an asyncio
client in Python spends ~0.3 ms of CPU per request (a tenth of what serving a request costs here),
wrk about 0.02 ms. Both the Serve app and the plain baseline are measured with the same client.
wrk comes from the distribution (`apt-get install wrk`); :func:`available` says whether it is there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("wrk_post.lua")


def available() -> bool:
    return shutil.which("wrk") is not None


class Bodies:
    """JSON bodies written once to a file wrk's script reads (one per line)."""

    def __init__(self, bodies: list[dict[str, Any]]):
        handle = tempfile.NamedTemporaryFile("w", suffix=".jsonl", prefix="wrk_bodies_", delete=False)
        with handle:
            handle.write("\n".join(json.dumps(b, separators=(",", ":")) for b in bodies) + "\n")
        self.path = Path(handle.name)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


def _run(url: str, bodies: Bodies, connections: int, seconds: float, extra_env: dict[str, str]) -> dict[str, Any]:
    timeout = max(10, int(seconds) + 5)
    proc = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={timeout}s",
            "-s",
            str(SCRIPT),
            url,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "WRK_BODIES": str(bodies.path), **extra_env},
        timeout=seconds + 60,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary (exit {proc.returncode}): {proc.stderr.strip()[:300]}")
    return json.loads(line[len("WRKJSON ") :])


def open_loop(
    url: str, bodies: Bodies, rate: float, seconds: float, connections: int = 128, drain: float = 3.0
) -> dict[str, Any]:
    """``rate`` requests/s due on a fixed schedule for ``seconds`` (wrk_post.lua's open-loop mode;
    ``connections`` must exceed the requests ever in flight, or requests go out late: ``late`` counts
    them and ``max_late_ms`` says by how much). Latency quantiles as :func:`closed_loop`'s."""
    count = int(rate * seconds)
    found = _run(url, bodies, connections, seconds + drain, {"WRK_RATE": str(rate), "WRK_COUNT": str(count)})
    ok = found["requests"] - found["status_errors"]
    lat = sorted(q / 1e6 for q in found["quantiles_us"])

    def q(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

    return {
        "requests": ok,
        "scheduled": count,
        "failures": found["status_errors"] + found["socket_errors"] + max(0, count - found["requests"]),
        "seconds": round(seconds, 2),
        "req_per_s": round(ok / seconds, 1),
        "p50_ms": round(q(0.50), 1),
        "p99_ms": round(q(0.99), 1),
        "p999_ms": round(q(0.999), 1),
        "late": found["late"],
        "max_late_ms": found["max_late_ms"],
        "client": "wrk (open loop)",
        "_latencies": [lat[j * len(lat) // ok] for j in range(ok)] if ok else [],
    }


def closed_loop(url: str, bodies: Bodies, concurrency: int, seconds: float, per_request: int = 1) -> dict[str, Any]:
    """``concurrency`` connections POSTing for ``seconds`` (one wrk thread: it drives thousands of
    connections from one core). Same keys as serve_load.summarize; ``_latencies`` holds one value per
    request read off wrk's 0.1 % quantiles (wrk keeps no per-request list), so slices can be pooled."""
    found = _run(url, bodies, concurrency, seconds, {})
    elapsed = found["duration_us"] / 1e6
    ok = found["requests"] - found["status_errors"]
    quantiles = [q / 1e6 for q in found["quantiles_us"]]
    lat = sorted(quantiles)

    def q(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

    return {
        "requests": ok,
        "failures": found["status_errors"] + found["socket_errors"],
        "seconds": round(elapsed, 2),
        "req_per_s": round(ok / elapsed, 1),
        "lc_per_s": round(ok * per_request / elapsed, 1),
        "p50_ms": round(q(0.50), 1),
        "p99_ms": round(q(0.99), 1),
        "client": "wrk",
        "_latencies": [lat[j * len(lat) // ok] for j in range(ok)] if ok else [],  # ``ok`` samples of the quantiles
    }
