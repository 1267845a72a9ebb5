"""Denial of service by reads (issue 18, item 4), without Ray: a real Parquet lake, real uvicorn.

- ``/objects/{id}/lightcurve`` reads only the object's rows and columns (the filter is pushed into the
  Parquet scan): its peak Arrow memory is a small part of reading the lake;
- the read routes are bounded: a flood of lightcurve reads is answered 503 + ``Retry-After`` beyond
  ``read_concurrency``, and the route works again once the flood is over;
- the ``/similar`` index is built once under a lock by concurrent callers, and a landed lake file
  re-embeds only the objects it holds.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pytest
from fastapi import FastAPI

from cosmic_ray.core.config import Settings
from cosmic_ray.core.lightcurve import conform, mjd_to_nights
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.serve import context
from cosmic_ray.serve.routes import objects
from cosmic_ray.serve.similarity import SimilarityIndex
from cosmic_ray.serve.store import Store

try:
    from web_server import serve_app
except ImportError:  # tests/ made a package
    from tests.web_server import serve_app

try:
    from api_context import model_free_context
except ImportError:  # tests/ made a package
    from tests.api_context import model_free_context

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[3]


def _points(objects: range, per_object: int, nights: int = 20, seed: int = 0) -> pa.Table:
    """Simulated detections of ``objects`` (``OBJ00042``...), spread over ``nights`` nights."""
    rng = np.random.default_rng(seed)
    n = len(objects) * per_object
    ids = np.repeat([f"OBJ{i:05d}" for i in objects], per_object)
    mjd = 59000.0 + rng.integers(0, nights, n) + rng.random(n) * 0.3
    mag = 18.0 + rng.normal(0, 0.5, n)
    return conform(
        pa.table(
            {
                "object_id": ids,
                "source": np.full(n, "simulated"),
                "mjd": mjd,
                "band": rng.choice(["g", "r"], n),
                "mag": mag,
                "magerr": np.full(n, 0.05),
                "is_limit": np.zeros(n, dtype=bool),
                "label": np.repeat([("SN Ia", "AGN")[i % 2] for i in objects], per_object),
                "night": mjd_to_nights(mjd),
            }
        )
    )


@pytest.fixture(scope="module")
def big_lake(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home")
    lake = Lake(home / "lake")
    lake.append(_points(range(4000), 60))  # 240k points, 20 nights
    return home


_PEAK = """
import sys, pyarrow as pa
from cosmic_ray.core.config import Settings
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.serve.routes.objects import lake_lightcurve
s = Settings(home=sys.argv[1])
if sys.argv[2] == "lake":
    n = Lake(s.lake_dir).read().num_rows
else:
    n = len(lake_lightcurve(s, sys.argv[2]).points)
print(n, pa.default_memory_pool().max_memory())
"""


def _peak(home: Path, what: str) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, str(home), what], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows, peak = out.stdout.split()
    return int(rows), int(peak)


def test_a_lightcurve_read_decodes_a_small_part_of_the_lake(big_lake):
    lake_rows, lake_peak = _peak(big_lake, "lake")
    rows, peak = _peak(big_lake, "OBJ01234")
    assert lake_rows == 240_000 and rows == 60
    assert peak * 5 < lake_peak, f"one object's read peaked at {peak} bytes of Arrow memory, the lake's at {lake_peak}"


def test_read_objects_returns_exactly_the_objects(big_lake):
    lake = Lake(big_lake / "lake")
    table = lake.read_objects(["OBJ00007", "OBJ03999", "nope"])
    assert sorted(set(table.column("object_id").to_pylist())) == ["OBJ00007", "OBJ03999"]
    assert table.num_rows == 120 and table.schema.names == lake.read_objects(["x"]).schema.names
    assert lake.read_objects(["OBJ00007"], columns=["mjd"]).column_names == ["mjd"]


@pytest.fixture
def api(big_lake, monkeypatch):
    settings = Settings(home=big_lake, read_concurrency=2)
    store = Store.open(settings.event_store_url)
    ctx = model_free_context(settings, store)
    monkeypatch.setattr(context, "_CONTEXT", {})
    context.configure(ctx)
    app = FastAPI()
    app.include_router(objects.router)
    with serve_app(app) as url:
        yield url, ctx
    store.close()


async def _flood(url: str, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        return await asyncio.gather(*(client.get(f"/objects/OBJ{i:05d}/lightcurve") for i in range(n)))


def test_a_flood_of_reads_is_answered_503_with_retry_after_beyond_the_bound(api):
    url, ctx = api
    answers = asyncio.run(_flood(url, 60))
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(200) >= 2 and codes.count(503) >= 1, codes
    busy = next(r for r in answers if r.status_code == 503)
    assert busy.headers["retry-after"] == "1" and "limit" in busy.json()["detail"]
    assert ctx.slots.in_flight["lightcurve"] == 0 and ctx.slots.refused["lightcurve"] == codes.count(503)
    again = httpx.get(f"{url}/objects/OBJ00001/lightcurve", timeout=30)
    assert again.status_code == 200 and len(again.json()["points"]) == 60


def _feats(arrays: dict) -> np.ndarray:
    return np.asarray(arrays["feats"], dtype=np.float32)  # (N, F): the features as the embedding space


def test_the_similarity_index_is_built_once_and_updated_by_file(tmp_path):
    lake = Lake(tmp_path / "lake")
    lake.append(_points(range(300), 20, nights=5))
    index = SimilarityIndex(tmp_path / "lake")
    barrier = threading.Barrier(6)
    found = []

    def call() -> None:
        barrier.wait()
        found.append(index.get("v1", 32, _feats))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(found) == 6 and index.stats.full_builds == 1 and index.stats.objects_embedded == 300
    assert len({id(x) for x in found}) == 1

    lake.append(_points(range(300, 302), 20, nights=1, seed=1))  # a file lands: two new objects
    lake.append(_points(range(5, 6), 5, nights=1, seed=2))  # and more points of a known one
    after = index.get("v1", 32, _feats)
    assert index.stats.full_builds == 1 and index.stats.objects_embedded == 303
    assert len(after.ids) == 302 and len(set(after.ids.tolist())) == 302
    assert after.embeddings.shape[0] == 302
    assert index.get("v1", 32, _feats) is after  # nothing landed: the same index

    index.get("v2", 32, _feats)  # another model version: one rebuild
    assert index.stats.full_builds == 2
