"""The night's anomaly ranking: the objects detected on a night, ranked by an isolation forest that
learnt from every stored expert answer (``cosmic-ray anomalies``, ``GET /candidates/anomalous``).

Answers about objects of other nights count too: their light curves join the forest's data as
known anomalies (answered "interesting", or a rare class) or known nominals (bogus, a common class).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow.compute as pc

from cosmic_ray.core.config import Settings
from cosmic_ray.core.feedback import ExpertAnswer, latest_by_object
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.learn.aad import AnomalyRanker, Method
from cosmic_ray.learn.features import featurize

log = logging.getLogger(__name__)

#: Most objects of one night ranked (beyond it the first ones by id; the forest stays fast).
MAX_NIGHT_OBJECTS = 20000


@dataclass(frozen=True)
class RankedObject:
    object_id: str
    rank: int
    score: float
    n_points: int
    label: str | None  # the newest expert answer: its class, or its kind


@dataclass(frozen=True)
class NightRanking:
    night: str
    objects_ranked: int
    answers_used: int
    method: str
    top: list[RankedObject] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def night_objects(lake: Lake, night: str) -> list[str]:
    """Ids of the objects with a point in the lake on ``night`` (YYYYMMDD), sorted."""
    table = lake.read(nights_from=night)
    table = table.filter(pc.equal(table.column("night"), night))
    return sorted(set(table.column("object_id").to_pylist()))


def rank_night(
    settings: Settings,
    night: str,
    answers: list[ExpertAnswer],
    top: int = 20,
    method: Method = "aad",
    seed: int = 0,
) -> NightRanking:
    """Rank the night's objects, most anomalous first, after learning from ``answers``.

    Args:
        night: YYYYMMDD.
        answers: stored expert answers (all of them: the newest per object is used).
        top: how many of the ranking to return.
    """
    lake = Lake(settings.lake_dir)
    ids = night_objects(lake, night)[:MAX_NIGHT_OBJECTS]
    latest = latest_by_object(answers)
    if not ids:
        return NightRanking(night, 0, 0, method)
    table = lake.read_objects(sorted(set(ids) | set(latest)))
    arrays = featurize(table)
    rows = {str(o): i for i, o in enumerate(arrays["object_id"])}
    night_rows = np.asarray([rows[o] for o in ids if o in rows], dtype=np.int64)
    if len(night_rows) == 0:
        return NightRanking(night, 0, 0, method)
    ranker = AnomalyRanker(arrays["feats"], method=method, seed=seed)
    known = {rows[o]: bool(a.interesting) for o, a in latest.items() if o in rows}
    ranker.learn(known)
    scores = ranker.scores()
    order = night_rows[np.argsort(-scores[night_rows], kind="stable")]
    counts = table.group_by("object_id").aggregate([("mjd", "count")])
    n_points = dict(zip(counts.column("object_id").to_pylist(), counts.column("mjd_count").to_pylist(), strict=True))
    ranked = []
    for rank, row in enumerate(order[:top], start=1):
        oid = str(arrays["object_id"][row])
        answer = latest.get(oid)
        shown = (answer.class_name if answer.kind == "class" else answer.kind) if answer else None
        ranked.append(RankedObject(oid, rank, round(float(scores[row]), 6), int(n_points.get(oid, 0)), shown))
    log.info("night %s: %d objects ranked (%s) with %d expert answers", night, len(night_rows), method, len(known))
    return NightRanking(night, int(len(night_rows)), len(known), method, ranked)
