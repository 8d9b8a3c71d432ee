"""Particle detectors: a registry of what turns a micrograph into a label image.

``DETECTORS[name]`` is "module:function"; the function takes (image, pixel_size_nm, settings) and
returns (labels, annotations): an int32 label image (0 background, 1..N one particle each) and the
mask of burned-in annotations it ignored.
"""

from __future__ import annotations

import importlib

from classifier.errors import ClassifierError

DETECTORS = {
    "classical": "classifier.detection.classical:detect",
    "unet": "classifier.detection.unet:detect",
}


def get_detector(name: str):
    """The detection function registered under ``name``."""
    if name not in DETECTORS:
        raise ClassifierError(f"--detector: {name!r} is not available (known: {', '.join(DETECTORS)})")
    module, func = DETECTORS[name].split(":")
    return getattr(importlib.import_module(module), func)
