"""Relativistic electron wavelength and interaction constant.

Voltages in [kV], wavelengths in [Å], the interaction constant in [1/(V·Å)].
"""

from __future__ import annotations

import math

from scipy import constants as _c


def _check_voltage(voltage_kv: float) -> float:
    voltage_kv = float(voltage_kv)
    if not math.isfinite(voltage_kv) or voltage_kv <= 0:
        raise ValueError(f"voltage_kv must be a positive number of kV, got {voltage_kv!r}")
    return voltage_kv


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength λ = hc / sqrt(eU (2 m c² + eU)) [Å] at accelerating voltage [kV]."""
    energy = _check_voltage(voltage_kv) * 1e3 * _c.e  # [J]
    return _c.h * _c.c / math.sqrt(energy * (2 * _c.m_e * _c.c**2 + energy)) * 1e10


def relativistic_mass(voltage_kv: float) -> float:
    """Relativistic electron mass m = m0 + eU/c² [kg]."""
    return _c.m_e + _check_voltage(voltage_kv) * 1e3 * _c.e / _c.c**2


def interaction_constant(voltage_kv: float) -> float:
    """Interaction constant σ = 2π m e λ / h² [1/(V·Å)]; the phase shift of a projected potential V_z [V·Å] is σ·V_z."""
    wavelength_m = electron_wavelength(voltage_kv) * 1e-10
    return 2 * math.pi * relativistic_mass(voltage_kv) * _c.e * wavelength_m / _c.h**2 * 1e-10
