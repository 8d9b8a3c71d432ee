"""Simulation backends behind one protocol (``base.SimulationBackend``), and the registry they are
picked from by name. To add one: a module here with a class that has the protocol's methods, and
one line in ``BACKENDS``.

- ``"multislice"`` (default): the built-in batched torch engine, on CUDA when present.
- ``"abtem"``: abTEM 1.0 (GPL-3.0-or-later, the optional extra ``pip install .[abtem]``), imported
  only when the backend is built.
- ``"drprobe"``: Dr Probe's celslc/msa/wavimg programs, with drprobe-interface (GPL-3.0) imported
  only when the backend is built.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING

from datagen.errors import DatagenError

if TYPE_CHECKING:
    from datagen.simulate.backends.base import SimulationBackend

#: Backend name → "module:class", whose constructor takes the backend's options. Named, not imported:
#: recipes validate backend names without loading torch or a backend's module.
BACKENDS: dict[str, str] = {
    "multislice": "datagen.simulate.backends.multislice:MultisliceBackend",
    "abtem": "datagen.simulate.backends.abtem:AbtemBackend",
    "drprobe": "datagen.simulate.backends.drprobe:DrProbeBackend",
}


def backend_class(name: str) -> type:
    """The class registered under ``name``; DatagenError listing the known ones otherwise."""
    if name not in BACKENDS:
        raise DatagenError(f"backend: unknown backend {name!r}; known backends: {', '.join(sorted(BACKENDS))}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get_backend(name: str = "multislice", **options) -> SimulationBackend:
    """The backend registered under ``name`` ("multislice", the default, "abtem" or "drprobe"), built
    with ``options``.

    Raises DatagenError for an unknown name (listing the known ones), for an option the backend does
    not take (listing those it takes), for "abtem" when abTEM is not installed, and for "drprobe"
    when its programs or drprobe-interface are missing.
    """
    cls = backend_class(name)
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatagenError(f"backend {name}: no option {', '.join(unknown)} (its options: "
                           f"{', '.join(accepted) or 'none'})")
    return cls(**options)


__all__ = ["BACKENDS", "backend_class", "get_backend"]
