"""Alert pre-filters (ALeRCE-style): real/bogus, known solar-system objects, stellar counterparts.

Pure functions on the per-alert table that :func:`cosmic_ray.sources.ztf.parse_many` returns
(``ALERT_SCHEMA``: one row per alert with ``rb``, ``drb``, ``ssdistnr``, ``ssmagnr``, ``sgscore1``,
``distpsnr1``). Nothing is dropped: every alert is stored in the lake's per-alert table with
``prefilter`` (``"pass"`` or the first rule that routed it away: ``"bogus"``, ``"solar_system"``,
``"star"``) and ``prefilter_reason`` (every rule that fired, with the values and thresholds).

ZTF writes -999 where a catalogue match is missing; such values never trigger a rule.

Example::

    cfg = PrefilterConfig(min_drb=0.8)
    decided = apply(parse_result.alert_meta, cfg)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from cosmic_ray.core.config import load_yaml_config

PASS = "pass"
COLUMNS = ("prefilter", "prefilter_reason")


class PrefilterConfig(BaseModel):
    """Thresholds of the three pre-filters; each can be switched off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # real/bogus: drb (deep real/bogus, schema >= 3.3) where present, else rb
    min_drb: float = Field(default=0.5, ge=0, le=1, description="Bogus if drb is below this.")
    min_rb: float = Field(default=0.55, ge=0, le=1, description="Bogus if rb is below this (alerts without drb).")
    # known solar-system object within this distance (arcsec) and at least this bright (mag)
    solar_system: bool = True
    ss_max_distance_arcsec: float = Field(default=5.0, gt=0)
    ss_max_magnitude: float = Field(
        default=23.0, description="Only known objects brighter than this explain a detection."
    )
    # stellar counterpart in PS1: star-galaxy score above and distance below
    stars: bool = True
    star_min_sgscore: float = Field(default=0.5, ge=0, le=1)
    star_max_distance_arcsec: float = Field(default=1.0, gt=0)


def load_config(path: Path | str) -> PrefilterConfig:
    """Read a YAML file into a :class:`PrefilterConfig` (raises ``ConfigError`` if invalid)."""
    return load_yaml_config(path, PrefilterConfig)  # type: ignore[return-value]


def _col(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=float)


def decide(table: pa.Table, cfg: PrefilterConfig = PrefilterConfig()) -> tuple[list[str], list[str]]:
    """Per alert: (decision, reason). ``decision`` is ``"pass"`` or the first rule that fired."""
    n = table.num_rows
    rules: list[tuple[str, np.ndarray, list[str]]] = []
    if cfg.enabled:
        rb, drb = _col(table, "rb"), _col(table, "drb")
        has_drb = np.isfinite(drb)
        bogus = np.where(has_drb, drb < cfg.min_drb, np.isfinite(rb) & (rb < cfg.min_rb))
        why = [
            f"drb={d:.3f}<{cfg.min_drb}" if np.isfinite(d) else f"rb={r:.3f}<{cfg.min_rb}"
            for d, r in zip(drb, rb, strict=False)
        ]
        rules.append(("bogus", bogus, why))
        if cfg.solar_system:
            dist, mag = _col(table, "ssdistnr"), _col(table, "ssmagnr")
            known = (dist >= 0) & (dist <= cfg.ss_max_distance_arcsec) & (mag >= 0) & (mag <= cfg.ss_max_magnitude)
            why = [
                f'ssdistnr={d:.2f}<={cfg.ss_max_distance_arcsec}" ssmagnr={m:.2f}<={cfg.ss_max_magnitude}'
                for d, m in zip(dist, mag, strict=False)
            ]
            rules.append(("solar_system", known, why))
        if cfg.stars:
            score, dist = _col(table, "sgscore1"), _col(table, "distpsnr1")
            star = (score > cfg.star_min_sgscore) & (dist >= 0) & (dist < cfg.star_max_distance_arcsec)
            why = [
                f'sgscore1={s:.3f}>{cfg.star_min_sgscore} distpsnr1={d:.2f}<{cfg.star_max_distance_arcsec}"'
                for s, d in zip(score, dist, strict=False)
            ]
            rules.append(("star", star, why))
    decisions: list[str] = []
    reasons: list[str] = []
    for i in range(n):
        fired = [(name, why[i]) for name, mask, why in rules if mask[i]]
        decisions.append(fired[0][0] if fired else PASS)
        reasons.append("; ".join(f"{name}: {text}" for name, text in fired))
    return decisions, reasons


def apply(table: pa.Table, cfg: PrefilterConfig = PrefilterConfig()) -> pa.Table:
    """``table`` with ``prefilter`` and ``prefilter_reason`` columns added (or replaced)."""
    decisions, reasons = decide(table, cfg)
    table = table.drop_columns([c for c in COLUMNS if c in table.column_names])
    table = table.append_column("prefilter", pa.array(decisions, pa.string()))
    return table.append_column("prefilter_reason", pa.array(reasons, pa.string()))


def passed(table: pa.Table) -> np.ndarray:
    """Boolean mask of the alerts that passed every pre-filter."""
    return np.asarray(table.column("prefilter").to_numpy(zero_copy_only=False) == PASS, dtype=bool)
