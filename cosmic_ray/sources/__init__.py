"""Every source, registered in one place.

Each source module has the same shape (:class:`cosmic_ray.sources.base.Source`):
``build_request(inputs) -> request`` (inspectable, no network), ``fetch(request) ->
Iterator[RawInput]`` (raw bytes), ``parse(raw) -> ParseResult`` (light-curve schema table +
quarantined records with reasons). Importing this package imports no source and reads no file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from cosmic_ray.sources.base import Source

# name on the command line -> module path (imported lazily: no side effects at import)
REGISTRY: dict[str, str] = {
    "ztf": "cosmic_ray.sources.ztf",
    "catalog": "cosmic_ray.sources.catalog",
    "tess": "cosmic_ray.sources.tess",
    "mast": "cosmic_ray.sources.mast",
    "irsa": "cosmic_ray.sources.irsa",
    "catalogs": "cosmic_ray.sources.catalogs",
    "lsst": "cosmic_ray.sources.lsst",
}


def get_source(name: str) -> Source[Any]:
    """The source module registered under ``name``.

    Raises:
        KeyError: no such source; the message lists the known ones.
    """
    try:
        path = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known sources: {', '.join(sorted(REGISTRY))}") from None
    return cast("Source[Any]", importlib.import_module(path))


if TYPE_CHECKING:  # each registered module implements the Source protocol (checked by mypy, never run)
    from cosmic_ray.sources import catalog, catalogs, irsa, lsst, mast, tess, ztf

    _CHECKED: tuple[Source[Any], ...] = (ztf, catalog, tess, mast, irsa, catalogs, lsst)
