"""What the client's calls return: the API's JSON answers, typed (``class`` is a Python keyword, so
those dicts are declared in the functional form)."""

from __future__ import annotations

from typing import Any, TypedDict


class Neighbour(TypedDict):
    object_id: str
    label: str
    distance: float


Prediction = TypedDict(
    "Prediction",
    {
        "object_id": str,
        "class": str,
        "probabilities": dict[str, float],
        "open_set_score": float,
        "novel": bool,
        "rare": bool,
        "neighbours": list[Neighbour],
        "model_version": str,
        "latency_ms": float,
        "bands_used": list[str],
    },
    total=False,
)

AlertRecord = TypedDict(
    "AlertRecord",
    {
        "candid": int,
        "object_id": str,
        "classified_at": str,
        "class": str,
        "probabilities": dict[str, float],
        "open_set_score": float,
        "novel": bool,
        "rare": bool,
        "model_version": str,
    },
)

Label = TypedDict(
    "Label",
    {"object_id": str, "kind": str, "class": str | None, "note": str, "user": str | None, "created_at": str},
)


class ObjectPage(TypedDict, total=False):
    """A cone search or listing page (``GET /objects``)."""

    total: int
    offset: int
    limit: int
    next_offset: int | None
    cone: dict[str, float] | None
    objects: list[dict[str, Any]]


class WatchlistEntry(TypedDict):
    name: str
    ra: float
    dec: float
    radius_arcsec: float


class Watchlist(TypedDict, total=False):
    id: int
    owner: str
    name: str
    created_at: str
    entries: list[WatchlistEntry]
    regions: list[dict[str, Any]]


class AnomalyRanking(TypedDict):
    night: str
    objects_ranked: int
    answers_used: int
    method: str
    top: list[dict[str, Any]]
