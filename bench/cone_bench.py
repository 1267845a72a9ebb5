"""Cone search latency over HTTP on 1 million SIMULATED object positions (issue 19, item 2).

1. ``--objects`` SIMULATED positions, uniform on the sphere (ids ``SIMULATED_0000001``...), are
   written into the object table of a real SQLite event store (nested HEALPix order 29 index,
   ``cosmic_ray.core.sky``), in chunks with ``executemany``. Simulated on purpose: the real objects
   (tests/unit/serve/test_sky_cone_search.py) are what correctness is checked on; this only measures speed.
2. The real FastAPI app (``cosmic_ray.serve.app.api``: every router and middleware) runs in a
   subprocess on uvicorn on 127.0.0.1, over that store. The same process also serves the
   baseline route ``/baseline/objects``: the same cone answered by a full-table scan (a
   declaration band ``dec BETWEEN dec-r AND dec+r`` on an unindexed column, then the same exact
   distance), i.e. the cone search without the HEALPix index.
3. ``--queries`` random 10-arcsec cones (centres uniform on the sphere), one after another over
   HTTP (one keep-alive client): p50/p99/max of the indexed route; the same for cones centred on
   random stored objects (every answer non-empty); and ``--baseline-queries`` of the same random
   cones on the baseline route, whose answers must equal the indexed ones.

Prints a table (stderr) and one JSON line (stdout). Usage::

    python bench/cone_bench.py --objects 1000000 --queries 1000 --baseline-queries 30
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

log = logging.getLogger("bench.cone_bench")
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uniform_sphere(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` positions uniform on the sphere: (ra, dec) in degrees."""
    return rng.uniform(0.0, 360.0, n), np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))


def make_store(url: str, n: int, seed: int, chunk: int = 100_000) -> float:
    """Write ``n`` SIMULATED positions into the store's object table; returns seconds taken."""
    from cosmic_ray.core.sky import healpix_index
    from cosmic_ray.serve.db import open_engine, utcnow
    from cosmic_ray.serve.skyobjects import SkyObject

    start = time.perf_counter()
    engine = open_engine(url)
    ra, dec = uniform_sphere(np.random.default_rng(seed), n)
    hpx = healpix_index(ra, dec)
    now = utcnow().isoformat(sep=" ")
    columns = ("object_id", "ra", "dec", "healpix", "n_points", "n_detections", "first_mjd", "last_mjd", "updated_at")
    sql = f"INSERT INTO {SkyObject.__tablename__} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    mjd = np.random.default_rng(seed + 1).uniform(59000, 60000, n)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            rows = [
                (
                    f"SIMULATED_{i:07d}",
                    float(ra[i]),
                    float(dec[i]),
                    int(hpx[i]),
                    3,
                    3,
                    float(mjd[i]),
                    float(mjd[i]) + 20,
                    now,
                )
                for i in range(lo, hi)
            ]
            cur.executemany(sql, rows)
            raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
        engine.dispose()
    return time.perf_counter() - start


