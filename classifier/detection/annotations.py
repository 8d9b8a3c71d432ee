"""Burned-in annotations: scale bars, their labels and text boxes, found so that detection ignores them.

What microscope software burns into a saved image is drawn, not recorded: runs of pixels of exactly one
grey level, usually the image's extreme (white bars and text, black boxes), with straight edges. A
recorded image is never flat over more than a few pixels (noise), except where it saturates; a dark
particle that saturates at 0 is round, an annotation is a bar, a box or text. Flat pixels (equal to
a horizontal or vertical neighbour) at the image's minimum or maximum grey level, opened with a 3 x 3
square (what is left of clipped noise goes), are grouped; a group is
an annotation when it covers at least ``min_area_nm2`` and is straight-edged: a bar (bounding-box fill
above 0.8, elongated beyond 3:1), a box (fill above 0.8 and larger than ``box_nm``), or part of a cluster
of such pixels that is mostly flat (text). The result is the annotations' bounding boxes, dilated by
two pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def flat_pixels(image: np.ndarray) -> np.ndarray:
    """Pixels equal to a horizontal or vertical neighbour."""
    flat = np.zeros(image.shape, bool)
    eq_x = image[:, 1:] == image[:, :-1]
    eq_y = image[1:, :] == image[:-1, :]
    flat[:, 1:] |= eq_x
    flat[:, :-1] |= eq_x
    flat[1:, :] |= eq_y
    flat[:-1, :] |= eq_y
    return flat


def find_annotations(image: np.ndarray, pixel_size_nm: float, *, min_area_nm2: float = 0.5,
                     box_nm: float = 4.0) -> np.ndarray:
    """Mask of burned-in annotations (bool, the image's shape); see the module docstring."""
    image = np.asarray(image)
    out = np.zeros(image.shape, bool)
    lo, hi = image.min(), image.max()
    if lo == hi:
        return ~out  # a blank image: nothing recorded
    flat = flat_pixels(image)
    extreme = flat & ((image == lo) | (image == hi))
    if not extreme.any():
        return out
    # specks of clipped noise touching a bar would spoil its straight edges: opened away first
    labels, n = ndi.label(ndi.binary_opening(extreme, np.ones((3, 3), bool)))
    min_area = min_area_nm2 / pixel_size_nm**2
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None or areas[i] < min_area:
            continue
        h, w = box[0].stop - box[0].start, box[1].stop - box[1].start
        fill = areas[i] / (h * w)
        elongated = max(h, w) >= 3 * min(h, w)
        large = min(h, w) * pixel_size_nm >= box_nm
        if fill > 0.8 and (elongated or large):
            out[box] = True
    if out.any():  # text beside a bar or in a box: flat clusters touching what was found
        near = ndi.binary_dilation(out, iterations=max(2, int(round(1.0 / pixel_size_nm))))
        text, m = ndi.label(extreme & near)
        for box in ndi.find_objects(text):
            if box is not None:
                out[box] = True
        out = ndi.binary_dilation(out, iterations=2)
    return out
