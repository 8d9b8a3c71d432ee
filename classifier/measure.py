"""Size and shape of detected particles: one row per region of a label image.

Lengths in nm (the pixel size given), areas in nm². The equivalent diameter is that of the disc of
equal area; Feret diameters are the largest and smallest caliper widths of the region's outline, taken
from the convex hull of its pixels' corners (so a single pixel is 1 px wide, and a disc of diameter d
measures d both ways); circularity is 4π·area / perimeter² (1 for a disc; skimage's perimeter), solidity
the area over that of the same convex hull (pixel corners: a filled disc measures about 0.95-1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from skimage.measure import regionprops


@dataclass
class Particle:
    """One detected particle: where, how large, what shape, which class."""

    id: int
    y_px: float  # centroid row
    x_px: float  # centroid column
    bbox: tuple[int, int, int, int]  # (row0, col0, row1, col1), half-open
    area_px: int
    area_nm2: float
    diameter_nm: float  # of the disc of equal area
    feret_max_nm: float
    feret_min_nm: float
    major_nm: float
    minor_nm: float
    circularity: float
    solidity: float
    touches_border: bool
    label: str = ""
    confidence: float = float("nan")
    probabilities: dict = field(default_factory=dict)

    @property
    def aspect_ratio(self) -> float:
        return self.feret_max_nm / self.feret_min_nm if self.feret_min_nm > 0 else float("inf")


def feret_diameters(coords: np.ndarray) -> tuple[float, float]:
    """(largest, smallest) caliper width [px] of the pixels at ``coords`` (N, 2), from the convex hull of
    their corners."""
    return _hull_measures(coords)[:2]


def _hull_measures(coords: np.ndarray) -> tuple[float, float, float]:
    """(largest caliper width, smallest caliper width, area) [px, px, px²] of the convex hull of the
    corners of the pixels at ``coords``."""
    corners = (coords[:, None, :] + np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])).reshape(-1, 2)
    try:
        chull = ConvexHull(corners)
    except QhullError:  # cannot happen for pixel corners (never collinear); a guard
        extent = corners.max(0) - corners.min(0)
        return float(extent.max()), float(extent.min()), float(extent.prod())
    hull = corners[chull.vertices]
    d = hull[:, None, :] - hull[None, :, :]
    longest = float(np.sqrt((d ** 2).sum(-1)).max())
    edges = np.roll(hull, -1, axis=0) - hull
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    normals = np.stack([-edges[:, 1], edges[:, 0]], 1) / np.maximum(lengths, 1e-12)[:, None]
    widths = np.abs(((hull[None, :, :] - hull[:, None, :]) * normals[:, None, :]).sum(-1)).max(axis=1)
    return longest, float(widths[lengths > 0].min()), float(chull.volume)


def measure(labels: np.ndarray, pixel_size_nm: float) -> list[Particle]:
    """Size and shape of every labelled region, in label order."""
    out = []
    shape = labels.shape
    for r in regionprops(labels):
        y0, x0, y1, x1 = r.bbox
        coords = r.coords.astype(float)
        boundary = coords if len(coords) < 64 else _boundary(r.image, y0, x0)  # the hull is the boundary's
        fmax, fmin, hull_area = _hull_measures(boundary)
        perimeter = r.perimeter or 1.0
        out.append(Particle(
            id=int(r.label), y_px=float(r.centroid[0]), x_px=float(r.centroid[1]), bbox=(y0, x0, y1, x1),
            area_px=int(r.area), area_nm2=float(r.area * pixel_size_nm ** 2),
            diameter_nm=float(r.equivalent_diameter_area * pixel_size_nm),
            feret_max_nm=fmax * pixel_size_nm, feret_min_nm=fmin * pixel_size_nm,
            major_nm=float(r.axis_major_length * pixel_size_nm), minor_nm=float(r.axis_minor_length * pixel_size_nm),
            circularity=float(min(1.0, 4 * np.pi * r.area / perimeter ** 2)), solidity=float(min(1.0, r.area / hull_area)),
            touches_border=bool(y0 == 0 or x0 == 0 or y1 == shape[0] or x1 == shape[1])))
    return out


def _boundary(image: np.ndarray, y0: int, x0: int) -> np.ndarray:
    """Coordinates of the pixels of ``image`` (a region's box) that have a 4-neighbour outside it."""
    from scipy.ndimage import binary_erosion

    edge = image & ~binary_erosion(image)
    return (np.argwhere(edge) + [y0, x0]).astype(float)
