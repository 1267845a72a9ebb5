"""Faults under load on the running Serve app: kill a model replica, kill the HTTP proxy.

    python bench/fault_bench.py --url http://127.0.0.1:8000 [--seconds 20] [--threads 4]
    python bench/fault_bench.py --home HOME --proxy-health-periods 10 2   # own clusters, proxy only

Needs a deployed app (``cosmic-ray serve up``) on the Ray cluster of ``RAY_ADDRESS`` (export
``RAY_AUTH_MODE=token`` too). Load is closed-loop ``/predict`` from a few threads on 127.0.0.1,
bounded in time and count. Prints one JSON line per fault: requests sent / failed, failed %,
recovery seconds (kill -> the deployment is back to its replica count and answers), and for the
proxy the outage (first failed -> first answered request after the kill).
tests/integration/test_faults.py runs :func:`replica_kill` with small bounds.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass, field

import httpx

from cosmic_ray.serve.replica import MODEL_DEPLOYMENT as MODEL

APP = "cosmic_ray"


@dataclass
class LoadStats:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    failures: list = field(default_factory=list)
    # (monotonic time, ok?) per request, to find the outage window
    timeline: list = field(default_factory=list)


class Load:
    """Closed-loop /predict load, bounded by ``max_seconds`` and ``max_requests``."""

    def __init__(self, url: str, threads: int = 4, max_seconds: float = 60, max_requests: int = 20_000):
        self.url, self.max_seconds, self.max_requests = url, max_seconds, max_requests
        self.stats = LoadStats()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.workers = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i: int) -> None:
        lc = {
            "object_id": f"fault{i}",
            "points": [
                {"mjd": 59000.0 + 2 * k, "band": "gr"[k % 2], "mag": 19.0 - 0.1 * k, "magerr": 0.05} for k in range(8)
            ],
        }
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set() and time.monotonic() < deadline:
                with self.lock:
                    if self.stats.sent >= self.max_requests:
                        return
                    self.stats.sent += 1
                try:
                    answer = client.post(f"{self.url}/predict", json={"lightcurve": lc})
                    ok, why = answer.status_code == 200, answer.status_code
                    if not ok:
                        why = (answer.status_code, answer.text[:120])
                except httpx.HTTPError as exc:
                    ok, why = False, repr(exc)[:160]
                with self.lock:
                    self.stats.timeline.append((time.monotonic(), ok))
                    if ok:
                        self.stats.ok += 1
                    else:
                        self.stats.failed += 1
                        if len(self.stats.failures) < 20:
                            self.stats.failures.append(why)
                if not ok:
                    time.sleep(0.05)  # a down server is not hammered

    def __enter__(self) -> Load:
        for w in self.workers:
            w.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for w in self.workers:
            w.join()


def _named_actors(name_part: str) -> list[dict]:
    """Live named actors whose name contains ``name_part`` (no dashboard needed, unlike the state API)."""
    import ray

    return [a for a in ray.util.list_named_actors(all_namespaces=True) if name_part in a["name"]]


def running_replicas(app: str = APP, deployment: str = MODEL) -> tuple[int, str]:
    from ray import serve

    status = serve.status().applications[app].deployments[deployment]
    return int(status.replica_states.get("RUNNING", 0)), str(status.status)


def kill_one_replica(app: str = APP, deployment: str = MODEL) -> str:
    """ray.kill one model replica actor (found through the state API); returns its name."""
    import ray

    replicas = _named_actors(f"{app}#{deployment}")
    assert replicas, "no running model replica found"
    victim = replicas[0]
    ray.kill(ray.get_actor(victim["name"], namespace=victim["namespace"]), no_restart=True)
    return victim["name"]


def kill_proxy() -> str:
    import ray

    proxies = _named_actors("PROXY")
    assert proxies, "no Serve proxy actor found"
    ray.kill(ray.get_actor(proxies[0]["name"], namespace=proxies[0]["namespace"]), no_restart=True)
    return proxies[0]["name"]


def _wait_answering(url: str, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return time.monotonic()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def replica_kill(
    url: str, seconds: float = 20, threads: int = 4, settle: float = 3.0, recover_timeout: float = 60
) -> dict:
    """Kill one model replica while the load runs; recovery = back to the replica count + answering."""
    target, _ = running_replicas()
    with Load(url, threads=threads, max_seconds=seconds + recover_timeout) as load:
        time.sleep(settle)
        victim = kill_one_replica()
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < recover_timeout:
            running, _ = running_replicas()
            if running >= target and time.monotonic() - killed_at > 1.0:
                break
            time.sleep(0.2)
        recovered_at = max(time.monotonic(), _wait_answering(url, recover_timeout))
        remaining = seconds - (time.monotonic() - killed_at + settle)
        if remaining > 0:
            time.sleep(remaining)
    s = load.stats
    return {
        "fault": "replica kill",
        "victim": victim,
        "replicas": target,
        "sent": s.sent,
        "failed": s.failed,
        "failed_pct": round(100 * s.failed / max(1, s.sent), 3),
        "recovery_s": round(recovered_at - killed_at, 2),
        "failures": s.failures[:5],
    }


def proxy_kill(
    url: str, seconds: float = 20, threads: int = 4, settle: float = 3.0, recover_timeout: float = 90
) -> dict:
    """Kill the HTTP proxy while the load runs; outage = first failure .. first success after it."""
    with Load(url, threads=threads, max_seconds=seconds + recover_timeout) as load:
        time.sleep(settle)
        victim = kill_proxy()
        killed_at = time.monotonic()
        recovered_at = _wait_answering(url, recover_timeout)
        time.sleep(max(0.0, seconds - settle - (recovered_at - killed_at)))
    s = load.stats
    after = [(t, ok) for t, ok in sorted(s.timeline) if t >= killed_at]
    first_fail = next((t for t, ok in after if not ok), None)
    back = next((t for t, ok in after if ok and first_fail is not None and t > first_fail), None)
    return {
        "fault": "proxy kill",
        "victim": victim,
        "sent": s.sent,
        "failed": s.failed,
        "failed_pct": round(100 * s.failed / max(1, s.sent), 3),
        "outage_s": round((back - first_fail), 2) if first_fail and back else 0.0,
        "answering_again_s": round(recovered_at - killed_at, 2),
        "failures": s.failures[:5],
    }


def proxy_outage_by_health_period(home: str, periods: list[float], seconds: float, threads: int) -> list[dict]:
    """The proxy kill on a fresh cluster per value of ``RAY_SERVE_PROXY_HEALTH_CHECK_PERIOD_S``.

    Each cluster is a ``ray.cluster_utils.Cluster`` on its own ports (the env var is read by the
    Serve controller, so it is set before the cluster starts); the app is deployed by
    ``cosmic-ray serve up`` from ``home`` (it needs a production model there).
    """
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    import ray
    from ray.cluster_utils import Cluster

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    marker = Path("/tmp/ray/ray_current_cluster")
    results = []
    for period in periods:
        os.environ["RAY_SERVE_PROXY_HEALTH_CHECK_PERIOD_S"] = str(period)
        previous = marker.read_text() if marker.exists() else None
        cluster = Cluster(
            initialize_head=True,
            connect=False,
            head_node_args={"num_cpus": 4, "include_dashboard": False, "dashboard_agent_listen_port": free_port()},
        )
        if previous is not None:  # Cluster() points everyone's `ray.init("auto")` at itself
            marker.write_text(previous)
        else:
            marker.unlink(missing_ok=True)
        try:
            port = free_port()
            env = {
                **os.environ,
                "RAY_ADDRESS": cluster.address,
                "COSMIC_RAY_HOME": home,
                "COSMIC_RAY_APP_PORT": str(port),
            }
            up = subprocess.run(
                [str(Path(sys.executable).parent / "cosmic-ray"), "serve", "up"],
                env=env,
                capture_output=True,
                text=True,
                timeout=400,
            )
            assert up.returncode == 0, up.stderr[-2000:]
            ray.init(address=cluster.address, namespace="serve", log_to_driver=False)
            result = proxy_kill(f"http://127.0.0.1:{port}", seconds, threads)
            result["proxy_health_check_period_s"] = period
            results.append(result)
            print(json.dumps(result), flush=True)
        finally:
            ray.shutdown()
            cluster.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--skip-proxy", action="store_true")
    parser.add_argument(
        "--proxy-health-periods",
        type=float,
        nargs="+",
        default=None,
        help="Instead: the proxy kill on a fresh own cluster per proxy health-check period (10 = Serve's default).",
    )
    parser.add_argument(
        "--home", default=None, help="With --proxy-health-periods: a COSMIC_RAY_HOME holding a production model."
    )
    args = parser.parse_args()
    assert args.url.startswith(("http://127.0.0.1", "http://localhost")), "load goes to loopback only"
    if args.proxy_health_periods:
        assert args.home, "--proxy-health-periods needs --home"
        proxy_outage_by_health_period(args.home, args.proxy_health_periods, args.seconds, args.threads)
        return
    import ray

    ray.init(address="auto", namespace="serve", log_to_driver=False)
    print(json.dumps(replica_kill(args.url, args.seconds, args.threads)), flush=True)
    if not args.skip_proxy:
        print(json.dumps(proxy_kill(args.url, args.seconds, args.threads)), flush=True)


if __name__ == "__main__":
    main()
