"""Elements, bulk lattices, densities, random rotations and crystal symmetry.

Conventions used by every builder in :mod:`datagen.structures`:

- Lengths in [Å], mass densities in [g/cm³], number densities in [1/Å³].
- A rotation ``R`` maps crystal coordinates to laboratory coordinates, ``x_lab = R @ x_crystal``
  (row vectors: ``positions @ R.T``); orientations are drawn uniformly on SO(3) (Haar measure).
- The default minimum distance of an amorphous packing is 2.48 Å for Au (Novaes et al.) and
  ``MIN_DISTANCE_FACTOR`` × the bulk nearest-neighbour distance otherwise (2.48 / 2.884 = 0.86 for Au,
  so both rules agree on Au).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from ase.build import bulk
from ase.data import atomic_masses, atomic_numbers, reference_states

AVOGADRO = 6.02214076e23
"""Avogadro constant [1/mol]."""

MIN_DISTANCE_FACTOR = 0.86
"""Default amorphous minimum distance as a fraction of the bulk nearest-neighbour distance."""

NOVAES_MIN_DISTANCE = {"Au": 2.48}
"""Minimum distances [Å] taken from the literature (Au: Novaes et al., as used by Gumbiowski et al.)."""

CRYSTAL_STRUCTURES = ("fcc", "bcc", "hcp")


def check_element(element) -> str:
    """Return ``element`` if it is a chemical symbol ase knows, else raise ValueError naming it."""
    if not isinstance(element, str) or element not in atomic_numbers or element == "X":
        raise ValueError(f"element must be a chemical symbol known to ase (e.g. 'Au'), got {element!r}")
    return element


def check_length(name: str, value, *, allow_zero: bool = False) -> float:
    """Return ``value`` as float if it is a finite positive length [Å], else raise ValueError naming it."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value > 0 or (allow_zero and value == 0))
    if not ok:
        rule = "a finite number >= 0" if allow_zero else "a finite positive number"
        raise ValueError(f"{name} must be {rule} [Å], got {value!r}")
    return float(value)


