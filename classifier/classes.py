"""Class modes: which names a classifier predicts, and how a dataset's labels map onto them.

A dataset names its labels in the CF attributes of ``label`` (``flag_values`` and ``flag_meanings``),
so the mapping goes by name, never by a dataset's integer codes.
"""

from __future__ import annotations

import numpy as np

from classifier.errors import ClassifierError
from datagen.classes import CLASS_NAMES

#: The dataset classes, in the order of a three-class network's outputs.
AMORPHOUS, MONOCRYSTALLINE, POLYCRYSTALLINE = CLASS_NAMES
#: The two-class mode's name for mono- and polycrystalline particles together.
CRYSTALLINE = "crystalline"

#: The class names of each mode, in the order of the network's outputs.
MODES: dict[str, tuple[str, ...]] = {
    "three": CLASS_NAMES,
    "two": (AMORPHOUS, CRYSTALLINE),
}

#: A dataset class name -> the name it takes in each mode.
_ALIASES: dict[str, dict[str, str]] = {
    "three": {c: c for c in CLASS_NAMES},
    "two": {AMORPHOUS: AMORPHOUS, MONOCRYSTALLINE: CRYSTALLINE, POLYCRYSTALLINE: CRYSTALLINE,
            CRYSTALLINE: CRYSTALLINE},
}

#: The name a prediction takes when its confidence is below the model's threshold.
UNKNOWN = "unknown"


def predicted_labels(probs: np.ndarray, classes: tuple[str, ...], threshold: float) -> list[str]:
    """The reject rule: each row's most probable class name, or "unknown" where its probability (the
    prediction's confidence) is below ``threshold``."""
    probs = np.atleast_2d(np.asarray(probs))
    best = probs.argmax(axis=1)
    return [classes[k] if probs[i, k] >= threshold else UNKNOWN for i, k in enumerate(best)]


def class_names(mode: str) -> tuple[str, ...]:
    """The class names of ``mode`` ("three" or "two")."""
    if mode not in MODES:
        raise ClassifierError(f"mode: unknown class mode {mode!r} (use {' or '.join(map(repr, MODES))})")
    return MODES[mode]


def class_in_mode(name: str, mode: str) -> int:
    """The index in ``class_names(mode)`` of a dataset class ``name`` (mono- and polycrystalline are
    "crystalline" in the two-class mode)."""
    class_names(mode)  # checks the mode
    target = _ALIASES[mode].get(name)
    if target is None:
        raise ClassifierError(f"class {name!r} has no place in the {mode}-class mode {class_names(mode)}")
    return class_names(mode).index(target)


def map_labels(labels: np.ndarray, flag_values, flag_meanings: str, mode: str) -> np.ndarray:
    """A dataset's integer ``labels`` as indices into ``class_names(mode)`` (int64).

    ``flag_values`` and ``flag_meanings`` are the CF attributes of the dataset's ``label`` variable.
    """
    names = class_names(mode)
    meanings = str(flag_meanings).split()
    values = [int(v) for v in np.atleast_1d(flag_values)]
    if len(meanings) != len(values):
        raise ClassifierError(f"label: flag_values {values} and flag_meanings {meanings} differ in length")
    lookup = np.full(max(values) + 1, -1, dtype=np.int64)
    for value, meaning in zip(values, meanings):
        target = _ALIASES[mode].get(meaning)
        if target is None:
            raise ClassifierError(f"label: dataset class {meaning!r} has no place in the {mode}-class mode {names}")
        lookup[value] = names.index(target)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(lookup) or (lookup[labels] < 0).any()):
        raise ClassifierError(f"label: values outside flag_values {values}")
    return lookup[labels]
