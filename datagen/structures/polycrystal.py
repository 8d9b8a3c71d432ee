"""Polycrystalline particles: stitched spheres (Gumbiowski et al.), icosahedra and Ino/Marks decahedra.

Lengths in [Å]. Every builder also returns a per-atom domain index.

Stitching (the paper's rule): two spheres of the same diameter, cut from differently rotated
lattices, share a cutting plane with a random normal at a random distance s ∈ [0, r/2] from their
common centre; the part of the first sphere with x·n < s is joined to the part of the second with
x·n ≥ s. With probability 1/2 a third sphere is joined the same way along a second plane whose
angle to the first is at least ``MIN_PLANE_ANGLE_DEG`` — the same as rotating the two-domain
particle so that the cut planes are not parallel and cutting again along a fixed plane.

Too-close rule: after stitching, for every pair of atoms from different domains closer than the
minimum distance, the atom of the domain added later is removed (removing atoms cannot create new
close pairs, so one pass suffices).
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
from ase.cluster import Decahedron, Icosahedron
from scipy.spatial import cKDTree

from datagen.structures.crystal import equivalent_diameter, sphere_positions
from datagen.structures.lattice import Lattice, check_length, misorientation_deg, random_rotation, random_unit_vector

THIRD_DOMAIN_PROBABILITY = 0.5
MIN_MISORIENTATION_DEG = 15.0
"""Domains of a stitched particle differ by at least this rotation (modulo crystal symmetry)."""
MIN_PLANE_ANGLE_DEG = 20.0
"""The two cutting planes of a three-domain particle are at least this far from parallel."""
MIN_DOMAIN_FRACTION = 0.10
"""Every domain of a stitched particle keeps at least this fraction of the atoms (planes redrawn)."""
_MAX_TRIES = 1000


def remove_close_pairs(positions: np.ndarray, domain: np.ndarray, min_distance: float) -> np.ndarray:
    """Boolean mask of atoms to keep: of each cross-domain pair closer than ``min_distance`` [Å],
    the atom with the larger domain index (the domain added later) is dropped."""
    keep = np.ones(len(positions), bool)
    pairs = cKDTree(positions).query_pairs(min_distance, output_type="ndarray")
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        cross = domain[i] != domain[j]
        later = np.where(domain[i] > domain[j], i, j)[cross]
        keep[later] = False
    return keep


def _draw_orientation(rng, previous, structure) -> np.ndarray:
    for _ in range(_MAX_TRIES):
        r = random_rotation(rng)
        if all(misorientation_deg(p, r, structure) >= MIN_MISORIENTATION_DEG for p in previous):
            return r
    raise RuntimeError("could not draw a distinct domain orientation")


def stitched_positions(lattice: Lattice, diameter: float, rng: np.random.Generator, *,
                       min_distance: float, orientation: np.ndarray):
    """A stitched particle of 2 or 3 domains in the laboratory frame.

    Parameters
    ----------
    lattice : Bulk lattice of every domain.
    diameter : Diameter of the stitched spheres [Å].
    rng : Source of all random choices.
    min_distance : Atoms of different domains closer than this [Å] are resolved (module docstring).
    orientation : Rotation (crystal → lab) of the first domain; the others are drawn uniformly on
        SO(3), at least ``MIN_MISORIENTATION_DEG`` from every earlier one.

    Returns
    -------
    positions [Å] (lab frame, sphere centre at the origin), domain indices, provenance dict.
    """
    check_length("diameter", diameter)
    r = diameter / 2.0
    n_domains = 3 if rng.random() < THIRD_DOMAIN_PROBABILITY else 2
    rotations = [np.asarray(orientation, float)]
    for _ in range(1, n_domains):
        rotations.append(_draw_orientation(rng, rotations, lattice.structure))
    spheres, offsets = [], []
    for rot in rotations:
        pos, meta = sphere_positions(lattice, diameter, rng)
        spheres.append(pos @ rot.T)
        offsets.append(meta["center_offset"])
    pos, dom = spheres[0], np.zeros(len(spheres[0]), np.int64)
    normals, cuts = [], []
    for k in range(1, n_domains):
        for _ in range(_MAX_TRIES):
            n = random_unit_vector(rng)
            s = rng.uniform(0.0, r / 2.0)
            if any(abs(n @ m) > math.cos(math.radians(MIN_PLANE_ANGLE_DEG)) for m in normals):
                continue
            old = pos @ n < s
            new = spheres[k] @ n >= s
            counts = np.append(np.bincount(dom[old], minlength=k), new.sum())
            if counts.min() >= MIN_DOMAIN_FRACTION * counts.sum():
                break
        else:
            raise RuntimeError("could not place a cutting plane keeping every domain")
        pos = np.concatenate([pos[old], spheres[k][new]])
        dom = np.concatenate([dom[old], np.full(int(new.sum()), k, np.int64)])
        normals.append(n)
        cuts.append(s)
    keep = remove_close_pairs(pos, dom, min_distance)
    misorientations = [misorientation_deg(rotations[i], rotations[j], lattice.structure)
                       for i, j in itertools.combinations(range(n_domains), 2)]
    info = {
        "n_domains": n_domains,
        "domain_orientations": [rot.tolist() for rot in rotations],
        "domain_center_offsets": offsets,
        "cut_normals": [n.tolist() for n in normals],
        "cut_offsets": [float(s) for s in cuts],
        "misorientations_deg": misorientations,
        "min_distance": float(min_distance),
        "n_removed_close": int((~keep).sum()),
    }
    return pos[keep], dom[keep], info


def _icosahedron_count(shells: int) -> int:
    return (10 * shells**3 - 15 * shells**2 + 11 * shells - 3) // 3


@functools.lru_cache(maxsize=64)
def _icosahedron_template(a: float, shells: int) -> tuple[np.ndarray, np.ndarray]:
    pos = Icosahedron("Au", shells, latticeconstant=a).get_positions()
    t = 0.5 + math.sqrt(5) / 2.0
    verts = np.array([[t, 0, 1], [t, 0, -1], [-t, 0, 1], [-t, 0, -1], [1, t, 0], [-1, t, 0],
                      [1, -t, 0], [-1, -t, 0], [0, 1, t], [0, -1, t], [0, 1, -t], [0, -1, -t]])
    faces = [verts[list(f)].sum(axis=0) for f in itertools.combinations(range(12), 3)
             if all(abs(np.linalg.norm(verts[i] - verts[j]) - 2.0) < 1e-9 for i, j in itertools.combinations(f, 2))]
    faces = np.array(faces) / np.linalg.norm(faces, axis=1, keepdims=True)
    domain = np.argmax(pos @ faces.T + 1e-9 * np.arange(20), axis=1)
    for arr in (pos, domain):
        arr.setflags(write=False)
    return pos, domain


def icosahedron_positions(lattice: Lattice, diameter: float):
    """A Mackay icosahedron (ase.cluster.Icosahedron) with the equivalent diameter closest to ``diameter`` [Å].

    Domains are its 20 twinned tetrahedra (an atom belongs to the face its direction points to;
    the centre atom and atoms on twin planes go to the lowest such face). Needs an fcc lattice.
    """
    check_length("diameter", diameter)
    if lattice.structure != "fcc":
        raise ValueError(f"kind 'icosahedron' needs an fcc element, got a {lattice.structure} lattice")
    n = lattice.number_density
    shells = min(range(1, int(diameter / lattice.a) + 4),
                 key=lambda k: abs(equivalent_diameter(_icosahedron_count(k), n) - diameter))
    pos, domain = _icosahedron_template(lattice.a, shells)
    return np.array(pos), np.array(domain), {"n_domains": 20, "n_shells": shells}


def decahedron_count(p: int, q: int, r: int) -> int:
    """Number of atoms in ase's ``Decahedron(p, q, r)`` (same loops, counted without building)."""
    h = p + q + 2 * r - 1
    g = h - q + 1
    total = h
    for n in range(1, min(h, g)):
        ring = sum(1 for i in range(n) if n - i < g - r and i < g - r)
        total += 5 * ring * (h - n)
    return total


