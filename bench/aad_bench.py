"""How many expert answers put a held-out rare class in the top 10 of a night: AAD vs no feedback vs random.

Data (real): the ZTF Bright Transient Survey light curves of ``../shared/data/ztf-bts``
(``bts_dev_lightcurves.csv.gz``, 1,621 objects with spectroscopic classes), features from
:func:`cosmic_ray.learn.features.featurize`. A "night" is a seeded random draw of 500 of them (a
plain draw: SLSN-I are ~0.9% of the sample, so a night holds a few; a draw without any is drawn
again and counted). The rare class is held out: no model here ever saw its label.

The expert is an oracle on the real labels: each step they answer about the top-ranked object
they have not seen, "interesting" iff it is of the rare class (the answers are simulated, the
light curves and labels are real).

Counted per night, for each ranker:

- ``top10_first``: answers until at least one rare object is found or among the next 10 the ranker shows;
- ``top10_all``: answers until every rare object of the night is found or among the next 10;
- ``found_first``: answers until the expert has answered about a rare object.

Rankers: ``aad`` (coniferest AADForest re-fitted after each answer), ``pine`` (PineForest),
``iforest`` (the same isolation forest, answers ignored: no feedback) and ``random`` (a random
order). Run: ``python bench/aad_bench.py --seeds 7 --rare SLSN-I``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from cosmic_ray.core.taxonomy import to_coarse
from cosmic_ray.learn.aad import AnomalyRanker
from cosmic_ray.learn.features import featurize
from cosmic_ray.sources import catalog
from cosmic_ray.sources.base import RawInput

log = logging.getLogger("aad_bench")
REPO = Path(__file__).resolve().parents[1]
RANKERS = ("aad", "pine", "iforest", "random")
TOP = 10


def load_features(shared: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(object_id (N,), coarse class (N,), feats (N, F)) of the BTS development light curves."""
    path = shared / "ztf-bts" / "bts_dev_lightcurves.csv.gz"
    table = catalog.parse(RawInput(str(path), path.read_bytes())).table
    arrays = featurize(table)
    coarse = np.asarray([to_coarse(label) for label in arrays["label"]], dtype=object)
    return arrays["object_id"], coarse, arrays["feats"]


def draw_night(coarse: np.ndarray, rare: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Row indices of a night of ``size`` objects holding at least one of ``rare``; and how many draws it took."""
    for draws in range(1, 1000):
        rows = rng.choice(len(coarse), size, replace=False)
        if (coarse[rows] == rare).any():
            return rows, draws
    raise RuntimeError(f"no night of {size} holds a {rare}")


def run_loop(ranker_name: str, feats: np.ndarray, is_rare: np.ndarray, seed: int, budget: int) -> dict[str, int | None]:
    """The expert loop on one night: answers until the rare objects reach the top 10 (None: not within budget)."""
    n = len(is_rare)
    targets = set(np.flatnonzero(is_rare).tolist())
    ranker = None if ranker_name == "random" else AnomalyRanker(feats, method=ranker_name, seed=seed)  # type: ignore[arg-type]
    order_random = np.random.default_rng(seed + 1).permutation(n)
    seen: list[int] = []
    out: dict[str, int | None] = {"top10_first": None, "top10_all": None, "found_first": None}
    for k in range(min(budget, n) + 1):
        if ranker is None:
            unseen = order_random[k:]
        else:
            unseen = ranker.ranking(unseen_only=True)
        window = set(unseen[:TOP].tolist())
        found = targets & set(seen)
        if out["top10_first"] is None and (found or targets & window):
            out["top10_first"] = k
        if out["top10_all"] is None and targets <= (found | window):
            out["top10_all"] = k
        if out["found_first"] is None and found:
            out["found_first"] = k
        if all(v is not None for v in out.values()) or k == min(budget, n) or len(unseen) == 0:
            break
        nxt = int(unseen[0])
        seen.append(nxt)
        if ranker is not None:
            ranker.learn({nxt: bool(is_rare[nxt])})  # the oracle: interesting iff of the rare class
    return out


def summarise(values: list[int | None], budget: int) -> dict[str, float | int | str]:
    reached = [v for v in values if v is not None]
    if not reached:
        return {"median": f">{budget}", "min": f">{budget}", "max": f">{budget}", "reached": 0}
    capped = [v if v is not None else budget + 1 for v in values]
    return {
        "median": float(np.median(capped)),
        "min": int(min(capped)),
        "max": int(max(capped)) if len(reached) == len(values) else f">{budget}",
        "reached": len(reached),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("COSMIC_RAY_SHARED_DATA", REPO / "../shared/data"))
    )
    parser.add_argument("--rare", default="SLSN-I", help="the held-out rare class (SLSN-I, TDE, SLSN-II, ...)")
    parser.add_argument("--seeds", type=int, default=7)
    parser.add_argument("--night", type=int, default=500)
    parser.add_argument("--budget", type=int, default=200, help="most answers per night")
    parser.add_argument("--rankers", default=",".join(RANKERS))
    parser.add_argument("--out", type=Path, default=None, help="write the JSON result here too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    start = time.perf_counter()
    ids, coarse, feats = load_features(args.shared)
    log.info(
        "features of %d real BTS objects in %.1f s; %d of class %s",
        len(ids),
        time.perf_counter() - start,
        int((coarse == args.rare).sum()),
        args.rare,
    )
    rankers = args.rankers.split(",")
    per: dict[str, dict[str, list[int | None]]] = {
        r: {"top10_first": [], "top10_all": [], "found_first": []} for r in rankers
    }
    nights = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        rows, draws = draw_night(coarse, args.rare, args.night, rng)
        is_rare = coarse[rows] == args.rare
        nights.append({"seed": seed, "rare_in_night": int(is_rare.sum()), "draws": draws})
        for name in rankers:
            t0 = time.perf_counter()
            result = run_loop(name, feats[rows], is_rare, seed, args.budget)
            for key, value in result.items():
                per[name][key].append(value)
            log.info(
                "seed %d (%d %s): %-7s %s (%.1f s)",
                seed,
                int(is_rare.sum()),
                args.rare,
                name,
                result,
                time.perf_counter() - t0,
            )
    report = {
        "data": "real: ZTF BTS dev light curves; the expert is an oracle on their real labels (simulated answers)",
        "rare_class": args.rare,
        "night_size": args.night,
        "budget": args.budget,
        "nights": nights,
        "summary": {name: {k: summarise(v, args.budget) for k, v in metrics.items()} for name, metrics in per.items()},
        "raw": per,
        "seconds": round(time.perf_counter() - start, 1),
        "load_avg": os.getloadavg(),
    }
    print(json.dumps(report, indent=1, default=str))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
