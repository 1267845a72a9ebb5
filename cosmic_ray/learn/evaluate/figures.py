"""Evaluation figures as PNG: the row-normalised confusion matrix and the embedding map.

Drawn with matplotlib's object API (a ``Figure`` rendered by the Agg canvas), so no global
backend is switched and no pyplot state is kept.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix


def _save(fig: Figure, path: Path | str) -> None:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def confusion_png(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], path: Path | str) -> None:
    """Row-normalised confusion matrix as a PNG (cells show counts, colour the row share)."""
    cm = confusion_matrix(np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object), labels=classes).astype(
        float
    )  # (K, K) true x predicted
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(1.0 + 0.7 * len(classes), 0.8 + 0.6 * len(classes)))
    ax = fig.subplots()
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                str(int(cm[i, j])),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    _save(fig, path)


def embedding_png(
    embeddings: np.ndarray, labels: np.ndarray, prototypes: np.ndarray, proto_names: list[str], path: Path | str
) -> None:
    """2-D PCA map of embeddings coloured by class, prototypes as stars.

    Args:
        embeddings: (N, D) object embeddings.
        labels: (N,) class of each object.
        prototypes: (K, D) one prototype per name of ``proto_names``.
        proto_names: (K,) class names.
        path: where to write the PNG.
    """
    both = np.concatenate([embeddings, prototypes])
    mean = both.mean(axis=0)
    _, _, vt = np.linalg.svd(both - mean, full_matrices=False)
    xy, pxy = (embeddings - mean) @ vt[:2].T, (prototypes - mean) @ vt[:2].T  # (N, 2), (K, 2)
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    cmap = matplotlib.colormaps["tab10"]
    for i, name in enumerate(proto_names):
        sel = labels == name
        ax.scatter(xy[sel, 0], xy[sel, 1], s=8, alpha=0.6, color=cmap(i % 10), label=f"{name} ({sel.sum()})")
        ax.scatter(pxy[i, 0], pxy[i, 1], s=250, marker="*", edgecolor="black", color=cmap(i % 10))
    ax.legend(fontsize=7, markerscale=2)
    ax.set_title("embedding map (PCA), prototypes as stars")
    _save(fig, path)
