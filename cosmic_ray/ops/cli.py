"""The ``cosmic-ray`` command: thin wrappers that parse arguments and call the package."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from cosmic_ray.core.errors import CosmicRayError
from cosmic_ray.ops import cli_accounts, cli_objects
from cosmic_ray.ops.cli_common import emit as _emit
from cosmic_ray.ops.cli_common import fail as _fail
from cosmic_ray.ops.cli_common import settings as _settings

if TYPE_CHECKING:
    from cosmic_ray.core.config import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Find rare cosmic events in alert streams on Ray.")
cluster_app = typer.Typer(no_args_is_help=True, help="The local Ray cluster.")
serve_app = typer.Typer(no_args_is_help=True, help="The Ray Serve application (API on the app port).")
app.add_typer(cluster_app, name="cluster")
app.add_typer(serve_app, name="serve")
app.add_typer(cli_accounts.users_app, name="users")
app.add_typer(cli_accounts.tokens_app, name="tokens")
app.add_typer(cli_objects.objects_app, name="objects")
app.add_typer(cli_objects.cutouts_app, name="cutouts")
app.add_typer(cli_objects.notify_app, name="notify")

log = logging.getLogger("cosmic_ray")


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# ----------------------------------------------------------------------------- cluster
@cluster_app.command("up")
def cluster_up(num_cpus: Optional[int] = typer.Option(None, help="Logical CPUs (default: max(cores, 4)).")) -> None:
    """Start a local Ray head node (GCS on COSMIC_RAY_RAY_PORT, dashboard on the settings' host and port).

    A no-op if the one it started runs. Creates Ray's auth token (~/.ray/auth_token) if none exists.
    """
    from cosmic_ray.ops import cluster  # deferred: settings (pydantic-settings, ~0.3 s) are not needed by --help

    s = _settings()
    try:
        started = cluster.up(s, num_cpus)
    except RuntimeError as exc:
        _fail(str(exc))
    state = cluster.read_state(s)
    listening = cluster.listening(s)
    for line in cluster.describe_listening(s, listening):
        typer.echo(line, err=True)
    _emit(
        {
            "started": started,
            "address": state.gcs_address if state else None,
            "dashboard": s.dashboard_url,
            "listening": [str(item) for item in listening],
            "high_throughput": s.serve_high_throughput,
        }
    )


@cluster_app.command("down")
def cluster_down() -> None:
    """Stop the Ray cluster `cluster up` started (other Ray clusters on the machine keep running)."""
    from cosmic_ray.ops import cluster  # deferred: settings (pydantic-settings, ~0.3 s) are not needed by --help

    _emit({"stopped": cluster.down(_settings())})


@cluster_app.command("status")
def cluster_status() -> None:
    """`ray status` of the cluster `cluster up` started."""
    from cosmic_ray.ops import cluster  # deferred: settings (pydantic-settings, ~0.3 s) are not needed by --help

    typer.echo(cluster.status(_settings()))


# ----------------------------------------------------------------------------- ingest
@app.command()
def ingest(
    source: str = typer.Argument(
        ...,
        help="ztf, lsst, catalog, catalogs, tess, mast, irsa (see cosmic_ray.sources), or context (a context table).",
    ),
    inputs: Optional[list[str]] = typer.Argument(
        None,
        help="Files or folders; tess also takes TIC ids ('TIC 123'), irsa DR object ids; "
        "mast and irsa also take recorded answers.",
    ),
    lake: Optional[Path] = typer.Option(None, help="Lake folder (default: $COSMIC_RAY_HOME/lake)."),
    ra: Optional[float] = typer.Option(None, help="Cone search centre, degrees (mast, irsa)."),
    dec: Optional[float] = typer.Option(None, help="Cone search centre, degrees (mast, irsa)."),
    radius: Optional[float] = typer.Option(None, help="Cone radius, arcsec (default: irsa 2, mast 720)."),
    object_id: Optional[str] = typer.Option(None, help="Name for the rows instead of IRSA's oid (irsa)."),
    collection: Optional[str] = typer.Option(None, help="MAST obs_collection to search, e.g. TESS (mast)."),
    author: Optional[str] = typer.Option(None, help="TESS light-curve pipeline: SPOC (default) or QLP (tess)."),
    server: Optional[str] = typer.Option(
        None, help="Archive server root: a mirror or a local replay (mast, tess, irsa)."
    ),
) -> None:
    """Read SOURCE inputs, or the answers of an archive search, into the lake; print one JSON summary line.

    Bad records are quarantined with their reasons. MAST observations go to the lake's anchors
    table (lake/_anchors), not among the light-curve points. ``ingest context FILE`` merges a
    per-object context table (CSV/Parquet: object_id, ra, dec, gal_b, a_v, host_mag, host_color,
    redshift; any subset) into lake/_context; ZTF alerts fill it too.
    """
    # deferred: each command imports what it runs, so `cosmic-ray --help` starts fast
    from cosmic_ray.core.errors import SourceError
    from cosmic_ray.ingest.batch import ingest as run_ingest
    from cosmic_ray.ingest.requests import IngestOptions, request_for
    from cosmic_ray.ops import cluster
    from cosmic_ray.sources import REGISTRY

    s = _settings()
    if source == "context":
        _ingest_context(s, inputs or [], lake or s.lake_dir)
        return
    if source not in REGISTRY:
        _fail(f"unknown source {source!r}; known: {', '.join(sorted(REGISTRY))}", 2)
    if (ra is None) != (dec is None):
        _fail("give both --ra and --dec", 2)
    options = IngestOptions(
        position=(ra, dec) if ra is not None and dec is not None else None,
        radius_arcsec=radius,
        object_id=object_id,
        server=server,
        collection=collection,
        author=author,
    )
    lake_dir = lake or s.lake_dir
    try:
        lake_dir.mkdir(parents=True, exist_ok=True)
        probe = lake_dir / ".write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        _fail(f"lake {lake_dir} is not writable: {exc}")
    try:
        request = request_for(source, inputs or [], options)
        if not request.remote:  # files are parsed in Ray tasks; a remote search is fetched here
            cluster.connect(s, persistent=False)
        summary = run_ingest(
            source,
            list(inputs or []),
            lake_dir,
            s.quarantine_dir,
            request=request,
            host_max_arcsec=s.context_host_max_arcsec,
            store_url=s.event_store_url,
        )
    except SourceError as exc:  # RemoteServiceError included
        _fail(str(exc))
    _emit(summary.to_dict())


def _ingest_context(s: Settings, files: list[str], lake_dir: Path) -> None:
    """``cosmic-ray ingest context FILE...``: one JSON summary line per table."""
    from cosmic_ray.core.errors import SourceError  # deferred: as in ingest
    from cosmic_ray.ingest.context import ingest_context_file

    if not files:
        _fail("give a context table: cosmic-ray ingest context FILE", 2)
    for name in files:
        try:
            summary = ingest_context_file(Path(name), lake_dir, s.quarantine_dir)
        except SourceError as exc:
            _fail(str(exc))
        _emit(summary.to_dict())


@app.command()
def watch(
    mailbox: Path = typer.Argument(..., help="Folder where new .avro alert files arrive."),
    lake: Optional[Path] = typer.Option(None, help="Lake folder (default: $COSMIC_RAY_HOME/lake)."),
    interval: float = typer.Option(1.0, help="Seconds between looks at the mailbox."),
    batch_files: int = typer.Option(500, help="Most files per micro-batch."),
    classify: bool = typer.Option(
        False,
        "--classify/--no-classify",
        help="Also classify each batch through the running Serve app and store the results (needs `cosmic-ray serve up`).",
    ),
) -> None:
    """Watch MAILBOX and micro-batch new alerts into the lake (processed files go to MAILBOX/.done/).

    With --classify, each batch goes to the Serve model deployment (one handle call per batch) and the
    classifications into the event store before its files leave the mailbox; new alerts are matched
    against the watchlists and the subscriptions' webhooks are told by a background deliverer.
    """
    # deferred: each command imports what it runs, so `cosmic-ray --help` starts fast
    from cosmic_ray.ingest.watch import watch as run_watch

    s = _settings()
    hook = None
    if classify:
        # deferred: each command imports what it runs, so `cosmic-ray --help` starts fast
        from cosmic_ray.ops import cluster
        from cosmic_ray.serve import live

        cluster.connect(s, start_local=False)

        def hook(table):  # noqa: ANN001 - pyarrow.Table, imported lazily
            live.on_batch(table, s)

    try:
        stats = run_watch(mailbox, lake or s.lake_dir, s.quarantine_dir, interval, batch_files, on_batch=hook)
    finally:
        if classify:
            live.stop_alerting()  # the background webhook deliverer; what is pending stays in the outbox
    _emit(stats.to_dict())


# ----------------------------------------------------------------------------- train
@app.command()
def train(config: Path = typer.Option(Path("configs/train.yaml"), help="Training config (YAML).")) -> None:
    """Featurize the labelled lake, train the ProtoNet with Ray Train, register it in MLflow, gate it."""
    # deferred: settings, numpy/pyarrow and Ray are heavy; only this command needs them
    from cosmic_ray.core.config import load_train_config
    from cosmic_ray.ops import cluster, pipeline

    s = _settings()
    try:
        cfg = load_train_config(config)
        cluster.connect(s)
        report = pipeline.train_from_lake(s, cfg)
    except CosmicRayError as exc:
        _fail(str(exc))
    _emit(report.to_dict())


@app.command()
def retrain(
    config: Path = typer.Option(Path("configs/retrain.yaml"), help="Retrain pipeline config (YAML)."),
    every: Optional[str] = typer.Option(None, help="Repeat every interval, e.g. 24h, 30m."),
) -> None:
    """The retrain pipeline (same as jobs/retrain.py): train on the lake, register, promote through the gate."""
    # deferred: settings, numpy/pyarrow and Ray are heavy; only this command needs them
    from cosmic_ray.core.config import load_retrain_config, load_train_config
    from cosmic_ray.ops import cluster
    from cosmic_ray.ops import retrain as pipeline_retrain

    s = _settings()
    interval = _parse_interval(every) if every else None
    while True:
        try:
            rcfg = load_retrain_config(config)
            cfg = load_train_config(rcfg.train_config)
            cluster.connect(s)
            report = pipeline_retrain.run(s, rcfg, cfg)
        except CosmicRayError as exc:
            _fail(str(exc))
        _emit(report.to_dict())
        if interval is None:
            return
        time.sleep(interval)


def _parse_interval(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return float(text[:-1]) * units[text[-1]]
    except (KeyError, ValueError):
        _fail(f"bad interval {text!r}: use e.g. 30m, 24h, 1d", 2)
        raise


# ----------------------------------------------------------------------------- evaluate
@app.command()
def evaluate(
    data: Path = typer.Option(..., help="Labelled light curves to score (long format; fine labels allowed)."),
    support: Optional[Path] = typer.Option(
        None, help="Support objects for classes absent from the model (long format or a catalogue folder)."
    ),
    train: Optional[Path] = typer.Option(
        None, help="Training table of the baseline (default: the labelled lake the model was trained on)."
    ),
    k: int = typer.Option(5, min=1, help="Support objects per registered class."),
    draws: int = typer.Option(10, min=1, help="Seeded support draws (figures are averaged)."),
    model: Optional[str] = typer.Option(None, help="MLflow model URI (default: models:/<name>@production)."),
    run: Optional[str] = typer.Option(None, help="MLflow run id to log the figures to."),
    out: Path = typer.Option(..., help="Where to write the JSON report."),
    seed: int = typer.Option(0, help="Seed of the support draws."),
    context: Optional[Path] = typer.Option(
        None,
        help="Context table (CSV/Parquet, as `ingest context` reads) added to the lake's context for this "
        "evaluation only (the --data objects' context comes from it).",
    ),
) -> None:
    """Closed-set, K-shot and open-set figures of a model against a balanced-random-forest baseline,
    in three context modes side by side (light_curve, alert_time, with_redshift)."""
    # deferred: pyarrow, torch and mlflow are heavy; only this command needs them
    from cosmic_ray.ingest.context import evaluation_context
    from cosmic_ray.ingest.lake import Lake
    from cosmic_ray.learn import registry
    from cosmic_ray.learn.evaluate import report as ev_report
    from cosmic_ray.learn.evaluate import tables as ev_tables
    from cosmic_ray.ops.pipeline import LABELLED_SOURCES

    s = _settings()
    uri = model or f"models:/{s.model_name}@production"
    try:
        classifier = registry.load_model_uri(s, uri)
        data_table = ev_tables.read_table(data)
        support_table = ev_tables.read_table(support) if support else None
        if train:
            train_table = ev_tables.read_table(train)
        else:
            train_table = Lake(s.lake_dir).read(sources=LABELLED_SOURCES)
            if train_table.num_rows == 0:
                _fail(f"no labelled data in the lake {s.lake_dir} to train the baseline on: pass --train TABLE")
        same_event = ev_tables.event_key_from_shared(s.shared_data_dir) if s.shared_data_dir else None
        context_table = evaluation_context(s.lake_dir, context)
        report = ev_report.evaluate_report(
            classifier,
            data_table,
            train_table,
            support_table,
            k=k,
            draws=draws,
            model_uri=uri,
            seed=seed,
            same_event=same_event,
            context=context_table,
        )
    except (CosmicRayError, ValueError) as exc:
        _fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    if run:
        registry.log_evaluation(s, run, report)
    typer.echo(ev_report.format_table(report), err=True)
    _emit({"report": str(out), "macro_f1": report["macro_f1"], "baseline_macro_f1": report["baseline"]["macro_f1"]})


# ----------------------------------------------------------------------------- serve
@serve_app.command("up")
def serve_up(config: Path = typer.Option(Path("configs/serve.yaml"), help="Ray Serve config.")) -> None:
    """Apply the API's Serve config (like `serve deploy`: unchanged config, nothing redeployed; edited, applied).

    Starts a local cluster if none runs; returns once /healthz is 200.
    """
    from cosmic_ray.ops import cluster  # deferred: settings (pydantic-settings, ~0.3 s) are not needed by --help
    from cosmic_ray.ops import deploy as serving  # deferred: httpx + yaml, only for serve commands

    s = _settings()
    try:
        cluster.connect(s)
        result = serving.apply(s, config)
    except (CosmicRayError, TimeoutError, RuntimeError) as exc:
        _fail(str(exc))
    listening = [] if s.ray_address else cluster.listening(s)  # known for the cluster `cluster up` started
    for line in cluster.describe_listening(s, listening):
        typer.echo(line, err=True)
    _emit(
        {
            "url": result.url,
            "docs": f"{result.url}/docs",
            "app": result.app_name,
            "already_running": not result.changed,
            "listening": [str(item) for item in listening],
        }
    )


@serve_app.command("down")
def serve_down() -> None:
    """Delete the API's Serve application (other applications keep running; with none left, Serve stops too)."""
    from cosmic_ray.ops import cluster  # deferred: settings (pydantic-settings, ~0.3 s) are not needed by --help
    from cosmic_ray.ops import deploy as serving  # deferred: httpx + yaml, only for serve commands

    s = _settings()
    if not s.ray_address and not cluster.is_running(s):
        _emit({"stopped": False, "reason": "no cluster"})
        return
    cluster.connect(s, start_local=False)
    _emit({"stopped": serving.shutdown()})


@serve_app.command("status")
def serve_status() -> None:
    """Status of the Serve applications and whether the API answers /healthz."""
    from cosmic_ray.ops import cluster  # deferred: settings (pydantic-settings, ~0.3 s) are not needed by --help
    from cosmic_ray.ops import deploy as serving  # deferred: httpx + yaml, only for serve commands

    s = _settings()
    if not s.ray_address and not cluster.is_running(s):
        _emit({"cluster": "down", "healthy": False})
        return
    cluster.connect(s, start_local=False)
    _emit({"applications": serving.status(), "healthy": serving.healthy(s), "url": s.app_url})


# ----------------------------------------------------------------------------- demo
@app.command()
def demo(
    config: Path = typer.Option(Path("configs/train.yaml"), help="Training config."),
    serve_config: Path = typer.Option(Path("configs/serve.yaml"), help="Ray Serve config."),
    stream: bool = typer.Option(
        False,
        "--stream/--no-stream",
        help="Then replay the real ZTF packets through Kafka (embedded broker) into the live path (`make demo`).",
    ),
    bootstrap: Optional[str] = typer.Option(
        None, help="With --stream: a real Kafka broker instead of the embedded one."
    ),
) -> None:
    """The main job end to end: cluster -> ingest -> featurize -> train -> register -> serve -> predict
    (and with --stream: Kafka -> lake -> classified -> stored, watched on the dashboard)."""
    from cosmic_ray.ops import demo as run_demo  # deferred: the whole stack (Ray, torch, mlflow) is heavy

    s = _settings()
    try:
        result = run_demo.run(s, config, serve_config)
    except (CosmicRayError, TimeoutError) as exc:
        _fail(str(exc))
    typer.echo(result.render(), err=True)
    out = result.to_dict()
    if stream:
        # deferred: the Kafka client and the broker are needed only by the stream mode
        from cosmic_ray.ops import demo_stream, pipeline

        try:
            streamed = demo_stream.run(s, pipeline.default_inputs(s).alerts, bootstrap)
        except (CosmicRayError, TimeoutError, FileNotFoundError, RuntimeError) as exc:
            _fail(f"demo stream: {exc}")
        typer.echo(streamed.render(), err=True)
        out["stream"] = streamed.to_dict()
    _emit(out)


# ----------------------------------------------------------------------------- stream
@app.command()
def stream(
    bootstrap: str = typer.Option(..., help="Kafka brokers, HOST:PORT[,HOST:PORT...]."),
    topic: list[str] = typer.Option(..., "--topic", help="Topic to consume (repeat, or separate with commas)."),
    group: str = typer.Option("cosmic-ray", help="Consumer group (a new group starts at the earliest offset)."),
    classify: bool = typer.Option(
        False,
        "--classify/--no-classify",
        help="Classify each batch through the running Serve app and store it (needs `cosmic-ray serve up`).",
    ),
    lake: Optional[Path] = typer.Option(None, help="Lake folder (default: $COSMIC_RAY_HOME/lake)."),
    publish: Optional[str] = typer.Option(None, help="Publish each classification (Avro) to this topic."),
    batch_size: int = typer.Option(500, min=1, help="Most messages per batch (one lake write, one commit)."),
    max_messages: Optional[int] = typer.Option(None, min=1, help="Stop after this many messages."),
    idle_exit: Optional[float] = typer.Option(None, min=0, help="Stop after this many seconds without a message."),
    create_topics: bool = typer.Option(False, help="Create missing topics first (test and demo brokers)."),
    heartbeat_file: Optional[Path] = typer.Option(None, help="Touched after every poll (liveness probes)."),
) -> None:
    """Consume ZTF (Avro container) and Rubin (Confluent wire format) alerts from Kafka into the lake.

    Offsets are committed only after the lake (and with --classify the event store, with --publish
    the published topic) has each batch. SIGTERM/SIGINT finish the batch in hand, commit and exit 0.
    Bad messages go to $COSMIC_RAY_HOME/quarantine with their reasons. SASL settings come from the
    environment (COSMIC_RAY_KAFKA_*).
    """
    # deferred: each command imports what it runs, so `cosmic-ray --help` starts fast
    from cosmic_ray.stream.consumer import StreamConfig, run_until_signal
    from cosmic_ray.stream.run import build_consumer

    if publish and not classify:
        _fail("--publish needs --classify (it publishes classifications)", code=2)
    topics = tuple(t.strip() for part in topic for t in part.split(",") if t.strip())
    config = StreamConfig(
        topics=topics,
        group=group,
        batch_size=batch_size,
        max_messages=max_messages,
        idle_exit_s=idle_exit,
        heartbeat_file=heartbeat_file,
        host_max_arcsec=_settings().context_host_max_arcsec,
    )
    try:
        consumer = build_consumer(_settings(), bootstrap, config, lake, classify, publish, create_topics)
    except (CosmicRayError, RuntimeError) as exc:
        _fail(str(exc))
    try:
        _emit(run_until_signal(consumer).to_dict())
    finally:
        if classify:
            from cosmic_ray.serve import live  # deferred: Ray Serve is imported only with --classify

            live.stop_alerting()  # the background webhook deliverer; what is pending stays in the outbox


# ----------------------------------------------------------------------------- expert feedback
@app.command()
def anomalies(
    night: str = typer.Option(..., help="The night, YYYYMMDD: objects with a point in the lake that night."),
    top: int = typer.Option(20, min=1, max=1000, help="How many of the ranking to print."),
    method: str = typer.Option("aad", help="aad (AADForest), pine (PineForest) or iforest (no feedback)."),
) -> None:
    """The night's objects ranked most anomalous first, by an isolation forest tuned by the stored expert labels."""
    # deferred: each command imports what it runs, so `cosmic-ray --help` starts fast
    from cosmic_ray.learn.aad import METHODS
    from cosmic_ray.learn.nightrank import rank_night
    from cosmic_ray.serve.labels import Labels
    from cosmic_ray.serve.store import Store

    if len(night) != 8 or not night.isdigit():
        _fail(f"night {night!r} is not YYYYMMDD")
    if method not in METHODS:
        _fail(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    settings = _settings()
    store = Store.open(settings.event_store_url)
    try:
        answers = Labels(store.engine).all()
    finally:
        store.close()
    _emit(rank_night(settings, night, answers, top=top, method=method).to_dict())  # type: ignore[arg-type]


def main() -> None:
    app()


if __name__ == "__main__":
    main()
