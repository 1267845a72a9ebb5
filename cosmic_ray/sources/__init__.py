"""Every source, registered in one place.

Each source module has the same shape: ``build_request(inputs) -> request`` (inspectable, no
network), ``fetch(request) -> Iterator[RawInput]`` (raw bytes), ``parse(raw) -> ParseResult``
(light-curve schema table + quarantined records with reasons).
"""

from __future__ import annotations

import importlib
from types import ModuleType

# name on the command line -> module path (imported lazily: no side effects at import)
REGISTRY: dict[str, str] = {
    "ztf": "cosmic_ray.sources.ztf",
    "catalog": "cosmic_ray.sources.catalog",
    "tess": "cosmic_ray.sources.tess",
    "mast": "cosmic_ray.sources.mast",
    "irsa": "cosmic_ray.sources.irsa",
    "catalogs": "cosmic_ray.sources.catalogs",
}


def get_source(name: str) -> ModuleType:
    """The source module registered under ``name``.

    Raises:
        KeyError: no such source; the message lists the known ones.
    """
    try:
        return importlib.import_module(REGISTRY[name])
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known sources: {', '.join(sorted(REGISTRY))}") from None
