"""What every source shares: raw inputs, parse results, the request and source protocols, HTTP framing.

A source is a module with the same three steps (see :class:`Source`):

* ``build_request(inputs, **options)`` -> a request (:class:`Request`): inspectable, nothing sent;
* ``fetch(request)`` -> :class:`RawInput` items: the bytes of local files or recorded answers, or
  the service's raw HTTP answers (status line, headers, body), so an HTTP error is kept as data;
* ``parse(raw)`` -> :class:`ParseResult`: a table plus the records quarantined with a reason.

Sources are registered in one place, :data:`cosmic_ray.sources.REGISTRY`.
"""

from __future__ import annotations

import http.client
import io
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import httpx
import pyarrow as pa

from cosmic_ray.core.errors import RemoteServiceError, SourceError
from cosmic_ray.sources.bounded import DecompressionLimitError, max_decompressed_bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawInput:
    """One unit of raw input: a file's bytes (or a tarball member's, or an HTTP answer), named for quarantine."""

    name: str
    data: bytes


@dataclass
class ParseResult:
    """What ``parse`` made of raw inputs.

    Attributes:
        table: light-curve points (:data:`cosmic_ray.core.lightcurve.SCHEMA`), or the source's own
            table when ``kind`` says so (MAST observations: ``anchors``).
        alerts: alert packets decoded (ZTF only).
        quarantined: ``(input name, reason)`` of each record that was not read.
        alert_meta: one row per alert (ZTF only): what the pre-filters read.
        kind: ``points`` (goes to the lake) or ``anchors`` (MAST observations, kept apart).
    """

    table: pa.Table
    alerts: int = 0
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    alert_meta: pa.Table | None = None
    kind: Literal["points", "anchors"] = "points"


@runtime_checkable
class Request(Protocol):
    """What ``build_request`` returns: the files it reads and whether ``fetch`` asks a service."""

    @property
    def files(self) -> tuple[Path, ...]:
        """Local files read as they are (inputs, recorded answers); parsed in parallel by the ingest."""
        ...

    @property
    def remote(self) -> bool:
        """Whether ``fetch`` asks a service over the network (beyond reading :attr:`files`)."""
        ...

    @property
    def parse_options(self) -> Mapping[str, Any]:
        """Keyword arguments the source's ``parse`` takes for this request's inputs (e.g. a name for the rows)."""
        ...


@dataclass(frozen=True)
class FileRequest:
    """Files to read as they are: local inputs or recorded answers of a service."""

    files: tuple[Path, ...] = ()

    @property
    def remote(self) -> bool:
        return False

    @property
    def parse_options(self) -> Mapping[str, Any]:
        return {}


RequestT = TypeVar("RequestT", bound=Request)


class Source(Protocol[RequestT]):
    """The shape of a source module (modules implement it; checked by mypy in ``sources/__init__``)."""

    NAME: str

    def build_request(self, inputs: Any, /) -> RequestT: ...

    def fetch(self, request: RequestT, /) -> Iterator[RawInput]: ...

    def parse(self, raw: RawInput, /) -> ParseResult: ...


def read_files(files: Iterable[Path]) -> Iterator[RawInput]:
    """The bytes of each file, named by its path."""
    for path in files:
        yield RawInput(str(path), path.read_bytes())


def recorded_paths(inputs: Any, suffixes: tuple[str, ...]) -> tuple[Path, ...] | None:
    """``inputs`` as paths of recorded answers (a path, or a list of them ending in ``suffixes``); else ``None``.

    Raises:
        SourceError: they are recorded answers but some file does not exist.
    """

    def is_path(item: Any) -> bool:
        return isinstance(item, Path) or (isinstance(item, str) and Path(item).suffix in suffixes)

    if is_path(inputs):
        paths = [Path(inputs)]
    elif isinstance(inputs, (list, tuple)) and inputs and all(is_path(p) for p in inputs):
        paths = [Path(p) for p in inputs]
    else:
        return None
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SourceError(f"recorded answers not found: {missing}")
    return tuple(paths)


# --------------------------------------------------------------------------- raw HTTP answers


def http_response_bytes(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> bytes:
    """Serialise an HTTP answer (status line, headers, body) so it can be kept, replayed and parsed.

    The same layout is used by recorded and constructed fixtures.
    """
    reason = http.client.responses.get(status, "")
    lines = [f"HTTP/1.1 {status} {reason}"]
    hdrs = {k: v for k, v in (headers or {}).items() if k.lower() not in ("content-length", "transfer-encoding")}
    hdrs = {k: v for k, v in hdrs.items() if k.lower() != "content-encoding"}  # the body kept here is decoded
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
        # typeshed wants a real socket; HTTPResponse only calls makefile() on it
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


def unwrap_http(raw: RawInput, service: str) -> bytes | str:
    """The body of a raw answer (bare or HTTP-framed), or the quarantine reason (a ``str``) when it is an error."""
    try:
        status, _headers, body = split_http_response(raw.data)
    except SourceError as exc:
        return str(exc)
    if status is not None and status >= 400:
        return http_error_reason(service, status, body)
    return body


def http_answer(
    client: httpx.Client, method: str, url: str, *, service: str, name: str | None = None, **kwargs: Any
) -> RawInput:
    """Send one request and keep the answer, errors included, as a raw HTTP response.

    The body is read chunk by chunk as httpx decodes it (``Content-Encoding: gzip``...), refused
    past the decompression bound (:mod:`cosmic_ray.sources.bounded`).

    Raises:
        RemoteServiceError: the service did not answer at all (connection error, timeout).
        DecompressionLimitError: the decoded answer is larger than the bound.
    """
    limit = max_decompressed_bytes()
    try:
        with client.stream(method, url, **kwargs) as resp:
            parts: list[bytes] = []
            total = 0
            for chunk in resp.iter_bytes():  # decoded (Content-Encoding undone) chunk by chunk, bounded
                total += len(chunk)
                if total > limit:
                    raise DecompressionLimitError(
                        f"{service} answer from {url} is larger than {limit} bytes once decoded "
                        "(the decompression bound COSMIC_RAY_MAX_DECOMPRESSED_BYTES): refused"
                    )
                parts.append(chunk)
            body = b"".join(parts)
            return RawInput(name or str(resp.url), http_response_bytes(resp.status_code, body, dict(resp.headers)))
    except httpx.HTTPError as exc:
        raise RemoteServiceError(f"{service} did not answer {url}: {exc}; check the network, retry later") from exc


def sky_position(value: Any) -> Any:
    """A position as an ICRS ``SkyCoord``: a ``SkyCoord``, ``(ra, dec)`` in degrees, or ``"ra dec"``."""
    # deferred: astropy.coordinates is heavy and only position queries need it
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    if isinstance(value, SkyCoord):
        return value.icrs
    if isinstance(value, str):
        return SkyCoord(value, unit=(u.deg, u.deg), frame="icrs")
    ra, dec = value
    return SkyCoord(float(ra) * u.deg, float(dec) * u.deg, frame="icrs")
