"""What ``cosmic-ray ingest`` was asked for -> the source's request (files, a search, TIC ids...).

The one place that knows which options each source takes; the CLI parses arguments into
:class:`IngestOptions` and calls :func:`request_for`, and the ingest runs the request
(:func:`cosmic_ray.ingest.batch.ingest`).

Example (offline)::

    request_for("irsa", [], IngestOptions(position=(298.0025, 29.87147), radius_arcsec=5))
    # IrsaRequest(params=(('POS', 'CIRCLE 298.0025000 29.8714700 0.0013889'), ('FORMAT', 'ipac_table')), ...)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from astropy import units as u

from cosmic_ray.core.errors import SourceError
from cosmic_ray.sources import get_source, irsa, mast, tess
from cosmic_ray.sources.base import Request


@dataclass(frozen=True)
class IngestOptions:
    """Options of ``cosmic-ray ingest`` beyond its inputs (each used by some sources only).

    Attributes:
        position: ``(ra, dec)`` in degrees: a cone search (mast, irsa).
        radius_arcsec: cone radius (default: the source's, 2 arcsec for irsa, 0.2 deg for mast).
        object_id: name for the rows instead of the archive's id (irsa).
        server: archive server root, e.g. a mirror or a local replay (mast, tess, irsa).
        collection: MAST ``obs_collection`` to search (mast), e.g. ``TESS``.
        author: TESS light-curve pipeline, ``SPOC`` or ``QLP`` (tess).
    """

    position: tuple[float, float] | None = None
    radius_arcsec: float | None = None
    object_id: str | None = None
    server: str | None = None
    collection: str | None = None
    author: str | None = None


def request_for(source_name: str, inputs: Sequence[str], options: IngestOptions | None = None) -> Request:
    """The request ``cosmic-ray ingest SOURCE INPUTS... [options]`` runs.

    Args:
        source_name: a registered source.
        inputs: files or folders; for tess also TIC ids (``"TIC 123"``); for irsa also DR object
            ids (digits); for mast and irsa, recorded answers.
        options: see :class:`IngestOptions`.

    Raises:
        SourceError: an option the source does not take, nothing to read or search for, or a
            missing input file.
    """
    opts = options or IngestOptions()
    unused = _unused_options(source_name, opts)
    if unused:
        raise SourceError(f"{source_name} does not take {', '.join(unused)}")
    if source_name in ("mast", "irsa") and not inputs and opts.position is None:
        raise SourceError(f"{source_name}: give recorded answers as INPUTS, or a position (--ra/--dec)")
    if source_name == "mast":
        return _mast(inputs, opts)
    if source_name == "irsa":
        return _irsa(inputs, opts)
    if source_name == "tess":
        return tess.build_request(list(inputs), author=opts.author or "SPOC", server=opts.server or mast.MAST_SERVER)
    request: Request = get_source(source_name).build_request(list(inputs))
    return request


_FLAGS = {
    "position": "--ra/--dec",
    "radius_arcsec": "--radius",
    "object_id": "--object-id",
    "server": "--server",
    "collection": "--collection",
    "author": "--author",
}
_TAKES = {
    "mast": {"position", "radius_arcsec", "server", "collection"},
    "irsa": {"position", "radius_arcsec", "object_id", "server"},
    "tess": {"server", "author"},
}


def _unused_options(source_name: str, opts: IngestOptions) -> list[str]:
    given = {name for name, value in vars(opts).items() if value is not None}
    return sorted(_FLAGS[name] for name in given - _TAKES.get(source_name, set()))


def _mast(inputs: Sequence[str], opts: IngestOptions) -> Request:
    criteria: dict[str, Any] = {"obs_collection": opts.collection} if opts.collection else {}
    server = opts.server or mast.MAST_SERVER
    if opts.position is not None:
        if inputs:
            raise SourceError("mast: give either recorded answers or a position, not both")
        radius = opts.radius_arcsec * u.arcsec if opts.radius_arcsec is not None else mast.DEFAULT_RADIUS
        return mast.search_request(opts.position, radius=radius, server=server, **criteria)
    return mast.build_request(list(inputs), server=server, **criteria)


def _irsa(inputs: Sequence[str], opts: IngestOptions) -> Request:
    server = opts.server or irsa.IRSA_SERVER
    radius = opts.radius_arcsec * u.arcsec if opts.radius_arcsec is not None else irsa.DEFAULT_RADIUS
    if opts.position is not None:
        if inputs:
            raise SourceError("irsa: give either inputs or a position, not both")
        return irsa.build_request(opts.position, radius=radius, object_id=opts.object_id, server=server)
    if all(str(item).isdigit() for item in inputs):  # DR object ids
        return irsa.build_request([int(item) for item in inputs], object_id=opts.object_id, server=server)
    return irsa.build_request(list(inputs), object_id=opts.object_id, server=server)
