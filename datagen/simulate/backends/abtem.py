"""abTEM as a simulation backend, with the same parametrization and optics as the built-in one.

abTEM (GPL-3.0-or-later) is an optional extra, ``pip install .[abtem]``, imported only inside these
functions. Mapping of our parameters (``datagen.simulate.params``) to abTEM's:

- potential: ``Potential(atoms, sampling=settings.sampling_A, slice_thickness=settings.slice_thickness_A,
  parametrization=settings.parametrization, projection="infinite")``; plane wave at ``voltage_kv·1e3`` [eV];
- ``defocus`` [Å] = −10 · defocus_nm (abTEM's defocus is −C1); ``Cs`` [Å] = 1e4 · cs_um;
- ``astigmatism`` (C12) [Å] = 10 · |A1|, ``astigmatism_angle`` (phi12) [rad] = atan2(a1y, a1x) / 2;
- ``semiangle_cutoff`` [mrad] = aperture_mrad (soft edge, abTEM's default); ``angular_spread`` [mrad] =
  convergence_mrad;
- temporal coherence: ``"envelope"`` → ``focal_spread`` [Å] = 10 · focal_spread_nm (same 1/e width);
  ``"focal_average"`` → a defocus distribution over the same Gauss–Hermite planes and weights as
  ``imaging.focal_quadrature``, averaged by abTEM's ensemble reduction;
- frozen phonons: ``FrozenPhonons`` with the per-element σ of ``phonons.displacement_table`` and a
  seed drawn from ``rng``. abTEM has no Debye–Waller-damped static potential: that setting raises.

FFTW runs with one thread and dask with the synchronous scheduler (parallelism belongs to the caller),
and abTEM's progress bars are off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ase
import numpy as np
from ase.data import chemical_symbols

from datagen.errors import DatagenError
from datagen.simulate.backends.base import CPUBackend, check_batch, import_extra, stack_images
from datagen.simulate.imaging import focal_quadrature
from datagen.simulate.params import Optics, SimulationSettings
from datagen.simulate.phonons import displacement_table

_INSTALL_HINT = "the abtem backend needs abTEM (GPL-3.0-or-later): pip install .[abtem]"


def _import_abtem():
    return import_extra("abtem", f"backend: {_INSTALL_HINT}")


def _config(abtem):
    return abtem.config.set({"fftw.threads": 1, "diagnostics.progress_bar": False})


def abtem_ctf(optics: Optics):
    """abTEM ``CTF`` equivalent to ``optics`` (see the module docstring for the mapping)."""
    abtem = _import_abtem()
    ax, ay = optics.astig_x_nm, optics.astig_y_nm
    kwargs = dict(
        energy=optics.voltage_kv * 1e3,
        Cs=optics.cs_um * 1e4,
        astigmatism=10 * math.hypot(ax, ay),
        astigmatism_angle=math.atan2(ay, ax) / 2,
        semiangle_cutoff=math.inf if optics.aperture_mrad is None else optics.aperture_mrad,
        angular_spread=optics.convergence_mrad,
    )
    if optics.temporal_model == "envelope" or optics.focal_spread_nm == 0:
        focal_spread = 10 * optics.focal_spread_nm if optics.temporal_model == "envelope" else 0.0
        return abtem.CTF(defocus=-10 * optics.defocus_nm, focal_spread=focal_spread, **kwargs)
    offsets, weights = focal_quadrature(optics.n_focal, optics.focal_spread_nm)
    defocus = abtem.distributions.from_values(-10 * (optics.defocus_nm + offsets), weights, ensemble_mean=True)
    return abtem.CTF(defocus=defocus, **kwargs)


class AbtemBackend(CPUBackend):
    """abTEM multislice + CTF, one model at a time, on the CPU.

    Parameters
    ----------
    scheduler : dask scheduler for abTEM's graphs (default "synchronous").
    """

    name = "abtem"

    def __init__(self, scheduler: str = "synchronous"):
        self._abtem = _import_abtem()
        self.scheduler = scheduler

    def version(self) -> str:
        return f"abtem {self._abtem.__version__}"

    def simulate(self, models: Sequence[ase.Atoms], optics: Sequence[Optics], settings: SimulationSettings,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, tuple[float, float]]:
        models, optics = check_batch(models, optics)
        if settings.debye_waller:
            raise DatagenError("backend: the abtem backend has no Debye-Waller-damped static potential; "
                               "use frozen_phonons instead, or the multislice backend")
        if settings.frozen_phonons and rng is None:
            raise ValueError("rng: a numpy.random.Generator is required when settings.frozen_phonons >= 1")
        images, sampling = [], None
        with _config(self._abtem):
            for atoms, o in zip(models, optics):
                image, sampling = self._image(atoms, o, settings, rng)
                images.append(image)
        return stack_images(images), sampling

    def _image(self, atoms: ase.Atoms, optics: Optics, settings: SimulationSettings, rng):
        abtem = self._abtem
        if settings.frozen_phonons:
            table = displacement_table(atoms.numbers)
            sigmas = {chemical_symbols[z]: sigma for z, sigma in table.items()}
            atoms = abtem.FrozenPhonons(atoms, num_configs=settings.frozen_phonons, sigmas=sigmas,
                                        seed=int(rng.integers(2**31)))
        potential = abtem.Potential(atoms, sampling=settings.sampling_A, slice_thickness=settings.slice_thickness_A,
                                    parametrization=settings.parametrization, projection="infinite")
        waves = abtem.PlaneWave(energy=optics.voltage_kv * 1e3).multislice(potential)
        measurement = waves.apply_ctf(abtem_ctf(optics)).intensity().reduce_ensemble()
        measurement = measurement.compute(scheduler=self.scheduler)
        sx, sy = measurement.sampling
        return np.asarray(measurement.array, dtype=np.float32).T, (float(sy), float(sx))  # abTEM is (x, y)
