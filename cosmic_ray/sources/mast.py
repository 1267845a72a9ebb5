"""MAST CAOM observation searches -> an *anchors* table (where and when an archive observed).

These rows are not light-curve points: each one is an observation (an HST image, a TESS sector,
...) with a footprint centre and a time span. They are written in their own Arrow schema,
:data:`ANCHOR_SCHEMA`, and joined to objects by position with :func:`join_anchors`.

Shape shared by every source:

* :func:`build_request` returns the Mashup request (service URL, service name and parameters)
  that ``astroquery.mast.Observations`` would send for ``query_region`` / ``query_criteria``;
  nothing is sent.
* :func:`fetch` sends it through astroquery (which handles MAST's long polling and paging) and
  yields each answer as a raw HTTP response (status line, headers, body), so an HTTP 500 is kept
  as data and quarantined by :func:`parse` instead of being raised. A recorded response (a bare
  JSON body, as in astroquery's test data) is read the same way through :class:`ReplayRequest`.
* :func:`parse` turns one answer into an anchors table; error answers are quarantined with a
  reason, never raised.

Example (offline)::

    req = build_request((10.68, 41.27), radius=0.1 * u.deg)
    req.service, req.params   # ('Mast.Caom.Cone', {'ra': 10.68, 'dec': 41.27, 'radius': 0.1})
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
from astropy import units as u
from astropy.coordinates import SkyCoord, search_around_sky

from cosmic_ray.core.errors import RemoteServiceError, SourceError
from cosmic_ray.sources.base import (
    ParseResult,
    RawInput,
    http_answer,
    read_files,
    recorded_paths,
    sky_position,
    split_http_response,
    unwrap_http,
)

log = logging.getLogger(__name__)

NAME = "mast"
MAST_SERVER = "https://mast.stsci.edu"
MAST_INVOKE_URL = f"{MAST_SERVER}/api/v0/invoke"  # astroquery PortalAPI.MAST_REQUEST_URL
PRODUCTS_SERVICE = "Mast.Caom.Products"
RECORDED_SUFFIXES = (".json", ".http", ".txt")
CONE_SERVICE = "Mast.Caom.Cone"
FILTERED_SERVICE = "Mast.Caom.Filtered"
FILTERED_POSITION_SERVICE = "Mast.Caom.Filtered.Position"
DEFAULT_RADIUS = 0.2 * u.deg  # astroquery's default for query_region

# CAOM fields that MAST filters by [min, max] (float columns, documented at
# https://mast.stsci.edu/api/v0/_c_a_o_mfields.html); every other field takes a list of values.
CONTINUOUS_FIELDS = frozenset(
    {"s_ra", "s_dec", "t_min", "t_max", "t_exptime", "em_min", "em_max", "t_obs_release", "distance"}
)

ANCHOR_SCHEMA = pa.schema(
    [
        pa.field("obs_id", pa.string(), nullable=False),
        pa.field("obsid", pa.int64()),  # MAST's numeric id, what get_product_list takes
        pa.field("obs_collection", pa.string()),  # the mission: HST, TESS, GALEX, HLSP ...
        pa.field("instrument_name", pa.string()),
        pa.field("filters", pa.string()),
        pa.field("dataproduct_type", pa.string()),  # image, spectrum, timeseries, cube ...
        pa.field("target_name", pa.string()),
        pa.field("t_min", pa.float64()),  # MJD of the observation's start
        pa.field("t_max", pa.float64()),  # MJD of its end
        pa.field("ra", pa.float64()),  # footprint centre (CAOM s_ra), deg ICRS
        pa.field("dec", pa.float64()),  # footprint centre (CAOM s_dec), deg ICRS
    ]
)

# anchor column -> CAOM field in the MAST answer
_CAOM_FIELDS = {"ra": "s_ra", "dec": "s_dec"}


# --------------------------------------------------------------------------- request


@dataclass(frozen=True)
class MastRequest:
    """One Mashup request, POSTed to ``url`` as astroquery's PortalAPI would (a mirror or replay may serve it)."""

    service: str
    params: dict[str, Any] = field(default_factory=dict)
    url: str = MAST_INVOKE_URL
    pagesize: int | None = None
    page: int | None = None

    @property
    def files(self) -> tuple[Path, ...]:
        return ()

    @property
    def remote(self) -> bool:
        return True

    @property
    def parse_options(self) -> dict[str, Any]:
        return {}

    def mashup(self, page: int | None = None) -> dict[str, Any]:
        """The JSON request object (without astroquery's random cache breaker); ``page`` overrides :attr:`page`."""
        out: dict[str, Any] = {"service": self.service, "params": self.params, "format": "json"}
        if self.pagesize is not None:
            out["pagesize"] = self.pagesize
        if page is not None or self.page is not None:
            out["page"] = page if page is not None else self.page
        return out

    def form(self, page: int | None = None) -> dict[str, str]:
        """The form body of the POST: ``request=<json>``."""
        return {"request": json.dumps(self.mashup(page), sort_keys=True)}


