"""Ground-truth particle masks: the projected footprint of the particle's atoms on the detector grid.

Pixel (i, j) of an image with pixel size p [Å] sits at y = i·p, x = j·p (the simulation grid's
convention: pixel centres at integer multiples of the sampling, origin at the cell corner). An atom
covers the pixels within its covalent radius (ase.data.covalent_radii, Au: 1.36 Å) of its projected
position; the footprint is the union of these disks with its holes filled.
"""

from __future__ import annotations

import numpy as np
from ase.data import covalent_radii
from scipy.ndimage import binary_fill_holes, distance_transform_edt, find_objects


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


def instance_mask(positions_xy: np.ndarray, instance: np.ndarray, numbers: np.ndarray, shape: tuple[int, int],
                  pixel_size_A: tuple[float, float]) -> np.ndarray:
    """Instance footprints of atoms at ``positions_xy`` (N, 2) [Å] on a grid of ``shape`` (no wrapping).

    ``instance`` (N,) gives each atom's instance id (1, 2, ...). A pixel belongs to the instance of
    its nearest atom centre when it lies within that atom's covalent radius (so footprints that
    overlap in projection are split between the particles along the line of equal distance); each
    footprint's holes are filled. Atoms outside the grid are ignored. Returns uint16 (0 background).
    """
    ny, nx = shape
    py, px = pixel_size_A
    out = np.zeros(shape, np.uint16)
    positions_xy = np.asarray(positions_xy, float).reshape(-1, 2)
    iy = np.rint(positions_xy[:, 1] / py).astype(int)
    ix = np.rint(positions_xy[:, 0] / px).astype(int)
    inside = (iy >= 0) & (iy < ny) & (ix >= 0) & (ix < nx)
    if not inside.any():
        return out
    ids = np.zeros(shape, np.uint16)
    radius = np.zeros(shape, float)
    ids[iy[inside], ix[inside]] = np.asarray(instance)[inside]
    radius[iy[inside], ix[inside]] = covalent_radii[np.asarray(numbers)[inside]]
    dist, (jy, jx) = distance_transform_edt(ids == 0, sampling=(py, px), return_indices=True)
    near = ids[jy, jx]
    out = np.where(dist <= radius[jy, jx], near, 0).astype(np.uint16)
    for k, box in enumerate(find_objects(out), start=1):
        if box is None:
            continue
        filled = binary_fill_holes(out[box] == k)
        out[box][filled & (out[box] == 0)] = k
    return out


def touching_pairs(instances: np.ndarray) -> set[tuple[int, int]]:
    """Pairs (smaller id, larger id) of instances whose footprints share an edge."""
    pairs = set()
    for a, b in ((instances[:, 1:], instances[:, :-1]), (instances[1:, :], instances[:-1, :])):
        sel = (a != b) & (a > 0) & (b > 0)
        for u, v in zip(a[sel].tolist(), b[sel].tolist()):
            pairs.add((min(u, v), max(u, v)))
    return pairs
