"""Bounded ingestion: read a source's inputs into the lake.

File-based requests (local files, recorded answers) are read and parsed in parallel in Ray tasks
(:mod:`cosmic_ray.ingest.parallel`: many files per task, results stored while the next are parsed);
requests that ask a service (``request.remote``: a MAST or IRSA search, TESS downloads by
TIC id) are fetched and parsed on the driver. What cannot be read is quarantined with the reason;
the driver appends to the lake, which drops what is already there. ZTF alerts also get one row
each in the lake's per-alert table, with their pre-filter decision; MAST observations (anchors)
go to the lake's anchors table, never among the light-curve points. ZTF alerts also fill the
lake's per-object context table (position, host, nuclear distance: :mod:`cosmic_ray.sources.ztf_context`).
"""

from __future__ import annotations

import logging
import tarfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cosmic_ray.core.errors import SourceError
from cosmic_ray.core.lightcurve import SCHEMA, conform
from cosmic_ray.ingest import prefilter, quarantine
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.ingest.parallel import ParseJob, parse_files
from cosmic_ray.ingest.prefilter import PrefilterConfig
from cosmic_ray.sources import get_source
from cosmic_ray.sources.base import ParseResult, RawInput, Request
from cosmic_ray.sources.ztf import iter_tarball, iter_tarball_bytes
from cosmic_ray.sources.ztf_context import HOST_MAX_ARCSEC, context_from_alerts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestSummary:
    """The one JSON line ``cosmic-ray ingest`` prints."""

    source: str
    inputs: int
    alerts: int
    objects: int
    points: int
    duplicates: int
    quarantined: int
    seconds: float
    anchors: int = 0  # MAST observations stored (lake ``_anchors/``)
    objects_indexed: int = 0  # rows of the event store's object table refreshed (``store_url`` given)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def request_files(request: Any) -> list[str]:
    """The local files a request reads (ZTF Avro + tarballs, catalogue CSVs, FITS, recorded answers...).

    Raises:
        SourceError: ``request`` is not a source request (:class:`cosmic_ray.sources.base.Request`).
    """
    if not isinstance(request, Request):
        raise SourceError(f"{type(request).__name__} is not a source request (no files / remote / parse_options)")
    return [str(p) for p in request.files]


@dataclass
class ParsedBatch:
    """What one batch of raw inputs became: points, one row per alert (ZTF), alerts decoded."""

    points: pa.Table
    alerts: pa.Table | None
    n_alerts: int
    quarantined: int = 0
    anchors: pa.Table | None = None  # MAST observations (kept apart from the points)


def parse_inputs(
    source_name: str,
    items: Iterable[tuple[str, bytes | None]],
    quarantine_dir: Path | str,
    run_id: str = "",
    prefilter_cfg: PrefilterConfig | None = None,
    parse_options: Mapping[str, Any] | None = None,
) -> ParsedBatch:
    """Parse raw inputs into the light-curve schema; what cannot be read is quarantined with its reason and bytes.

    Args:
        source_name: a registered source.
        items: ``(name, bytes)``, or ``(path, None)`` to read the file here (ZTF tarballs are
            streamed member by member, never unpacked).
        quarantine_dir: where bad inputs go.
        run_id: prefix of this run's quarantine files.
        prefilter_cfg: pre-filter thresholds for ZTF alerts.
        parse_options: keyword arguments of the source's ``parse`` (the request's ``parse_options``).

    ZTF inputs are decoded as one batch (:func:`cosmic_ray.sources.ztf.parse_many`) and their
    per-alert rows get the pre-filter decision (:mod:`cosmic_ray.ingest.prefilter`).
    """
    source = get_source(source_name)
    raws: list[RawInput] = []
    for name, data in items:
        name = str(name)
        is_tar = name.endswith((".tar.gz", ".tgz", ".tar"))
        if data is None and is_tar:
            raws.extend(_iter_tarball_file(name))  # streamed from disk, never unpacked
        elif data is None:
            try:
                raws.append(RawInput(name, Path(name).read_bytes()))
            except OSError as exc:
                quarantine.quarantine(quarantine_dir, name, f"unreadable: {exc}", None, run_id)
        elif is_tar:
            raws.extend(iter_tarball_bytes(name, bytes(data)))
        else:
            raws.append(RawInput(name, bytes(data)))
    parse_many: Callable[[list[RawInput]], ParseResult] | None = getattr(source, "parse_many", None)
    parse: Callable[..., ParseResult] = source.parse
    results = _parse_all(parse, parse_many if not parse_options else None, raws, parse_options or {})
    by_name = {raw.name: raw.data for raw in raws}
    tables = [SCHEMA.empty_table()]
    metas, anchors = [], []
    n_alerts = quarantined = 0
    for result in results:
        n_alerts += result.alerts
        if result.kind == "anchors":
            anchors.append(result.table)
        else:
            tables.append(conform(result.table))
        if result.alert_meta is not None:
            metas.append(result.alert_meta)
        for name, reason in result.quarantined:
            data = by_name.get(name, by_name.get(name.rsplit("#", 1)[0]))
            quarantine.quarantine(quarantine_dir, name, reason, data or None, run_id)
            quarantined += 1
    alerts = None
    if metas:
        alerts = prefilter.apply(pa.concat_tables(metas), prefilter_cfg or PrefilterConfig())
    return ParsedBatch(
        pa.concat_tables(tables), alerts, n_alerts, quarantined, pa.concat_tables(anchors) if anchors else None
    )


