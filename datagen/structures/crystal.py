"""Monocrystalline particles: spherical cut-outs, the octahedral family of ase.cluster, Wulff shapes.

Every builder returns positions in the crystal frame, centred at the origin, plus its provenance;
:func:`datagen.structures.particles.build_particle` rotates and wraps them into ``ase.Atoms``.
Shapes that come in discrete sizes pick the size whose equivalent-sphere diameter
d_eq = (6·N / (π·n_bulk))^(1/3) is closest to the requested one. Lengths in [Å].
"""

from __future__ import annotations

import functools
import math

import numpy as np
from ase.cluster import Octahedron

from datagen.structures.lattice import Lattice, check_length, proper_point_group

WULFF_ENERGIES = {
    "fcc": {(1, 1, 1): 1.00, (1, 0, 0): 1.14, (1, 1, 0): 1.23},
    "bcc": {(1, 1, 0): 1.00, (1, 0, 0): 1.12, (2, 1, 1): 1.10},
    "hcp": {(0, 0, 1): 1.00, (1, 0, 0): 1.10, (1, 0, 1): 1.08},
}
"""Relative surface energies of the Wulff construction (fcc: γ111 < γ100 < γ110 as for Au, Pt, Ag;
bcc: γ110 lowest; hcp: basal, prism {10−10}, pyramidal {10−11}, (hkl) in the hexagonal cell)."""

WULFF_CENTERS = {
    "fcc": ((0.0, 0.0, 0.0), (0.5, 0.5, 0.5)),
    "bcc": ((0.0, 0.0, 0.0), (0.5, 0.5, 0.0)),
    "hcp": ((0.0, 0.0, 0.0), (1 / 6, 1 / 3, 1 / 4)),
}
"""Inversion centres (fractional) tried as the particle centre: an atom and an interstice."""

WULFF_JITTER = 0.10
"""Each family's surface energy is multiplied by a factor drawn uniformly from 1 ± WULFF_JITTER."""


def equivalent_diameter(n_atoms: int, number_density: float) -> float:
    """Diameter [Å] of the sphere holding ``n_atoms`` at ``number_density`` [1/Å³]."""
    return (6.0 * n_atoms / (math.pi * number_density)) ** (1.0 / 3.0)


def lattice_points(lattice: Lattice, radius: float, center_frac=(0.0, 0.0, 0.0)) -> np.ndarray:
    """All lattice sites within ``radius`` [Å] of the point ``center_frac`` (fractional coordinates).

    Returns positions [Å] relative to that point, in the crystal frame.
    """
    cell = lattice.cell
    recip = np.linalg.inv(cell).T
    n = np.ceil(radius * np.linalg.norm(recip, axis=1)).astype(int) + 1
    c = np.asarray(center_frac, float)
    base = np.floor(c).astype(int)
    grids = [np.arange(b - k, b + k + 1) for b, k in zip(base, n)]
    g = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, 1, 3)
    frac = (g + lattice.basis[None, :, :]).reshape(-1, 3) - c
    pos = frac @ cell
    return pos[np.einsum("ij,ij->i", pos, pos) <= radius * radius * (1 + 1e-12)]


