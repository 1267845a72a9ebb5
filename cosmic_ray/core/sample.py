"""Where the real data comes from: the shared data folder, else the small real sample shipped in the package.

The sample (``cosmic_ray/sample_data/``, made by :mod:`cosmic_ray.ops.sample_build`) has the
shared folder's layout: ``ztf-alerts/`` (real public ZTF packets, with their licences) and
``ztf-bts/`` (a few hundred labelled BTS light curves, every rare-class object among them, and
their context rows). A new user without ``../shared/data`` gets a demo on real data from it.

Only stdlib here (like :mod:`cosmic_ray.core.resources`).

Example:
    >>> from cosmic_ray.core.sample import data_root
    >>> data_root(None).shipped
    True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

#: The sample's folder inside the package.
SAMPLE = "sample_data"
#: The file whose presence makes a folder a usable data root (labelled light curves to train on).
LABELLED = Path("ztf-bts") / "bts_dev_lightcurves.csv.gz"
ALERTS = Path("ztf-alerts")


@dataclass(frozen=True)
class DataRoot:
    """A folder with the shared data's layout, and whether it is the shipped sample."""

    path: Path
    shipped: bool

    @property
    def alerts(self) -> Path:
        return self.path / ALERTS

    @property
    def labelled(self) -> Path:
        return self.path / LABELLED


def sample_dir() -> Path:
    """The shipped sample's folder (installed package or checkout alike: it lives inside the package)."""
    root = resources.files("cosmic_ray") / SAMPLE
    return root if isinstance(root, Path) else Path(str(root))


def data_root(shared: Path | None) -> DataRoot | None:
    """``shared`` when it holds the labelled light curves; else the shipped real sample (logged); else None.

    Args:
        shared: the configured shared data folder (``COSMIC_RAY_SHARED_DATA``), None when absent.
    """
    if shared is not None and (shared / LABELLED).is_file():
        return DataRoot(shared, shipped=False)
    sample = sample_dir()
    if (sample / LABELLED).is_file():
        log.info("no shared data at %s: using the shipped real sample in %s", shared, sample)
        return DataRoot(sample, shipped=True)
    log.warning("no shared data at %s and no shipped sample in %s", shared, sample)
    return None