@dataclass(frozen=True)
class ReplayRequest:
    """Recorded MAST answers to read instead of asking the service (offline tests, reruns).

    The ingest keeps what they hold apart from light-curve points: :func:`parse` marks its
    result ``kind="anchors"``.
    """

    files: tuple[Path, ...]

    @property
    def recorded(self) -> tuple[Path, ...]:
        """The recorded answers (former name of :attr:`files`)."""
        return self.files

    @property
    def remote(self) -> bool:
        return False

    @property
    def parse_options(self) -> dict[str, Any]:
        return {}


def invoke_url(server: str = MAST_SERVER) -> str:
    """The Mashup endpoint of a MAST server (or of a mirror / local replay of one)."""
    return f"{server.rstrip('/')}/api/v0/invoke"


def download_url(server: str = MAST_SERVER) -> str:
    """The file download endpoint of a MAST server (``?uri=mast:...``)."""
    return f"{server.rstrip('/')}/api/v0.1/Download/file"


def mashup_filters(criteria: Mapping[str, Any]) -> list[dict[str, Any]]:
    """CAOM criteria -> the Mashup filter list (the layout astroquery's ``build_filter_set`` builds).

    Float fields (:data:`CONTINUOUS_FIELDS`) take ``(min, max)``; other fields take one value or
    a list, sent as strings; one value may carry ``*`` wildcards.

    Raises:
        SourceError: a float field was not given as ``(min, max)``.
    """
    out = []
    for name, value in criteria.items():
        values: list[Any] = [value] if isinstance(value, (str, bytes)) or np.isscalar(value) else list(value)
        entry: dict[str, Any] = {"paramName": name}
        if name in CONTINUOUS_FIELDS:
            if len(values) != 2:
                raise SourceError(f"MAST field {name!r} filters by range: give (min, max), got {value!r}")
            entry["values"] = [{"min": float(values[0]), "max": float(values[1])}]
        else:
            exact = [str(v) for v in values if not ("*" in str(v) or "%" in str(v))]
            wild = [str(v).replace("*", "%") for v in values if "*" in str(v) or "%" in str(v)]
            if len(wild) > 1:
                raise SourceError(f"MAST takes one wildcard value per field; {name!r} has {wild}")
            entry["values"] = exact
            if wild:
                entry["freeText"] = wild[0]
        out.append(entry)
    return out


