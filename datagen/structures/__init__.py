"""Atomic models for simulated HRTEM: nanoparticles (crystalline, twinned, amorphous) on amorphous films.

All lengths in [Å], densities in [g/cm³]; every random function takes a ``numpy.random.Generator``,
so a seed fixes the model. The beam travels along +z and meets the particle before the film.

- :func:`build_particle` — one particle of a kind in ``KINDS`` (``datagen.structures.kinds``: the registry).
- :func:`build_support`, :func:`substitute` — an amorphous film, and the paper's C → Si variant.
- :func:`assemble`, :func:`build_sample` — the particle on the film in a box.
"""

from datagen.structures.assemble import DEFAULT_GAP, SampleSpec, assemble, build_sample, min_box_z
from datagen.structures.kinds import KINDS, PARTICLE_KINDS, ParticleKind
from datagen.structures.particles import build_particle
from datagen.structures.support import build_support, substitute, support_defaults

__all__ = [
    "DEFAULT_GAP",
    "KINDS",
    "PARTICLE_KINDS",
    "ParticleKind",
    "SampleSpec",
    "assemble",
    "build_particle",
    "build_sample",
    "build_support",
    "min_box_z",
    "substitute",
    "support_defaults",
]
