"""The embedding index behind ``GET /objects/{id}/similar``: built once per model version under a lock,
then kept current file by file.

When a lake file lands, only the objects it holds are read again (their whole light curves, by a
filter pushed into the Parquet scan) and embedded; the rest of the index is kept. Concurrent callers
wait for one build instead of each featurizing the whole lake. A new model version (other
embeddings) or a lake file that went away (retention) rebuilds the whole index, once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from cosmic_ray.ingest.lake import Lake
from cosmic_ray.learn.features import featurize

log = logging.getLogger(__name__)

#: ``embed(arrays)``: the model's ``(N, D)`` embeddings of :func:`cosmic_ray.learn.features.featurize`'s arrays.
Embedder = Callable[[dict[str, Any]], np.ndarray]


@dataclass(frozen=True)
class LakeIndex:
    """Embeddings of the lake's objects by one model version, and the lake files they cover."""

    version: str
    files: frozenset[str]
    ids: np.ndarray  # (N,)
    labels: np.ndarray  # (N,)
    embeddings: np.ndarray  # (N, D)


@dataclass
class IndexStats:
    """What the index cost so far (a test and the logs read them)."""

    full_builds: int = 0
    updates: int = 0
    objects_embedded: int = 0


class SimilarityIndex:
    """The lake's embedding index of one replica (thread-safe: Serve may call it from several threads)."""

    def __init__(self, lake_dir: Path | str):
        self.lake = Lake(lake_dir)
        self.stats = IndexStats()
        self._lock = threading.Lock()
        self._index: LakeIndex | None = None

    def invalidate(self) -> None:
        """Forget the index (a new model version is served)."""
        with self._lock:
            self._index = None

    def get(self, version: str, max_len: int, embed: Embedder) -> LakeIndex:
        """The index of model ``version``, current with the lake's files (built or updated here if needed)."""
        files = frozenset(str(p) for p in self.lake.files())
        index = self._index
        if index is not None and index.version == version and index.files == files:
            return index  # the common case: no lock, no I/O beyond listing the files
        with self._lock:
            files = frozenset(str(p) for p in self.lake.files())
            index = self._index
            if index is not None and index.version == version and index.files == files:
                return index  # another caller built it while this one waited
            if index is None or index.version != version or not index.files <= files:
                index = self._build(version, files, max_len, embed)
            else:
                index = self._update(index, files, max_len, embed)
            self._index = index
            return index

    def _embed(self, table: Any, max_len: int, embed: Embedder) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        arrays = featurize(table, max_len)
        ids = np.asarray(arrays["object_id"], dtype=str)
        labels = np.asarray([str(x or "") for x in arrays["label"]], dtype=str)
        self.stats.objects_embedded += len(ids)
        emb = embed(arrays) if len(ids) else np.zeros((0, 0), dtype=np.float32)
        return ids, labels, np.asarray(emb)

    def _build(self, version: str, files: frozenset[str], max_len: int, embed: Embedder) -> LakeIndex:
        ids, labels, emb = self._embed(self.lake.read(), max_len, embed)
        self.stats.full_builds += 1
        log.info("similarity index of version %s: %d objects from %d files", version, len(ids), len(files))
        return LakeIndex(version, files, ids, labels, emb)

    def _update(self, index: LakeIndex, files: frozenset[str], max_len: int, embed: Embedder) -> LakeIndex:
        new = sorted(files - index.files)
        touched: set[str] = set()
        for path in new:
            touched.update(pq.read_table(path, columns=["object_id"]).column("object_id").to_pylist())
        ids, labels, emb = self._embed(self.lake.read_objects(sorted(touched)), max_len, embed)
        keep = ~np.isin(index.ids, list(touched))
        if len(ids) and index.embeddings.shape[0] and index.embeddings.shape[1] != emb.shape[1]:
            raise ValueError("embedding width changed within one model version")
        parts = [e for e in (index.embeddings[keep], emb) if e.size]
        self.stats.updates += 1
        log.info("similarity index: %d new files, %d objects embedded again", len(new), len(ids))
        return LakeIndex(
            index.version,
            files,
            np.concatenate([index.ids[keep], ids]),
            np.concatenate([index.labels[keep], labels]),
            np.concatenate(parts) if parts else index.embeddings[:0],
        )
