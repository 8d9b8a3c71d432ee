"""Parameters of a simulation: optics of the objective lens, detector, and numerical settings.

Conventions, stated once and tested against abTEM:

- **Defocus sign.** ``defocus_nm`` is the aberration coefficient C1 (Krivanek notation):
  *positive is overfocus, negative is underfocus*; Scherzer defocus is negative for positive Cs.
  abTEM's ``defocus`` is −C1, so ``abtem_defocus_Å = -10 * defocus_nm``.
- **Focal spread.** ``focal_spread_nm`` is the 1/e half-width Δ of the Gaussian distribution of
  focus, exp(−f²/Δ²), the same quantity abTEM calls ``focal_spread`` and Dr Probe the focus spread.
  Its standard deviation is σ = Δ/√2.
- **Two-fold astigmatism** as x/y components (a1x, a1y) of the complex A1 = a1x + i·a1y. It enters
  the aberration phase as (2π/λ)·Re{½·A1·ω̄²} with ω = λ(kx + i·ky), i.e.
  π·λ·(a1x·(kx² − ky²) + 2·a1y·kx·ky). In abTEM's polar form: C12 = |A1|, phi12 = atan2(a1y, a1x)/2.
- **Cs** is C3 in [µm]; the aperture and the illumination convergence are semi-angles in [mrad].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

TemporalModel = Literal["focal_average", "envelope"]


def _require(condition: bool, name: str, value, rule: str) -> None:
    if not condition:
        raise ValueError(f"{name} must be {rule}, got {value!r}")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@dataclass(frozen=True)
class Optics:
    """The objective lens and illumination of one image.

    Parameters
    ----------
    voltage_kv : Accelerating voltage [kV].
    defocus_nm : C1 [nm]; positive = overfocus (see module docstring).
    focal_spread_nm : 1/e half-width of the focus distribution [nm]; 0 = fully coherent in time.
    astig_x_nm, astig_y_nm : Two-fold astigmatism A1 components [nm].
    cs_um : Spherical aberration C3 [µm].
    aperture_mrad : Objective aperture semi-angle [mrad]; ``None`` = no aperture.
    convergence_mrad : Illumination semi-angle for the spatial-coherence envelope [mrad]: the 1/e half-width
        θ₀ of a Gaussian distribution of incidence angles exp(−θ²/θ₀²) (Kirkland's α₀; abTEM's
        ``angular_spread``, whose docstring calls it a standard deviation); 0 = none.
    temporal_model : "focal_average" (explicit average over focus, Gauss–Hermite) or
        "envelope" (quasi-coherent temporal envelope on the linear image).
    n_focal : Number of focal planes in the explicit focal average.
    """

    voltage_kv: float = 300.0
    defocus_nm: float = 0.0
    focal_spread_nm: float = 0.0
    astig_x_nm: float = 0.0
    astig_y_nm: float = 0.0
    cs_um: float = 0.0
    aperture_mrad: float | None = None
    convergence_mrad: float = 0.0
    temporal_model: TemporalModel = "focal_average"
    n_focal: int = 7

    def __post_init__(self):
        _require(_finite(self.voltage_kv) and 10 <= self.voltage_kv <= 3000, "voltage_kv", self.voltage_kv,
                 "a number of kV in [10, 3000]")
        for name in ("defocus_nm", "astig_x_nm", "astig_y_nm", "cs_um"):
            _require(_finite(getattr(self, name)), name, getattr(self, name), "a finite number")
        _require(_finite(self.focal_spread_nm) and self.focal_spread_nm >= 0, "focal_spread_nm",
                 self.focal_spread_nm, "a number >= 0 nm")
        _require(self.aperture_mrad is None or (_finite(self.aperture_mrad) and self.aperture_mrad > 0),
                 "aperture_mrad", self.aperture_mrad, "a positive number of mrad or None")
        _require(_finite(self.convergence_mrad) and self.convergence_mrad >= 0, "convergence_mrad",
                 self.convergence_mrad, "a number >= 0 mrad")
        _require(self.temporal_model in ("focal_average", "envelope"), "temporal_model",
                 self.temporal_model, "'focal_average' or 'envelope'")
        _require(isinstance(self.n_focal, int) and 1 <= self.n_focal <= 64, "n_focal", self.n_focal,
                 "an integer in [1, 64]")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MTF:
    """Detector modulation transfer function, as a function of spatial frequency in units of Nyquist.

    Either tabulated (``table``: values from zero frequency to Nyquist, equally spaced, as in the
    ``.mtf`` files of Dr Probe / emilys: first line the number of points, then one value a line), or
    parametric: MTF(q) = (1 − c) / (1 + (q/q0)²) + c, q in units of Nyquist. ``MTF()`` is ideal (1).
    """

    table: tuple[float, ...] | None = None
    q0: float | None = None
    c: float = 0.0
    source: str = "ideal"

    def __post_init__(self):
        if self.table is not None:
            _require(len(self.table) >= 2 and all(_finite(v) for v in self.table), "mtf.table",
                     f"<{len(self.table)} values>", "at least 2 finite values")
        if self.q0 is not None:
            _require(_finite(self.q0) and self.q0 > 0, "mtf.q0", self.q0, "a positive number (units of Nyquist)")
        _require(_finite(self.c) and 0 <= self.c < 1, "mtf.c", self.c, "a number in [0, 1)")

    @classmethod
    def from_file(cls, path: str | Path) -> "MTF":
        """Read a ``.mtf`` table: first line the number of points, then one value per line."""
        path = Path(path)
        try:
            tokens = path.read_text().split()
            n = int(float(tokens[0]))
            values = tuple(float(t) for t in tokens[1 : 1 + n])
        except (OSError, ValueError, IndexError) as err:
            raise ValueError(f"mtf file {str(path)!r} is not readable as an MTF table: {err}") from err
        if len(values) != n:
            raise ValueError(f"mtf file {str(path)!r} announces {n} points but holds {len(values)}")
        return cls(table=values, source=str(path.name))


@dataclass(frozen=True)
class Detector:
    """Image recording: MTF, Poisson dose noise and the output pixel size.

    Parameters
    ----------
    pixel_size_nm : Output pixel size [nm]; the simulated image is resampled to it.
    dose_e_per_A2 : Electron dose [e-/Å²] for Poisson noise; ``None`` = noise-free.
    mtf : The detector MTF (``MTF()`` = ideal).
    """

    pixel_size_nm: float = 0.02
    dose_e_per_A2: float | None = None
    mtf: MTF = field(default_factory=MTF)

    def __post_init__(self):
        _require(_finite(self.pixel_size_nm) and self.pixel_size_nm > 0, "pixel_size_nm",
                 self.pixel_size_nm, "a positive number of nm")
        _require(self.dose_e_per_A2 is None or (_finite(self.dose_e_per_A2) and self.dose_e_per_A2 > 0),
                 "dose_e_per_A2", self.dose_e_per_A2, "a positive number of e-/Å² or None")


@dataclass(frozen=True)
class SimulationSettings:
    """Numerical settings of a multislice simulation.

    Parameters
    ----------
    sampling_A : Real-space sampling of the simulation grid [Å].
    slice_thickness_A : Slice thickness [Å].
    parametrization : Electron scattering factors: "lobato" (Lobato & Van Dyck 2014) or "kirkland".
    frozen_phonons : Number of frozen-phonon configurations; 0 = static lattice.
    debye_waller : Whether to damp potentials with per-element Debye–Waller factors.
    device : "auto", "cpu" or "cuda[:N]" (see ``datagen.device``).
    max_batch_bytes : Memory a batch may use on the device [bytes]; larger batches are split.
    """

    sampling_A: float = 0.05
    slice_thickness_A: float = 2.0
    parametrization: Literal["lobato", "kirkland"] = "lobato"
    frozen_phonons: int = 0
    debye_waller: bool = False
    device: str = "auto"
    max_batch_bytes: int = 4 * 2**30

    def __post_init__(self):
        _require(_finite(self.sampling_A) and 0.005 <= self.sampling_A <= 1.0, "sampling_A",
                 self.sampling_A, "a number of Å in [0.005, 1]")
        _require(_finite(self.slice_thickness_A) and 0.1 <= self.slice_thickness_A <= 50,
                 "slice_thickness_A", self.slice_thickness_A, "a number of Å in [0.1, 50]")
        _require(self.parametrization in ("lobato", "kirkland"), "parametrization", self.parametrization,
                 "'lobato' or 'kirkland'")
        _require(isinstance(self.frozen_phonons, int) and 0 <= self.frozen_phonons <= 1000,
                 "frozen_phonons", self.frozen_phonons, "an integer in [0, 1000]")
        _require(isinstance(self.max_batch_bytes, int) and self.max_batch_bytes > 2**20,
                 "max_batch_bytes", self.max_batch_bytes, "an integer > 1 MiB")

    def check_thermal(self, rng) -> None:
        """Raise ValueError unless thermal motion is modelled one way, with an ``rng`` for frozen phonons."""
        if self.frozen_phonons and self.debye_waller:
            raise ValueError("settings.debye_waller and settings.frozen_phonons > 0 both model thermal motion; "
                             "choose one")
        if self.frozen_phonons and rng is None:
            raise ValueError("rng: a numpy.random.Generator is required when settings.frozen_phonons >= 1")
