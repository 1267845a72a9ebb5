"""The learn room's shape: the training path imports with torch + ray + numpy alone, the evaluate
package imports nothing heavy, no module is over 600 lines, and the evaluation figures are real PNGs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from cosmic_ray.learn.evaluate.figures import confusion_png, embedding_png

REPO = Path(__file__).resolve().parents[3]

_BLOCKER = """
import importlib.abc, sys
BLOCK = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCK:
            raise ImportError(f"blocked import of {name}")
sys.meta_path.insert(0, Block())
for module in sys.argv[2].split(","):
    __import__(module)
print("ok")
"""


def _import_with_blocked(blocked: list[str], modules: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCKER, ",".join(blocked), ",".join(modules)],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_training_path_needs_only_torch_ray_numpy():
    heavy = ["pandas", "pyarrow", "mlflow", "sklearn", "imblearn", "light_curve", "astropy", "matplotlib"]
    modules = ["cosmic_ray.learn.model", "cosmic_ray.learn.episodes", "cosmic_ray.learn.train"]
    done = _import_with_blocked(heavy, modules)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    # the blocker does block: a module that needs pyarrow fails under it
    assert _import_with_blocked(heavy, ["cosmic_ray.learn.features"]).returncode != 0


def test_evaluate_package_imports_nothing_heavy():
    done = _import_with_blocked(["numpy", "torch", "sklearn", "pyarrow"], ["cosmic_ray.learn.evaluate"])
    assert done.returncode == 0, done.stderr
    # the gate (imported by the registry) stays on numpy: no scikit-learn, no pyarrow
    done = _import_with_blocked(["sklearn", "pyarrow", "torch"], ["cosmic_ray.learn.evaluate.gate"])
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("room", ["learn", "core"])
def test_no_module_over_600_lines(room):
    sizes = {p.relative_to(REPO): len(p.read_text().splitlines()) for p in (REPO / "cosmic_ray" / room).rglob("*.py")}
    assert sizes and max(sizes.values()) <= 600, {str(p): n for p, n in sizes.items() if n > 600}


def test_confusion_png_draws_the_matrix(tmp_path):
    truth = np.asarray(["SN Ia"] * 8 + ["SN II"] * 4, dtype=object)
    pred = np.asarray(["SN Ia"] * 6 + ["SN II"] * 2 + ["SN II"] * 4, dtype=object)
    path = tmp_path / "confusion.png"
    confusion_png(truth, pred, ["SN Ia", "SN II"], path)
    image = imread(path)  # (H, W, 4) floats
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.shape[0] > 50 and image.shape[1] > 50
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_embedding_png_draws_the_map(tmp_path):
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(0, 1, (20, 8)), rng.normal(4, 1, (20, 8))])
    labels = np.asarray(["a"] * 20 + ["b"] * 20, dtype=object)
    protos = np.stack([emb[:20].mean(axis=0), emb[20:].mean(axis=0)])
    path = tmp_path / "embedding.png"
    embedding_png(emb, labels, protos, ["a", "b"], path)
    image = imread(path)
    assert image.shape[:2] == (600, 700)  # figsize (7, 6) at 100 dpi
    assert image[..., :3].std() > 0.05
