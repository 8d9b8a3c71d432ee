"""The dataset schema, declared once: the variables every store has, and a store's layout.

A ``Variable`` carries its dimensions, dtype, CF ``units`` and ``long_name`` (both required) and
extra CF attributes (flags); a ``Layout`` fixes sample count, chunking, image shape, the
generator's provenance variables and the atom capacity. ``datagen.store.zarrstore`` writes and reads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from datagen.classes import CLASS_NAMES, MIXED_LABEL

SPLIT_NAMES = ("train", "val", "test")
PART_NAMES = ("support", "particle")


@dataclass(frozen=True)
class Variable:
    """One variable of the store's schema.

    ``dims`` starts with "sample" (or "atom" for the flat atom arrays); ``dtype`` is a numpy dtype
    name or "str" for variable-length strings. ``units`` follows CF ("1" for dimensionless).
    """

    name: str
    dims: tuple[str, ...]
    dtype: str
    units: str
    long_name: str
    attrs: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if not self.units or not self.long_name:
            raise ValueError(f"variable {self.name!r} needs units and long_name")

    @property
    def fill(self):
        if self.dtype == "str":
            return ""
        kind = np.dtype(self.dtype).kind
        return np.nan if kind == "f" else 0


def _flags(names: Sequence[str]) -> dict:
    return {"flag_values": list(range(len(names))), "flag_meanings": " ".join(names)}


def label_names(label) -> dict[int, str]:
    """Label value -> class name, from the CF flags of a dataset's ``label`` variable (an xarray
    DataArray): the inverse of the flags written here."""
    values = [int(v) for v in np.atleast_1d(label.attrs.get("flag_values", []))]
    return dict(zip(values, str(label.attrs.get("flag_meanings", "")).split()))


def core_variables(mixed_labels: bool = False) -> tuple[Variable, ...]:
    """Variables every dataset has, whatever generated it; with ``mixed_labels`` (fields of view) the
    label of a sample may also be ``MIXED_LABEL`` (particles of several classes, each labelled on its own)."""
    label_flags = _flags(CLASS_NAMES)
    if mixed_labels:
        label_flags = {"flag_values": [MIXED_LABEL, *label_flags["flag_values"]],
                       "flag_meanings": "mixed " + label_flags["flag_meanings"]}
    return (
        Variable("image", ("sample", "y", "x"), "float32", "1",
                 "image intensity (simulations: normalised so that vacuum is 1)"),
        Variable("mask", ("sample", "y", "x"), "uint8", "1", "ground-truth particle mask",
                 _flags(("background", "particle"))),
        Variable("label", ("sample",), "int8", "1", "crystallinity class", label_flags),
        Variable("split", ("sample",), "str", "1", "train/val/test split, assigned by structure"),
        Variable("structure_id", ("sample",), "int64", "1",
                 "identifier of the atomic model (or pattern) the image shows"),
        Variable("seed", ("sample",), "int64", "1",
                 "catalog seed; the sample's generator is numpy.random.default_rng([seed, sample])"),
    )


ATOM_VARIABLES = (
    Variable("atom_start", ("sample",), "int64", "1", "index of the sample's first atom in the atom arrays"),
    Variable("n_atoms", ("sample",), "int32", "1", "number of atoms in the sample's model"),
    Variable("cell", ("sample", "vector"), "float32", "angstrom", "orthorhombic cell lengths of the model"),
)
FLAT_ATOM_VARIABLES = (
    Variable("xyz", ("atom", "xyz"), "float32", "angstrom", "atom positions"),
    Variable("Z", ("atom",), "uint8", "1", "atomic number"),
    Variable("part", ("atom",), "int8", "1", "which part of the model the atom belongs to", _flags(PART_NAMES)),
)


@dataclass(frozen=True)
class Layout:
    """Shape of a store: sample count, chunking, image size, provenance schema, atom capacity."""

    n_samples: int
    chunk_size: int
    image_shape: tuple[int, int]
    provenance: tuple[Variable, ...] = ()
    dim_sizes: Mapping[str, int] = field(default_factory=dict)
    atoms_per_sample: int = 0
    mixed_labels: bool = False

    def __post_init__(self):
        if self.n_samples < 1 or self.chunk_size < 1:
            raise ValueError("n_samples and chunk_size must be positive")
        names = [v.name for v in self.variables]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"duplicate variable names in schema: {sorted(dupes)}")

    @property
    def variables(self) -> tuple[Variable, ...]:
        return core_variables(self.mixed_labels) + tuple(self.provenance)

    @property
    def n_chunks(self) -> int:
        return -(-self.n_samples // self.chunk_size)

    def chunk_slice(self, chunk: int) -> slice:
        if not 0 <= chunk < self.n_chunks:
            raise IndexError(f"chunk {chunk} out of range 0..{self.n_chunks - 1}")
        return slice(chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, self.n_samples))

    @property
    def atom_block(self) -> int:
        """Slots of the flat atom arrays owned by one sample chunk."""
        return self.chunk_size * self.atoms_per_sample

    def sizes(self) -> dict[str, int]:
        return {"sample": self.n_samples, "y": self.image_shape[0], "x": self.image_shape[1],
                "vector": 3, "xyz": 3, "atom": self.n_chunks * self.atom_block, **self.dim_sizes}
