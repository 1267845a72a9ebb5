"""Which files of ``web/`` the pages load, and how the build copies them into the package.

The pages are plain HTML with ES modules: an import map in each page names the npm files
(``"three": "./vendor/three/build/three.module.js"``), the pages' modules import bare specifiers
(``three/addons/controls/OrbitControls.js``) or fetch vendor URLs (``../../vendor/world-atlas/land-110m.json``),
and vendor modules import their siblings (``./three.core.js``). ``vendor_files`` follows all of
that from the pages to the exact files of ``web/node_modules`` they need, so the wheel carries
those (about 1.5 MB) and not the whole tree (30 MB).

Layout of a bundle (``bundle_web``): the pages and ``js/``, ``css/``, ``img/`` as in ``web/``,
and the npm files under ``vendor/<package>/`` (with each package's licence and package.json).

Only stdlib here: ``setup.py`` loads this file by path while building the wheel.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

#: Folders of ``web/`` shipped whole (the pages' own modules, styles and images).
PAGE_DIRS: tuple[str, ...] = ("js", "css", "img")

#: Where the npm packages live in a checkout, and where a bundle keeps the files the pages load.
NODE_MODULES, VENDOR = "node_modules", "vendor"

#: Files shipped with each vendored package whatever the pages load: its licence and manifest.
PACKAGE_FILES: tuple[str, ...] = ("LICENSE", "LICENSE.md", "LICENSE.txt", "package.json")

# Module specifiers: `import x from "s"` / `export * from "s"` (at a statement's start, possibly
# over several lines), `import "s"`, and `import("s")` with a literal.
_SPECIFIER = re.compile(
    r"""^\s*(?:import|export)\b[^;'"`]*?\bfrom\s*["']([^"'\n]+)["']"""
    r"""|^\s*import\s*["']([^"'\n]+)["']"""
    r"""|\bimport\(\s*["']([^"'\n]+)["']\s*\)""",
    re.M,
)
# a literal URL into vendor/ (fetch targets such as the world-atlas JSON)
_VENDOR_URL = re.compile(r"""["'`](?:\.{1,2}/)*vendor/([^"'`\s]+)["'`]""")
_IMPORT_MAP = re.compile(r"""<script\s+type=["']importmap["']\s*>(.*?)</script>""", re.S | re.I)
_MODULE_SRC = re.compile(r"""<script[^>]*\bsrc=["']([^"']+\.m?js)["']""", re.I)


class AssetError(ValueError):
    """A page refers to a vendor file that is not there (run ``npm ci`` in ``web/``)."""


def _specifiers(source: str) -> list[str]:
    """The module specifiers a JavaScript module imports or re-exports."""
    return [next(g for g in groups if g) for groups in _SPECIFIER.findall(source)]


def pages(web_dir: Path) -> list[Path]:
    """The HTML pages of ``web_dir``."""
    return sorted(web_dir.glob("*.html"))


def import_map(web_dir: Path) -> dict[str, str]:
    """The union of the pages' import maps: specifier -> vendor path (``three/build/three.module.js``)."""
    merged: dict[str, str] = {}
    for page in pages(web_dir):
        for block in _IMPORT_MAP.findall(page.read_text(encoding="utf-8")):
            for spec, url in json.loads(block).get("imports", {}).items():
                target = _vendor_path(url)
                if target is not None:
                    merged[spec] = target
    return merged


def _vendor_path(url: str) -> str | None:
    """``./vendor/three/x.js`` -> ``three/x.js``; None for URLs outside vendor/."""
    parts = [p for p in url.split("/") if p not in ("", ".", "..")]
    if len(parts) < 2 or parts[0] != VENDOR:
        return None
    return "/".join(parts[1:]) + ("/" if url.endswith("/") else "")


def _resolve_bare(spec: str, imports: dict[str, str]) -> str | None:
    """A bare specifier through the import map (exact keys, then the longest ``prefix/`` key)."""
    if spec in imports:
        return imports[spec]
    prefixes = [k for k in imports if k.endswith("/") and spec.startswith(k)]
    if not prefixes:
        return None
    key = max(prefixes, key=len)
    return imports[key] + spec[len(key) :]


def _page_modules(web_dir: Path) -> list[Path]:
    """The pages' own modules (``js/*.js``) and the module scripts the pages name."""
    found = set(web_dir.glob("js/**/*.js")) | set(web_dir.glob("js/**/*.mjs"))
    for page in pages(web_dir):
        for src in _MODULE_SRC.findall(page.read_text(encoding="utf-8")):
            parts = [p for p in src.split("/") if p not in ("", ".")]
            if parts and parts[0] == "static":
                found.add(web_dir.joinpath(*parts[1:]))
    return sorted(p for p in found if p.is_file())


def vendor_files(web_dir: Path) -> list[str]:
    """Paths (``three/build/three.module.js``, relative to ``node_modules``) of every npm file the pages load.

    Raises:
        AssetError: a page, a page module or a vendor module refers to a file that is missing,
            or imports a bare specifier that no import map names.
    """
    modules = web_dir / NODE_MODULES
    imports = import_map(web_dir)
    todo: list[tuple[str, str]] = [(target, f"the import map of {web_dir}") for target in imports.values()]
    for source in [*pages(web_dir), *_page_modules(web_dir)]:
        text = source.read_text(encoding="utf-8")
        todo += [(url, str(source)) for url in _VENDOR_URL.findall(text)]
        if source.suffix in (".js", ".mjs"):
            for spec in _specifiers(text):
                if not spec.startswith((".", "/")):
                    target = _resolve_bare(spec, imports)
                    if target is None:
                        raise AssetError(f"{source} imports {spec!r}, which no import map of the pages names")
                    todo.append((target, str(source)))
    found: set[str] = set()
    while todo:
        rel, referrer = todo.pop()
        if rel.endswith("/"):  # an import-map prefix ("three/addons/"): its files come from imports
            continue
        rel = posixpath.normpath(rel)
        if rel in found:
            continue
        path = modules / rel
        if rel.startswith("..") or not path.is_file():
            raise AssetError(f"{referrer} needs vendor/{rel}, which is not in {modules}: run `npm ci` in {web_dir}")
        found.add(rel)
        if path.suffix not in (".js", ".mjs"):
            continue
        for spec in _specifiers(path.read_text(encoding="utf-8")):
            if spec.startswith("."):
                todo.append((posixpath.join(posixpath.dirname(rel), spec), str(path)))
            elif not spec.startswith("/"):
                target = _resolve_bare(spec, imports)
                if target is None:
                    raise AssetError(f"{path} imports {spec!r}, which no import map of the pages names")
                todo.append((target, str(path)))
    for package in {rel.split("/", 1)[0] for rel in found}:
        found.update(f"{package}/{name}" for name in PACKAGE_FILES if (modules / package / name).is_file())
    return sorted(found)


def bundle_web(web_dir: Path, dest: Path) -> list[Path]:
    """Copy the pages, their folders and the vendor files they load from ``web_dir`` into ``dest``.

    Returns:
        The files written.

    Raises:
        AssetError: as ``vendor_files`` (the bundle would serve pages that cannot load).
    """
    written: list[Path] = []
    vendor = vendor_files(web_dir)

    def copy(src: Path, dst: Path) -> None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        written.append(dst)

    for page in pages(web_dir):
        copy(page, dest / page.name)
    for sub in PAGE_DIRS:
        for src in sorted((web_dir / sub).rglob("*")):
            if src.is_file():
                copy(src, dest / src.relative_to(web_dir))
    for rel in vendor:
        copy(web_dir / NODE_MODULES / rel, dest / VENDOR / rel)
    log.info("bundled %d web files (%d from node_modules) into %s", len(written), len(vendor), dest)
    return written
