"""What a simulation backend is: the protocol the generator calls, and the checks every backend shares.

A backend turns atomic models and per-sample optics into noise-free HRTEM images (vacuum = 1) at the
simulation sampling; the detector (``datagen.simulate.detector.apply_detector``) is applied by the
caller. Backends register in ``datagen.simulate.backends.BACKENDS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Protocol, runtime_checkable

import ase
import numpy as np

from datagen.errors import DatagenError
from datagen.simulate.params import Optics, SimulationSettings


@runtime_checkable
class SimulationBackend(Protocol):
    """What the generator and the orchestration ask of a backend."""

    name: str

    def version(self) -> str:
        """Name and version of the simulation code, for provenance."""
        ...

    def device(self) -> str:
        """Where it computes: "cpu", or "cuda:N" for a backend that batches on a GPU (the orchestration
        then runs one worker per GPU instead of one per core)."""
        ...

    @classmethod
    def image_shape(cls, gpts: tuple[int, int], sampling: tuple[float, float],
                    optics: Sequence[Optics]) -> tuple[int, int]:
        """Shape (ny, nx) of the images :meth:`simulate` returns for a simulation grid ``gpts`` at
        ``sampling`` [Å]; answered without building the backend (no program or library needed)."""
        ...

    def simulate(self, models: Sequence[ase.Atoms], optics: Sequence[Optics], settings: SimulationSettings,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, tuple[float, float]]:
        """Noise-free images (B, ny, nx) float32, vacuum = 1, at the simulation sampling (sy, sx) [Å].

        ``optics[i]`` images ``models[i]``; all models share the in-plane cell size. ``rng`` draws the
        frozen-phonon displacements (required when ``settings.frozen_phonons`` >= 1).
        """
        ...


def import_extra(module: str, missing: str) -> ModuleType:
    """Import the optional (GPL-3.0) extra ``module``, imported only when a backend that needs it is
    built; DatagenError ``missing (the import error)`` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise DatagenError(f"{missing} ({err})") from err


class CPUBackend:
    """What the backends that run external code on the CPU, one sample at a time, share: they compute
    on the CPU and return images on the simulation grid."""

    def device(self) -> str:
        return "cpu"

    @classmethod
    def image_shape(cls, gpts, sampling, optics) -> tuple[int, int]:
        """The simulation grid."""
        return tuple(gpts)


def check_batch(models, optics) -> tuple[list[ase.Atoms], list[Optics]]:
    """``models`` as a list of ase.Atoms and one Optics per model (a single Optics is shared)."""
    models = list(models)
    optics = [optics] if isinstance(optics, Optics) else list(optics)
    if not models or not all(isinstance(m, ase.Atoms) for m in models):
        raise ValueError("models must be a non-empty sequence of ase.Atoms")
    if len(optics) == 1:
        optics = optics * len(models)
    if len(optics) != len(models) or not all(isinstance(o, Optics) for o in optics):
        raise ValueError(f"optics must hold one Optics per model ({len(models)}), got {len(optics)}")
    return models, optics


def check_settings(settings) -> SimulationSettings:
    if not isinstance(settings, SimulationSettings):
        raise ValueError(f"settings must be SimulationSettings, got {type(settings).__name__}")
    return settings


def same_sampling(previous, current) -> tuple[float, float]:
    """``current`` (sy, sx) [Å], after checking that it equals ``previous`` (None: the first sample)."""
    current = (float(current[0]), float(current[1]))
    if previous is not None and not np.allclose(previous, current, rtol=1e-9, atol=0):
        raise ValueError(f"models must share one in-plane cell: samplings {previous} and {current} [Å] differ")
    return current


def stack_images(images: list[np.ndarray]) -> np.ndarray:
    """One (B, ny, nx) float32 array of per-sample images, which must share their shape."""
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise ValueError(f"models must share one in-plane cell: image shapes {sorted(shapes)} differ")
    return np.stack(images).astype(np.float32, copy=False)
