"""Build step of the wheel: ship the web pages and the default configs inside the package.

Everything else about the package is declared in pyproject.toml. A wheel (``pip install .``,
``pip wheel .``) gets ``cosmic_ray/_bundled/web/`` (the pages, their modules and styles, and the
files of ``web/node_modules`` the pages load, under ``vendor/``) and ``cosmic_ray/_bundled/configs/``
(``configs/*.yaml``), so an installed ``cosmic-ray serve up`` serves working pages from any folder.
An editable install ships nothing: it reads ``web/`` and ``configs/`` of the checkout. An sdist
carries the pages, the configs (MANIFEST.in) and the npm files the pages load, so a wheel built
from it needs no npm.

``web/node_modules`` comes from ``npm ci`` in ``web/``; when it is missing the build runs
``npm ci`` if npm is there, else it fails and says so (a wheel whose pages cannot load is worse
than no wheel). A source tree without ``web/`` at all (a copy of the package alone)
builds an API-only wheel, with a warning.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
log = logging.getLogger("cosmic_ray.build")


def _load(name: str, relpath: str):
    """A stdlib-only module of the package, loaded by path (its dependencies need not be installed)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _npm_ci(web_dir: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        return
    log.warning("%s is missing: running `npm ci` in %s", web_dir / "node_modules", web_dir)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=web_dir, check=False, timeout=600)


class BuildWithAssets(build_py):
    """``build_py`` that also copies the web bundle and the default configs into the built package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # the checkout's web/ and configs/ are used in place
            return
        assets = _load("_cosmic_ray_assets", "cosmic_ray/serve/assets.py")
        resources = _load("_cosmic_ray_resources", "cosmic_ray/core/resources.py")
        bundle = Path(self.build_lib) / "cosmic_ray" / resources.BUNDLE
        shutil.rmtree(bundle, ignore_errors=True)
        web_dir = ROOT / "web"
        if web_dir.is_dir():
            if not (web_dir / assets.NODE_MODULES).is_dir():
                _npm_ci(web_dir)
            try:
                assets.bundle_web(web_dir, bundle / resources.WEB)
            except assets.AssetError as exc:
                raise SystemExit(f"cannot bundle the web pages: {exc}") from exc
        else:
            log.warning("no web/ folder in %s: the wheel serves the API without pages", ROOT)
        for config in sorted((ROOT / "configs").glob("*.yaml")):
            target = bundle / resources.CONFIGS / config.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(config, target)


class SdistWithAssets(sdist):
    """``sdist`` that also carries the files of ``web/node_modules`` the pages load (MANIFEST.in has the rest)."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        web_dir = ROOT / "web"
        extra: list[str] = []
        if web_dir.is_dir():
            assets = _load("_cosmic_ray_assets", "cosmic_ray/serve/assets.py")
            if not (web_dir / assets.NODE_MODULES).is_dir():
                _npm_ci(web_dir)
            try:
                extra = [f"web/{assets.NODE_MODULES}/{rel}" for rel in assets.vendor_files(web_dir)]
            except assets.AssetError as exc:
                raise SystemExit(f"cannot pack the web pages: {exc}") from exc
        super().make_release_tree(base_dir, [*files, *extra])


setup(cmdclass={"build_py": BuildWithAssets, "sdist": SdistWithAssets})
