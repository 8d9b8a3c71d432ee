"""The particle kinds, in one registry: ``KINDS[name]`` gives a kind's class label, how to build its
atom positions, how far it reaches past its diameter and its share in the default recipe.

To add a kind: write its positions function (in ``crystal.py``, ``polycrystal.py`` or a new module)
and add one ``ParticleKind`` below; ``build_particle``, the recipes' checks and defaults, the box
checks and the ``structure`` CLI all read this table.

A positions function takes a :class:`KindRequest` and returns (positions [Å] in the lab frame,
per-atom domain index or None for a single domain, kind-specific provenance). Crystalline kinds get
the lattice and a rotation drawn uniformly on SO(3) before anything else; amorphous kinds get no
lattice (the rotation is drawn all the same, so every kind consumes the generator alike).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from datagen.classes import CLASS_NAMES
from datagen.structures.amorphous import amorphous_positions
from datagen.structures.crystal import octahedral_positions, sphere_positions, wulff_positions
from datagen.structures.lattice import MIN_DISTANCE_FACTOR, Lattice
from datagen.structures.polycrystal import decahedron_positions, icosahedron_positions, stitched_positions


@dataclass(frozen=True)
class KindRequest:
    """What a positions function gets: element, lattice (None for amorphous kinds), diameter [Å], the
    random generator, the drawn rotation (crystal → lab), and the optional minimum distance [Å] and
    density [g/cm³] (``build_particle``'s arguments)."""

    element: str
    lattice: Lattice | None
    diameter: float
    rng: np.random.Generator
    orientation: np.ndarray
    min_distance: float | None = None
    density: float | None = None


Positions = tuple[np.ndarray, "np.ndarray | None", dict]


@dataclass(frozen=True)
class ParticleKind:
    """One particle kind.

    name : Its name in recipes and provenance.
    label : The class it carries, one of ``CLASS_NAMES``.
    positions : KindRequest -> (positions [Å], domain per atom or None, provenance).
    extent_factor : Largest tip-to-tip extent over the requested diameter: the worst seen over 196
        builds per kind at 0.8-3.2 nm, plus 5 % (discrete shapes snap to the nearest magic size, and
        regular octahedra and decahedra are elongated). The recipes size their boxes with it.
    default_weight : Its relative weight within its class in the default recipe (0: not drawn).
    """

    name: str
    label: str
    positions: Callable[[KindRequest], Positions]
    extent_factor: float
    default_weight: float

    def __post_init__(self):
        if self.label not in CLASS_NAMES:
            raise ValueError(f"kind {self.name}: label must be one of {CLASS_NAMES}, got {self.label!r}")

    @property
    def crystalline(self) -> bool:
        return self.label != "amorphous"


def _rotated(positions_of):
    """A crystal-frame positions function as a lab-frame one (rotated by the drawn orientation)."""

    def positions(req: KindRequest) -> Positions:
        pos, extra = positions_of(req)
        return pos @ req.orientation.T, None, extra

    return positions


def _octahedral(kind: str):
    return _rotated(lambda req: octahedral_positions(kind, req.lattice, req.diameter))


def _icosahedron(req: KindRequest) -> Positions:
    pos, domain, extra = icosahedron_positions(req.lattice, req.diameter)
    return pos @ req.orientation.T, domain, extra


def _decahedron(req: KindRequest) -> Positions:
    pos, domain, extra = decahedron_positions(req.lattice, req.diameter, req.rng)
    return pos @ req.orientation.T, domain, extra


def _stitched(req: KindRequest) -> Positions:
    d_min = req.min_distance if req.min_distance is not None else MIN_DISTANCE_FACTOR * req.lattice.nearest_neighbour
    return stitched_positions(req.lattice, req.diameter, req.rng, min_distance=d_min, orientation=req.orientation)


def _amorphous(req: KindRequest) -> Positions:
    pos, extra = amorphous_positions(req.element, req.diameter, req.rng, min_distance=req.min_distance,
                                     density=req.density)
    return pos, np.full(len(pos), -1, np.int64), extra


KINDS: dict[str, ParticleKind] = {k.name: k for k in (
    ParticleKind("sphere", "monocrystalline", _rotated(lambda r: sphere_positions(r.lattice, r.diameter, r.rng)),
                 1.15, 0.6),
    ParticleKind("octahedron", "monocrystalline", _octahedral("octahedron"), 1.5, 0.1),
    ParticleKind("truncated_octahedron", "monocrystalline", _octahedral("truncated_octahedron"), 1.2, 0.1),
    ParticleKind("cuboctahedron", "monocrystalline", _octahedral("cuboctahedron"), 1.3, 0.1),
    ParticleKind("wulff", "monocrystalline", _rotated(lambda r: wulff_positions(r.lattice, r.diameter, r.rng)),
                 1.25, 0.1),
    ParticleKind("stitched", "polycrystalline", _stitched, 1.25, 0.8),
    ParticleKind("icosahedron", "polycrystalline", _icosahedron, 1.3, 0.1),
    ParticleKind("decahedron", "polycrystalline", _decahedron, 1.65, 0.1),
    ParticleKind("amorphous", "amorphous", _amorphous, 1.15, 1.0),
)}

#: Particle kind → class label.
PARTICLE_KINDS: dict[str, str] = {name: k.label for name, k in KINDS.items()}


def default_kind_weights() -> dict[str, dict[str, float]]:
    """Class label → {kind: weight} of the default recipe, in registry order (the order draws use)."""
    return {label: {k.name: k.default_weight for k in KINDS.values() if k.label == label and k.default_weight > 0}
            for label in CLASS_NAMES}
