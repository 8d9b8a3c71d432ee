"""Amorphous support films: random sequential packing in a slab, periodic in x and y.

The paper's film: amorphous carbon, box width, 1–3 nm thick, no two atoms closer than 1.60 Å; and
the same positions with C replaced by Si for a stronger background (:func:`substitute`).
The slab is packed periodic in z as well and then used as a slab z ∈ [0, thickness): a hard wall
in z would pile atoms up against both surfaces, the periodic packing keeps the density uniform to
the surfaces, and distances inside the slab are never below the minimum (the direct distance is at
least the minimum-image one). Lengths in [Å], densities in [g/cm³].
"""

from __future__ import annotations

import copy

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from datagen.structures.amorphous import amorphous_defaults, check_reachable
from datagen.structures.lattice import (check_element, check_length, check_positive, default_min_distance, mass_density,
                                        number_density)
from datagen.structures.packing import random_sequential_packing

SUPPORT_DENSITY = {"C": 2.0, "Si": 2.28}
"""Default film densities [g/cm³]: amorphous carbon film (≈ 2.0, evaporated a-C), amorphous Si (2.28)."""

SUPPORT_MIN_DISTANCE = {"C": 1.60}
"""Default film minimum distances [Å]: 1.60 Å for carbon (the paper); others 0.86 × bulk d_nn."""


def support_defaults(element: str) -> tuple[float, float]:
    """Default (min_distance [Å], density [g/cm³]) of a film of ``element``.

    C: 1.60 Å and 2.0 g/cm³; Si: 0.86 · d_nn = 2.02 Å and 2.28 g/cm³ (amorphous Si); any other
    element: the amorphous-particle defaults (0.86 · d_nn, 0.65 × bulk density).
    """
    d_min = SUPPORT_MIN_DISTANCE.get(element)
    if d_min is None:
        d_min = default_min_distance(element)
    rho = SUPPORT_DENSITY.get(element)
    if rho is None:
        rho = amorphous_defaults(element)[1]
    return d_min, rho


def build_support(element: str, width_x: float, width_y: float, thickness: float, rng: np.random.Generator, *,
                  density: float | None = None, min_distance: float | None = None) -> Atoms:
    """An amorphous film filling ``width_x`` × ``width_y`` [Å], atoms at 0 ≤ z < ``thickness`` [Å].

    Parameters
    ----------
    element : Film element (the paper: C).
    width_x, width_y : Film extent [Å] (the box width); the film is periodic in x and y and the
        minimum distance holds across those boundaries.
    thickness : Film thickness [Å] (the paper: 10–30 Å).
    rng : Source of all random numbers: a new film for every call.
    density : Mass density [g/cm³]; default from :func:`support_defaults` (C: 2.0).
    min_distance : Smallest interatomic distance [Å]; default from :func:`support_defaults` (C: 1.60).

    Returns
    -------
    ase.Atoms with cell (width_x, width_y, thickness), pbc (True, True, False) and ``info``:
    "element", "width_x", "width_y", "thickness" [Å], "density" (actual) and "target_density"
    [g/cm³], "min_distance" [Å], "n_atoms", "n_attempts", "substituted_from" (None).
    """
    check_element(element)
    wx = check_length("width_x", width_x)
    wy = check_length("width_y", width_y)
    t = check_length("thickness", thickness)
    if min_distance is None or density is None:
        d_default, rho_default = support_defaults(element)
        min_distance = d_default if min_distance is None else min_distance
        density = rho_default if density is None else density
    min_distance = check_length("min_distance", min_distance)
    density = check_positive("density", density, "g/cm³")
    n = number_density(density, element)
    check_reachable(n, min_distance, density)
    volume = wx * wy * t
    n_target = int(round(n * volume))
    pos, attempts = random_sequential_packing(n_target, (0.0, 0.0, 0.0), (wx, wy, t), min_distance, rng,
                                              periodic=(True, True, True))
    if len(pos) < n_target:
        raise ValueError(f"min_distance={min_distance:g} Å did not reach density={density:g} g/cm³ "
                         f"within {attempts} proposals; lower the density or the min_distance")
    atoms = Atoms(numbers=np.full(len(pos), atomic_numbers[element]), positions=pos,
                  cell=[wx, wy, t], pbc=(True, True, False))
    atoms.info = {
        "element": element, "width_x": wx, "width_y": wy, "thickness": t,
        "density": mass_density(len(pos) / volume, element), "target_density": density,
        "min_distance": min_distance, "n_atoms": len(pos), "n_attempts": int(attempts),
        "substituted_from": None,
    }
    return atoms


