"""Ground-truth particle masks: the projected footprint of the particle's atoms on the detector grid.

Pixel (i, j) of an image with pixel size p [Å] sits at y = i·p, x = j·p (the simulation grid's
convention: pixel centres at integer multiples of the sampling, origin at the cell corner). An atom
covers the pixels within its covalent radius (ase.data.covalent_radii, Au: 1.36 Å) of its projected
position; the footprint is the union of these disks with its holes filled.
"""

from __future__ import annotations

import numpy as np
from ase.data import covalent_radii
from scipy.ndimage import binary_fill_holes, distance_transform_edt


def particle_mask(positions_xy: np.ndarray, numbers: np.ndarray, shape: tuple[int, int],
                  pixel_size_A: tuple[float, float], *, radius_scale: float = 1.0) -> np.ndarray:
    """Footprint of atoms at ``positions_xy`` (N, 2) [Å] (x, y) on a grid of ``shape`` (ny, nx).

    ``pixel_size_A`` is (py, px) [Å]; each atom covers a disk of ``radius_scale`` × its covalent
    radius [Å]. Atoms outside the grid are wrapped (the cell is periodic in x and y). Returns uint8
    (1 particle, 0 background).
    """
    positions_xy = np.asarray(positions_xy, dtype=float).reshape(-1, 2)
    ny, nx = shape
    py, px = pixel_size_A
    if len(positions_xy) == 0:
        return np.zeros(shape, np.uint8)
    radii = covalent_radii[np.asarray(numbers)] * radius_scale
    # Rasterise per distinct radius: distance from every pixel to the nearest atom centre.
    mask = np.zeros(shape, bool)
    for r in np.unique(radii):
        sel = radii == r
        centres = np.zeros(shape, bool)
        iy = np.rint(positions_xy[sel, 1] / py).astype(int) % ny
        ix = np.rint(positions_xy[sel, 0] / px).astype(int) % nx
        centres[iy, ix] = True
        dist = distance_transform_edt(~centres, sampling=(py, px))
        mask |= dist <= r
    return binary_fill_holes(mask).astype(np.uint8)


def particle_atoms_mask(atoms, shape: tuple[int, int], pixel_size_A: tuple[float, float]) -> np.ndarray:
    """The mask of the atoms with ``arrays['part'] == 1`` of an assembled model (see :func:`particle_mask`)."""
    part = atoms.arrays.get("part")
    sel = np.ones(len(atoms), bool) if part is None else part == 1
    return particle_mask(atoms.positions[sel, :2], atoms.numbers[sel], shape, pixel_size_A)