def check_positive(name: str, value, unit: str) -> float:
    """Return ``value`` as float if finite and > 0, else raise ValueError naming ``name`` and ``unit``."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite positive number [{unit}], got {value!r}")
    return float(value)


def atomic_mass(element: str) -> float:
    """Standard atomic mass of ``element`` [g/mol]."""
    return float(atomic_masses[atomic_numbers[check_element(element)]])


def number_density(density: float, element: str) -> float:
    """Number density [1/Å³] of ``element`` at mass density ``density`` [g/cm³]."""
    return float(density * AVOGADRO / atomic_mass(element) * 1e-24)


def mass_density(n: float, element: str) -> float:
    """Mass density [g/cm³] of ``element`` at number density ``n`` [1/Å³]."""
    return float(n * atomic_mass(element) / AVOGADRO * 1e24)


@dataclass(frozen=True)
class Lattice:
    """A bulk crystal: ``cell`` rows are the lattice vectors [Å], ``basis`` fractional coordinates.

    ``structure`` is "fcc" or "bcc" (conventional cubic cell) or "hcp" (a1 = (a, 0, 0),
    a2 = (−a/2, a√3/2, 0), a3 = (0, 0, c)); ``a`` is the lattice constant [Å].
    """

    structure: str
    a: float
    cell: np.ndarray
    basis: np.ndarray

    @property
    def number_density(self) -> float:
        """Atoms per volume [1/Å³]."""
        return len(self.basis) / abs(float(np.linalg.det(self.cell)))

    @property
    def nearest_neighbour(self) -> float:
        """Nearest-neighbour distance [Å]."""
        if self.structure == "fcc":
            return self.a / math.sqrt(2.0)
        if self.structure == "bcc":
            return self.a * math.sqrt(3.0) / 2.0
        c = self.cell[2, 2]
        return min(self.a, math.sqrt(self.a**2 / 3.0 + c**2 / 4.0))


    def reflections(self, max_index: int = 3) -> list[tuple[tuple[int, int, int], float]]:
        """The lattice planes that diffract, largest spacing first: one (hkl, d [Å]) per distinct d,
        hkl with non-negative indices where possible (kinematic structure factor of the basis ≠ 0)."""
        r = range(-max_index, max_index + 1)
        hkl = np.array([(h, k, l) for h in r for k in r for l in r if (h, k, l) != (0, 0, 0)])
        g = hkl @ np.linalg.inv(self.cell).T  # reciprocal vectors [1/Å], rows
        d = 1.0 / np.linalg.norm(g, axis=1)
        f = np.abs(np.exp(2j * np.pi * hkl @ self.basis.T).sum(axis=1))
        found: dict[float, tuple[int, int, int]] = {}
        for i in np.lexsort((-hkl.min(axis=1), -d)):  # largest d first, then the most positive indices
            if f[i] > 1e-6:
                h = tuple(int(v) for v in hkl[i])
                if self.structure != "hcp":  # cubic: the conventional (h >= k >= l >= 0) name of the family
                    h = tuple(sorted(map(abs, h), reverse=True))
                found.setdefault(round(float(d[i]), 4), h)
        return [(h, d_) for d_, h in found.items()]


def crystal_lattice(element: str, lattice_constant: float | None = None) -> Lattice:
    """The fcc, bcc or hcp lattice of ``element`` from ase's reference data.

    Parameters
    ----------
    element : Chemical symbol; its ase reference state must be fcc, bcc or hcp.
    lattice_constant : Lattice constant a [Å] overriding ase's (Au: 4.08 Å); for hcp the
        reference c/a is kept.
    """
    ref = reference_states[atomic_numbers[check_element(element)]] or {}
    structure = ref.get("symmetry")
    if structure not in CRYSTAL_STRUCTURES:
        raise ValueError(f"element {element!r} has reference structure {structure!r} in ase; "
                         f"crystalline models need one of {', '.join(CRYSTAL_STRUCTURES)}")
    a = ref["a"] if lattice_constant is None else check_length("lattice_constant", lattice_constant)
    if structure == "fcc":
        basis = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
        cell = np.eye(3) * a
    elif structure == "bcc":
        basis = [[0, 0, 0], [0.5, 0.5, 0.5]]
        cell = np.eye(3) * a
    else:
        c = a * ref["c/a"]
        cell = np.array([[a, 0, 0], [-a / 2, a * math.sqrt(3) / 2, 0], [0, 0, c]])
        basis = [[0, 0, 0], [1 / 3, 2 / 3, 0.5]]
    return Lattice(structure, float(a), np.asarray(cell, float), np.asarray(basis, float))


@functools.lru_cache(maxsize=None)
def bulk_reference(element: str) -> tuple[float, float]:
    """Bulk number density [1/Å³] and nearest-neighbour distance [Å] of ``element`` (ase reference state).

    Works for every element whose reference state ``ase.build.bulk`` can build (fcc, bcc, hcp,
    diamond, sc, rhombohedral, orthorhombic …); raises ValueError naming ``element`` otherwise.
    """
    check_element(element)
    try:
        lat = crystal_lattice(element)
        return lat.number_density, lat.nearest_neighbour
    except ValueError:
        pass
    try:
        atoms = bulk(element)
    except Exception as exc:  # ase raises several types for molecular or unknown reference states
        raise ValueError(f"element {element!r} has no bulk reference state in ase ({exc}); "
                         "pass min_distance and density explicitly") from None
    n = len(atoms) / atoms.get_volume()
    sup = atoms.repeat((3, 3, 3))
    d = sup.get_all_distances(mic=True)
    d = d[d > 1e-6]
    return float(n), float(d.min())


def default_min_distance(element: str) -> float:
    """Default minimum interatomic distance [Å] of amorphous ``element``: Novaes for Au, else 0.86 · d_nn."""
    if element in NOVAES_MIN_DISTANCE:
        return NOVAES_MIN_DISTANCE[element]
    return MIN_DISTANCE_FACTOR * bulk_reference(element)[1]


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly on SO(3) (normalised Gaussian quaternion)."""
    w, x, y, z = rng.normal(size=4)
    n = math.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def random_unit_vector(rng: np.random.Generator) -> np.ndarray:
    """A unit vector drawn uniformly on the sphere."""
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


@functools.lru_cache(maxsize=None)
def proper_point_group(structure: str) -> np.ndarray:
    """The rotations (det +1) of the crystal's point group: 24 for cubic, 12 (622) for hcp."""
    if structure in ("fcc", "bcc"):
        ops = []
        for perm in ((0, 1, 2), (1, 2, 0), (2, 0, 1), (0, 2, 1), (2, 1, 0), (1, 0, 2)):
            for signs in np.ndindex(2, 2, 2):
                m = np.zeros((3, 3))
                for row, col in enumerate(perm):
                    m[row, col] = 1 - 2 * signs[row]
                if np.linalg.det(m) > 0:
                    ops.append(m)
        return np.array(ops)
    if structure == "hcp":
        ops = []
        for k in range(6):
            t = k * math.pi / 3
            c, s = math.cos(t), math.sin(t)
            ops.append(np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]))
            t2 = 2 * (k * math.pi / 6)
            ops.append(np.array([[math.cos(t2), math.sin(t2), 0], [math.sin(t2), -math.cos(t2), 0], [0, 0, -1]]))
        return np.array(ops)
    raise ValueError(f"structure must be one of {CRYSTAL_STRUCTURES}, got {structure!r}")


def misorientation_deg(r1: np.ndarray, r2: np.ndarray, structure: str) -> float:
    """Smallest rotation angle [deg] between two crystal orientations, modulo the crystal's symmetry."""
    delta = r1.T @ r2
    traces = np.einsum("ij,kji->k", delta, proper_point_group(structure))
    cos = np.clip((traces.max() - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(cos)))