def substitute(atoms: Atoms, old: str, new: str) -> Atoms:
    """A copy of ``atoms`` with every ``old`` atom replaced by ``new`` at the same position.

    The paper's stronger background: a carbon film with C → Si. ``info`` is deep-copied; if its
    "element" is ``old`` it becomes ``new`` with "substituted_from" = ``old``, and a "density"
    [g/cm³] is recomputed from the cell volume (the mass changes, the positions do not).
    """
    check_element(old)
    check_element(new)
    mask = atoms.numbers == atomic_numbers[old]
    if not mask.any():
        raise ValueError(f"old element {old!r} does not occur in the atoms")
    out = atoms.copy()
    out.info = copy.deepcopy(atoms.info)
    numbers = out.numbers.copy()
    numbers[mask] = atomic_numbers[new]
    out.numbers = numbers
    if out.info.get("element") == old:
        out.info["element"] = new
        out.info["substituted_from"] = old
        volume = abs(out.cell.volume)
        if "density" in out.info and volume > 0 and mask.all():
            out.info["density"] = mass_density(len(out) / volume, new)
            out.info["target_density"] = out.info["density"]
    return out


def roughen(film: Atoms, rms: float, length: float, rng: np.random.Generator) -> Atoms:
    """A film whose thickness varies across it, as real amorphous films do (thickness and density
    fluctuations at nm scales give the support's coarse speckle).

    The top surface lies at ``info["thickness"]`` - 2.5 ``rms`` + ``rms`` g(x, y), g a periodic Gaussian
    random field of unit variance and correlation length ``length`` [Å] (white noise filtered by a
    Gaussian of that sigma), clipped at the film's top: the mean thickness drops by 2.5 ``rms`` (build
    the film that much thicker). Atoms above the surface are removed; ``info`` gains
    "roughness_rms", "roughness_length" [Å] and the new "n_atoms" and "mean_thickness" [Å]."""
    rms = check_length("rms", rms, allow_zero=True)
    length = check_length("length", length)
    if rms == 0:
        return film
    wx, wy, t = film.cell.lengths()
    n = (max(8, int(np.ceil(wy / (length / 3)))), max(8, int(np.ceil(wx / (length / 3)))))
    field = rng.normal(size=n)
    ky = np.fft.fftfreq(n[0], d=wy / n[0])[:, None]
    kx = np.fft.fftfreq(n[1], d=wx / n[1])[None, :]
    field = np.fft.ifft2(np.fft.fft2(field) * np.exp(-2 * (np.pi * length) ** 2 * (kx**2 + ky**2))).real
    field = (field - field.mean()) / (field.std() or 1.0)
    depth = rms * np.clip(2.5 - field, 0, None)  # how far below the film's top the surface lies
    iy = (film.positions[:, 1] / wy * n[0]).astype(int) % n[0]
    ix = (film.positions[:, 0] / wx * n[1]).astype(int) % n[1]
    keep = film.positions[:, 2] <= t - depth[iy, ix]
    out = film[keep]
    out.info = copy.deepcopy(film.info)
    out.info.update({"roughness_rms": rms, "roughness_length": length, "n_atoms": int(keep.sum()),
                     "mean_thickness": float(t - depth.mean())})
    return out
