"""The particle cut-out: one function for simulated and real particles alike.

As ANTEMA does for real micrographs (and the paper for its training images): the support outside
the particle is removed, the particle with the support signal beneath it is kept. The image is
cropped to a square around the mask (with a margin), every pixel outside the mask is set to the
mean inside it, the result is standardised over the particle (mean 0, standard deviation 1 inside
the mask, so 0 outside) and resized to ``size`` × ``size`` pixels.
"""

from __future__ import annotations

import numpy as np
from skimage.transform import resize


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the mask's nonzero pixels (half-open)."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        raise ValueError("mask is empty: no particle pixels to cut out")
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def cutout(image: np.ndarray, mask: np.ndarray, size: int = 224, *, margin: float = 0.1) -> np.ndarray:
    """Cut the particle out of ``image`` along ``mask`` and return a (size, size) float32 array.

    Parameters
    ----------
    image : 2-D image (any units; standardised here).
    mask : Same shape, nonzero on the particle.
    size : Output side [pixel] (the paper: 224 for ResNet).
    margin : Extra border around the mask's bounding box, as a fraction of its larger side.
    """
    image = np.asarray(image, dtype=np.float64)
    mask = np.asarray(mask) != 0
    if image.ndim != 2 or image.shape != mask.shape:
        raise ValueError(f"image and mask must be 2-D of one shape, got {image.shape} and {mask.shape}")
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8 pixels, got {size!r}")
    y0, y1, x0, x1 = mask_bbox(mask)
    side = int(np.ceil(max(y1 - y0, x1 - x0) * (1 + 2 * margin)))
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    top, left = int(round(cy - side / 2)), int(round(cx - side / 2))
    inside = image[mask]
    mean, std = inside.mean(), inside.std()
    work = np.where(mask, image, mean)
    crop = np.full((side, side), mean)
    ys, xs = slice(max(top, 0), min(top + side, image.shape[0])), slice(max(left, 0), min(left + side, image.shape[1]))
    crop[ys.start - top:ys.stop - top, xs.start - left:xs.stop - left] = work[ys, xs]
    crop = (crop - mean) / (std if std > 0 else 1.0)
    return resize(crop, (size, size), order=1, anti_aliasing=side > size, preserve_range=True).astype(np.float32)
