"""Pydantic models of the expert-feedback routes: labels of an object, the anomaly ranking of a night."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cosmic_ray.core.feedback import MAX_NOTE, known_class
from cosmic_ray.core.taxonomy import COARSE_CLASSES
from cosmic_ray.serve.schemas import CLASS_NAME_PATTERN


class LabelIn(BaseModel):
    """``POST /objects/{id}/labels``: a class, "interesting" or "bogus", with an optional note."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: Literal["class", "interesting", "bogus"]
    class_: str | None = Field(
        default=None,
        alias="class",
        min_length=1,
        max_length=64,
        pattern=CLASS_NAME_PATTERN,
        description=f"kind=class only: one of {', '.join(COARSE_CLASSES)} (or a fine BTS/TNS spelling of one).",
    )
    note: str = Field(default="", max_length=MAX_NOTE)

    @model_validator(mode="after")
    def _class_fits_kind(self) -> LabelIn:
        if self.kind == "class":
            if self.class_ is None:
                raise ValueError("a label of kind 'class' needs 'class'")
            if not known_class(self.class_):
                raise ValueError(f"unknown class {self.class_!r}: use one of {', '.join(COARSE_CLASSES)}")
        elif self.class_ is not None:
            raise ValueError(f"a label of kind {self.kind!r} takes no 'class'")
        return self


class LabelOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    object_id: str
    kind: str
    class_: str | None = Field(serialization_alias="class", validation_alias="class")
    note: str
    user: str | None = Field(description="Who answered (null for anonymous readers).")
    created_at: str


class AnomalyOut(BaseModel):
    object_id: str
    rank: int
    score: float = Field(description="Higher = more anomalous, after the experts' answers.")
    n_points: int
    label: str | None = Field(description="The newest expert answer's kind or class, if any.")


class AnomalyRankingOut(BaseModel):
    night: str
    objects_ranked: int
    answers_used: int = Field(description="Expert answers (interesting / not) the ranking learnt from.")
    method: str
    top: list[AnomalyOut]
