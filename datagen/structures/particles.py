"""One entry point for every particle kind: :func:`build_particle`.

Conventions (stated once, tested):

- Lengths in [Å]; the particle's centroid is at the origin; its orientation is uniform on SO(3)
  (``info["orientation"]`` maps crystal to lab coordinates, ``x_lab = R @ x_crystal``; for a
  stitched particle it is the first domain's).
- ``info["diameter"]`` is the *equivalent-sphere diameter* [Å], d = (6·N / (π·n))^(1/3), with n the
  bulk number density of the lattice (crystalline kinds) or the target density (amorphous): the
  diameter of a sphere holding the same atoms at that density. It equals the requested diameter
  for spherical cut-outs and amorphous packings up to surface granularity, and is what discrete
  shapes are matched on. ``info["max_extent"]`` [Å] is twice the largest centroid–atom distance.
- ``arrays["domain"]``: crystal domain per atom (0 for monocrystals, 0..n−1 for polycrystals,
  −1 for amorphous particles).
"""

from __future__ import annotations

import copy

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from datagen.structures.crystal import equivalent_diameter
from datagen.structures.kinds import KINDS, KindRequest
from datagen.structures.lattice import (check_element, check_length, check_positive, crystal_lattice, number_density,
                                        random_rotation)


def build_particle(kind: str, element: str, diameter: float, rng: np.random.Generator, *,
                   lattice_constant: float | None = None, min_distance: float | None = None,
                   density: float | None = None) -> Atoms:
    """Build one randomly oriented nanoparticle centred at the origin.

    Parameters
    ----------
    kind : One of ``datagen.structures.kinds.KINDS``.
    element : Chemical symbol. Crystalline kinds need an fcc, bcc or hcp metal in ase's reference
        data (octahedral shapes, icosahedra and decahedra need fcc); amorphous takes any element
        with a bulk reference state, or any element at all with ``min_distance`` and ``density``.
    diameter : Requested diameter [Å] (the paper: 10–30 Å). Spheres and amorphous packings use
        it as the sphere diameter; discrete shapes pick the size with the closest equivalent diameter.
    rng : Source of every random choice (orientation, lattice offset, cut planes, packing).
    lattice_constant : Lattice constant a [Å]; default ase's (Au 4.08 Å).
    min_distance : Smallest allowed interatomic distance [Å]: of the amorphous packing (default
        2.48 Å for Au, 0.86 × bulk nearest-neighbour distance otherwise) and across the domain
        boundaries of stitched particles (default 0.86 × the lattice's nearest-neighbour distance,
        2.48 Å for Au at a = 4.08 Å). Ignored by the other kinds.
    density : Target density of amorphous particles [g/cm³]; default 0.65 × bulk (see
        :mod:`datagen.structures.amorphous`). Ignored by crystalline kinds.

    Returns
    -------
    ase.Atoms with ``arrays["domain"]`` and JSON-able provenance in ``info`` ("kind", "label",
    "element", "structure", "diameter", "requested_diameter", "max_extent" [Å], "n_atoms",
    "n_domains", "orientation", "lattice_constant" [Å] (None for amorphous), plus kind-specific keys).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    spec = KINDS[kind]
    check_element(element)
    diameter = check_length("diameter", diameter)
    if min_distance is not None:
        min_distance = check_length("min_distance", min_distance)
    if density is not None:
        density = check_positive("density", density, "g/cm³")
    orientation = random_rotation(rng)
    lattice = crystal_lattice(element, lattice_constant) if spec.crystalline else None
    pos, domain, extra = spec.positions(KindRequest(element, lattice, diameter, rng, orientation,
                                                    min_distance=min_distance, density=density))
    if lattice is None:
        structure, a, n_domains = "amorphous", None, 0
        n_ref = number_density(extra["density"], element)
    else:
        structure, a, n_ref = lattice.structure, lattice.a, lattice.number_density
        n_domains = extra.pop("n_domains", 1)
    if domain is None:
        domain = np.zeros(len(pos), np.int64)
    centroid = pos.mean(axis=0)
    pos = pos - centroid
    if kind == "stitched":  # the cut planes' offsets are measured from this point [Å]
        extra["sphere_center"] = (-centroid).tolist()
    atoms = Atoms(numbers=np.full(len(pos), atomic_numbers[element]), positions=pos)
    atoms.arrays["domain"] = np.asarray(domain, np.int64)
    info = {
        "kind": kind,
        "label": spec.label,
        "element": element,
        "structure": structure,
        "diameter": float(equivalent_diameter(len(pos), n_ref)),
        "requested_diameter": diameter,
        "max_extent": float(2.0 * np.sqrt(np.einsum("ij,ij->i", pos, pos).max())),
        "n_atoms": len(pos),
        "n_domains": int(n_domains),
        "orientation": orientation.tolist(),
        "lattice_constant": a,
    }
    info.update(extra)
    atoms.info = copy.deepcopy(info)
    return atoms