def merge_batches(parts: list[ParsedBatch]) -> ParsedBatch:
    """One :class:`ParsedBatch` of several (points, alert rows and anchors concatenated)."""
    alerts = [p.alerts for p in parts if p.alerts is not None]
    anchors = [p.anchors for p in parts if p.anchors is not None]
    return ParsedBatch(
        pa.concat_tables([SCHEMA.empty_table(), *(p.points for p in parts)]),
        pa.concat_tables(alerts) if alerts else None,
        sum(p.n_alerts for p in parts),
        sum(p.quarantined for p in parts),
        pa.concat_tables(anchors) if anchors else None,
    )


def _failed(raw: RawInput, exc: BaseException) -> ParseResult:
    """A parser's failure on one input as that input's quarantine record."""
    log.warning("parser failed on %s: %s: %s (quarantined)", raw.name, type(exc).__name__, exc)
    return ParseResult(
        table=SCHEMA.empty_table(), quarantined=[(raw.name, f"parser failed: {type(exc).__name__}: {exc}"[:500])]
    )


def _parse_one(parse: Callable[..., ParseResult], raw: RawInput, options: Mapping[str, Any]) -> ParseResult:
    try:
        return parse(raw, **options)
    except Exception as exc:  # noqa: BLE001 - any parser failure quarantines its input, the rest go on
        return _failed(raw, exc)


def _parse_all(
    parse: Callable[..., ParseResult],
    parse_many: Callable[[list[RawInput]], ParseResult] | None,
    raws: list[RawInput],
    options: Mapping[str, Any],
) -> list[ParseResult]:
    """Every input parsed: in one ``parse_many`` call when the source has one; if that call fails,
    input by input, so only the inputs the parser fails on are quarantined (with the exception)."""
    if parse_many is not None:
        try:
            return [parse_many(raws)]
        except Exception as exc:  # noqa: BLE001 - find the input(s) it fails on, keep the rest
            log.warning(
                "batch parse failed (%s: %s): parsing the %d inputs one by one", type(exc).__name__, exc, len(raws)
            )
    return [_parse_one(parse, raw, options) for raw in raws]


def _iter_tarball_file(name: str) -> Iterator[RawInput]:
    try:
        yield from iter_tarball(Path(name))
    except (OSError, EOFError, tarfile.TarError) as exc:  # unreadable or not a tar at all: one bad input
        yield RawInput(f"{name}!<unreadable: {type(exc).__name__}>", b"")


@dataclass
class _Tally:
    """What the driver stored so far (the numbers of :class:`IngestSummary`)."""

    alerts: int = 0
    written: int = 0
    duplicates: int = 0
    anchors: int = 0
    host_max_arcsec: float = HOST_MAX_ARCSEC  # nearest PS1 galaxy farther than this is no host (context)

    def __post_init__(self) -> None:
        self.objects: set[str] = set()

    def store(self, lake: Lake, parsed: ParsedBatch) -> None:
        """Stage the points and per-alert rows, write the anchors."""
        self.alerts += parsed.n_alerts
        result = lake.append(parsed.points, defer=True)
        self.written += result.written
        self.duplicates += result.duplicates
        self.objects.update(pc.unique(parsed.points.column("object_id")).to_pylist())
        if parsed.alerts is not None:
            lake.append_alerts(parsed.alerts, defer=True)
            lake.append_context(context_from_alerts(parsed.alerts, self.host_max_arcsec))  # the alerts' context
        if parsed.anchors is not None:
            stored = lake.append_anchors(parsed.anchors)
            self.anchors += stored.written
            self.duplicates += stored.duplicates


