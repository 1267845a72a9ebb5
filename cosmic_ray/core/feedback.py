"""Expert feedback, the typed hand-off: one astronomer's answer about one object, and its rules.

An answer is one of three kinds:

- ``class``: the object's true class (a class of :mod:`cosmic_ray.core.taxonomy`, coarse or a fine
  BTS/TNS spelling that maps to one); the next retrain trains on it;
- ``interesting``: worth a look (the anomaly ranker moves objects like it up);
- ``bogus``: an artefact or not astrophysical; left out of training, ranked down.

The event store keeps them (:mod:`cosmic_ray.serve.labels`), the retrain reads them
(:mod:`cosmic_ray.ops.feedback`), the anomaly ranker learns from them (:mod:`cosmic_ray.learn.aad`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from cosmic_ray.core.errors import CosmicRayError
from cosmic_ray.core.taxonomy import COARSE_CLASSES, OTHER, SUPPORT_ONLY, to_coarse

LabelKind = Literal["class", "interesting", "bogus"]
LABEL_KINDS: tuple[str, ...] = ("class", "interesting", "bogus")
#: Longest note kept with an answer (characters).
MAX_NOTE = 2000
#: Classes an answer of kind ``class`` counts as "interesting" for the anomaly ranker (rare ones).
RARE_CLASSES: tuple[str, ...] = (*SUPPORT_ONLY, "SLSN-II")


class FeedbackError(CosmicRayError):
    """An expert answer that cannot be stored as given (unknown kind or class, note too long)."""


@dataclass(frozen=True)
class ExpertAnswer:
    """One stored answer about one object.

    Attributes:
        class_name: the class as the expert wrote it (kind ``class``), else None.
        created_at: naive UTC.
    """

    object_id: str
    kind: str
    class_name: str | None
    note: str
    username: str
    created_at: datetime

    @property
    def coarse_class(self) -> str | None:
        """The taxonomy's class of ``class_name`` (None unless kind ``class``)."""
        return to_coarse(self.class_name) if self.kind == "class" and self.class_name else None

    @property
    def interesting(self) -> bool | None:
        """True: an anomaly to the ranker; False: nominal; never None for a stored answer."""
        if self.kind == "interesting":
            return True
        if self.kind == "bogus":
            return False
        return self.coarse_class in RARE_CLASSES

    def to_dict(self) -> dict[str, str | None]:
        return {
            "object_id": self.object_id,
            "kind": self.kind,
            "class": self.class_name,
            "note": self.note,
            "user": self.username,
            "created_at": self.created_at.isoformat() + "Z",
        }


def known_class(name: str) -> bool:
    """A coarse class of the taxonomy, or a fine spelling that maps to one other than ``Other``."""
    return name in COARSE_CLASSES or to_coarse(name) != OTHER


def check_answer(kind: str, class_name: str | None, note: str) -> None:
    """Raises: FeedbackError: what is wrong with the answer, in words."""
    if kind not in LABEL_KINDS:
        raise FeedbackError(f"unknown label kind {kind!r}: use one of {', '.join(LABEL_KINDS)}")
    if kind == "class":
        if not class_name:
            raise FeedbackError("a label of kind 'class' needs a class name")
        if not known_class(class_name):
            raise FeedbackError(f"unknown class {class_name!r}: use one of {', '.join(COARSE_CLASSES)}")
    elif class_name:
        raise FeedbackError(f"a label of kind {kind!r} takes no class (send kind 'class' for a class)")
    if len(note) > MAX_NOTE:
        raise FeedbackError(f"note of {len(note)} characters exceeds the limit of {MAX_NOTE}")
    if "\x00" in note:
        raise FeedbackError("a note cannot hold a NUL character")


def latest_by_object(answers: Iterable[ExpertAnswer], kinds: tuple[str, ...] = LABEL_KINDS) -> dict[str, ExpertAnswer]:
    """The newest answer of one of ``kinds`` per object (later answers override earlier ones)."""
    out: dict[str, ExpertAnswer] = {}
    for a in sorted(answers, key=lambda a: a.created_at):
        if a.kind in kinds:
            out[a.object_id] = a
    return out


def provenance(answers: list[ExpertAnswer]) -> dict[str, object]:
    """Who said what and when, summed up for a run's lineage: count, users, kinds, newest time, digest.

    The digest is a SHA-256 (16 hex digits) of the answers in a fixed order: the same label set
    gives the same digest, any change to one answer changes it.
    """
    ordered = sorted(answers, key=lambda a: (a.object_id, a.created_at, a.kind, a.username))
    blob = json.dumps([a.to_dict() for a in ordered], sort_keys=True).encode()
    kinds: dict[str, int] = {}
    for a in ordered:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    newest = max((a.created_at for a in ordered), default=None)
    return {
        "count": len(ordered),
        "objects": len({a.object_id for a in ordered}),
        "users": sorted({a.username for a in ordered}),
        "kinds": kinds,
        "newest": newest.isoformat() + "Z" if newest else None,
        "digest": hashlib.sha256(blob).hexdigest()[:16],
    }
