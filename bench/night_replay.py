"""Night replay: real ZTF alerts, replicated, through the mailbox watcher and the live path.

Input: the 50 real public alerts of ``ztf-alerts/pittgoogle/alerts-for-testing`` REPLICATED to
``--alerts`` files exactly as ``bench/ingest_bench.py`` does (fresh objectId per copy, candids
shifted by ``copy * 2**40``; cutouts and every other field are the real bytes/values).

Path measured: file renamed into the mailbox -> ``MailboxWatcher`` (its own process, as
``cosmic-ray watch``) parses it, writes the lake -> ``live.on_batch`` -> Serve ``DeploymentHandle``
-> model replicas -> event store. The first ``--steady-fraction`` of the alerts arrive at a steady
``--rate`` per second, the rest in bursts of ``--burst`` files renamed in at once (LSST-like).
Files are generated in waves into a staging folder (not timed) and ``.done/`` files are deleted as
the watcher finishes them, so the disk holds about two waves (~60 KB per alert).

Figures: alerts/s end to end (first file in -> last classification stored, per phase), p50/p99
latency per classified alert (file renamed in -> row stored), RSS of each process sampled every
``--sample-s`` (watcher, Serve replicas, proxy, controller, raylet, GCS) with growth after
warm-up, and what was lost or doubled (by candid, in the lake and in the store). Baseline in the
same run: bare ``fastavro.reader`` decoding of one wave's files, one core.

Own Ray cluster (``ray.cluster_utils.Cluster``, own ports; stopped at the end), a model trained
from the real BTS catalogue unless ``--home`` has a production model. Bounded by ``--max-seconds``.
Prints a table on stderr and one JSON line on stdout.

    nice -n 5 .venv/bin/python bench/night_replay.py --alerts 100000 --burst 10000 --rate 150
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import fastavro

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("night_replay")
RAY_CURRENT = Path("/tmp/ray/ray_current_cluster")


def shared_data() -> Path:
    return Path(os.environ.get("COSMIC_RAY_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def _sibling(name: str):
    """Another script of bench/ as a module (this file is also loaded by path from the tests)."""
    if name not in sys.modules:  # registered: the forked writers unpickle its functions by name
        spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _ingest_bench():
    return _sibling("ingest_bench")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------- input, in waves
def template_paths() -> list[Path]:
    return sorted((shared_data() / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))


def make_wave(folder: Path, first: int, n: int, procs: int = 2) -> list[Path]:
    """Copies ``first .. first+n-1`` of the templates (ingest_bench's replication) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    replicate = _ingest_bench()._replicate_chunk
    templates = [p.read_bytes() for p in template_paths()]
    chunks = [(templates, list(range(first + i, first + n, procs)), str(folder)) for i in range(procs)]
    with mp.get_context("fork").Pool(procs) as pool:
        assert sum(pool.map(replicate, chunks)) == n
    return sorted(folder.glob("*.avro"))


def candid_of(path: Path) -> int:
    return int(path.name.rsplit(".", 2)[1])  # <objectId>.<candid>.avro


def bare_decode_rate(paths: list[Path]) -> float:
    start = time.perf_counter()
    n = 0
    for path in paths:
        with open(path, "rb") as handle:
            for _ in fastavro.reader(handle):
                n += 1
    return n / (time.perf_counter() - start)


# ----------------------------------------------------------------------------- memory
def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _role(cmd: str) -> str | None:
    for key, name in (
        ("ServeReplica:cosmic_ray:ProtoNetModel", "model replica"),
        ("ServeReplica:cosmic_ray:Ingress", "ingress replica"),
        ("ProxyActor", "proxy"),
        ("ServeController", "serve controller"),
    ):
        if key in cmd:
            return name
    return None


class MemorySampler(threading.Thread):
    """RSS (MiB) of the watcher, raylet, GCS and the Serve actors every ``every`` seconds."""

    def __init__(self, fixed: dict[str, int], raylet_pid: int | None, every: float = 2.0):
        super().__init__(daemon=True)
        self.fixed, self.raylet_pid, self.every = fixed, raylet_pid, every
        self.samples: list[tuple[float, str, float]] = []  # (t, process, MiB)
        self.progress = 0  # alerts stored so far, set by the main loop (growth is per alert)
        self.progress_at: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            now = time.monotonic()
            self.progress_at.append((now, self.progress))
            procs = dict(self.fixed)
            if self.raylet_pid:
                counts: dict[str, int] = {}
                for pid in _sibling("procfs").children(self.raylet_pid):
                    role = _role(_cmdline(pid))
                    if role:
                        counts[role] = counts.get(role, 0) + 1
                        procs[f"{role} {counts[role]}" if role == "model replica" else role] = pid
            for name, pid in procs.items():
                rss = _sibling("procfs").rss_mib(pid)
                if rss is not None:
                    self.samples.append((now, name, rss))
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def latest(self) -> dict[str, float]:
        """The last RSS (MiB) of each process sampled."""
        out: dict[str, float] = {}
        for _, name, rss in list(self.samples):
            out[name] = round(rss, 1)
        return out

    def summary(self, warm_after: float) -> dict[str, dict[str, float]]:
        """Per process: RSS at warm-up end, peak, last, and growth from warm-up to the end."""
        out = {}
        for name in sorted({n for _, n, _ in self.samples}):
            series = [(t, r) for t, n, r in self.samples if n == name]
            after = [r for t, r in series if t >= warm_after] or [series[-1][1]]
            warm = statistics.median(after[:3])
            last = statistics.median(after[-3:])
            out[name] = {
                "warm_mb": round(warm, 1),
                "peak_mb": round(max(r for _, r in series), 1),
                "last_mb": round(last, 1),
                "growth_mb": round(last - warm, 1),
            }
        return out


# ----------------------------------------------------------------------------- the watcher process
def watcher_main(argv: list[str]) -> None:
    """``night_replay.py _watcher ...``: MailboxWatcher with the live hook, in its own process."""
    p = argparse.ArgumentParser()
    p.add_argument("--mailbox", required=True)
    p.add_argument("--lake", required=True)
    p.add_argument("--quarantine", required=True)
    p.add_argument("--ray-address", required=True)
    p.add_argument("--store-url", required=True)
    p.add_argument("--batch-files", type=int, default=500)
    p.add_argument("--interval", type=float, default=0.1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import ray

    from cosmic_ray.core.config import Settings
    from cosmic_ray.ingest.watch import MailboxWatcher
    from cosmic_ray.serve import live

    ray.init(address=args.ray_address, log_to_driver=False)
    settings = Settings(store_url=args.store_url, rare_webhook_url=None)
    watcher = MailboxWatcher(
        args.mailbox,
        args.lake,
        args.quarantine,
        interval=args.interval,
        batch_files=args.batch_files,
        settle=0.0,
        on_batch=lambda table: live.on_batch(table, settings),
    )
    signal.signal(signal.SIGTERM, watcher.stop)
    stats = watcher.run()
    print(json.dumps(stats.to_dict()), flush=True)


# ----------------------------------------------------------------------------- the replay
@dataclass
class Replay:
    """What was sent: release time (epoch seconds) by candid, and each phase's span."""

    released: dict[int, float] = field(default_factory=dict)
    phases: list[dict] = field(default_factory=list)


def _stored(store_url: str) -> list[tuple[int, float]]:
    """(candid, stored at as epoch seconds) of every stored classification."""
    from sqlalchemy import create_engine, text

    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT candid, classified_at FROM classifications")).all()
    finally:
        engine.dispose()
    out = []
    for candid, at in rows:
        if isinstance(at, str):
            from datetime import datetime

            at = datetime.fromisoformat(at)
        out.append((int(candid), at.replace(tzinfo=UTC).timestamp()))
    return out


def _count(store_url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM classifications")).scalar())
    finally:
        engine.dispose()


def _clear_done(mailbox: Path) -> None:
    done = mailbox / ".done"
    if done.is_dir():
        for entry in os.scandir(done):
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def _pending(mailbox: Path) -> int:
    return sum(1 for e in os.scandir(mailbox) if e.name.endswith(".avro"))


def passing_templates(workdir: Path) -> list[bool]:
    """Which of the 50 templates pass the pre-filters (copies decide the same way: same values)."""
    from cosmic_ray.ingest import prefilter
    from cosmic_ray.ingest.batch import parse_inputs

    paths = template_paths()
    parsed = parse_inputs("ztf", [(str(p), p.read_bytes()) for p in paths], workdir / "q-templates", "templates")
    ok = dict(zip(parsed.alerts.column("alert_candid").to_pylist(), prefilter.passed(parsed.alerts), strict=False))
    out = []
    for p in paths:
        with open(p, "rb") as handle:
            out.append(bool(ok.get(next(iter(fastavro.reader(handle)))["candid"], False)))
    return out


def replay(
    *,
    ray_address: str,
    store_url: str,
    workdir: Path,
    alerts: int,
    burst: int,
    rate: float,
    steady_fraction: float = 0.5,
    max_seconds: float = 3600,
    batch_files: int = 500,
    raylet_pid: int | None = None,
    gcs_pid: int | None = None,
    sample_s: float = 2.0,
    drain_timeout: float = 600,
    first_copy: int = 1,
) -> dict:
    """Feed ``alerts`` replicated real alerts through a watcher process into the store; the figures.

    ``first_copy``: the first replica number (0 would replay the original candids, which a store
    that saw the real alerts already holds).
    """
    mailbox, staging, lake_dir = workdir / "mailbox", workdir / "staging", workdir / "stream-lake"
    if not _BASE_INDEX:
        _load_base_index()
    mailbox.mkdir(parents=True, exist_ok=True)
    passes = passing_templates(workdir)
    n_templates = len(passes)
    store_before = _count(store_url)
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    watcher_log = (workdir / "watcher.log").open("w")
    watcher = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "_watcher",
            "--mailbox",
            str(mailbox),
            "--lake",
            str(lake_dir),
            "--quarantine",
            str(workdir / "quarantine"),
            "--ray-address",
            ray_address,
            "--store-url",
            store_url,
            "--batch-files",
            str(batch_files),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=watcher_log,
        text=True,
    )
    fixed = {"watcher": watcher.pid}
    if raylet_pid:
        fixed["raylet"] = raylet_pid
    if gcs_pid:
        fixed["gcs"] = gcs_pid
    sampler = MemorySampler(fixed, raylet_pid, sample_s)
    sampler.start()
    rec = Replay()
    start = time.monotonic()
    deadline = start + max_seconds
    n_steady = int(alerts * steady_fraction)
    truncated = False
    bare = None
    expected = 0  # alerts that pass the pre-filters: each must end up stored

    def wait_drained(target: int, until: float) -> float | None:
        """Until the mailbox is empty and ``target`` new rows are stored; returns when (epoch) or None."""
        while time.monotonic() < until:
            _clear_done(mailbox)
            stored = _count(store_url) - store_before
            sampler.progress = stored
            if stored >= target and _pending(mailbox) == 0:
                return time.time()
            if watcher.poll() is not None:
                raise RuntimeError(f"the watcher exited ({watcher.returncode}): see {workdir / 'watcher.log'}")
            time.sleep(0.2)
        return None

    def release(paths: list[Path], per_second: float | None) -> tuple[float, float]:
        nonlocal expected
        t0 = time.time()
        for i, path in enumerate(paths):
            if per_second:
                lag = t0 + i / per_second - time.time()
                if lag > 0:
                    time.sleep(lag)
                if i % 200 == 0:
                    _clear_done(mailbox)
                    sampler.progress = _count(store_url) - store_before
            target = mailbox / path.name
            os.replace(path, target)
            candid = candid_of(target)
            rec.released[candid] = time.time()
            expected += passes[_template_index(candid, n_templates)]
        return t0, time.time()

    try:
        sent = 0
        while sent < alerts:
            if time.monotonic() > deadline:
                truncated = True
                break
            steady = sent < n_steady
            size = min(burst, (n_steady - sent) if steady else alerts - sent)
            wave = make_wave(staging, first_copy * n_templates + sent, size)
            if bare is None:
                bare = bare_decode_rate(wave[: min(2000, len(wave))])
            wave.sort(key=lambda p: (candid_of(p) >> 40, candid_of(p)))  # copy order: arrival order
            before_wave = expected
            t0, t1 = release(wave, rate if steady else None)
            done_at = wait_drained(expected, deadline + drain_timeout)
            if done_at is None:
                truncated = True
            rec.phases.append(
                {
                    "phase": "steady" if steady else "burst",
                    "first": sent,
                    "alerts": size,
                    "passed": expected - before_wave,
                    "released_s": round(t1 - t0, 2),
                    "t0": t0,
                    "t1": t1,
                    "done_at": done_at,
                    "rss_mb": sampler.latest(),
                }
            )
            log.info(
                "%s wave of %d: released in %.1f s, drained %.1f s after its first file",
                rec.phases[-1]["phase"],
                size,
                t1 - t0,
                (done_at or time.time()) - t0,
            )
            sent += size
    finally:
        sampler.stop()
        watcher.send_signal(signal.SIGTERM)
        try:
            out, _ = watcher.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            watcher.kill()
            out, _ = watcher.communicate()
        watcher_log.close()
        shutil.rmtree(staging, ignore_errors=True)
        _clear_done(mailbox)
    stats = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    return _figures(
        rec, stats, sampler, lake_dir, store_url, store_before, bare, truncated, passes, time.monotonic() - start
    )


def _template_index(candid: int, n_templates: int) -> int:
    # only the shift tells copies apart; the template is found from the base candid
    return _BASE_INDEX[candid & ((1 << 40) - 1)] if _BASE_INDEX else 0


_BASE_INDEX: dict[int, int] = {}


def _load_base_index() -> None:
    for i, path in enumerate(template_paths()):
        with open(path, "rb") as handle:
            base = next(iter(fastavro.reader(handle)))["candid"]
        _BASE_INDEX[base & ((1 << 40) - 1)] = i


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _figures(
    rec: Replay,
    stats: dict,
    sampler: MemorySampler,
    lake_dir: Path,
    store_url: str,
    store_before: int,
    bare,
    truncated: bool,
    passes,
    seconds: float,
) -> dict:
    from collections import Counter

    from cosmic_ray.ingest.lake import Lake

    lake_alerts = Lake(lake_dir).read_alerts()
    lake_candids = Counter(lake_alerts.column("alert_candid").to_pylist()) if lake_alerts.num_rows else Counter()
    passed = (
        {
            c
            for c, d in zip(
                lake_alerts.column("alert_candid").to_pylist(),
                lake_alerts.column("prefilter").to_pylist(),
                strict=False,
            )
            if d == "pass"
        }
        if lake_alerts.num_rows
        else set()
    )
    stored = {c: t for c, t in _stored(store_url) if c in rec.released}
    released = set(rec.released)
    phases = []
    for ph in rec.phases:
        cands = [c for c, t in rec.released.items() if ph["t0"] <= t <= ph["t1"]]
        lat = [stored[c] - rec.released[c] for c in cands if c in stored]
        end = max((stored[c] for c in cands if c in stored), default=ph["t1"])
        end = max(end, ph["done_at"] or end)
        phases.append(
            {
                "phase": ph["phase"],
                "alerts": ph["alerts"],
                "classified": len(lat),
                "released_s": ph["released_s"],
                "alerts_per_s": round(ph["alerts"] / max(1e-9, end - ph["t0"]), 1),
                "p50_latency_s": round(_pct(lat, 0.5), 3),
                "p99_latency_s": round(_pct(lat, 0.99), 3),
                "max_latency_s": round(max(lat, default=float("nan")), 3),
                "rss_mb": ph["rss_mb"],
            }
        )

    def merged(kind: str) -> dict:
        rows = [p for p, ph in zip(phases, rec.phases, strict=False) if ph["phase"] == kind]
        if not rows:
            return {}
        cands = [
            c for ph in rec.phases if ph["phase"] == kind for c, t in rec.released.items() if ph["t0"] <= t <= ph["t1"]
        ]
        lat = [stored[c] - rec.released[c] for c in cands if c in stored]
        return {
            "waves": len(rows),
            "alerts": sum(r["alerts"] for r in rows),
            "classified": len(lat),
            "alerts_per_s_mean": round(statistics.mean(r["alerts_per_s"] for r in rows), 1),
            "alerts_per_s_min": min(r["alerts_per_s"] for r in rows),
            "p50_latency_s": round(_pct(lat, 0.5), 3),
            "p99_latency_s": round(_pct(lat, 0.99), 3),
        }

    # warm-up: the first 10 % of the alerts stored (or the first wave)
    goal = 0.1 * max(1, len(stored))
    warm_after = next(
        (t for t, n in sampler.progress_at if n >= goal), sampler.progress_at[0][0] if sampler.progress_at else 0
    )
    memory = sampler.summary(warm_after)
    return {
        "alerts": len(released),
        "truncated": truncated,
        "seconds": round(seconds, 1),
        "in_lake": sum(1 for c in released if lake_candids[c] >= 1),
        "lost_in_lake": len(released - set(lake_candids)),
        "doubled_in_lake": sum(1 for c in released if lake_candids[c] > 1),
        "passed_prefilter": len(passed & released),
        "stored": len(stored),
        "passed_not_stored": len((passed & released) - set(stored)),
        "stored_not_passed": len(set(stored) - passed),
        "watcher": stats,
        "steady": merged("steady"),
        "burst": merged("burst"),
        "waves": phases,
        "bare_fastavro_alerts_per_s_1core": round(bare or float("nan"), 1),
        "memory_mb": memory,
        "load_average": os.getloadavg(),
    }


# ----------------------------------------------------------------------------- own cluster + model + app
def start_cluster(num_cpus: int = 4):
    from ray.cluster_utils import Cluster

    previous = RAY_CURRENT.read_text() if RAY_CURRENT.exists() else None
    try:
        cluster = Cluster(
            initialize_head=True,
            connect=False,
            head_node_args={
                "num_cpus": num_cpus,
                "include_dashboard": False,
                "dashboard_agent_listen_port": _free_port(),
            },
        )
    finally:  # Cluster() points everyone's `ray.init("auto")` at itself: put the file back
        if previous is not None:
            RAY_CURRENT.write_text(previous)
        else:
            RAY_CURRENT.unlink(missing_ok=True)
    return cluster


def _pid(node, kind: str) -> int | None:
    procs = node.all_processes.get(kind) or []
    return procs[0].process.pid if procs else None


def prepare_model(home: Path) -> None:
    """A production model in ``home``: trained on the real BTS catalogue if none is registered."""
    from cosmic_ray.core.config import DataConfig, EpisodeConfig, ScalingConfig, Settings, TrainConfig
    from cosmic_ray.ingest.batch import ingest
    from cosmic_ray.learn import registry
    from cosmic_ray.ops import pipeline

    settings = Settings(home=home)
    if registry.production_version(settings) is not None:
        return
    ingest(
        "catalog",
        [shared_data() / "ztf-bts" / "bts_dev_lightcurves.csv.gz"],
        settings.lake_dir,
        settings.quarantine_dir,
    )
    cfg = TrainConfig(
        seed=0,
        epochs=3,
        lr=3e-3,
        data=DataConfig(max_objects_per_class=80),
        episodes=EpisodeConfig(n_way=4, k_shot=5, n_query=5, per_epoch=25),
        scaling=ScalingConfig(num_workers=2),
    )
    report = pipeline.train_from_lake(settings, cfg)
    log.info("trained and registered model version %s", report.version)


def print_table(result: dict) -> None:
    w = sys.stderr.write
    w(
        f"\nnight replay: {result['alerts']} alerts in {result['seconds']} s (truncated: {result['truncated']}), load average {result['load_average']}\n"
    )
    w(
        f"  lake: {result['in_lake']} in, {result['lost_in_lake']} lost, {result['doubled_in_lake']} doubled | "
        f"passed pre-filters {result['passed_prefilter']}, stored {result['stored']}, passed but not stored {result['passed_not_stored']}\n"
    )
    w(f"  {'phase':8s} {'waves':>5s} {'alerts':>7s} {'classified':>10s} {'alerts/s':>9s} {'p50 s':>8s} {'p99 s':>8s}\n")
    for kind in ("steady", "burst"):
        r = result[kind]
        if r:
            w(
                f"  {kind:8s} {r['waves']:5d} {r['alerts']:7d} {r['classified']:10d} {r['alerts_per_s_mean']:9.1f} {r['p50_latency_s']:8.3f} {r['p99_latency_s']:8.3f}\n"
            )
    w(f"  baseline: bare fastavro decode, 1 core: {result['bare_fastavro_alerts_per_s_1core']} alerts/s\n")
    w(f"  {'process':20s} {'warm MiB':>9s} {'peak':>8s} {'last':>8s} {'growth':>8s}\n")
    for name, m in result["memory_mb"].items():
        w(f"  {name:20s} {m['warm_mb']:9.1f} {m['peak_mb']:8.1f} {m['last_mb']:8.1f} {m['growth_mb']:8.1f}\n")
    w("  RSS (MiB) at the end of each wave:\n")
    for name in result["memory_mb"]:
        w(
            f"  {name:20s} "
            + " ".join(f"{wave['rss_mb'].get(name, float('nan')):6.0f}" for wave in result["waves"])
            + "\n"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_watcher":
        watcher_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument(
        "--burst", type=int, default=10_000, help="Files renamed in at once (also the wave size of the steady phase)."
    )
    parser.add_argument("--rate", type=float, default=150.0, help="Alerts per second of the steady phase.")
    parser.add_argument("--steady-fraction", type=float, default=0.5)
    parser.add_argument("--batch-files", type=int, default=500, help="The watcher's micro-batch.")
    parser.add_argument(
        "--max-seconds", type=float, default=3600, help="No new wave after this; the run then drains and reports."
    )
    parser.add_argument("--sample-s", type=float, default=2.0)
    parser.add_argument(
        "--home", type=Path, default=None, help="A home with a production model (default: train one in the work dir)."
    )
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("ray").setLevel(logging.WARNING)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    _load_base_index()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="night_replay_"))
    home = args.home or workdir / "home"
    cluster = start_cluster()
    try:
        import ray

        from cosmic_ray.core.config import Settings
        from cosmic_ray.ops import deploy as serving

        ray.init(address=cluster.address, log_to_driver=False)
        prepare_model(home)
        settings = Settings(home=home, app_port=_free_port(), store_url=f"sqlite:///{workdir / 'events.db'}")
        serving.deploy(settings, REPO / "configs" / "serve.yaml")
        import ray._private.ray_constants as rc

        result = replay(
            ray_address=cluster.address,
            store_url=settings.event_store_url,
            workdir=workdir,
            alerts=args.alerts,
            burst=args.burst,
            rate=args.rate,
            steady_fraction=args.steady_fraction,
            max_seconds=args.max_seconds,
            batch_files=args.batch_files,
            raylet_pid=_pid(cluster.head_node, rc.PROCESS_TYPE_RAYLET),
            gcs_pid=_pid(cluster.head_node, rc.PROCESS_TYPE_GCS_SERVER),
            sample_s=args.sample_s,
        )
        result["command"] = " ".join(sys.argv)
        print_table(result)
        print(json.dumps(result), flush=True)
    finally:
        try:
            from ray import serve

            serve.shutdown()
        except Exception:  # noqa: BLE001 - best effort before the cluster goes
            pass
        import ray

        ray.shutdown()
        cluster.shutdown()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
