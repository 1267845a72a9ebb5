"""Serving speed on this machine, every figure against a baseline measured in the same run.

Closed-loop load on 127.0.0.1, bounded in time (``--seconds`` per phase) and count
(``--max-requests``):

  (a) the model called in-process (light curves/s, batches of ``--batch``);
  (b) ``/predict/batch`` through Serve (light curves/s; ratio to a, target >= 0.70);
  (c) ``/predict``, one light curve per request, through Serve (req/s, p50, p99);
  (d) the same one-per-request load on a plain uvicorn + FastAPI server with the same model on
      the same cores (ratio c/d, target >= 0.80; absolute target 350 req/s with p99 < 100 ms);
  (e) a 10,000-alert burst through the live path (DeploymentHandle -> event store), target < 60 s.

Needs a registered production model under ``COSMIC_RAY_HOME`` (``make demo`` or ``cosmic-ray
train``) and its lake (the light curves sent are real lake objects). Starts its own local Ray,
deploys configs/serve.yaml on a free port with a throw-away event store, and prints a table and
one JSON line.

    python bench/serve_load.py [--seconds 10] [--concurrency 32] [--haproxy]
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

    from cosmic_ray.lake import Lake

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
async def _closed_loop(url: str, bodies: list[dict[str, Any]], concurrency: int, seconds: float, max_requests: int, per_request: int) -> dict[str, Any]:
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
            try:
                async with session.post(url, data=payloads[i % len(payloads)], headers={"content-type": "application/json"}) as resp:
                    await resp.read()
                    if resp.status != 200:
                        failures += 1
                        continue
            except aiohttp.ClientError:
                failures += 1
                continue
            latencies.append(time.perf_counter() - start)
            i += concurrency

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session, k) for k in range(concurrency)))
        elapsed = time.perf_counter() - start
    lat = sorted(latencies)
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")  # noqa: E731
    return {
        "requests": len(lat),
        "failures": failures,
        "seconds": round(elapsed, 2),
        "req_per_s": round(len(lat) / elapsed, 1),
        "lc_per_s": round(len(lat) * per_request / elapsed, 1),
        "p50_ms": round(q(0.50), 1),
        "p99_ms": round(q(0.99), 1),
    }


def closed_loop(url, bodies, concurrency, seconds, max_requests, per_request=1) -> dict[str, Any]:
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


# ------------------------------------------------------------------------ (a) in-process model
def classify_items(classifier, items: list[dict[str, Any]], neighbours: int = 5):
    """What a model replica does per batch: featurize + one forward (as ProtoNetModel._classify)."""
    from cosmic_ray.features import featurize
    from cosmic_ray.lightcurve import rows_to_table

    rows = [{**r, "object_id": str(i)} for i, item in enumerate(items) for r in item["rows"]]
    return classifier.predict_features(featurize(rows_to_table(rows), classifier.max_len), neighbours=neighbours)


def in_process(classifier, items, batch: int, seconds: float) -> dict[str, Any]:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        chunk = [items[(done + j) % len(items)] for j in range(batch)]
        classify_items(classifier, chunk)
        done += batch
    elapsed = time.perf_counter() - start
    return {"lc_per_s": round(done / elapsed, 1), "seconds": round(elapsed, 2), "light_curves": done}


# ------------------------------------------------------------------------ (d) plain uvicorn server
def plain_server(port: int) -> None:
    """uvicorn + FastAPI with the same model and the same request handling, no Serve, one process."""
    import uvicorn
    from fastapi import FastAPI, HTTPException

    from cosmic_ray import registry
    from cosmic_ray.api_models import PredictRequest, PredictResponse
    from cosmic_ray.config import Settings
    from cosmic_ray.serve import request_to_item

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
        return PredictResponse(object_id=body.lightcurve.object_id if body.lightcurve else str(body.alert.get("objectId")),
                               **{"class": p.label}, probabilities=p.probabilities, open_set_score=p.open_set_score, novel=p.novel,
                               rare=False, neighbours=p.neighbours, model_version=registered.version,
                               latency_ms=(time.perf_counter() - start) * 1000)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ------------------------------------------------------------------------ the run
def prepare(settings) -> None:
    """No production model in this home: ingest the default data and train a small one (~2 min)."""
    import ray

    from cosmic_ray import pipeline
    from cosmic_ray.config import DataConfig, EpisodeConfig, TrainConfig

    log.info("no production model in %s: ingesting and training a small one first", settings.home_dir)
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        pipeline.ingest_defaults(settings, pipeline.default_inputs(settings))
        cfg = TrainConfig(epochs=3, data=DataConfig(max_objects_per_class=80), episodes=EpisodeConfig(per_epoch=25))
        pipeline.train_from_lake(settings, cfg)
    finally:
        ray.shutdown()


def run(args) -> dict[str, Any]:
    import torch

    from cosmic_ray import registry, serving
    from cosmic_ray.config import Settings
    from cosmic_ray.serve import points_to_rows
    from cosmic_ray.store import EventStore

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="serve_load_"))
    base = Settings()
    settings = Settings(home=base.home, mlflow_tracking_uri=base.mlflow_tracking_uri, store_url=f"sqlite:///{tmp / 'events.db'}", app_port=free_port())
    if registry.production_version(settings) is None:
        prepare(settings)
    classifier, registered = registry.load_model(settings)
    curves = lake_lightcurves(settings, 512)
    bodies = [{"lightcurve": c} for c in curves]
    items = [{"object_id": c["object_id"], "rows": points_to_rows(c["object_id"], c["points"])} for c in curves]
    results: dict[str, Any] = {"model_version": registered.version, "cores": os.cpu_count(), "haproxy": args.haproxy}

    log.info("(a) in-process")
    results["a_in_process"] = in_process(classifier, items, args.batch, args.seconds)

    log.info("(d) plain uvicorn + FastAPI")
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--plain-server", str(port)], env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        closed_loop(f"http://127.0.0.1:{port}/predict", bodies, args.concurrency, 1.5, 10**9)  # warm-up
        results["d_plain_single"] = closed_loop(f"http://127.0.0.1:{port}/predict", bodies, args.concurrency, args.seconds, args.max_requests)
    finally:
        proc.terminate()
        proc.wait(30)

    log.info("starting Ray and the Serve app")
    import ray

    if args.haproxy:
        os.environ.update(RAY_SERVE_ENABLE_HA_PROXY="1", RAY_SERVE_THROUGHPUT_OPTIMIZED="1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        url = serving.deploy(settings, REPO / "configs" / "serve.yaml")
        app_cfg = serving.load_app_config(REPO / "configs" / "serve.yaml")
        results["config"] = {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in app_cfg["deployments"]}
        closed_loop(f"{url}/predict", bodies, args.concurrency, 2.0, 10**9)  # warm-up (and autoscaling)

        log.info("(b) /predict/batch through Serve")
        batch_bodies = [{"items": bodies[i : i + args.batch]} for i in range(0, len(bodies) - args.batch + 1, args.batch)]
        results["b_serve_batch"] = closed_loop(f"{url}/predict/batch", batch_bodies, args.batch_concurrency, args.seconds, args.max_requests, per_request=args.batch)

        log.info("(c) /predict through Serve")
        results["c_serve_single"] = closed_loop(f"{url}/predict", bodies, args.concurrency, args.seconds, args.max_requests)

        log.info("(e) %d-alert burst through the live path", args.burst)
        from cosmic_ray import live

        alerts = burst_alerts(settings.shared_data_dir or REPO.parent / "shared" / "data", args.burst)
        store = EventStore(settings.event_store_url)
        start = time.perf_counter()
        outcome = live.classify_and_store(alerts, live.model_handle(), store)
        results["e_live_burst"] = {**outcome.to_dict(), "seconds": round(time.perf_counter() - start, 2), "stored_total": store.count_classifications()}
        from ray import serve

        results["replicas"] = {name: sum(dep.replica_states.values()) if hasattr(dep, "replica_states") else None
                               for name, dep in serve.status().applications["cosmic_ray"].deployments.items()}
        serving.shutdown()
    finally:
        ray.shutdown()

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
        ("(a) model in-process", f"{a['lc_per_s']:.0f} lc/s", "", "baseline"),
        ("(b) Serve /predict/batch", f"{b['lc_per_s']:.0f} lc/s", f"p50 {b['p50_ms']} ms, p99 {b['p99_ms']} ms, failures {b['failures']}",
         f"{r['ratios']['batch_vs_in_process']:.0%} of (a) (target >= 70%)"),
        ("(c) Serve /predict", f"{c['req_per_s']:.0f} req/s", f"p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms, failures {c['failures']}",
         f"{(r['ratios']['single_vs_plain'] or 0):.0%} of (d) (target >= 80%; 350 req/s, p99 < 100 ms)"),
        ("(d) plain uvicorn /predict", f"{d['req_per_s']:.0f} req/s", f"p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms, failures {d['failures']}", "baseline"),
        ("(e) live burst", f"{e['alerts']} alerts in {e['seconds']} s", f"stored {e['stored']}", "target < 60 s"),
    ]
    width = max(len(x[0]) for x in rows)
    return "\n".join(f"{n:<{width}}  {v:>22}  {m:<48}  {t}" for n, v, m, t in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of each load phase.")
    parser.add_argument("--max-requests", type=int, default=50_000, help="Most requests per phase.")
    parser.add_argument("--concurrency", type=int, default=32, help="Clients in flight for (c) and (d).")
    parser.add_argument("--batch", type=int, default=64, help="Light curves per /predict/batch request and per in-process call.")
    parser.add_argument("--batch-concurrency", type=int, default=4, help="Batch requests in flight for (b).")
    parser.add_argument("--burst", type=int, default=10_000, help="Alerts in the live-path burst.")
    parser.add_argument("--haproxy", action="store_true", help="RAY_SERVE_ENABLE_HA_PROXY=1 + RAY_SERVE_THROUGHPUT_OPTIMIZED=1.")
    parser.add_argument("--plain-server", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    if args.plain_server:
        import torch

        torch.set_num_threads(1)
        plain_server(args.plain_server)
        return
    results = run(args)
    print(render(results))
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