def sphere_positions(lattice: Lattice, diameter: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Lattice sites inside a sphere of ``diameter`` [Å] whose centre is a random point of the unit cell.

    The centre is uniform in the unit cell, so spheres of one diameter differ in atom count and
    surface; the offset is recorded as ``center_offset`` (fractional coordinates).
    """
    check_length("diameter", diameter)
    offset = rng.random(3)
    pos = lattice_points(lattice, diameter / 2.0, offset)
    if len(pos) == 0:
        raise ValueError(f"diameter {diameter!r} Å is too small to hold one lattice site")
    return pos, {"center_offset": offset.tolist()}


def _octahedron_count(length: int, cutoff: int) -> int:
    """Atoms in ase's ``Octahedron(length, cutoff)``: the octahedron minus six square pyramids."""
    return length * (2 * length * length + 1) // 3 - cutoff * (cutoff + 1) * (2 * cutoff + 1)


def _octahedral_candidates(kind: str, max_length: int) -> list[tuple[int, int]]:
    """(length, cutoff) pairs of ase's octahedral family for one kind."""
    if kind == "octahedron":
        return [(L, 0) for L in range(2, max_length + 1)]
    if kind == "cuboctahedron":
        return [(2 * c + 1, c) for c in range(1, (max_length - 1) // 2 + 1)]
    if kind == "truncated_octahedron":
        return [(L, c) for c in range(1, max_length) for L in (3 * c, 3 * c + 1, 3 * c + 2)
                if 2 * c + 1 < L <= max_length]
    raise ValueError(f"kind must be an octahedral shape, got {kind!r}")


@functools.lru_cache(maxsize=256)
def _octahedron_template(a: float, length: int, cutoff: int) -> np.ndarray:
    pos = Octahedron("Au", length, cutoff, latticeconstant=a).get_positions()
    pos = pos - pos.mean(axis=0)
    pos.setflags(write=False)
    return pos


def octahedral_positions(kind: str, lattice: Lattice, diameter: float) -> tuple[np.ndarray, dict]:
    """An fcc ``ase.cluster.Octahedron`` of the kind and the size closest to ``diameter`` [Å].

    ``kind``: "octahedron" (cutoff 0), "cuboctahedron" (length = 2·cutoff + 1) or
    "truncated_octahedron" (0 < cutoff < (length − 1)/2 with length within ±1 of the regular
    3·cutoff + 1). Sizes compare by equivalent-sphere diameter; ties go to the smaller particle.
    """
    check_length("diameter", diameter)
    if lattice.structure != "fcc":
        raise ValueError(f"kind {kind!r} needs an fcc element, got a {lattice.structure} lattice")
    n = lattice.number_density
    max_length = int(3 * diameter / lattice.a) + 6
    best = min(_octahedral_candidates(kind, max_length),
               key=lambda lc: (abs(equivalent_diameter(_octahedron_count(*lc), n) - diameter),
                               _octahedron_count(*lc)))
    pos = np.array(_octahedron_template(lattice.a, *best))
    return pos, {"length": best[0], "cutoff": best[1]}


def _family_normals(lattice: Lattice, hkl, symmetry: np.ndarray) -> np.ndarray:
    """Unit normals [crystal frame] of all planes symmetry-equivalent to (hkl), incl. inversion."""
    recip = np.linalg.inv(lattice.cell).T
    g = np.asarray(hkl, float) @ recip
    g /= np.linalg.norm(g)
    normals = np.concatenate([symmetry @ g, -(symmetry @ g)])
    _, idx = np.unique(np.round(normals, 6), axis=0, return_index=True)
    return normals[np.sort(idx)]


def wulff_positions(lattice: Lattice, diameter: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A Wulff-construction particle with the closed shell closest to ``diameter`` [Å].

    Same rule as ``ase.cluster.wulff_construction``: the particle is the set of lattice sites x
    (relative to a centre from ``WULFF_CENTERS``) with x·n̂ ≤ λ·γ for every facet normal n̂ of
    every family; the families and relative energies γ are ``WULFF_ENERGIES`` each times
    1 ± ``WULFF_JITTER`` (drawn from ``rng``), and λ and the centre are chosen so that the
    equivalent-sphere diameter is closest to ``diameter``. Works for fcc, bcc and hcp, in about a
    millisecond (ase's iterative search takes tens).
    """
    check_length("diameter", diameter)
    families = WULFF_ENERGIES[lattice.structure]
    energies = {hkl: g * (1.0 + WULFF_JITTER * (2 * rng.random() - 1)) for hkl, g in families.items()}
    ops = proper_point_group(lattice.structure)
    normals, gammas = [], []
    for hkl, gamma in energies.items():
        nf = _family_normals(lattice, hkl, ops)
        normals.append(nf)
        gammas.append(np.full(len(nf), gamma))
    normals, gammas = np.concatenate(normals), np.concatenate(gammas)
    radius = 0.6 * diameter * gammas.max() / gammas.min() + lattice.a
    best = None
    for center in WULFF_CENTERS[lattice.structure]:
        while True:
            pos = lattice_points(lattice, radius, center)
            s = np.max((pos @ normals.T) / gammas, axis=1)
            shells, counts = np.unique(np.round(s, 9), return_counts=True)
            d_eq = (6.0 * np.cumsum(counts) / (math.pi * lattice.number_density)) ** (1 / 3)
            k = int(np.argmin(np.abs(d_eq - diameter)))
            keep = s <= shells[k] + 1e-8
            if k < len(shells) - 1 and np.linalg.norm(pos[keep], axis=1).max() < radius - lattice.a:
                break
            radius *= 1.5
        if best is None or abs(d_eq[k] - diameter) < best[0]:
            best = (abs(d_eq[k] - diameter), pos[keep], center, float(shells[k]))
    _, pos, center, lam = best
    info = {"surfaces": [list(h) for h in energies], "surface_energies": [float(g) for g in energies.values()],
            "wulff_lambda": lam, "wulff_center": list(center)}
    return pos - pos.mean(axis=0), info
