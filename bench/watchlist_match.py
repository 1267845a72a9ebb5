"""Watchlist matching: the HEALPix index (``Watchlists.match``) against a brute-force loop over every entry.

Real alert positions (``ztf-alerts/pittgoogle/alerts-for-testing``, repeated to ``--alerts``);
CONSTRUCTED watchlist entries (random positions over the sky, radii 1-60 arcsec, plus one entry on
each real alert). Prints one JSON line: the seconds of each method in this run and their ratio,
and whether both found the same matches.

    python bench/watchlist_match.py --entries 20000 --alerts 2000
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from cosmic_ray.core.config import Settings
from cosmic_ray.serve.alerting import positions_of
from cosmic_ray.serve.db import open_engine
from cosmic_ray.serve.watchlists import AlertPosition, EntryIn, Watchlists, separation_arcsec
from cosmic_ray.sources import ztf

log = logging.getLogger(__name__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=20000)
    parser.add_argument("--alerts", type=int, default=2000)
    args = parser.parse_args()
    data = Settings().shared_data_dir
    assert data is not None, "the shared data folder is missing"
    real: list[AlertPosition] = []
    for path in sorted((data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro")):
        real.extend(positions_of(ztf.parse(ztf.RawInput(path.name, path.read_bytes())).table).values())
    alerts = [
        AlertPosition(i, real[i % len(real)].object_id, real[i % len(real)].ra, real[i % len(real)].dec)
        for i in range(args.alerts)
    ]
    rng = np.random.default_rng(0)
    entries = [EntryIn(f"on-{p.candid}", p.ra, p.dec, 2.0) for p in real]
    entries += [
        EntryIn(
            f"sky-{j}",
            float(rng.uniform(0, 360)),
            math.degrees(math.asin(rng.uniform(-1, 1))),
            float(rng.uniform(1, 60)),
        )
        for j in range(args.entries - len(entries))
    ]
    with tempfile.TemporaryDirectory() as folder:
        lists = Watchlists(open_engine(f"sqlite:///{Path(folder) / 'events.db'}"))
        for part in range(0, len(entries), 10_000):  # a watchlist holds at most 10,000 entries
            lists.create("bench", f"bench-{part}", entries[part : part + 10_000])
        start = time.perf_counter()
        indexed = {(m.candid, m.target) for m in lists.match(alerts)}
        t_index = time.perf_counter() - start
    start = time.perf_counter()
    brute = {
        (a.candid, f"entry:{e.name}")
        for a in alerts
        for e in entries
        if separation_arcsec(a.ra, a.dec, e.ra, e.dec) <= e.radius_arcsec
    }
    t_brute = time.perf_counter() - start
    print(
        json.dumps(
            {
                "entries": len(entries),
                "alerts": len(alerts),
                "matches": len(indexed),
                "same_matches": indexed == brute,
                "index_s": round(t_index, 4),
                "brute_force_s": round(t_brute, 3),
                "speedup": round(t_brute / t_index, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
