"""Assembly of one sample: a particle resting on a support film in a simulation box.

Geometry (lengths in [Å]): the beam travels along +z and enters the box at z = 0. The particle
lies at smaller z than the film, so the beam meets the particle first; its largest-z atom is
``gap`` above the film's first atomic plane (the particle rests on the film), and the
particle–film stack is centred in z. The film fills the box in x and y (periodic); the particle's
centroid is placed uniformly at random in x and y such that its projected outline keeps at least
``margin`` from the box edges, so it never wraps across the periodic boundary.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np
from ase import Atoms

from datagen.structures.lattice import check_length
from datagen.structures.particles import build_particle
from datagen.structures.support import build_support, substitute

DEFAULT_GAP = 2.0
"""Particle–film distance [Å]: about a metal–carbon contact distance."""


def _check_box(box) -> tuple[float, float, float]:
    try:
        bx, by, bz = box
    except (TypeError, ValueError):
        raise ValueError(f"box must be three lengths (x, y, z) [Å], got {box!r}") from None
    return check_length("box x", bx), check_length("box y", by), check_length("box z", bz)


def min_box_z(particle: Atoms, thickness: float, gap: float = DEFAULT_GAP) -> float:
    """Smallest box z [Å] that holds ``particle`` (any orientation it has) on a film of ``thickness`` [Å].

    Discrete shapes are matched on the equivalent-sphere diameter, so their tip-to-tip extent
    (``info["max_extent"]``) can exceed it by up to ~50 % (octahedra, regular decahedra): a 3 nm
    octahedron on a 2 nm film does not fit a 6 nm cube.
    """
    z = particle.positions[:, 2]
    return float(z.max() - z.min()) + (gap + thickness if thickness > 0 else 0.0)


def assemble(particle: Atoms, support: Atoms | None, box: tuple[float, float, float], rng: np.random.Generator,
             *, gap: float = DEFAULT_GAP, margin: float = 5.0) -> Atoms:
    """Place ``particle`` on ``support`` in a box (geometry in the module docstring).

    Parameters
    ----------
    particle : A particle from :func:`build_particle` (any Atoms; placed by its centroid).
    support : A film from :func:`build_support` whose cell is the box width, or None (no film).
    box : Box edges (x, y, z) [Å] (the paper: a 60 Å cube).
    rng : Draws the lateral position.
    gap : Distance [Å] between the particle's largest z and the film's smallest z.
    margin : Smallest distance [Å] between the particle's projected outline and the box edges.

    Returns
    -------
    ase.Atoms, particle atoms first, cell = box, pbc = (True, True, False), ``arrays["part"]``
    int8 (1 particle, 0 support), ``arrays["domain"]`` (support −1), and ``info``: the particle's
    provenance, the support's with a "support_" prefix ("support_element" is "none" without a
    film), "box", "gap", "margin" [Å], "particle_position" (centroid [Å]), "beam_direction".
    """
    bx, by, bz = _check_box(box)
    gap = check_length("gap", gap, allow_zero=True)
    margin = check_length("margin", margin, allow_zero=True)
    if len(particle) == 0:
        raise ValueError("particle has no atoms")
    p = particle.get_positions()
    p = p - p.mean(axis=0)
    rho = float(np.hypot(p[:, 0], p[:, 1]).max())
    free_x, free_y = bx - 2 * (rho + margin), by - 2 * (rho + margin)
    if free_x < 0 or free_y < 0:
        raise ValueError(f"box x, y ({bx:g}, {by:g} Å) too small for a particle of projected radius "
                         f"{rho:.1f} Å with margin {margin:g} Å")
    thickness = 0.0
    if support is not None:
        cell = support.cell.lengths()
        if abs(cell[0] - bx) > 1e-6 or abs(cell[1] - by) > 1e-6:
            raise ValueError(f"box x, y ({bx:g}, {by:g} Å) must equal the support's width "
                             f"({cell[0]:g}, {cell[1]:g} Å)")
        thickness = float(cell[2])
    height = float(p[:, 2].max() - p[:, 2].min())
    stack = height + (gap + thickness if support is not None else 0.0)
    if stack > bz:
        raise ValueError(f"box z ({bz:g} Å) too small for particle ({height:.1f} Å) + gap ({gap:g} Å) + "
                         f"support ({thickness:g} Å)")
    z0 = (bz - stack) / 2.0
    center = np.array([rho + margin + rng.random() * free_x, rho + margin + rng.random() * free_y,
                       z0 - p[:, 2].min()])
    positions = [p + center]
    numbers = [particle.numbers]
    part = [np.ones(len(particle), np.int8)]
    domain = [particle.arrays["domain"] if "domain" in particle.arrays else np.zeros(len(particle), np.int64)]
    if support is not None:
        s = support.get_positions()
        s = s + [0.0, 0.0, z0 + height + gap - s[:, 2].min()]
        positions.append(s)
        numbers.append(support.numbers)
        part.append(np.zeros(len(support), np.int8))
        domain.append(np.full(len(support), -1, np.int64))
    atoms = Atoms(numbers=np.concatenate(numbers), positions=np.concatenate(positions), cell=[bx, by, bz],
                  pbc=(True, True, False))
    atoms.arrays["part"] = np.concatenate(part)
    atoms.arrays["domain"] = np.concatenate(domain).astype(np.int64)
    info = copy.deepcopy(dict(particle.info))
    if support is None:
        info.update({"support_element": "none", "support_thickness": 0.0, "support_n_atoms": 0})
    else:
        info.update({f"support_{k}": copy.deepcopy(v) for k, v in support.info.items()})
    info.update({"box": [bx, by, bz], "gap": gap, "margin": margin, "particle_position": center.tolist(),
                 "beam_direction": [0.0, 0.0, 1.0]})
    atoms.info = info
    return atoms


@dataclass(frozen=True)
class SampleSpec:
    """Everything that fixes one sample's atomic model, except the random stream.

    kind, element : Particle kind (``PARTICLE_KINDS``) and element.
    diameter : Requested particle diameter [Å].
    support : Film element, or None for no film.
    support_substitute : If set (e.g. "Si"), the film is built as ``support`` and every atom then
        replaced by this element at the same position (the paper's stronger background).
    thickness : Film thickness [Å].
    box : Box edges [Å].
    lattice_constant, min_distance, density : Passed to :func:`build_particle` ([Å], [Å], [g/cm³]).
    support_density, support_min_distance : Passed to :func:`build_support` ([g/cm³], [Å]).
    gap, margin : Passed to :func:`assemble` [Å].
    """

    kind: str = "sphere"
    element: str = "Au"
    diameter: float = 20.0
    support: str | None = "C"
    support_substitute: str | None = None
    thickness: float = 20.0
    box: tuple[float, float, float] = (60.0, 60.0, 60.0)
    lattice_constant: float | None = None
    min_distance: float | None = None
    density: float | None = None
    support_density: float | None = None
    support_min_distance: float | None = None
    gap: float = DEFAULT_GAP
    margin: float = 5.0

    @classmethod
    def from_mapping(cls, spec: Mapping) -> SampleSpec:
        """Build from a dict; unknown keys raise ValueError naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(spec) - names)
        if unknown:
            raise ValueError(f"unknown sample spec key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        values = dict(spec)
        if "box" in values:
            values["box"] = tuple(values["box"])
        return cls(**values)

    def to_dict(self) -> dict:
        """JSON-able dict (the inverse of :meth:`from_mapping`)."""
        d = asdict(self)
        d["box"] = list(self.box)
        return d


def build_sample(spec: SampleSpec | Mapping, rng: np.random.Generator) -> Atoms:
    """Particle, film and assembly of one sample; ``info["spec"]`` keeps the spec as a dict."""
    if not isinstance(spec, SampleSpec):
        spec = SampleSpec.from_mapping(spec)
    box = _check_box(spec.box)
    particle = build_particle(spec.kind, spec.element, spec.diameter, rng, lattice_constant=spec.lattice_constant,
                              min_distance=spec.min_distance, density=spec.density)
    film = None
    if spec.support is not None:
        film = build_support(spec.support, box[0], box[1], spec.thickness, rng, density=spec.support_density,
                             min_distance=spec.support_min_distance)
        if spec.support_substitute is not None:
            film = substitute(film, spec.support, spec.support_substitute)
    atoms = assemble(particle, film, box, rng, gap=spec.gap, margin=spec.margin)
    atoms.info["spec"] = spec.to_dict()
    return atoms