def build_request(
    inputs: Any = None,
    *,
    radius: u.Quantity | float = DEFAULT_RADIUS,
    pagesize: int | None = None,
    page: int | None = None,
    server: str = MAST_SERVER,
    **criteria: Any,
) -> MastRequest | ReplayRequest:
    """The MAST CAOM search for a position and/or criteria, or recorded answers to replay.

    Args:
        inputs: a position (``SkyCoord``, ``(ra, dec)`` in degrees, or ``"ra dec"``) for a cone
            search; ``None`` for a criteria-only search; or paths of recorded answers to replay.
        radius: cone radius (a Quantity, or degrees).
        pagesize: rows per page (MAST's default when ``None``).
        page: one page only (all pages when ``None``).
        server: MAST server root (a mirror or a local replay of one).
        **criteria: CAOM fields, e.g. ``obs_collection="TESS"``, ``t_min=(58000, 58100)``.

    Returns:
        A :class:`MastRequest` (Cone, Filtered or Filtered.Position service) or a
        :class:`ReplayRequest`.

    Raises:
        SourceError: nothing to search for, or a recorded file does not exist.
    """
    recorded = recorded_paths(inputs, RECORDED_SUFFIXES)
    if recorded is not None:
        return ReplayRequest(files=recorded)
    return search_request(inputs, radius=radius, pagesize=pagesize, page=page, server=server, **criteria)


def search_request(
    position: Any = None,
    *,
    radius: u.Quantity | float = DEFAULT_RADIUS,
    pagesize: int | None = None,
    page: int | None = None,
    server: str = MAST_SERVER,
    **criteria: Any,
) -> MastRequest:
    """The CAOM search of :func:`build_request` for a position and/or criteria (never a replay).

    Raises:
        SourceError: nothing to search for.
    """
    url = invoke_url(server)
    radius_deg = float(u.Quantity(radius, u.deg).to_value(u.deg))
    params: dict[str, Any]
    if position is None:
        if not criteria:
            raise SourceError("MAST search needs a position or at least one criterion (e.g. obs_collection='TESS')")
        params = {"columns": "*", "filters": mashup_filters(criteria)}
        return MastRequest(FILTERED_SERVICE, params, url=url, pagesize=pagesize, page=page)
    coords = sky_position(position)
    if not criteria:
        params = {"ra": float(coords.ra.deg), "dec": float(coords.dec.deg), "radius": radius_deg}
        return MastRequest(CONE_SERVICE, params, url=url, pagesize=pagesize, page=page)
    position_text = ", ".join(str(x) for x in (float(coords.ra.deg), float(coords.dec.deg), radius_deg))
    params = {"columns": "*", "filters": mashup_filters(criteria), "position": position_text}
    return MastRequest(FILTERED_POSITION_SERVICE, params, url=url, pagesize=pagesize, page=page)


def products_request(obsids: Iterable[int | str], server: str = MAST_SERVER) -> MastRequest:
    """The product list of some observations (what ``Observations.get_product_list`` asks for)."""
    return MastRequest(PRODUCTS_SERVICE, {"obsid": ",".join(str(i) for i in obsids)}, url=invoke_url(server))


# --------------------------------------------------------------------------- fetch


def fetch(
    request: MastRequest | ReplayRequest, *, timeout: float = 600.0, poll_seconds: float = 1.0
) -> Iterator[RawInput]:
    """Yield MAST's answers as raw HTTP responses (one per page); recorded files as they are.

    Network: the Mashup request is POSTed to ``request.url`` as astroquery's portal client does
    (form ``request=<json>``), asking again while MAST answers ``EXECUTING`` and page by page
    until ``paging.pagesFiltered``. An HTTP error answer is yielded (and quarantined by
    :func:`parse`).

    Raises:
        RemoteServiceError: MAST did not answer at all, or kept executing past ``timeout`` seconds.
    """
    if isinstance(request, ReplayRequest):
        yield from read_files(request.files)
        return
    deadline = time.monotonic() + timeout
    page = request.page or 1
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        while True:
            name = f"{request.url}#{request.service}#page{page}"
            while True:
                raw = http_answer(client, "POST", request.url, service="MAST", name=name, data=request.form(page))
                answer = _json_answer(raw)
                if answer is None or answer.get("status") != "EXECUTING":
                    break
                if time.monotonic() > deadline:
                    raise RemoteServiceError(f"MAST {request.service} still executing after {timeout:.0f} s; ask later")
                time.sleep(poll_seconds)
            yield raw
            paging = answer.get("paging") if answer is not None and answer.get("status") == "COMPLETE" else None
            if request.page is not None or not isinstance(paging, dict) or page >= int(paging.get("pagesFiltered", 1)):
                return
            page += 1


