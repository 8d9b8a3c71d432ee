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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

TemporalModel = Literal["focal_average", "envelope"]


def param(default, units: str, description: str, *, ge: float | None = None, le: float | None = None,
          gt: float | None = None, optional: bool = False, integer: bool = False):
    """A dataclass field declared once: its default, CF ``units`` ("1" when dimensionless), a one-line
    description and the bounds its values must lie in. The recipe fields (``datagen.recipe``), the
    store's provenance variables (``datagen.generators.simulated``) and this class's own checks all
    read the declaration from here (``declaration``); ``optional`` allows None, ``integer`` an int."""
    return field(default=default, metadata={"units": units, "description": description, "ge": ge, "le": le,
                                            "gt": gt, "optional": optional, "integer": integer})


def declaration(cls, name: str) -> dict:
    """The declaration of field ``name`` of a parameter class: default, units, description, bounds."""
    f = {f.name: f for f in fields(cls)}[name]
    return {"default": f.default, **f.metadata}


def _check_declared(obj) -> None:
    """Raise ValueError naming the first field whose value breaks its declaration (type or bounds)."""
    for f in fields(obj):
        meta, value = f.metadata, getattr(obj, f.name)
        if "ge" not in meta or (value is None and meta["optional"]):
            continue
        if meta["integer"]:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = _finite(value) and not isinstance(value, bool)
        ge, le, gt = meta["ge"], meta["le"], meta["gt"]
        ok = ok and (ge is None or value >= ge) and (le is None or value <= le) and (gt is None or value > gt)
        if not ok:
            lo = f"> {gt:g}" if gt is not None else (f">= {ge:g}" if ge is not None else "")
            hi = f"<= {le:g}" if le is not None else ""
            rule = " and ".join(r for r in (lo, hi) if r)
            kind = "an integer" if meta["integer"] else "a finite number"
            units = "" if meta["units"] == "1" else f" [{meta['units']}]"
            none = " or None" if meta["optional"] else ""
            raise ValueError(f"{f.name} must be {kind}{units}{' ' + rule if rule else ''}{none}, got {value!r}")


def _require(condition: bool, name: str, value, rule: str) -> None:
    if not condition:
        raise ValueError(f"{name} must be {rule}, got {value!r}")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@dataclass(frozen=True)
class Optics:
    """The objective lens and illumination of one image.

    Each field is declared once, with its unit and bounds (``param``); defaults are the neutral
    values (no aberration, no aperture, full coherence), so a part of the CTF is off unless set.

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
    n_focal : Number of focal planes in the explicit focal average. Default 15, the recipes' value:
        behind a 30 mrad aperture 15 planes correlate 0.99999 with 64 for 1–3 nm Au at 0.05 Å
        (``datagen.recipe.OpticsParams``); it was 7 here, which nothing relied on.
    """

    voltage_kv: float = param(300.0, "kV", "accelerating voltage", ge=10, le=3000)
    defocus_nm: float = param(0.0, "nm", "defocus C1 (positive: overfocus)", ge=-10_000, le=10_000)
    focal_spread_nm: float = param(0.0, "nm", "focal spread, 1/e half-width of the focus distribution", ge=0, le=100)
    astig_x_nm: float = param(0.0, "nm", "two-fold astigmatism A1, x component", ge=-1000, le=1000)
    astig_y_nm: float = param(0.0, "nm", "two-fold astigmatism A1, y component", ge=-1000, le=1000)
    cs_um: float = param(0.0, "um", "spherical aberration C3", ge=-10_000, le=10_000)
    aperture_mrad: float | None = param(None, "mrad", "objective aperture semi-angle (NaN: none)", gt=0, le=500,
                                        optional=True)
    convergence_mrad: float = param(0.0, "mrad", "illumination semi-angle (spatial coherence)", ge=0, le=50)
    temporal_model: TemporalModel = field(default="focal_average", metadata={
        "units": "1", "description": "temporal coherence model: focal_average or envelope", "choices": True})
    n_focal: int = param(15, "1", "focal planes of the explicit focal average", ge=1, le=64, integer=True)

    def __post_init__(self):
        _require(self.temporal_model in ("focal_average", "envelope"), "temporal_model",
                 self.temporal_model, "'focal_average' or 'envelope'")
        _check_declared(self)

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
    pixel_size_nm : Output pixel size [nm]; the simulated image is resampled to it. Default 0.025 nm, the
        recipes' (the paper's images); it was 0.02 here, which nothing relied on.
    dose_e_per_A2 : Electron dose [e-/Å²] for Poisson noise; ``None`` = noise-free.
    mtf : The detector MTF (``MTF()`` = ideal).
    """

    pixel_size_nm: float = param(0.025, "nm", "output pixel size", gt=0, le=1)
    dose_e_per_A2: float | None = param(None, "angstrom-2", "electron dose for Poisson noise (NaN: noise-free)",
                                        ge=1e-3, le=1e9, optional=True)
    mtf: MTF = field(default_factory=MTF)

    def __post_init__(self):
        _check_declared(self)


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

    sampling_A: float = param(0.05, "angstrom", "simulation grid sampling", ge=0.005, le=1.0)
    slice_thickness_A: float = param(2.0, "angstrom", "multislice slice thickness", ge=0.1, le=50)
    parametrization: Literal["lobato", "kirkland"] = field(default="lobato", metadata={
        "units": "1", "description": "electron scattering factors: lobato or kirkland", "choices": True})
    frozen_phonons: int = param(0, "1", "frozen-phonon configurations (0: static)", ge=0, le=1000, integer=True)
    debye_waller: bool = field(default=False, metadata={
        "units": "1", "description": "potentials damped by Debye-Waller factors", "choices": True})
    device: str = "auto"
    max_batch_bytes: int = 4 * 2**30

    def __post_init__(self):
        _require(self.parametrization in ("lobato", "kirkland"), "parametrization", self.parametrization,
                 "'lobato' or 'kirkland'")
        _check_declared(self)
        _require(isinstance(self.max_batch_bytes, int) and self.max_batch_bytes > 2**20,
                 "max_batch_bytes", self.max_batch_bytes, "an integer > 1 MiB")

    def check_thermal(self, rng) -> None:
        """Raise ValueError unless thermal motion is modelled one way, with an ``rng`` for frozen phonons."""
        if self.frozen_phonons and self.debye_waller:
            raise ValueError("settings.debye_waller and settings.frozen_phonons > 0 both model thermal motion; "
                             "choose one")
        if self.frozen_phonons and rng is None:
            raise ValueError("rng: a numpy.random.Generator is required when settings.frozen_phonons >= 1")
