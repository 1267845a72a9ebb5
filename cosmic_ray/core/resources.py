"""Files that ship with the package: the web pages and the default configs.

An installed package (wheel, ``pip install .``) carries them under ``cosmic_ray/_bundled/``
(``web/`` with the browser assets the pages load, ``configs/`` with the default YAML), put there
by the build (``setup.py``). A source checkout (editable install) has no ``_bundled`` folder:
there the ``web/`` and ``configs/`` folders next to the package are used, as they are.

Only stdlib here: ``setup.py`` loads this file by path while building the wheel.

Example:
    >>> from cosmic_ray.core.resources import config_file
    >>> config_file("configs/serve.yaml").name
    'serve.yaml'
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

#: Folder inside the installed package that holds the shipped files.
BUNDLE = "_bundled"

#: What a bundle holds: the web pages (+ vendored npm files) and the default configs.
WEB, CONFIGS = "web", "configs"


def bundled_dir(name: str) -> Path | None:
    """``cosmic_ray/_bundled/<name>`` of the installed package, or None (a checkout, or not shipped)."""
    try:
        root = resources.files("cosmic_ray") / BUNDLE / name
    except ModuleNotFoundError:  # pragma: no cover - cosmic_ray is always importable where this runs
        return None
    # Installed wheels are unpacked folders; a zipped install has no real path to serve files from.
    return root if isinstance(root, Path) and root.is_dir() else None


def checkout_dir(name: str) -> Path:
    """``<name>/`` of the source checkout: the folder next to the ``cosmic_ray`` package."""
    return Path(__file__).resolve().parents[2] / name


def resource_dir(name: str) -> Path:
    """The shipped folder ``name`` (``WEB`` or ``CONFIGS``): the installed copy first, else the checkout's.

    The returned folder may not exist (an installed package built without it and no checkout).
    """
    return bundled_dir(name) or checkout_dir(name)


def config_file(path: Path | str) -> Path:
    """Where to read the config ``path`` from.

    ``path`` itself when it exists (relative to the working folder, as given on the command line).
    Otherwise a default path such as ``configs/serve.yaml`` falls back to the copy shipped with
    the package (or the checkout's ``configs/``), so an installed ``cosmic-ray`` works from any
    folder. Any other missing path is returned unchanged, for the caller to report.
    """
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    parts = PurePosixPath(path.as_posix()).parts
    if len(parts) == 2 and parts[0] == CONFIGS:
        shipped = resource_dir(CONFIGS) / parts[1]
        if shipped.is_file():
            log.info("%s not found here; using the default shipped with cosmic_ray: %s", path, shipped)
            return shipped
    return path