def _json_answer(raw: RawInput) -> dict[str, Any] | None:
    """The JSON object of a successful answer; ``None`` for errors and anything else."""
    try:
        status, _, body = split_http_response(raw.data)
        answer = json.loads(body) if status is None or status < 400 else None
    except (SourceError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return answer if isinstance(answer, dict) else None


# --------------------------------------------------------------------------- parse


def _empty() -> pa.Table:
    return ANCHOR_SCHEMA.empty_table()


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def answer_rows(raw: RawInput) -> list[Any] | str:
    """The ``data`` rows of one Mashup answer, or the reason (a ``str``) it cannot be read.

    HTTP errors, non-JSON bodies, ``status: ERROR`` or unfinished answers and answers without
    ``data`` / ``fields`` each give a reason saying what to do.
    """
    body = unwrap_http(raw, "MAST")
    if isinstance(body, str):
        return body
    try:
        result = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"MAST answer is not JSON: {exc}"
    if not isinstance(result, dict):
        return "MAST answer is not a JSON object"
    if result.get("status") == "ERROR":
        return f"MAST reported an error: {result.get('msg') or 'no message'}"
    if result.get("status") not in (None, "COMPLETE"):
        return f"MAST answer incomplete (status {result.get('status')!r}); ask again"
    data = result.get("data")
    if not isinstance(data, list) or "fields" not in result:
        return "MAST answer has no 'data'/'fields'"
    return data


def parse(raw: RawInput) -> ParseResult:
    """One MAST CAOM answer -> anchors table (:data:`ANCHOR_SCHEMA`), marked ``kind="anchors"``.

    An unreadable or error answer is quarantined with the reason (:func:`answer_rows`); rows
    without ``obs_id`` are quarantined one by one. An empty answer is logged as a warning and
    gives an empty table.
    """
    rows = answer_rows(raw)
    if isinstance(rows, str):
        return ParseResult(table=_empty(), quarantined=[(raw.name, rows)], kind="anchors")
    columns: dict[str, list[Any]] = {f.name: [] for f in ANCHOR_SCHEMA}
    quarantined = []
    for i, row in enumerate(rows):
        obs_id = row.get("obs_id") if isinstance(row, dict) else None
        if not isinstance(row, dict) or not obs_id:
            quarantined.append((f"{raw.name}#row{i}", "observation without obs_id"))
            continue
        for f in ANCHOR_SCHEMA:
            value = row.get(_CAOM_FIELDS.get(f.name, f.name))
            if pa.types.is_floating(f.type):
                value = _float(value)
            elif pa.types.is_integer(f.type):
                value = _int(value)
            elif value is not None:
                value = str(value)
            columns[f.name].append(value)
    table = pa.Table.from_pydict(columns, schema=ANCHOR_SCHEMA)
    if table.num_rows == 0:
        log.warning("MAST answer %s holds no observations", raw.name)
    return ParseResult(table=table, quarantined=quarantined, kind="anchors")


def product_uris(raw: RawInput, subgroup: str, extension: str = ".fits") -> list[str] | str:
    """``dataURI`` of the products in one product-list answer with this ``productSubGroupDescription``
    whose file name ends in ``extension`` (what ``Observations.filter_products`` keeps); or the reason
    (a ``str``) the answer cannot be read."""
    rows = answer_rows(raw)
    if isinstance(rows, str):
        return rows
    return [
        str(row["dataURI"])
        for row in rows
        if isinstance(row, dict)
        and row.get("dataURI")
        and row.get("productSubGroupDescription") == subgroup
        and str(row.get("productFilename", "")).endswith(extension)
    ]


# --------------------------------------------------------------------------- join


def object_positions(table: pa.Table) -> pa.Table:
    """One position per object (mean of the unit vectors of its rows with a position).

    Args:
        table: rows with ``object_id``, ``ra``, ``dec`` (e.g. a light-curve table).

    Returns:
        Table ``object_id, ra, dec`` (deg), objects without any position left out.
    """
    ids = np.asarray(table.column("object_id").to_pylist(), dtype=object)
    ra = table.column("ra").cast(pa.float64()).to_numpy(zero_copy_only=False)
    dec = table.column("dec").cast(pa.float64()).to_numpy(zero_copy_only=False)
    good = np.isfinite(ra) & np.isfinite(dec)
    ids, ra, dec = ids[good], np.radians(ra[good]), np.radians(dec[good])
    names, inverse = np.unique(ids.astype(str), return_inverse=True)
    xyz = np.zeros((len(names), 3))  # (n_objects, 3) summed unit vectors
    np.add.at(xyz, inverse, np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)]))
    mean_ra = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360.0
    mean_dec = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
    return pa.table({"object_id": pa.array(names.tolist(), pa.string()), "ra": mean_ra, "dec": mean_dec})


