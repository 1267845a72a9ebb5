"""``/predict`` latency while a flood of anonymous light-curve reads runs (issue 18, item 4).

One uvicorn ingress process (a fresh subprocess per phase, as the ingress replica is) serves the real
``/objects/{id}/lightcurve`` and ``/predict`` routes over a synthetic Parquet lake
(``--points`` points, 20 nights), plus the pre-issue-18 light-curve route as the baseline measured
in the same run (``/baseline/...``: the whole lake read per request, no concurrency bound).
``/predict``'s model is the real feature code (:func:`cosmic_ray.learn.features.featurize_objects`)
on a worker thread of its own (the model replica's stand-in: no trained model is needed).

Phases, each ``--seconds`` long, ``/predict`` sent by ``--predict-clients`` closed-loop clients of
this process while the flood runs from a process of its own:

  quiet     ``/predict`` alone;
  baseline  while ``--flood`` clients loop on the unbounded whole-lake read;
  bounded   while ``--flood`` clients loop on the route as served now (filter pushed into the
            scan, at most ``--read-concurrency`` in flight, the rest answered 503 at once; the
            flood ignores ``Retry-After`` and asks again at once, the worst case).

Prints one JSON line: p50/p99 of ``/predict`` per phase, their ratio to ``quiet``, and the reads
answered (200/503) per phase. Usage::

    python bench/read_flood.py --points 500000 --flood 200 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

log = logging.getLogger("bench.read_flood")
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_lake(home: Path, points: int, per_object: int = 60) -> None:
    """A synthetic lake of ``points`` detections, ``per_object`` per object, over 20 nights."""
    import pyarrow as pa

    from cosmic_ray.core.lightcurve import conform, mjd_to_nights
    from cosmic_ray.ingest.lake import Lake

    rng = np.random.default_rng(0)
    n_obj = max(1, points // per_object)
    n = n_obj * per_object
    mjd = 59000.0 + rng.integers(0, 20, n) + rng.random(n) * 0.3
    table = pa.table(
        {
            "object_id": np.repeat([f"OBJ{i:06d}" for i in range(n_obj)], per_object),
            "source": np.full(n, "simulated"),
            "mjd": mjd,
            "band": rng.choice(["g", "r"], n),
            "mag": 18.0 + rng.normal(0, 0.5, n),
            "magerr": np.full(n, 0.05),
            "is_limit": np.zeros(n, dtype=bool),
            "night": mjd_to_nights(mjd),
        }
    )
    Lake(home / "lake").append(conform(table))


def serve(home: Path, port: int, read_concurrency: int) -> None:
    """The ingress stand-in: the real routes on uvicorn, the model on a thread of its own."""
    import pyarrow.compute as pc
    import uvicorn
    from fastapi import APIRouter, FastAPI, HTTPException

    from cosmic_ray.core.config import Settings
    from cosmic_ray.ingest.lake import Lake
    from cosmic_ray.learn.features import featurize_objects
    from cosmic_ray.serve import context, metrics
    from cosmic_ray.serve.coalesce import Coalescer
    from cosmic_ray.serve.logins import LoginThrottle
    from cosmic_ray.serve.routes import objects, predict
    from cosmic_ray.serve.store import Store

    settings = Settings(home=home, read_concurrency=read_concurrency)
    store = Store.open(settings.event_store_url)
    model_thread = ThreadPoolExecutor(1, thread_name_prefix="model")

    def classify(items: list[Any]) -> list[dict[str, Any]]:
        arrays = featurize_objects([item.rows for item in items], 64)
        ok = set(arrays["object_id"].tolist())
        return [
            {
                "object_id": item.object_id,
                "class": "SN Ia",
                "probabilities": {"SN Ia": 1.0},
                "open_set_score": 0.0,
                "novel": False,
                "rare": False,
                "neighbours": [],
                "model_version": "bench",
            }
            if str(i) in ok
            else {"error": "no usable detection in the light curve"}
            for i, item in enumerate(items)
        ]

    async def send(items: list[Any]) -> list[dict[str, Any]]:
        return await asyncio.get_running_loop().run_in_executor(model_thread, classify, items)

    context.configure(
        context.IngressContext(
            settings=settings,
            events=store.events,
            accounts=store.accounts,
            model=None,  # type: ignore[arg-type]  # single predictions go through the coalescer
            coalescer=Coalescer(send),
            logins=LoginThrottle(store.engine, 5, 5, 60),
            metrics=metrics.api_metrics(),
        )
    )
    baseline = APIRouter()

    @baseline.get("/baseline/objects/{object_id}/lightcurve")
    async def old_lightcurve(object_id: str) -> dict[str, Any]:
        def read() -> int:  # the route before issue 18: the whole lake per request
            table = Lake(settings.lake_dir).read()
            return table.filter(pc.equal(table.column("object_id"), object_id)).num_rows

        rows = await asyncio.to_thread(read)
        if not rows:
            raise HTTPException(404)
        return {"points": rows}

    app = FastAPI()
    app.include_router(objects.router)
    app.include_router(predict.router)
    app.include_router(baseline)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def _predict_loop(client: httpx.AsyncClient, body: dict, stop: float, out: list[float], errors: list[int]):
    while time.monotonic() < stop:
        start = time.perf_counter()
        r = await client.post("/predict", json=body)
        if r.status_code == 200:
            out.append((time.perf_counter() - start) * 1000)
        else:
            errors.append(r.status_code)


async def _flood_loop(
    client: httpx.AsyncClient, path: str, n_obj: int, stop: float, codes: dict[int, int], seed: int, honour: bool
):
    rng = np.random.default_rng(seed)
    while time.monotonic() < stop:
        try:
            r = await client.get(path.format(f"OBJ{int(rng.integers(n_obj)):06d}"))
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
            if honour and r.status_code == 503:
                await asyncio.sleep(min(float(r.headers.get("retry-after", 1)), max(0.0, stop - time.monotonic())))
        except httpx.HTTPError:
            codes[-1] = codes.get(-1, 0) + 1


async def _flood(url: str, path: str, clients: int, n_obj: int, seconds: float, honour: bool) -> dict[int, int]:
    codes: dict[int, int] = {}
    limits = httpx.Limits(max_connections=clients + 8)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        stop = time.monotonic() + seconds
        await asyncio.gather(*(_flood_loop(client, path, n_obj, stop, codes, i, honour) for i in range(clients)))
    return codes


def phase(url: str, args: argparse.Namespace, flood_path: str | None, n_obj: int) -> dict[str, Any]:
    """``/predict`` latencies measured here while the flood runs in a process of its own (a client loop
    busy with 200 connections would otherwise add its own queueing to the figures)."""
    body = {
        "lightcurve": {
            "object_id": "probe",
            "points": [
                {"mjd": 59000.0 + i, "band": "gr"[i % 2], "mag": 18.0 + 0.1 * i, "magerr": 0.05} for i in range(20)
            ],
        }
    }
    flood = None
    if flood_path:
        cmd = [sys.executable, __file__, "--flood-client", url, flood_path, str(n_obj), "--flood", str(args.flood)]
        cmd += ["--seconds", str(args.seconds)] + (["--ignore-retry-after"] if args.ignore_retry_after else [])
        flood = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)  # the flood is under way

    async def probe() -> tuple[list[float], list[int]]:
        latencies: list[float] = []
        errors: list[int] = []
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            stop = time.monotonic() + args.seconds - (1.0 if flood else 0.0)
            await asyncio.gather(
                *(_predict_loop(client, body, stop, latencies, errors) for _ in range(args.predict_clients))
            )
        return latencies, errors

    latencies, errors = asyncio.run(probe())
    codes = {}
    if flood is not None:
        out, _ = flood.communicate(timeout=args.seconds + 120)
        codes = json.loads(out.strip().splitlines()[-1])
    lat = np.asarray(latencies) if latencies else np.asarray([np.nan])
    return {
        "predict_n": len(latencies),
        "predict_errors": len(errors),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "reads": codes,
    }


@contextlib.contextmanager
def _server(home: Path, read_concurrency: int) -> Iterator[str]:
    """The bench server in a subprocess on a free port, until the block ends."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, __file__, "--serve", str(home), str(port), "--read-concurrency", str(read_concurrency)]
    server = subprocess.Popen(cmd, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/objects/OBJ000000/lightcurve", timeout=5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the bench server did not start") from None
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=500_000)
    parser.add_argument("--flood", type=int, default=200)
    parser.add_argument("--predict-clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--read-concurrency", type=int, default=8)
    parser.add_argument(
        "--ignore-retry-after", action="store_true", help="The flood asks again at once after a 503 (worst case)."
    )
    parser.add_argument("--serve", nargs=2, metavar=("HOME", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--flood-client", nargs=3, metavar=("URL", "PATH", "N_OBJ"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]), args.read_concurrency)
        return
    if args.flood_client:
        url, path, n_obj = args.flood_client
        codes = asyncio.run(_flood(url, path, args.flood, int(n_obj), args.seconds, not args.ignore_retry_after))
        print(json.dumps({str(k): v for k, v in sorted(codes.items())}))
        return
    with tempfile.TemporaryDirectory(prefix="read-flood-") as tmp:
        home = Path(tmp)
        make_lake(home, args.points)
        n_obj = args.points // 60
        result: dict[str, Any] = {"points": args.points, "flood": args.flood, "seconds": args.seconds}
        for name, path in (
            ("quiet", None),
            ("baseline", "/baseline/objects/{}/lightcurve"),
            ("bounded", "/objects/{}/lightcurve"),
        ):
            # a fresh server per phase: reads a phase left queued must not weigh on the next one
            log.info("phase %s", name)
            with _server(home, args.read_concurrency) as url:
                result[name] = phase(url, args, path, n_obj)
        quiet = result["quiet"]["p99_ms"]
        for name in ("baseline", "bounded"):
            result[name]["p99_vs_quiet"] = round(result[name]["p99_ms"] / quiet, 2) if quiet else None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