def ingest(
    source_name: str,
    inputs: list[str | Path],
    lake_dir: Path,
    quarantine_dir: Path,
    parallelism: int | None = None,
    prefilter_cfg: PrefilterConfig | None = None,
    files_per_block: int = 128,
    flush_rows: int = 2_000_000,
    request: Request | None = None,
    host_max_arcsec: float = HOST_MAX_ARCSEC,
    store_url: str | None = None,
) -> IngestSummary:
    """Read ``inputs`` of ``source_name`` (or a prepared ``request``) into the lake.

    A file-based request is read and parsed in Ray tasks (chunks of at most ``files_per_block``
    files, a few MB each); a remote one (``request.remote``) is fetched and parsed on the driver. The
    driver deduplicates against the lake's key index and writes one file per (source, night)
    every ``flush_rows`` new points and at the end.

    Args:
        source_name: a registered source (:data:`cosmic_ray.sources.REGISTRY`).
        inputs: what the source's ``build_request`` takes (ignored when ``request`` is given).
        lake_dir: the lake.
        quarantine_dir: where bad inputs go, with their reasons.
        parallelism: chunks to cut the files into (default: by ``files_per_block`` and size).
        prefilter_cfg: pre-filter thresholds for ZTF alerts.
        files_per_block: most files per chunk (one Ray task each).
        flush_rows: staged points that trigger a write.
        request: a request built by the caller (e.g. a MAST search with options).
        host_max_arcsec: farthest PS1 galaxy an alert's context takes for the host
            (:mod:`cosmic_ray.sources.ztf_context`).
        store_url: an event store whose object table gets the ingested objects (position, first/last
            detection, points; :func:`cosmic_ray.serve.skyobjects.refresh_from_lake`); None: not touched.

    Raises:
        SourceError: nothing readable was given (no input file at all).
        RemoteServiceError: a remote service did not answer.
    """
    start = time.perf_counter()
    if request is None:
        request = get_source(source_name).build_request(inputs)
    run_id = uuid.uuid4().hex[:8]
    lake = Lake(lake_dir)
    lake_dir.mkdir(parents=True, exist_ok=True)
    tally = _Tally(host_max_arcsec=host_max_arcsec)
    cfg = prefilter_cfg or PrefilterConfig()
    if request.remote:
        raws = list(get_source(source_name).fetch(request))
        n_inputs = len(raws)
        parsed = parse_inputs(
            source_name, ((r.name, r.data) for r in raws), quarantine_dir, run_id, cfg, request.parse_options
        )
        tally.store(lake, parsed)
    else:
        files = request_files(request)
        if not files:
            raise SourceError(f"no {source_name} input found in {[str(i) for i in inputs]}")
        n_inputs = len(files)
        for parsed in _parse_files_with_ray(
            source_name, files, quarantine_dir, run_id, cfg, dict(request.parse_options), parallelism, files_per_block
        ):
            tally.store(lake, parsed)
            if lake.staged_rows >= flush_rows:
                lake.flush()
    lake.flush()
    indexed = 0
    if store_url is not None and tally.objects:
        # deferred: the event store (SQLAlchemy) is needed only when an object table is kept
        from cosmic_ray.serve.skyobjects import refresh_from_lake

        indexed = refresh_from_lake(lake_dir, store_url, tally.objects)
    summary = IngestSummary(
        source=source_name,
        inputs=n_inputs,
        alerts=tally.alerts,
        objects=len(tally.objects),
        points=tally.written,
        duplicates=tally.duplicates,
        quarantined=quarantine.count(quarantine_dir, run_id),
        seconds=round(time.perf_counter() - start, 3),
        anchors=tally.anchors,
        objects_indexed=indexed,
    )
    log.info("ingest %s: %s", source_name, summary)
    return summary


def _parse_files_with_ray(
    source_name: str,
    files: list[str],
    quarantine_dir: Path,
    run_id: str,
    prefilter_cfg: PrefilterConfig,
    parse_options: dict[str, Any],
    parallelism: int | None,
    files_per_block: int,
) -> Iterator[ParsedBatch]:
    """Read and parse ``files`` in Ray tasks (:mod:`cosmic_ray.ingest.parallel`); yield each chunk's
    result on the driver, in input order, while the next chunks are being parsed."""
    job = ParseJob(source_name, str(quarantine_dir), run_id, prefilter_cfg, parse_options)
    per_chunk = files_per_block if parallelism is None else max(1, -(-len(files) // max(1, parallelism)))
    for parsed in parse_files(files, job, per_chunk):
        if not isinstance(parsed, ParsedBatch):  # a task gives back what parse_inputs returns
            raise TypeError(f"a parse task gave a {type(parsed).__name__}, expected a ParsedBatch")
        yield ParsedBatch(parsed.points, parsed.alerts, parsed.n_alerts, 0, parsed.anchors)
