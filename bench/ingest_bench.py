"""Ingest benchmark: ZTF alerts decoded + written to the lake, against bare fastavro decoding.

Input: the 50 real public alerts of ``ztf-alerts/pittgoogle/alerts-for-testing`` REPLICATED to
``--alerts`` files in a temporary mailbox (each copy gets a fresh objectId and shifted candids so
the lake's dedup keeps them apart; cutouts and every other field are the real bytes/values).

Measured in the same run, on the same files, each for ``--small`` (100) and ``--alerts`` (10,000)
files, so that every figure is a marginal rate, start-up not counted:
``rate = (N - n) / (t(N) - t(n))``; ``start-up = t(n) - n / rate`` is printed beside it. With
``--rounds R`` the (a)/(b) pair is measured R times, alternated, and the round of median ratio is shown
(every round's figures are in the JSON line): on a shared machine the load changes within a run.
  (a) bare ``fastavro.reader`` decoding (every record fully materialised), one process per core
      (multiprocessing), and 1 process over the big set;
  (b) ``cosmic_ray.ingest.batch.ingest`` (Ray tasks read + decode + pre-filter chunks of files, the
      driver dedups and writes the lake while the next chunks decode), on a local Ray started and
      warmed up before the clock; the first ingest on the fresh cluster is reported apart;
  (c) the stream path a Kafka consumer takes (packets already in memory: ``parse_inputs`` on bytes +
      lake append, micro-batches of 500, one process; no broker involved) against bare decoding on 1 core;
  (d) feature extraction (``cosmic_ray.learn.features.featurize``) on the real BTS light curves, light
      curves per second, without and with parametric fits (light-curve BazinFit + VillarFit per
      band, added on top in this script).

Prints a table on stderr and one JSON line on stdout.

    .venv/bin/python bench/ingest_bench.py --alerts 10000 [--mailbox /tmp/ingest-mailbox]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import fastavro
import numpy as np

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("ingest_bench")


def shared_data() -> Path:
    return Path(os.environ.get("COSMIC_RAY_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


# ----------------------------------------------------------------------------- input
def _replicate_chunk(args: tuple[list[bytes], list[int], str]) -> int:
    templates, copies, folder = args
    decoded = []
    for data in templates:
        reader = fastavro.reader(io.BytesIO(data))
        decoded.append((fastavro.parse_schema(reader.writer_schema), next(iter(reader))))
    written = 0
    for k in copies:
        schema, record = decoded[k % len(decoded)]
        replica = k // len(decoded)
        shift = replica * (1 << 40)  # candids stay unique across replicas; 0 keeps the originals
        rec = dict(record)
        rec["objectId"] = record["objectId"] if replica == 0 else f"{record['objectId']}r{replica}"
        rec["candid"] = record["candid"] + shift
        rec["candidate"] = {**record["candidate"], "candid": record["candidate"]["candid"] + shift}
        rec["prv_candidates"] = [
            {**p, "candid": p["candid"] + shift} if p.get("candid") is not None else p
            for p in record.get("prv_candidates") or []
        ]
        path = Path(folder) / f"{rec['objectId']}.{rec['candid']}.avro"
        with open(path, "wb") as out:
            fastavro.writer(out, schema, [rec])
        written += 1
    return written


def build_mailbox(folder: Path, n: int, procs: int) -> list[Path]:
    sources = sorted((shared_data() / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))
    templates = [p.read_bytes() for p in sources]
    chunks = [(templates, list(range(i, n, procs)), str(folder)) for i in range(procs)]
    with mp.get_context("fork").Pool(procs) as pool:
        assert sum(pool.map(_replicate_chunk, chunks)) == n
    return sorted(folder.glob("*.avro"))


# ----------------------------------------------------------------------------- (a) bare decoding
def _bare_decode(paths: list[str]) -> int:
    n = 0
    for path in paths:
        with open(path, "rb") as handle:
            for _ in fastavro.reader(handle):
                n += 1
    return n


def bare_seconds(paths: list[Path], procs: int) -> float:
    """Seconds for bare ``fastavro.reader`` decoding of ``paths``: 1 process, or one process per core."""
    names = [str(p) for p in paths]
    start = time.perf_counter()
    if procs == 1:
        n = _bare_decode(names)
    else:
        # forkserver: its server is started before ray.init (see main), so no child is forked from a
        # process that runs Ray's threads
        with mp.get_context("forkserver").Pool(procs) as pool:
            n = sum(pool.map(_bare_decode, [names[i::procs] for i in range(procs)]))
    assert n == len(paths), (n, len(paths))
    return time.perf_counter() - start


def marginal(n_small: int, t_small: float, n_big: int, t_big: float) -> tuple[float, float]:
    """(marginal rate per second, fixed start-up seconds) of a cost ``t = start_up + n / rate``."""
    rate = (n_big - n_small) / max(t_big - t_small, 1e-9)
    return rate, t_small - n_small / rate


# ----------------------------------------------------------------------------- (b) the stream path
def stream_seconds(paths: list[Path], lake_dir: Path, quarantine_dir: Path, batch: int = 500) -> float:
    """The path a stream consumer (Kafka) takes: packets already in memory as bytes, decoded, pre-filtered and
    appended to the lake in micro-batches on one process (``parse_inputs`` with bytes + ``Lake.append``).
    No broker is involved: the reading of the files happens before the clock."""
    from cosmic_ray.ingest.batch import parse_inputs
    from cosmic_ray.ingest.lake import Lake

    messages = [(str(p), p.read_bytes()) for p in paths]
    lake = Lake(lake_dir)
    start = time.perf_counter()
    for i in range(0, len(messages), batch):
        parsed = parse_inputs("ztf", messages[i : i + batch], quarantine_dir)
        lake.append(parsed.points, defer=True)
        if parsed.alerts is not None:
            lake.append_alerts(parsed.alerts, defer=True)
        lake.flush()
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- (c) features
def feature_rates(n_plain: int, n_fit: int) -> dict:
    import light_curve as lc
    import pandas as pd
    import pyarrow as pa

    from cosmic_ray.core.lightcurve import conform
    from cosmic_ray.learn import features

    df = pd.read_csv(shared_data() / "ztf-bts" / "bts_dev_lightcurves.csv.gz")
    df["source"], df["is_limit"] = "ztf_bts", False
    df["night"] = "00000000"
    table = conform(pa.Table.from_pandas(df, preserve_index=False))
    objects = table.column("object_id").to_pylist()
    start = time.perf_counter()
    out = features.featurize(table)
    plain = len(out["object_id"]) / (time.perf_counter() - start)

    # parametric fits on top: Bazin + Villar per band, on fluxes (the fits are made for fluxes)
    fit = lc.Extractor(lc.BazinFit("lmsder"), lc.VillarFit("lmsder"))
    pts = features.clean_points(table)
    ids = pts.column("object_id").to_numpy(zero_copy_only=False)
    mjd, mag, err = (pts.column(c).to_numpy(zero_copy_only=False).astype(float) for c in ("mjd", "mag", "magerr"))
    band = pts.column("band").to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))[:n_fit]
    ends = np.concatenate([starts[1:], [len(ids)]]) if len(starts) else starts
    start = time.perf_counter()
    done = 0
    sub = table.filter(pa.compute.is_in(table.column("object_id"), pa.array(sorted(set(ids[starts])))))
    features.featurize(sub)
    for s, e in zip(starts, ends, strict=False):
        for b in features.FEATURE_BANDS:
            sel = slice(s, e)
            m = band[sel] == b
            t = mjd[sel][m]
            if len(t) < 6 or np.any(np.diff(t) <= 0):
                continue
            flux = 10 ** (-0.4 * (mag[sel][m] - 23.9))
            ferr = np.maximum(flux * np.nan_to_num(err[sel][m], nan=0.1) * np.log(10) / 2.5, 1e-3)
            fit(t, flux, ferr, fill_value=np.nan)
        done += 1
    with_fit = done / (time.perf_counter() - start)
    return {
        "objects": len(set(objects)),
        "plain_per_s": round(plain, 1),
        "with_fits_per_s": round(with_fit, 1),
        "fit_objects": done,
    }


# ----------------------------------------------------------------------------- main
def _timed_ingest(paths: list[Path], lake_dir: Path, quarantine_dir: Path) -> tuple[float, object]:
    from cosmic_ray.ingest.batch import ingest

    start = time.perf_counter()
    summary = ingest("ztf", [str(p) for p in paths], lake_dir, quarantine_dir)
    return time.perf_counter() - start, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000, help="Replicated alert files to build (the big run).")
    parser.add_argument("--small", type=int, default=100, help="Alerts of the small run (start-up + a few).")
    parser.add_argument("--rounds", type=int, default=1, help="Bare/ingest pairs, alternated; the median is shown.")
    parser.add_argument("--workdir", type=Path, default=None, help="Where the mailbox and lake go (temp by default).")
    parser.add_argument(
        "--mailbox", type=Path, default=None, help="Keep the replicated mailbox here and reuse it on the next run."
    )
    parser.add_argument("--fit-objects", type=int, default=300, help="Objects for the parametric-fit rate.")
    parser.add_argument("--no-features", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cores = os.cpu_count() or 2
    n_big, n_small = args.alerts, args.small
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-", dir=args.workdir))
    try:
        mailbox = args.mailbox or work / "mailbox"
        t0 = time.perf_counter()
        paths = sorted(mailbox.glob("*.avro")) if mailbox.is_dir() else []
        if len(paths) != n_big:
            shutil.rmtree(mailbox, ignore_errors=True)
            mailbox.mkdir(parents=True)
            paths = build_mailbox(mailbox, n_big, cores)
        size = sum(p.stat().st_size for p in paths)
        log.info(
            "built %d replicated real alerts (%.0f MB) in %.1f s", len(paths), size / 1e6, time.perf_counter() - t0
        )
        small = paths[:n_small]

        import ray

        from cosmic_ray.ingest.lake import Lake

        bare_seconds(small, cores)  # starts the forkserver (and warms the page cache) before Ray is up
        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False)
        ray_init = time.perf_counter() - t0
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        # the first ingest on a fresh cluster: worker processes start and import the package
        cold, _ = _timed_ingest(paths[:50], work / "cold-lake", work / "cold-q")

        # the same files, the same run: bare decoding, then ours, small and big each; --rounds times,
        # alternated, so a change of the machine's load hits both sides of a round alike
        rounds = []
        for r in range(args.rounds):
            bare_small, bare_big = bare_seconds(small, cores), bare_seconds(paths, cores)
            t_small, s_small = _timed_ingest(small, work / f"lake-small{r}", work / f"q-small{r}")
            t_big, summary = _timed_ingest(paths, work / f"lake{r}", work / f"quarantine{r}")
            assert summary.alerts == len(paths) and s_small.alerts == len(small), (summary, s_small)
            bare_r, _ = marginal(n_small, bare_small, n_big, bare_big)
            ours_r, start_r = marginal(n_small, t_small, n_big, t_big)
            rounds.append(
                {
                    "bare_small_s": round(bare_small, 3),
                    "bare_big_s": round(bare_big, 3),
                    "ingest_small_s": round(t_small, 3),
                    "ingest_big_s": round(t_big, 3),
                    "bare_per_s": round(bare_r, 1),
                    "ingest_per_s": round(ours_r, 1),
                    "start_up_s": round(start_r, 3),
                    "ratio": round(ours_r / bare_r, 3),
                    "load_average_1min": round(os.getloadavg()[0], 2),
                }
            )
            log.info("round %d: %s", r + 1, rounds[-1])
        median = sorted(rounds, key=lambda x: x["ratio"])[len(rounds) // 2]
        bare_small, bare_big = median["bare_small_s"], median["bare_big_s"]
        t_small, t_big = median["ingest_small_s"], median["ingest_big_s"]
        bare1_big = bare_seconds(paths, 1)
        lake_dir = work / f"lake{args.rounds - 1}"
        t_again, again = _timed_ingest(paths, lake_dir, work / "quarantine")
        lake = Lake(lake_dir)
        alerts_table = lake.read_alerts()
        assert alerts_table.num_rows == len(paths) and again.points == 0
        ray.shutdown()
        t_stream = stream_seconds(paths, work / "lake-stream", work / "q-stream")

        bare_rate, bare_start = marginal(n_small, bare_small, n_big, bare_big)
        ours, start_up = marginal(n_small, t_small, n_big, t_big)
        feats = None if args.no_features else feature_rates(0, args.fit_objects)
        result = {
            "input": f"{len(paths)} REPLICATED real ZTF alerts (50 public pittgoogle packets, fresh objectId/candids per copy)",
            "cores": cores,
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "seconds": {
                "bare_small": round(bare_small, 3),
                "bare_big": round(bare_big, 3),
                "ingest_small": round(t_small, 3),
                "ingest_big": round(t_big, 3),
                "ray_init": round(ray_init, 3),
                "first_ingest_cold_50": round(cold, 3),
            },
            "bare_fastavro_1core_per_s": round(n_big / bare1_big, 1),
            "bare_fastavro_all_cores_marginal_per_s": round(bare_rate, 1),
            "ingest_marginal_per_s": round(ours, 1),
            "ingest_start_up_s": round(start_up, 3),
            "ingest_ratio_vs_bare_all_cores": round(ours / bare_rate, 3),
            "stream_path_1core_per_s": round(n_big / t_stream, 1),
            "stream_ratio_vs_bare_1core": round(bare1_big / t_stream, 3),
            "reingest_all_duplicates_per_s": round(n_big / t_again, 1),
            "lake_points": summary.points,
            "lake_files": len(lake.files()),
            "target_0_8_of_bare": ours >= 0.8 * bare_rate,
            "rounds": rounds,
            "features": feats,
        }
        rows = [
            ("bare fastavro.reader, 1 core", f"{n_big / bare1_big:,.0f} alerts/s", ""),
            (f"bare fastavro.reader, {cores} cores (marginal)", f"{bare_rate:,.0f} alerts/s", "1.00"),
            ("cosmic_ray ingest (Ray -> lake, marginal)", f"{ours:,.0f} alerts/s", f"{ours / bare_rate:.2f}"),
            ("  ratio of each round", " ".join(f"{r['ratio']:.2f}" for r in rounds), "median above"),
            ("  its start-up (warm cluster)", f"{start_up:.2f} s", ""),
            ("  first ingest on a fresh cluster (50)", f"{cold:.2f} s", ""),
            ("  ray.init", f"{ray_init:.2f} s", ""),
            (
                "stream path (bytes in memory, 1 core)",
                f"{n_big / t_stream:,.0f} alerts/s",
                f"{bare1_big / t_stream:.2f} of 1 core",
            ),
            ("re-ingest (everything duplicate)", f"{n_big / t_again:,.0f} alerts/s", ""),
        ]
        if feats:
            rows += [
                ("features, no parametric fit", f"{feats['plain_per_s']:,.0f} light curves/s", ""),
                ("features + Bazin & Villar fits", f"{feats['with_fits_per_s']:,.0f} light curves/s", ""),
            ]
        width = max(len(r[0]) for r in rows)
        print(f"\n{result['input']}; load average {result['load_average']}", file=sys.stderr)
        for name, value, ratio in rows:
            print(f"{name:<{width}}  {value:>24}  {ratio}", file=sys.stderr)
        print(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
