"""Ingest benchmark: ZTF alerts decoded + written to the lake, against bare fastavro decoding.

Input: the 50 real public alerts of ``ztf-alerts/pittgoogle/alerts-for-testing`` REPLICATED to
``--alerts`` files in a temporary mailbox (each copy gets a fresh objectId and shifted candids so
the lake's dedup keeps them apart; cutouts and every other field are the real bytes/values).

Measured in the same run, on the same files:
  (a) bare ``fastavro.reader`` decoding (every record fully materialised), 1 process and one
      process per core (multiprocessing);
  (b) ``cosmic_ray.ingest.batch.ingest`` (Ray Data read + decode + pre-filter, lake dedup + Parquet
      write), on a local Ray started before the clock (start-up is not counted);
  (c) feature extraction (``cosmic_ray.learn.features.featurize``) on the real BTS light curves, light
      curves per second, without and with parametric fits (light-curve BazinFit + VillarFit per
      band, added on top in this script).

Prints a table on stderr and one JSON line on stdout.

    .venv/bin/python bench/ingest_bench.py --alerts 10000
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


def bare_rate(paths: list[Path], procs: int) -> tuple[float, int]:
    names = [str(p) for p in paths]
    start = time.perf_counter()
    if procs == 1:
        n = _bare_decode(names)
    else:
        with mp.get_context("fork").Pool(procs) as pool:
            n = sum(pool.map(_bare_decode, [names[i::procs] for i in range(procs)]))
    return n / (time.perf_counter() - start), n


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
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000, help="Replicated alert files to build.")
    parser.add_argument("--workdir", type=Path, default=None, help="Where the mailbox and lake go (temp by default).")
    parser.add_argument("--fit-objects", type=int, default=300, help="Objects for the parametric-fit rate.")
    parser.add_argument("--no-features", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cores = os.cpu_count() or 2
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-", dir=args.workdir))
    try:
        mailbox = work / "mailbox"
        mailbox.mkdir()
        t0 = time.perf_counter()
        paths = build_mailbox(mailbox, args.alerts, cores)
        size = sum(p.stat().st_size for p in paths)
        log.info(
            "built %d replicated real alerts (%.0f MB) in %.1f s", len(paths), size / 1e6, time.perf_counter() - t0
        )

        import ray

        from cosmic_ray.ingest.batch import ingest
        from cosmic_ray.ingest.lake import Lake

        ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        # warm-up on the 50 originals (worker start, imports), outside the clock
        ingest("ztf", [str(p) for p in paths[:50]], work / "warm-lake", work / "warm-q")

        bare1, n1 = bare_rate(paths, 1)
        bare2, n2 = bare_rate(paths, cores)
        start = time.perf_counter()
        summary = ingest("ztf", [str(mailbox)], work / "lake", work / "quarantine")
        ours = summary.alerts / (time.perf_counter() - start)
        again_start = time.perf_counter()
        again = ingest("ztf", [str(mailbox)], work / "lake", work / "quarantine")
        again_rate = again.alerts / (time.perf_counter() - again_start)
        lake = Lake(work / "lake")
        alerts_table = lake.read_alerts()
        assert n1 == n2 == summary.alerts == len(paths), (n1, n2, summary.alerts)
        assert alerts_table.num_rows == len(paths) and again.points == 0
        ray.shutdown()

        feats = None if args.no_features else feature_rates(0, args.fit_objects)
        result = {
            "input": f"{len(paths)} REPLICATED real ZTF alerts (50 public pittgoogle packets, fresh objectId/candids per copy)",
            "cores": cores,
            "bare_fastavro_1core_per_s": round(bare1, 1),
            "bare_fastavro_all_cores_per_s": round(bare2, 1),
            "ingest_per_s": round(ours, 1),
            "ingest_ratio_vs_bare_all_cores": round(ours / bare2, 3),
            "reingest_all_duplicates_per_s": round(again_rate, 1),
            "lake_points": summary.points,
            "lake_files": len(lake.files()),
            "target_1300_per_s": ours >= 1300,
            "target_half_of_bare": ours >= 0.5 * bare2,
            "features": feats,
        }
        rows = [
            ("bare fastavro.reader, 1 core", f"{bare1:,.0f} alerts/s", "1.00"),
            (f"bare fastavro.reader, {cores} cores", f"{bare2:,.0f} alerts/s", f"{bare2 / bare1:.2f}"),
            ("cosmic_ray ingest (Ray Data -> lake)", f"{ours:,.0f} alerts/s", f"{ours / bare1:.2f}"),
            ("  ratio ingest / bare all cores", f"{ours / bare2:.2f}", ""),
            ("re-ingest (everything duplicate)", f"{again_rate:,.0f} alerts/s", ""),
        ]
        if feats:
            rows += [
                ("features, no parametric fit", f"{feats['plain_per_s']:,.0f} light curves/s", ""),
                ("features + Bazin & Villar fits", f"{feats['with_fits_per_s']:,.0f} light curves/s", ""),
            ]
        width = max(len(r[0]) for r in rows)
        print(f"\n{result['input']}", file=sys.stderr)
        for name, value, ratio in rows:
            print(f"{name:<{width}}  {value:>24}  {ratio}", file=sys.stderr)
        print(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