# ------------------------------------------------------------------------------ the server process
def serve(home: Path, port: int) -> None:
    """Run the real app over the store in ``home`` (plus the baseline route) until killed."""
    import uvicorn
    from fastapi import Query
    from sqlalchemy import select

    from cosmic_ray.core.config import Settings
    from cosmic_ray.core.sky import angular_distance_deg
    from cosmic_ray.serve import context, metrics, web
    from cosmic_ray.serve.app import api
    from cosmic_ray.serve.coalesce import Coalescer
    from cosmic_ray.serve.logins import LoginThrottle
    from cosmic_ray.serve.skyobjects import SkyObject
    from cosmic_ray.serve.store import Store

    settings = Settings(home=home)
    store = Store.open(settings.event_store_url)

    async def no_model(items: list) -> list:
        raise RuntimeError("the cone search needs no model")

    context.configure(
        context.IngressContext(
            settings=settings,
            events=store.events,
            accounts=store.accounts,
            model=None,  # type: ignore[arg-type]  # no model behind these routes
            coalescer=Coalescer(no_model),
            logins=LoginThrottle(store.engine, 5, 5, 60),
            metrics=metrics.api_metrics(),
        )
    )
    web.configure(store.accounts, settings)

    def baseline(ra: float = Query(...), dec: float = Query(...), radius: float = Query(...)) -> dict[str, Any]:
        """The same cone by a full-table scan (no HEALPix index), then the same exact distance."""
        stmt = select(SkyObject.object_id, SkyObject.ra, SkyObject.dec).where(
            SkyObject.dec.between(dec - radius, dec + radius)  # unindexed column: a full scan
        )
        with store.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        if not rows:
            return {"objects": []}
        d = angular_distance_deg(ra, dec, np.array([r.ra for r in rows]), np.array([r.dec for r in rows]))
        inside = sorted((float(x), r.object_id) for x, r in zip(d.tolist(), rows, strict=True) if x <= radius)
        return {"objects": [{"object_id": oid, "distance_arcsec": x * 3600} for x, oid in inside]}

    api.add_api_route("/baseline/objects", baseline, methods=["GET"])
    uvicorn.run(api, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


# ------------------------------------------------------------------------------ the client
def timed(client: httpx.Client, path: str, cones: list[tuple[float, float]], radius: float) -> tuple[np.ndarray, list]:
    """Latencies (ms) of the cones, one after another, and their answers' object ids."""
    out, ids = [], []
    for ra, dec in cones:
        t = time.perf_counter()
        r = client.get(path, params={"ra": f"{ra:.8f}", "dec": f"{dec:.8f}", "radius": radius})
        out.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
        ids.append([o["object_id"] for o in r.json()["objects"]])
    return np.array(out), ids


def stats(ms: np.ndarray) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "n": len(ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--baseline-queries", type=int, default=30)
    parser.add_argument("--radius-arcsec", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--serve", nargs=2, metavar=("HOME", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]))
        return
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cone-bench-") as tmp:
        home = Path(tmp)
        url = f"sqlite:///{home / 'events.db'}"
        fill_s = make_store(url, args.objects, args.seed)
        log.info("store: %d SIMULATED positions written in %.1f s", args.objects, fill_s)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(home), str(port)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            with httpx.Client(base_url=base, timeout=60) as client:
                while True:
                    try:
                        client.get("/objects", params={"limit": 1}).raise_for_status()
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline or server.poll() is not None:
                            raise RuntimeError("the app did not start") from None
                        time.sleep(0.2)
                rng = np.random.default_rng(args.seed + 7)
                radius = args.radius_arcsec / 3600
                ra, dec = uniform_sphere(rng, args.queries)
                random_cones = list(zip(ra.tolist(), dec.tolist(), strict=True))
                timed(client, "/objects", random_cones[:20], radius)  # warm-up (imports, caches)
                random_ms, random_ids = timed(client, "/objects", random_cones, radius)
                # cones on stored objects (a few arcsec off), so every answer holds at least one object
                sra, sdec = uniform_sphere(np.random.default_rng(args.seed), args.objects)
                pick = rng.choice(args.objects, args.queries, replace=False)
                offset = rng.normal(0, 2 / 3600, (args.queries, 2))
                hit_cones = [
                    (
                        float(sra[i] + offset[k, 0] / max(np.cos(np.radians(sdec[i])), 1e-3)) % 360,
                        float(np.clip(sdec[i] + offset[k, 1], -90, 90)),
                    )
                    for k, i in enumerate(pick)
                ]
                hit_ms, hit_ids = timed(client, "/objects", hit_cones, radius)
                n_base = min(args.baseline_queries, args.queries)
                base_ms, base_ids = timed(client, "/baseline/objects", random_cones[:n_base], radius)
                hit_base_ms, hit_base_ids = timed(client, "/baseline/objects", hit_cones[:n_base], radius)
        finally:
            server.terminate()
            server.wait(timeout=30)
    agree = base_ids == random_ids[:n_base] and hit_base_ids == hit_ids[:n_base]
    empty_hits = sum(1 for ids in hit_ids if not ids)
    indexed, baseline = stats(random_ms), stats(np.concatenate([base_ms, hit_base_ms]))
    result = {
        "objects": args.objects,
        "positions": "SIMULATED (uniform on the sphere)",
        "radius_arcsec": args.radius_arcsec,
        "random_cones": indexed,
        "random_cones_nonempty": sum(1 for ids in random_ids if ids),
        "cones_on_objects": stats(hit_ms),
        "cones_on_objects_empty": empty_hits,
        "baseline_full_scan": baseline,
        "baseline_over_indexed_p50": round(baseline["p50_ms"] / indexed["p50_ms"], 1),
        "answers_agree_with_baseline": agree,
        "store_fill_s": round(fill_s, 1),
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }
    log.info(
        "%-28s %8s %8s %8s\n%-28s %8.2f %8.2f %8.2f\n%-28s %8.2f %8.2f %8.2f\n%-28s %8.2f %8.2f %8.2f",
        "route (ms)", "p50", "p99", "max",
        "indexed, random cones", indexed["p50_ms"], indexed["p99_ms"], indexed["max_ms"],
        "indexed, cones on objects", result["cones_on_objects"]["p50_ms"], result["cones_on_objects"]["p99_ms"], result["cones_on_objects"]["max_ms"],
        "full scan (baseline)", baseline["p50_ms"], baseline["p99_ms"], baseline["max_ms"],
    )  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
