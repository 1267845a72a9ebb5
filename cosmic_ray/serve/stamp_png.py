"""Alert stamps (FITS) as PNG pictures: astropy's ZScale interval with an asinh stretch.

One stamp, or the three of an alert side by side (science, template, difference), each enlarged
by an integer factor without smoothing, north up (FITS row 0 is the bottom row), labelled above.
Blank (NaN) pixels, common at a CCD edge, are drawn black.

Example::

    png = render_png({"science": fits_bytes, "template": ..., "difference": ...})
"""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
from astropy.io import fits
from astropy.visualization import AsinhStretch, ImageNormalize, ZScaleInterval
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

SCALE = 4  # screen pixels per stamp pixel
GAP = 6  # pixels between stamps
LABEL_H = 16  # label strip above each stamp
_BACKGROUND = 16  # grey level of the gaps and the label strip


class StampError(ValueError):
    """The bytes are not a FITS image with 2-D data."""


def stamp_pixels(fits_bytes: bytes) -> np.ndarray:
    """The stamp's image as float32, shape (rows, cols).

    Raises:
        StampError: not a FITS file, or its first HDU holds no 2-D image.
    """
    try:
        with warnings.catch_warnings():  # ZTF stamps' SIMPLE card is not strictly standard
            warnings.simplefilter("ignore")
            with fits.open(io.BytesIO(fits_bytes), ignore_missing_simple=True) as hdus:
                data = next((h.data for h in hdus if h.data is not None and np.ndim(h.data) == 2), None)
                pixels = None if data is None else np.asarray(data, dtype=np.float32)
    except (OSError, ValueError, TypeError) as exc:
        raise StampError(f"not a FITS image: {exc}") from exc
    if pixels is None or pixels.size == 0:
        raise StampError("the FITS file holds no 2-D image")
    return pixels


def to_grey(pixels: np.ndarray) -> np.ndarray:
    """uint8 grey levels (rows, cols): ZScale limits, asinh stretch; NaN -> 0. North up."""
    finite = np.isfinite(pixels)
    out = np.zeros(pixels.shape, dtype=np.uint8)
    if finite.sum() >= 2:
        norm = ImageNormalize(pixels[finite], interval=ZScaleInterval(), stretch=AsinhStretch(a=0.1), clip=True)
        scaled = np.asarray(norm(np.where(finite, pixels, np.nanmedian(pixels[finite]))), dtype=np.float64)
        out = np.where(finite, np.round(np.nan_to_num(scaled) * 255), 0).astype(np.uint8)
    return np.flipud(out)


def _enlarge(grey: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pad to ``shape`` (edge stamps are narrower), then enlarge by :data:`SCALE` (nearest pixel)."""
    padded = np.zeros(shape, dtype=np.uint8)
    padded[: grey.shape[0], : grey.shape[1]] = grey
    return np.kron(padded, np.ones((SCALE, SCALE), dtype=np.uint8))


def render_png(stamps: dict[str, bytes], labels: bool = True) -> bytes:
    """A PNG of the given stamps side by side, in the order given (one stamp: just that one).

    Args:
        stamps: kind -> FITS bytes.
        labels: draw each kind's name above its stamp.

    Raises:
        StampError: a stamp is not a FITS image.
    """
    greys = {kind: to_grey(stamp_pixels(data)) for kind, data in stamps.items()}
    if not greys:
        raise StampError("no stamp to draw")
    rows = max(g.shape[0] for g in greys.values())
    cols = max(g.shape[1] for g in greys.values())
    tile_h, tile_w = rows * SCALE, cols * SCALE
    top = LABEL_H if labels else 0
    width = len(greys) * tile_w + (len(greys) - 1) * GAP
    canvas = np.full((top + tile_h, width), _BACKGROUND, dtype=np.uint8)
    for i, grey in enumerate(greys.values()):
        x = i * (tile_w + GAP)
        canvas[top:, x : x + tile_w] = _enlarge(grey, (rows, cols))
    image = Image.fromarray(canvas, mode="L")
    if labels:
        draw = ImageDraw.Draw(image)
        for i, kind in enumerate(greys):
            draw.text((i * (tile_w + GAP) + 4, 2), kind, fill=230)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()
