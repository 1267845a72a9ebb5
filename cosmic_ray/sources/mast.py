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

import http.client
import io
import json
import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from astropy import units as u
from astropy.coordinates import SkyCoord, search_around_sky

from cosmic_ray.core.errors import RemoteServiceError, SourceError
from cosmic_ray.sources.ztf import ParseResult, RawInput

log = logging.getLogger(__name__)

NAME = "mast"
MAST_INVOKE_URL = "https://mast.stsci.edu/api/v0/invoke"  # astroquery PortalAPI.MAST_REQUEST_URL
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


# --------------------------------------------------------------------------- raw HTTP answers


def http_response_bytes(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> bytes:
    """Serialise an HTTP answer (status line, headers, body) so it can be kept, replayed and parsed.

    The same layout is used by recorded and constructed fixtures.
    """
    reason = http.client.responses.get(status, "")
    lines = [f"HTTP/1.1 {status} {reason}"]
    hdrs = {k: v for k, v in (headers or {}).items() if k.lower() not in ("content-length", "transfer-encoding")}
    hdrs.pop("content-encoding", None)  # the body kept here is already decoded
    lines += [f"{k}: {v}" for k, v in hdrs.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _BytesSocket:
    """Just enough of a socket for :class:`http.client.HTTPResponse` to read from bytes."""

    def __init__(self, data: bytes) -> None:
        self._file = io.BytesIO(data)

    def makefile(self, *args: Any, **kwargs: Any) -> io.BytesIO:
        return self._file


def split_http_response(data: bytes) -> tuple[int | None, dict[str, str], bytes]:
    """``(status, headers, body)`` of a raw answer; a bare body (no status line) gives ``None``.

    Raises:
        SourceError: the bytes start like an HTTP answer but cannot be read as one.
    """
    if not data.startswith(b"HTTP/"):
        return None, {}, data
    try:
        response = http.client.HTTPResponse(_BytesSocket(data))  # type: ignore[arg-type]
        response.begin()
        body = response.read()
    except (http.client.HTTPException, ValueError) as exc:
        raise SourceError(f"malformed HTTP answer: {exc}") from exc
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def http_error_reason(service: str, status: int, body: bytes) -> str:
    """Quarantine reason for an HTTP error answer, saying what to do."""
    text = " ".join(body.decode("utf-8", "replace").split())[:200]
    hint = "retry later" if status >= 500 else "check the request parameters"
    return f"{service} answered HTTP {status} {http.client.responses.get(status, '')}: {text!r}; {hint}"


# --------------------------------------------------------------------------- request


@dataclass(frozen=True)
class MastRequest:
    """One Mashup request, as astroquery's PortalAPI would POST it to ``url``."""

    service: str
    params: dict[str, Any] = field(default_factory=dict)
    url: str = MAST_INVOKE_URL
    pagesize: int | None = None
    page: int | None = None

    def mashup(self) -> dict[str, Any]:
        """The JSON request object (without astroquery's random cache breaker)."""
        out: dict[str, Any] = {"service": self.service, "params": self.params, "format": "json"}
        if self.pagesize is not None:
            out["pagesize"] = self.pagesize
        if self.page is not None:
            out["page"] = self.page
        return out

    def form(self) -> dict[str, str]:
        """The form body of the POST: ``request=<json>``."""
        return {"request": json.dumps(self.mashup(), sort_keys=True)}


@dataclass(frozen=True)
class ReplayRequest:
    """Recorded MAST answers to read instead of asking the service (offline tests, reruns).

    The paths are deliberately not called ``files``: the light-curve ingest reads any request
    with ``files``, and anchors are not light-curve points.
    """

    recorded: tuple[Path, ...]


def _coordinates(value: Any) -> SkyCoord:
    if isinstance(value, SkyCoord):
        return value.icrs
    if isinstance(value, str):
        return SkyCoord(value, unit=(u.deg, u.deg), frame="icrs")
    ra, dec = value
    return SkyCoord(float(ra) * u.deg, float(dec) * u.deg, frame="icrs")


def mashup_filters(criteria: Mapping[str, Any]) -> list[dict[str, Any]]:
    """CAOM criteria -> the Mashup filter list (the layout astroquery's ``build_filter_set`` builds).

    Float fields (:data:`CONTINUOUS_FIELDS`) take ``(min, max)``; other fields take one value or
    a list, sent as strings; one value may carry ``*`` wildcards.

    Raises:
        SourceError: a float field was not given as ``(min, max)``.
    """
    out = []
    for name, value in criteria.items():
        values = [value] if np.isscalar(value) else list(value)
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
    **criteria: Any,
) -> MastRequest | ReplayRequest:
    """The MAST CAOM search for a position and/or criteria, or recorded answers to replay.

    Args:
        inputs: a position (``SkyCoord``, ``(ra, dec)`` in degrees, or ``"ra dec"``) for a cone
            search; ``None`` for a criteria-only search; or paths of recorded answers to replay.
        radius: cone radius (a Quantity, or degrees).
        pagesize: rows per page (MAST's default when ``None``).
        page: one page only (all pages when ``None``).
        **criteria: CAOM fields, e.g. ``obs_collection="TESS"``, ``t_min=(58000, 58100)``.

    Returns:
        A :class:`MastRequest` (Cone, Filtered or Filtered.Position service) or a
        :class:`ReplayRequest`.

    Raises:
        SourceError: nothing to search for, or a recorded file does not exist.
    """
    if _is_paths(inputs):
        paths = [Path(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise SourceError(f"recorded MAST answers not found: {missing}")
        return ReplayRequest(recorded=tuple(paths))
    radius_deg = float(u.Quantity(radius, u.deg).to_value(u.deg))
    if inputs is None:
        if not criteria:
            raise SourceError("MAST search needs a position or at least one criterion (e.g. obs_collection='TESS')")
        return MastRequest(
            FILTERED_SERVICE, {"columns": "*", "filters": mashup_filters(criteria)}, pagesize=pagesize, page=page
        )
    coords = _coordinates(inputs)
    if not criteria:
        params = {"ra": float(coords.ra.deg), "dec": float(coords.dec.deg), "radius": radius_deg}
        return MastRequest(CONE_SERVICE, params, pagesize=pagesize, page=page)
    position = ", ".join(str(x) for x in (float(coords.ra.deg), float(coords.dec.deg), radius_deg))
    params = {"columns": "*", "filters": mashup_filters(criteria), "position": position}
    return MastRequest(FILTERED_POSITION_SERVICE, params, pagesize=pagesize, page=page)


def _is_paths(inputs: Any) -> bool:
    if isinstance(inputs, Path):
        return True
    if isinstance(inputs, str):
        return Path(inputs).suffix in (".json", ".http", ".txt")
    if isinstance(inputs, (list, tuple)) and inputs:
        return all(isinstance(p, (str, Path)) and _is_paths(p) for p in inputs)
    return False


# --------------------------------------------------------------------------- fetch


def fetch(request: MastRequest | ReplayRequest) -> Iterator[RawInput]:
    """Yield MAST's answers as raw HTTP responses (one per page); recorded files as they are.

    Network: uses ``astroquery.mast.Observations.service_request_async`` with the request's
    service and parameters. An HTTP error answer is yielded (and quarantined by :func:`parse`).

    Raises:
        RemoteServiceError: MAST did not answer at all (connection error, timeout).
    """
    if isinstance(request, ReplayRequest):
        for path in request.recorded:
            yield RawInput(str(path), path.read_bytes())
        return
    import requests
    from astroquery.mast import Observations

    name = f"{request.url}#{request.service}"
    try:
        responses = Observations.service_request_async(
            request.service, request.params, pagesize=request.pagesize, page=request.page
        )
    except requests.HTTPError as exc:
        resp = exc.response
        if resp is None:
            raise RemoteServiceError(f"MAST {request.service} failed without an answer: {exc}") from exc
        yield RawInput(name, http_response_bytes(resp.status_code, resp.content, dict(resp.headers)))
        return
    except (requests.RequestException, TimeoutError) as exc:
        raise RemoteServiceError(
            f"MAST {request.service} did not answer ({exc}); check the network or https://mast.stsci.edu status"
        ) from exc
    for i, resp in enumerate(responses):
        yield RawInput(f"{name}#page{i + 1}", http_response_bytes(resp.status_code, resp.content, dict(resp.headers)))


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


def parse(raw: RawInput) -> ParseResult:
    """One MAST CAOM answer -> anchors table (:data:`ANCHOR_SCHEMA`).

    HTTP errors, non-JSON bodies, ``status: ERROR`` answers and answers without ``data`` /
    ``fields`` are quarantined with a reason; rows without ``obs_id`` are quarantined one by one.
    An empty answer is logged as a warning and gives an empty table.
    """
    try:
        status, _headers, body = split_http_response(raw.data)
    except SourceError as exc:
        return ParseResult(table=_empty(), quarantined=[(raw.name, str(exc))])
    if status is not None and status >= 400:
        return ParseResult(table=_empty(), quarantined=[(raw.name, http_error_reason("MAST", status, body))])
    try:
        result = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return ParseResult(table=_empty(), quarantined=[(raw.name, f"MAST answer is not JSON: {exc}")])
    if not isinstance(result, dict):
        return ParseResult(table=_empty(), quarantined=[(raw.name, "MAST answer is not a JSON object")])
    if result.get("status") == "ERROR":
        msg = result.get("msg") or "no message"
        return ParseResult(table=_empty(), quarantined=[(raw.name, f"MAST reported an error: {msg}")])
    if result.get("status") not in (None, "COMPLETE"):
        return ParseResult(
            table=_empty(),
            quarantined=[(raw.name, f"MAST answer incomplete (status {result.get('status')!r}); ask again")],
        )
    if not isinstance(result.get("data"), list) or "fields" not in result:
        return ParseResult(table=_empty(), quarantined=[(raw.name, "MAST answer has no 'data'/'fields'")])

    columns: dict[str, list[Any]] = {f.name: [] for f in ANCHOR_SCHEMA}
    quarantined = []
    for i, row in enumerate(result["data"]):
        obs_id = row.get("obs_id") if isinstance(row, dict) else None
        if not obs_id:
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
    return ParseResult(table=table, quarantined=quarantined)


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
    tables, quarantined = [], []
    for raw in fetch(request):
        res = parse(raw)
        tables.append(res.table)
        quarantined.extend(res.quarantined)
    table = pa.concat_tables(tables) if tables else _empty()
    return ParseResult(table=table, quarantined=quarantined)