DECAHEDRON_VARIANTS = ("regular", "ino", "marks")


def decahedron_parameters(variant: str, p: int) -> tuple[int, int, int]:
    """(p, q, r) of ase's Decahedron for a variant: regular (q=1, r=0), Ino (q = max(2, p−1), r=0),
    Marks (q = max(2, p−1), r = max(1, round(p/3)))."""
    if variant == "regular":
        return p, 1, 0
    q = max(2, p - 1)
    if variant == "ino":
        return p, q, 0
    if variant == "marks":
        return p, q, max(1, round(p / 3))
    raise ValueError(f"decahedron variant must be one of {DECAHEDRON_VARIANTS}, got {variant!r}")


@functools.lru_cache(maxsize=128)
def _decahedron_template(a: float, p: int, q: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    pos = Decahedron("Au", p, q, r, latticeconstant=a).get_positions()
    pos = pos - pos.mean(axis=0)
    phi = np.mod(np.arctan2(pos[:, 1], pos[:, 0]) - math.pi / 2 + 1e-9, 2 * math.pi)
    domain = np.floor(phi / (2 * math.pi / 5)).astype(np.int64) % 5
    domain[np.hypot(pos[:, 0], pos[:, 1]) < 1e-6] = 0
    for arr in (pos, domain):
        arr.setflags(write=False)
    return pos, domain


def decahedron_positions(lattice: Lattice, diameter: float, rng: np.random.Generator):
    """A regular, Ino or Marks decahedron (ase.cluster.Decahedron; variant drawn uniformly) with the
    equivalent diameter closest to ``diameter`` [Å]. Its 5 domains are the twinned wedges between
    the five twin planes through the five-fold axis (the crystal-frame z axis). Needs fcc."""
    check_length("diameter", diameter)
    if lattice.structure != "fcc":
        raise ValueError(f"kind 'decahedron' needs an fcc element, got a {lattice.structure} lattice")
    variant = DECAHEDRON_VARIANTS[int(rng.integers(len(DECAHEDRON_VARIANTS)))]
    n = lattice.number_density
    p_max = int(1.5 * diameter / lattice.a) + 4
    p, q, r = min((decahedron_parameters(variant, p) for p in range(1, p_max)),
                  key=lambda pqr: abs(equivalent_diameter(decahedron_count(*pqr), n) - diameter))
    pos, domain = _decahedron_template(lattice.a, p, q, r)
    return np.array(pos), np.array(domain), {"n_domains": 5, "variant": variant, "p": p, "q": q, "r": r}
