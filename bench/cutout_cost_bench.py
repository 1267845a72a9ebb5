"""What keeping the stamps costs ZTF ingest: decode + per-alert table, with and without the stamp
columns, and the cutout store's write, timed in the same run on the same packets.

Input: the 50 real public alerts of ``ztf-alerts/pittgoogle/alerts-for-testing`` decoded once and
REPLICATED in memory to ``--alerts`` records (fresh objectIds and candids per copy; the stamp bytes
are the real ones, so the store dedups replicas' blobs: ``--unique-stamps`` perturbs one byte of each
copy's stamps' gzip header time field so every blob is new, as in a real night).

Rounds alternate the two variants; medians are reported. Prints one JSON line.

    .venv/bin/python bench/cutout_cost_bench.py --alerts 1000 --unique-stamps
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import fastavro

from cosmic_ray.ingest.cutouts import CutoutStore
from cosmic_ray.sources import ztf, ztf_stamps

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("cutout_cost_bench")


def records(n: int, unique: bool) -> list[dict]:
    folder = Path(os.environ.get("COSMIC_RAY_SHARED_DATA", REPO.parent / "shared" / "data")) / "ztf-alerts"
    base = []
    for path in sorted((folder / "pittgoogle" / "alerts-for-testing").glob("*.avro")):
        with open(path, "rb") as handle:
            base.extend(fastavro.reader(handle))
    out = []
    for k in range(n):
        rec = dict(base[k % len(base)])
        replica = k // len(base)
        rec["objectId"] = f"{rec['objectId']}r{replica}"
        rec["candid"] = rec["candid"] + replica * (1 << 40)
        if unique:
            for field in ztf_stamps.STAMP_FIELDS.values():
                data = bytearray(rec[field]["stampData"])
                data[4:8] = k.to_bytes(4, "little")  # gzip MTIME: other bytes, same image
                rec[field] = {**rec[field], "stampData": bytes(data)}
        out.append(rec)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--unique-stamps", action="store_true")
    args = parser.parse_args()
    recs = records(args.alerts, args.unique_stamps)
    real = ztf_stamps.with_stamps
    plain, stamped, store_s = [], [], []
    for _ in range(args.rounds):
        ztf_stamps.with_stamps = lambda meta, records: meta  # type: ignore[assignment]  # the baseline: no stamps
        t = time.perf_counter()
        ztf.records_to_tables(recs)
        plain.append(time.perf_counter() - t)
        ztf_stamps.with_stamps = real  # type: ignore[assignment]
        t = time.perf_counter()
        _, meta, _ = ztf.records_to_tables(recs)
        stamped.append(time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            CutoutStore(Path(tmp), max_bytes=1 << 20).put_table(meta)
            store_s.append(time.perf_counter() - t)
    p, s, w = (statistics.median(x) for x in (plain, stamped, store_s))
    result = {
        "alerts": args.alerts,
        "unique_stamps": args.unique_stamps,
        "records_to_tables_s": round(p, 4),
        "records_to_tables_with_stamps_s": round(s, 4),
        "store_write_s": round(w, 4),
        "ratio_with_stamps_and_store_vs_plain": round((s + w) / p, 3),
        "store_ms_per_alert": round(1000 * w / args.alerts, 3),
        "load_average": os.getloadavg()[0],
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
