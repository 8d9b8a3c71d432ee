"""Thermal vibrations: per-element RMS displacements [Å] and frozen-phonon configurations.

The RMS displacement along one axis comes from the Debye model (Willis & Pryor, *Thermal Vibrations
in Crystallography*, Cambridge 1975; the zero-point motion included)::

    <u_x²> = 3 ħ² T / (m k_B Θ²) · (Φ(x) + x / 4),   x = Θ / T,   Φ(x) = (1/x) ∫₀ˣ t / (eᵗ − 1) dt

with Θ the Debye temperature and m the atomic mass. The Debye–Waller B factor is B = 8π² <u_x²>, and
the damping of a scattering factor at spatial frequency k [1/Å] is exp(−B k² / 4) = exp(−2π² <u_x²> k²).
For Au at 293 K this gives <u_x²>^½ = 0.090 Å (B = 0.63 Å²).

Debye temperatures [K]: C. Kittel, *Introduction to Solid State Physics*, 8th ed., Wiley 2005, chapter 5,
Table 1 (low-temperature values). Carbon is diamond's; amorphous carbon has no Debye temperature of its
own, and its displacement changes its image little. An element not listed needs an explicit displacement.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from ase.data import atomic_masses, atomic_numbers, chemical_symbols
from scipy import constants as _c
from scipy.integrate import quad

#: Debye temperatures Θ [K] (Kittel 2005, ch. 5, Table 1).
DEBYE_TEMPERATURE_K: dict[str, float] = {
    "Li": 344, "Be": 1440, "C": 2230, "Na": 158, "Mg": 400, "Al": 428, "Si": 645, "K": 91,
    "Ca": 230, "Sc": 360, "Ti": 420, "V": 380, "Cr": 630, "Mn": 410, "Fe": 470, "Co": 445,
    "Ni": 450, "Cu": 343, "Zn": 327, "Ga": 320, "Ge": 374, "Rb": 56, "Sr": 147, "Y": 280,
    "Zr": 291, "Nb": 275, "Mo": 450, "Ru": 600, "Rh": 480, "Pd": 274, "Ag": 225, "Cd": 209,
    "In": 108, "Sn": 200, "Cs": 38, "Ba": 110, "La": 142, "Hf": 252, "Ta": 240, "W": 400,
    "Re": 430, "Os": 500, "Ir": 420, "Pt": 240, "Au": 165, "Pb": 105, "Bi": 119,
}

#: Room temperature used by default [K].
ROOM_TEMPERATURE_K = 293.0


def _debye_phi(x: float) -> float:
    """Debye function Φ(x) = (1/x) ∫₀ˣ t/(eᵗ−1) dt (dimensionless)."""
    if x < 1e-8:
        return 1.0
    value, _ = quad(lambda t: t / math.expm1(t) if t > 0 else 1.0, 0.0, x)
    return value / x


def rms_displacement(element: str | int, temperature_k: float = ROOM_TEMPERATURE_K) -> float:
    """RMS displacement along one axis, <u_x²>^½ [Å], of an element at a temperature [K] (Debye model)."""
    symbol = chemical_symbols[element] if isinstance(element, (int, np.integer)) else str(element)
    if symbol not in DEBYE_TEMPERATURE_K:
        raise ValueError(f"element {symbol!r} has no Debye temperature in the table; "
                         f"give its displacement explicitly (known: {sorted(DEBYE_TEMPERATURE_K)})")
    if not (math.isfinite(temperature_k) and temperature_k > 0):
        raise ValueError(f"temperature_k must be a positive number of K, got {temperature_k!r}")
    theta = DEBYE_TEMPERATURE_K[symbol]
    mass = atomic_masses[atomic_numbers[symbol]] * _c.atomic_mass
    x = theta / temperature_k
    u2 = 3 * _c.hbar**2 * temperature_k / (mass * _c.k * theta**2) * (_debye_phi(x) + x / 4)
    return math.sqrt(u2) * 1e10


def displacement_table(numbers: Sequence[int], sigmas: Mapping[str, float] | None = None,
                       temperature_k: float = ROOM_TEMPERATURE_K) -> dict[int, float]:
    """RMS displacement [Å] for every atomic number in ``numbers``.

    ``sigmas`` (symbol → [Å]) overrides the Debye-model value of any element it names.
    """
    sigmas = dict(sigmas or {})
    for symbol, value in sigmas.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"sigmas[{symbol!r}] must be a displacement >= 0 Å, got {value!r}")
    table = {}
    for z in sorted({int(z) for z in numbers}):
        symbol = chemical_symbols[z]
        table[z] = float(sigmas[symbol]) if symbol in sigmas else rms_displacement(symbol, temperature_k)
    return table


def displaced_positions(positions: np.ndarray, numbers: np.ndarray, table: Mapping[int, float],
                        rng: np.random.Generator) -> np.ndarray:
    """One frozen-phonon configuration: positions [Å] plus independent Gaussian displacements.

    Each Cartesian component of atom i moves by N(0, σ²) with σ = ``table[numbers[i]]`` [Å].
    """
    sigma = np.array([table[int(z)] for z in numbers], dtype=np.float64)
    return positions + rng.normal(size=positions.shape) * sigma[:, None]
