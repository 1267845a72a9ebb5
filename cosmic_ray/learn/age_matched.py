"""Age-matched prototypes: each class's prototype from its training objects cut 3, 10 and 30 days
after their first detection, so a young light curve is compared with classes at the same age.

The classifier chooses the set by the age of the light curve it reads
(:meth:`~cosmic_ray.learn.classifier.ProtoNetClassifier.age_matched_logits`); older light curves
use the full prototypes. The cut objects come from
:func:`~cosmic_ray.learn.features.truncate` + :func:`~cosmic_ray.learn.features.featurize` (the
caller's job: this module needs numpy and the classifier only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from cosmic_ray.learn.classifier import ProtoNetClassifier


def age_prototypes(
    classifier: ProtoNetClassifier,
    cut: Mapping[str, Mapping[str, np.ndarray]],
    labels_by_id: Mapping[str, str],
    contexts: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Bucket -> (K, D) prototypes of the classifier's classes from the cut training objects.

    Args:
        cut: bucket (``"3"``, ``"10"``, ``"30"``) -> featurize output (``object_id``, ``seq``,
            ``length``, raw ``feats``) of the training objects cut at that age.
        labels_by_id: training object id -> its class (one of ``classifier.class_names``); objects
            not in it are not used.
        contexts: object id -> its context (every field shown: prototypes hold what is known).

    A class without a cut object keeps its full prototype in that bucket.
    """
    out = {}
    for bucket, arrays in cut.items():
        ids = np.asarray([str(o) for o in arrays["object_id"]], dtype=object)
        rows = np.flatnonzero([o in labels_by_id for o in ids])
        protos = np.array(classifier.prototypes, dtype=np.float32, copy=True)
        if len(rows):
            ctx = None if contexts is None else [contexts.get(o) for o in ids[rows]]
            emb = classifier.embed(
                arrays["seq"][rows], arrays["length"][rows], arrays["feats"][rows], ctx, "with_redshift"
            )
            labels = np.asarray([labels_by_id[o] for o in ids[rows]], dtype=object)
            for k, name in enumerate(classifier.class_names):
                members = np.flatnonzero(labels == name)
                if len(members):
                    protos[k] = classifier.prototype_of(emb[members])
        out[str(bucket)] = protos
    return out
