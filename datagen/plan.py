"""Planning: which class, structure and split each sample index gets, from the catalog seed alone.

The plan is a pure function of the recipe, cheap to recompute anywhere (O(n_samples)), so a
sample's content never depends on worker count, task order or restarts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datagen.classes import CLASS_NAMES, MIXED_LABEL
from datagen.store.schema import SPLIT_NAMES

#: Second word of the seed sequence for the plan's own stream; sample streams use (seed, index).
PLAN_STREAM = 2**32 + 1


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of sample ``index`` of a catalog with seed ``seed``."""
    return np.random.default_rng([int(seed), int(index)])


@dataclass(frozen=True)
class Plan:
    """Per-sample class label (index into CLASS_NAMES), structure id and split name."""

    labels: np.ndarray
    structure_ids: np.ndarray
    splits: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, sl: slice) -> "Plan":
        return Plan(self.labels[sl], self.structure_ids[sl], self.splits[sl])


def assign_splits(structure_labels: np.ndarray, fractions: dict[str, float],
                  rng: np.random.Generator) -> np.ndarray:
    """Split structures into train/val/test, stratified by class, in the given fractions.

    Within each class the structures are shuffled and the first ``round(train·n)`` go to train,
    the next ``round(val·n)`` to val and the rest to test.
    """
    out = np.empty(len(structure_labels), dtype=object)
    for label in np.unique(structure_labels):
        idx = rng.permutation(np.flatnonzero(structure_labels == label))
        n_train = int(round(fractions["train"] * len(idx)))
        n_val = int(round(fractions["val"] * len(idx)))
        n_val = min(n_val, len(idx) - n_train)
        out[idx[:n_train]] = SPLIT_NAMES[0]
        out[idx[n_train:n_train + n_val]] = SPLIT_NAMES[1]
        out[idx[n_train + n_val:]] = SPLIT_NAMES[2]
    return out


def make_plan(recipe) -> Plan:
    """The plan of a recipe: classes shuffled over the sample indices, one structure per sample.

    A recipe without class counts (fields of view, which hold particles of every class) labels every
    sample ``MIXED_LABEL``; its splits are then a plain shuffle of the samples."""
    rng = np.random.default_rng([int(recipe.seed), PLAN_STREAM])
    if recipe.classes:
        labels = np.concatenate([np.full(recipe.classes.get(name, 0), i, dtype="int8")
                                 for i, name in enumerate(CLASS_NAMES)])
    else:
        labels = np.full(recipe.n_samples, MIXED_LABEL, dtype="int8")
    labels = rng.permutation(labels)
    structure_ids = np.arange(len(labels), dtype="int64")
    splits = assign_splits(labels, recipe.split.model_dump(), rng)
    return Plan(labels, structure_ids, splits)
