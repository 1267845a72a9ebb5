"""The cross-validation set-up shared by fewshot_eval.py and supervised_reference.py.

The BTS light curves featurized once, their augmented views, coarse labels, and the object- and
event-disjoint folds (``cosmic_ray.learn.evaluate.tables.event_folds``): both benches score the same objects
on the same folds for a given ``--seed``.
"""

from __future__ import annotations

import argparse
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosmic_ray.core.taxonomy import to_coarse
from cosmic_ray.learn.evaluate import tables as ev_tables
from cosmic_ray.learn.features import augmented_views, featurize

MAX_LEN = 64


@dataclass
class BtsFolds:
    table: Any  # pyarrow.Table of the BTS light curves (long format)
    arrays: dict[str, np.ndarray]  # features.featurize of the table
    views: dict[str, np.ndarray]  # features.augmented_views of the table
    coarse: np.ndarray  # (N,) coarse labels
    fold: np.ndarray  # (N,) fold of each object
    same_event: Callable[[str], str]  # object id -> event id across the shared catalogues
    contexts: dict[str, dict[str, float | None]] = field(default_factory=dict)  # object id -> bts_dev_context.csv row

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {key: value[rows] for key, value in self.arrays.items()}


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("COSMIC_RAY_SHARED_DATA", "../shared/data")))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--per-epoch", type=int, default=50)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--boot", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--config", type=Path, default=Path("configs/train.yaml"), help="model, lr and episode shape (TrainConfig)"
    )


def quiet_single_thread() -> None:
    """INFO logs, no library warnings, one torch thread (the figures do not depend on the thread count)."""
    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)


def load_bts_folds(data_dir: Path, n_folds: int, n_views: int, seed: int) -> BtsFolds:
    table = ev_tables.read_table(data_dir / "ztf-bts" / "bts_dev_lightcurves.csv.gz")
    same_event = ev_tables.event_key_from_shared(data_dir)
    arrays = featurize(table, MAX_LEN)
    views = augmented_views(table, n_views, seed, MAX_LEN)
    coarse = np.asarray([to_coarse(x) for x in arrays["label"]], dtype=object)
    events = np.asarray([same_event(o) for o in arrays["object_id"]], dtype=object)
    folds = ev_tables.event_folds(coarse, events, n_folds, seed)
    return BtsFolds(table, arrays, views, coarse, folds, same_event, read_contexts(data_dir))


def read_contexts(data_dir: Path) -> dict[str, dict[str, float | None]]:
    """``ztf-bts/bts_dev_context.csv``: object id -> its context (FEATURE_FIELDS it has; missing -> None)."""
    import csv

    from cosmic_ray.core.context import FEATURE_FIELDS

    path = data_dir / "ztf-bts" / "bts_dev_context.csv"
    out: dict[str, dict[str, float | None]] = {}
    if not path.exists():
        return out
    with path.open() as handle:
        for row in csv.DictReader(handle):
            out[row["object_id"]] = {f: float(row[f]) if row.get(f) not in (None, "") else None for f in FEATURE_FIELDS}
    return out
