"""Where evaluation data come from: labelled tables, same-event keys and event-disjoint folds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from cosmic_ray.core.errors import SourceError
from cosmic_ray.sources import catalog, catalogs
from cosmic_ray.sources.crossmatch import build_crossmatch, load_shared_entries


def read_table(path: Path | str) -> pa.Table:
    """A labelled light-curve table from ``path``.

    The long format (``catalog`` source), or one of the SLSN/TDE/ALeRCE catalogues (``catalogs``
    source) when ``path`` is such a file or a folder holding one.

    Raises:
        cosmic_ray.core.errors.SourceError: nothing readable at ``path``.
    """
    path = Path(path)
    if not path.exists():
        raise SourceError(f"table {path} does not exist")
    if (path.is_dir() and any(catalogs.identify(p) for p in path.iterdir())) or (
        path.is_file() and catalogs.identify(path)
    ):
        return catalogs.read_catalogue(path).table
    parts = [catalog.parse(raw).table for raw in catalog.fetch(catalog.build_request([path]))]
    if not parts or not sum(t.num_rows for t in parts):
        raise SourceError(
            f"no light-curve rows in {path}: expected the long format object_id,label,mjd,band,mag,magerr"
        )
    return pa.concat_tables(parts)


def event_key_from_shared(shared_dir: Path | str) -> Callable[[str], str]:
    """Object id -> event id, matching names across the shared catalogues (BTS, SLSN, TDE, ALeRCE)."""
    xm = build_crossmatch(load_shared_entries(shared_dir))
    return lambda oid: xm.canonical("", str(oid))


def event_folds(coarse: np.ndarray, events: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold of each object for cross-validation, disjoint by event and stratified by class.

    Every event (all objects that are the same astrophysical source) lands in one fold; within
    each class the events are shuffled (seeded) and dealt round-robin from a random offset, so a
    5-object class spreads over the folds.

    Args:
        coarse: (N,) coarse labels.
        events: (N,) event ids.
        n_folds: number of folds.
        seed: seed of the shuffle.

    Returns:
        (N,) fold index of each object.
    """
    rng = np.random.default_rng(seed)
    fold_of_event: dict[str, int] = {}
    for c in np.unique(coarse):
        evs = rng.permutation(sorted(set(events[coarse == c]) - set(fold_of_event)))
        offset = int(rng.integers(n_folds))
        for i, e in enumerate(evs):
            fold_of_event[e] = (i + offset) % n_folds
    return np.asarray([fold_of_event[e] for e in events])
