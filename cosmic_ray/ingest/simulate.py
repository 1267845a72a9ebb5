"""SIMULATED data for machines without ../shared/data: a small ZTF-schema alert stream and a
labelled light-curve table. Everything it writes says SIMULATED in its name and content; no
quality figure may come from it.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import fastavro
import numpy as np

from cosmic_ray.core.lightcurve import mjd_to_jd

SIMULATED_SCHEMA_VERSION = "SIMULATED-ztf-4.02-subset"

_CANDIDATE_FIELDS = [
    ("jd", "double"),
    ("fid", "int"),
    ("magpsf", ["null", "float"]),
    ("sigmapsf", ["null", "float"]),
    ("diffmaglim", ["null", "float"]),
    ("isdiffpos", ["null", "string"]),
    ("ra", ["null", "double"]),
    ("dec", ["null", "double"]),
    ("rb", ["null", "float"]),
    ("drb", ["null", "float"]),
    ("candid", ["null", "long"]),
]

ALERT_SCHEMA = {
    "type": "record",
    "name": "alert",
    "namespace": "ztf.simulated",
    "doc": "SIMULATED subset of the ZTF alert schema v4.02 (cosmic_ray.ingest.simulate)",
    "fields": [
        {"name": "schemavsn", "type": "string"},
        {"name": "publisher", "type": "string"},
        {"name": "objectId", "type": "string"},
        {"name": "candid", "type": "long"},
        {
            "name": "candidate",
            "type": {
                "type": "record",
                "name": "candidate",
                "fields": [{"name": n, "type": t} for n, t in _CANDIDATE_FIELDS],
            },
        },
        {
            "name": "prv_candidates",
            "type": [
                "null",
                {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "prv_candidate",
                        "fields": [
                            {"name": n, "type": t, "default": None} if isinstance(t, list) else {"name": n, "type": t}
                            for n, t in _CANDIDATE_FIELDS
                        ],
                    },
                },
            ],
            "default": None,
        },
    ],
}

# class -> (rise days, fall days, peak mag range)
_SHAPES = {
    "SN Ia": (15.0, 30.0, (17.5, 19.5)),
    "SN II": (7.0, 90.0, (17.5, 19.8)),
    "SN Ibc": (10.0, 20.0, (18.0, 19.8)),
    "SLSN-I": (35.0, 70.0, (18.5, 19.8)),
}


def _bazin_mag(t: np.ndarray, peak: float, rise: float, fall: float) -> np.ndarray:
    flux = np.exp(-t / fall) / (1 + np.exp(-t / rise))
    flux /= flux.max()
    return peak - 2.5 * np.log10(np.maximum(flux, 1e-4))


def _simulate_object(rng: np.random.Generator, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rise, fall, (lo, hi) = _SHAPES[label]
    rise, fall = rise * rng.uniform(0.7, 1.3), fall * rng.uniform(0.7, 1.3)
    t = np.sort(rng.uniform(-2 * rise, 3 * fall, size=rng.integers(12, 40)))
    band = rng.choice(["g", "r"], size=len(t))
    peak = rng.uniform(lo, hi)
    mag = _bazin_mag(t - t[np.argmin(np.abs(t))], peak, rise, fall) + np.where(band == "g", -0.1, 0.1) * (t > 0)
    err = np.clip(0.02 + 0.05 * (mag - 17.0) / 3, 0.02, 0.3)
    mag = mag + rng.normal(0, err)
    keep = mag < 20.8
    return t[keep] - t[keep].min() + 59000.0, band[keep], mag[keep], err[keep]


def write_labelled_catalog(path: Path, n_per_class: int = 30, seed: int = 0) -> Path:
    """A SIMULATED labelled catalogue in the long format (``source`` = ``simulated``)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["object_id", "label", "mjd", "band", "mag", "magerr", "is_limit", "source"])
        for label in _SHAPES:
            for i in range(n_per_class):
                mjd, band, mag, err = _simulate_object(rng, label)
                oid = f"SIMULATED-{label.replace(' ', '_')}-{i:03d}"
                for row in zip(mjd, band, mag, err, strict=False):
                    writer.writerow(
                        [oid, label, f"{row[0]:.5f}", row[1], f"{row[2]:.4f}", f"{row[3]:.4f}", "false", "simulated"]
                    )
    return path


def write_alert_stream(folder: Path, n_objects: int = 10, seed: int = 1) -> list[Path]:
    """SIMULATED ZTF-schema Avro alerts, one file per alert, the latest epoch of each object."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    labels = list(_SHAPES)
    for i in range(n_objects):
        mjd, band, mag, err = _simulate_object(rng, labels[i % len(labels)])
        n = max(3, len(mjd) // 2)
        obj = f"ZTFSIM{i:06d}"
        cands = [
            {
                "jd": float(mjd_to_jd(m)),
                "fid": 1 if b == "g" else 2,
                "magpsf": float(x),
                "sigmapsf": float(e),
                "diffmaglim": 20.5,
                "isdiffpos": "t",
                "ra": 150.0 + i,
                "dec": 2.0,
                "rb": 0.9,
                "drb": 0.99,
                "candid": int(1_000_000_000 + 1000 * i + j),
            }
            for j, (m, b, x, e) in enumerate(zip(mjd[:n], band[:n], mag[:n], err[:n], strict=False))
        ]
        record = {
            "schemavsn": SIMULATED_SCHEMA_VERSION,
            "publisher": "cosmic_ray SIMULATED stream",
            "objectId": obj,
            "candid": cands[-1]["candid"],
            "candidate": cands[-1],
            "prv_candidates": cands[:-1],
        }
        path = folder / f"SIMULATED_{obj}_{record['candid']}.avro"
        with open(path, "wb") as handle:
            fastavro.writer(handle, fastavro.parse_schema(ALERT_SCHEMA), [record])
        out.append(path)
    return out
