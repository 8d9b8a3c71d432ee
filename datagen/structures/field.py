"""A field of view: many particles of all classes resting on one support film.

Geometry (lengths in [Å]), as for one sample (``datagen.structures.assemble``): the beam travels
along +z, every particle lies on the beam-entrance side of the film, its largest-z atom ``gap`` above
the film's first atomic plane. The box is the field plus a ``guard`` band on every side: particle
centres are drawn inside the field, so a particle near its edge is cut by the field's border (the
image is the field, cropped from the simulated box) but never wraps across the periodic boundary.

Placement, in the order drawn: each particle is either placed alone (uniformly in the field, at least
``spacing`` from every other particle's outline) or, with probability ``touching_probability``,
touching one already placed (its outline ``contact`` from that particle's outline, in a random
direction), which makes touching pairs and, when repeated, small clusters. Outlines are the particles'
projected circles of radius half their largest extent (``info["max_extent"]``) in the plane. A
particle that finds no free place in ``max_tries`` proposals is not placed (the field is full).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from datagen.structures.assemble import DEFAULT_GAP
from datagen.structures.lattice import check_length


@dataclass(frozen=True)
class FieldLayout:
    """Where particles go in a field; lengths in [Å]."""

    field: tuple[float, float]  # field of view (x, y) [Å]
    guard: float = 15.0  # band around the field, inside the simulated box [Å]
    spacing: float = 3.0  # smallest outline-to-outline distance of particles placed alone [Å]
    contact: tuple[float, float] = (0.0, 2.0)  # outline-to-outline distance of touching particles [Å]
    touching_probability: float = 0.3
    gap: float = DEFAULT_GAP
    max_tries: int = 200


def place_particles(particles: list[Atoms], layout: FieldLayout, rng: np.random.Generator) -> list[np.ndarray | None]:
    """The (x, y) centre [Å] of each particle in box coordinates, or None where it found no place."""
    fx, fy = layout.field
    g = layout.guard
    radii = [_radius(p) for p in particles]
    centres: list[np.ndarray | None] = []
    placed: list[tuple[np.ndarray, float]] = []
    for r in radii:
        if r > g:
            raise ValueError(f"guard ({g:g} Å) must be at least the largest particle radius ({r:.1f} Å)")
        centre = None
        touching = placed and rng.random() < layout.touching_probability
        for _ in range(layout.max_tries):
            if touching:
                other, r_other = placed[int(rng.integers(len(placed)))]
                angle = rng.uniform(0, 2 * math.pi)
                d = r + r_other + rng.uniform(*layout.contact)
                c = other + d * np.array([math.cos(angle), math.sin(angle)])
                need = layout.contact[0]
            else:
                c = np.array([g + rng.random() * fx, g + rng.random() * fy])
                need = layout.spacing
            inside = g <= c[0] <= g + fx and g <= c[1] <= g + fy
            if inside and all(np.hypot(*(c - o)) >= r + ro + need - 1e-9 for o, ro in placed):
                centre = c
                break
        centres.append(centre)
        if centre is not None:
            placed.append((centre, r))
    return centres


def _radius(particle: Atoms) -> float:
    p = particle.positions - particle.positions.mean(axis=0)
    return float(np.hypot(p[:, 0], p[:, 1]).max())


def assemble_field(particles: list[Atoms], centres: list[np.ndarray | None], support: Atoms | None,
                   layout: FieldLayout) -> Atoms:
    """Particles at their ``centres`` on ``support`` (whose cell is the box width), in one model.

    Returns ase.Atoms, particles first in their order (those without a centre left out), then the film;
    cell = box (field + 2 guard; z the tallest particle + gap + film), pbc (True, True, False);
    ``arrays["part"]`` (1 particle, 0 support), ``arrays["particle"]`` (index of the particle in
    ``particles``, -1 for the film), ``arrays["domain"]``; ``info``: "field", "guard", "gap" [Å],
    "n_particles", and the film's "support_element", "support_thickness" [Å], "support_density" [g/cm³].
    """
    fx, fy = layout.field
    bx, by = fx + 2 * layout.guard, fy + 2 * layout.guard
    gap = check_length("gap", layout.gap, allow_zero=True)
    thickness = 0.0
    if support is not None:
        cell = support.cell.lengths()
        if abs(cell[0] - bx) > 1e-6 or abs(cell[1] - by) > 1e-6:
            raise ValueError(f"support width ({cell[0]:g}, {cell[1]:g} Å) must be the box's ({bx:g}, {by:g} Å)")
        thickness = float(cell[2])
    chosen = [(i, p, c) for i, (p, c) in enumerate(zip(particles, centres)) if c is not None]
    heights = [float(np.ptp(p.positions[:, 2])) for _, p, _ in chosen]
    tallest = max(heights, default=0.0)
    pad = 5.0
    bz = pad + tallest + gap + thickness + pad
    film_z0 = pad + tallest + gap  # the film's first atomic plane
    positions, numbers, part, index, domain = [], [], [], [], []
    for (i, p, c), _h in zip(chosen, heights):
        q = p.positions - p.positions.mean(axis=0)
        q = q + [c[0], c[1], film_z0 - gap - q[:, 2].max()]
        positions.append(q)
        numbers.append(p.numbers)
        part.append(np.ones(len(p), np.int8))
        index.append(np.full(len(p), i, np.int32))
        domain.append(p.arrays["domain"] if "domain" in p.arrays else np.zeros(len(p), np.int64))
    if support is not None:
        s = support.positions + [0.0, 0.0, film_z0 - support.positions[:, 2].min()]
        positions.append(s)
        numbers.append(support.numbers)
        part.append(np.zeros(len(support), np.int8))
        index.append(np.full(len(support), -1, np.int32))
        domain.append(np.full(len(support), -1, np.int64))
    if not positions:
        raise ValueError("a field with neither particles nor a film")
    atoms = Atoms(numbers=np.concatenate(numbers), positions=np.concatenate(positions), cell=[bx, by, bz],
                  pbc=(True, True, False))
    atoms.arrays["part"] = np.concatenate(part)
    atoms.arrays["particle"] = np.concatenate(index)
    atoms.arrays["domain"] = np.concatenate(domain).astype(np.int64)
    atoms.info = {"field": [fx, fy], "guard": layout.guard, "gap": gap, "n_particles": len(chosen),
                  "support_element": support.info.get("element", "none") if support is not None else "none",
                  "support_thickness": float(support.info.get("mean_thickness", thickness)) if support is not None else 0.0,
                  "support_density": float(support.info.get("density", np.nan)) if support is not None else np.nan}
    return atoms