def join_anchors(objects: pa.Table, anchors: pa.Table, radius: u.Quantity | float) -> pa.Table:
    """Pair objects with the MAST observations whose footprint centre lies within ``radius``.

    Args:
        objects: rows with ``object_id``, ``ra``, ``dec`` (several rows per object are averaged).
        anchors: an :data:`ANCHOR_SCHEMA` table.
        radius: match radius (a Quantity, or arcseconds).

    Returns:
        One row per (object, observation) pair: ``object_id``, ``separation_arcsec`` and every
        anchor column (anchor ``ra``/``dec`` renamed ``obs_ra``/``obs_dec``), sorted by object
        then separation.
    """
    radius = u.Quantity(radius, u.arcsec)
    pos = object_positions(objects)
    has_pos = pa.array(
        np.isfinite(anchors.column("ra").to_numpy(zero_copy_only=False).astype(float))
        & np.isfinite(anchors.column("dec").to_numpy(zero_copy_only=False).astype(float))
    )
    anchors = anchors.filter(has_pos)
    out_names = ["object_id", "separation_arcsec"] + [
        {"ra": "obs_ra", "dec": "obs_dec"}.get(n, n) for n in ANCHOR_SCHEMA.names
    ]
    if pos.num_rows == 0 or anchors.num_rows == 0:
        empty = {"object_id": pa.array([], pa.string()), "separation_arcsec": pa.array([], pa.float64())}
        empty.update({n2: pa.array([], f.type) for n2, f in zip(out_names[2:], ANCHOR_SCHEMA, strict=False)})
        return pa.table(empty)
    obj = SkyCoord(pos.column("ra").to_numpy() * u.deg, pos.column("dec").to_numpy() * u.deg)
    anc = SkyCoord(
        anchors.column("ra").to_numpy(zero_copy_only=False) * u.deg,
        anchors.column("dec").to_numpy(zero_copy_only=False) * u.deg,
    )
    i_obj, i_anc, sep, _ = search_around_sky(obj, anc, radius)
    order = np.lexsort((sep.arcsec, pos.column("object_id").to_numpy(zero_copy_only=False)[i_obj]))
    i_obj, i_anc, sep = i_obj[order], i_anc[order], sep[order]
    picked = anchors.take(pa.array(i_anc, pa.int64()))
    columns = {"object_id": pos.column("object_id").take(pa.array(i_obj, pa.int64())), "separation_arcsec": sep.arcsec}
    for new, old in zip(out_names[2:], ANCHOR_SCHEMA.names, strict=False):
        columns[new] = picked.column(old)
    return pa.table(columns)


def read_anchors(inputs: Iterable[Path | str]) -> ParseResult:
    """Parse recorded MAST answers into one anchors table (quarantine lists concatenated)."""
    request = build_request([Path(p) for p in inputs])
    tables: list[pa.Table] = []
    quarantined: list[tuple[str, str]] = []
    for raw in fetch(request):
        res = parse(raw)
        tables.append(res.table)
        quarantined.extend(res.quarantined)
    table = pa.concat_tables(tables) if tables else _empty()
    return ParseResult(table=table, quarantined=quarantined, kind="anchors")
