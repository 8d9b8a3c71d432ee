"""The built-in engine as a backend: the batched torch multislice (``multislice.exit_waves``) and image
formation (``imaging.form_images``), on CUDA when present (``datagen.device``)."""

from __future__ import annotations

import dataclasses

import ase
import numpy as np
import torch

from datagen import __version__
from datagen.device import resolve_device
from datagen.simulate.backends.base import check_batch, check_settings, same_sampling, stack_images
from datagen.simulate.grid import grid_for_cell
from datagen.simulate.imaging import band_limited_shape, form_images
from datagen.simulate.multislice import exit_waves
from datagen.simulate.params import SimulationSettings


class MultisliceBackend:
    """The built-in torch multislice + image formation, batched and memory-bounded.

    The models are grouped by voltage and cell and simulated in chunks of at most ``batch_size``
    samples whose exit waves take at most half of ``max_batch_bytes``; the multislice working memory
    and the image formation each get the other half. Each sample draws its frozen-phonon
    displacements from its own generator, spawned from ``rng`` in sample order, so the images do not
    depend on the chunking.

    Parameters
    ----------
    device : Overrides ``settings.device`` ("auto", "cpu", "cuda[:N]").
    max_batch_bytes : Overrides ``settings.max_batch_bytes`` [bytes]: the device memory one chunk of
        samples may use; a larger batch is simulated chunk by chunk.
    batch_size : Most samples per multislice call. Default: 1 on the CPU, where a batch is slower per
        image (it runs the union of its samples' occupied slices and leaves the cache: 2x slower per
        image at 8 samples of the paper's 1200² grid on one core), and as many as fit the memory on a GPU.
    potential : "exact" (default: exact structure factors) or "abtem" (abTEM's bilinear deposition,
        to reproduce abTEM bit for bit in comparisons); see ``multislice.exit_waves``.
    bandlimit_transmission : Band-limit the transmission functions too, as abTEM does.
    """

    name = "multislice"

    def __init__(self, device: str | None = None, max_batch_bytes: int | None = None,
                 potential: str = "exact", bandlimit_transmission: bool = False, batch_size: int | None = None):
        if potential not in ("exact", "abtem"):
            raise ValueError(f"potential must be 'exact' or 'abtem', got {potential!r}")
        if batch_size is not None and not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be a positive number of samples, got {batch_size!r}")
        self.device_request = device
        self.max_batch_bytes = max_batch_bytes
        self.batch_size = batch_size
        self.exit_wave_options = {"potential": potential, "bandlimit_transmission": bool(bandlimit_transmission)}

    def version(self) -> str:
        return f"datagen-multislice {__version__} (torch {torch.__version__})"

    def device(self) -> str:
        return str(resolve_device(self.device_request))

    @classmethod
    def image_shape(cls, gpts, sampling, optics) -> tuple[int, int]:
        """The coarsest grid that holds the images' whole band (``imaging.band_limited_shape``)."""
        return band_limited_shape(gpts, sampling, optics)

    def simulate(self, models, optics, settings, rng=None):
        """As :meth:`SimulationBackend.simulate`; with an objective aperture the images come on the
        coarsest grid that holds all their frequencies (``imaging.band_limited_shape``), formed there
        at a fraction of the cost: the same images as at the simulation sampling, Fourier-resampled."""
        models, optics = check_batch(models, optics)
        settings = self._settings(settings)
        half = dataclasses.replace(settings, max_batch_bytes=max(settings.max_batch_bytes // 2, 2**20 + 1))
        batch_size = self.batch_size or (1 if resolve_device(settings.device).type == "cpu" else len(models))
        rngs = rng.spawn(len(models)) if isinstance(rng, np.random.Generator) else None
        images: list[np.ndarray | None] = [None] * len(models)
        sampling = None
        for (voltage_kv, cell), members in _groups(models, optics).items():
            grid = grid_for_cell(cell[:2], settings.sampling_A)
            shape = band_limited_shape(grid.gpts, grid.sampling, optics)  # one shape for the whole batch
            for index in _chunks(members, models[members[0]], settings, batch_size):
                waves, sampling_used = exit_waves([models[i] for i in index], half, voltage_kv,
                                                  rng if rngs is None else [rngs[i] for i in index],
                                                  **self.exit_wave_options)
                chunk = form_images(waves, sampling_used, [optics[i] for i in index],
                                    max_batch_bytes=half.max_batch_bytes, shape=shape)
                del waves
                for i, image in zip(index, chunk.cpu().numpy().astype(np.float32)):
                    images[i] = image
                extent = (grid.gpts[0] * sampling_used[0], grid.gpts[1] * sampling_used[1])
                sampling = same_sampling(sampling, (extent[0] / shape[0], extent[1] / shape[1]))
        return stack_images(images), sampling

    def _settings(self, settings: SimulationSettings) -> SimulationSettings:
        settings = check_settings(settings)
        changes = {}
        if self.device_request is not None:
            changes["device"] = self.device_request
        if self.max_batch_bytes is not None:
            changes["max_batch_bytes"] = int(self.max_batch_bytes)
        return dataclasses.replace(settings, **changes)


def _groups(models, optics) -> dict[tuple, list[int]]:
    """Sample indices grouped by (voltage [kV], cell lengths [Å]): one ``exit_waves`` call each."""
    groups: dict[tuple, list[int]] = {}
    for i, (atoms, o) in enumerate(zip(models, optics)):
        cell = tuple(np.round(atoms.cell.lengths(), 6))
        groups.setdefault((o.voltage_kv, cell), []).append(i)
    return groups


def _chunks(members: list[int], atoms: ase.Atoms, settings: SimulationSettings, batch_size: int) -> list[list[int]]:
    """Split a group into chunks of at most ``batch_size`` whose exit waves take at most half the memory budget."""
    lx, ly = atoms.cell.lengths()[:2]
    ny, nx = grid_for_cell((lx, ly), settings.sampling_A).gpts
    wave_bytes = max(1, settings.frozen_phonons) * ny * nx * 8  # complex64
    size = min(batch_size, max(1, (settings.max_batch_bytes // 2) // wave_bytes))
    return [members[i:i + size] for i in range(0, len(members), size)]
