"""The contrast transfer function of the objective lens, as a product of inspectable parts.

CTF(k) = exp(−i·χ(k)) · A(k) · E_s(k) · E_t(k): aberration phase, objective aperture, spatial- and
temporal-coherence envelopes. Each part is a pure torch function of the spatial frequencies
(kx, ky) [1/Å] and its parameters, and each equals 1 at its neutral value. Parameters are Python
floats or tensors that broadcast against the frequency grid, e.g. shape (B, 1, 1) for a stack of
per-sample CTFs. The phase is applied as exp(−iχ), like abTEM, with numpy/torch FFT sign conventions.

Units at this API: spatial frequencies [1/Å], wavelength [Å], defocus / astigmatism / focal spread
[nm], Cs [µm], angles [mrad]; lengths are converted to [Å] inside. Sign conventions (see
``datagen.simulate.params``): ``defocus_nm`` is C1, positive = overfocus; ``focal_spread_nm`` is the
1/e half-width Δ of the focus distribution exp(−f²/Δ²) (σ = Δ/√2); two-fold astigmatism as the
components (a1x, a1y) of A1. The aberration phase is written once, in :func:`aberration_phase`;
the envelopes take the derivatives they need from it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from datagen.simulate.energy import electron_wavelength
from datagen.simulate.units import MRAD, NM, UM


#: Imaginary step [1/Å] of the complex-step derivative of χ (exact for a polynomial, no cancellation).
_COMPLEX_STEP = 1e-6


def frequency_grid(shape: tuple[int, int], sampling: tuple[float, float], device=None,
                   dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """FFT-ordered spatial frequencies (kx of shape (1, nx), ky of shape (ny, 1)) [1/Å].

    ``shape`` is (ny, nx), ``sampling`` (sy, sx) [Å]; y is the first image axis, x the second.
    """
    (ny, nx), (sy, sx) = shape, sampling
    if ny < 1 or nx < 1:
        raise ValueError(f"shape must be two positive integers, got {shape!r}")
    if not (sy > 0 and sx > 0):
        raise ValueError(f"sampling must be two positive lengths [Å], got {sampling!r}")
    ky = torch.fft.fftfreq(ny, d=sy, dtype=dtype, device=device)[:, None]
    kx = torch.fft.fftfreq(nx, d=sx, dtype=dtype, device=device)[None, :]
    return kx, ky


def aberration_phase(kx, ky, wavelength, defocus_nm=0.0, astig_x_nm=0.0, astig_y_nm=0.0, cs_um=0.0):
    """Aberration phase χ(k) [rad] of the objective lens.

    χ = π·λ·[C1·k² + a1x·(kx² − ky²) + 2·a1y·kx·ky] + ½·π·λ³·Cs·k⁴, lengths in [Å].

    Parameters
    ----------
    kx, ky : Spatial frequencies [1/Å] (broadcastable; complex values are allowed, which is how the
        envelopes differentiate χ).
    wavelength : Electron wavelength λ [Å].
    defocus_nm : C1 [nm]; positive = overfocus.
    astig_x_nm, astig_y_nm : Two-fold astigmatism components a1x, a1y [nm].
    cs_um : Spherical aberration C3 [µm].
    """
    k2 = kx * kx + ky * ky
    second_order = defocus_nm * NM * k2 + astig_x_nm * NM * (kx * kx - ky * ky) + 2 * astig_y_nm * NM * kx * ky
    return math.pi * wavelength * second_order + 0.5 * math.pi * wavelength**3 * (cs_um * UM) * k2 * k2


def aberration_gradient(kx, ky, wavelength, defocus_nm=0.0, astig_x_nm=0.0, astig_y_nm=0.0, cs_um=0.0):
    """Gradient (∂χ/∂kx, ∂χ/∂ky) [rad·Å] of :func:`aberration_phase`, by the complex-step derivative.

    χ is a polynomial in (kx, ky), so Im χ(kx + i·h, ky)/h is its derivative to rounding error.
    """
    params = (wavelength, defocus_nm, astig_x_nm, astig_y_nm, cs_um)
    step = 1j * _COMPLEX_STEP
    dchi_dkx = aberration_phase(kx + step, ky, *params).imag / _COMPLEX_STEP
    dchi_dky = aberration_phase(kx, ky + step, *params).imag / _COMPLEX_STEP
    return dchi_dkx, dchi_dky


def aperture(kx, ky, wavelength, aperture_mrad=None, edge_dk: tuple[float, float] | None = None):
    """Objective aperture A(k) ∈ [0, 1]: a disk of semi-angle ``aperture_mrad`` [mrad].

    ``None`` or ``inf`` = no aperture (1 everywhere). With ``edge_dk`` = (dky, dkx), the frequency
    spacing [1/Å] of the grid, the edge is softened over one grid spacing exactly as abTEM's
    ``soft_aperture`` (A = clip((α_c − α)/Δα(φ) + ½, 0, 1), with A(0) = 1); without it, the edge is
    hard (A = 1 for α ≤ α_c).
    """
    if aperture_mrad is None:
        return torch.ones(torch.broadcast_shapes(kx.shape, ky.shape), dtype=kx.dtype, device=kx.device)
    cutoff = torch.as_tensor(aperture_mrad, dtype=kx.dtype, device=kx.device) * MRAD
    k = torch.sqrt(kx * kx + ky * ky)
    alpha = k * wavelength
    if edge_dk is None:
        return (alpha <= cutoff).to(kx.dtype)
    dky, dkx = edge_dk
    safe_k = torch.where(k > 0, k, torch.ones_like(k))
    dalpha = wavelength * torch.sqrt((kx / safe_k * dkx) ** 2 + (ky / safe_k * dky) ** 2)
    dalpha = torch.where(k > 0, dalpha, torch.ones_like(dalpha))
    soft = torch.clamp((cutoff - alpha) / dalpha + 0.5, 0.0, 1.0)
    return torch.where(k > 0, soft, torch.ones_like(soft))


def spatial_envelope(kx, ky, wavelength, convergence_mrad=0.0, defocus_nm=0.0, astig_x_nm=0.0,
                     astig_y_nm=0.0, cs_um=0.0):
    """Spatial-coherence envelope E_s(k) = exp(−(θ₀/2)²·|∇_α χ|²) in the quasi-coherent approximation.

    ``convergence_mrad`` θ₀ [mrad] is the 1/e half-width of a Gaussian distribution of illumination
    angles exp(−θ²/θ₀²) (Kirkland's α₀, the number abTEM calls ``angular_spread``); α = λ·k, so
    ∇_α χ = ∇_k χ / λ. Aberrations as in :func:`aberration_phase`.
    """
    dchi_dkx, dchi_dky = aberration_gradient(kx, ky, wavelength, defocus_nm, astig_x_nm, astig_y_nm, cs_um)
    theta = torch.as_tensor(convergence_mrad, dtype=dchi_dkx.dtype, device=dchi_dkx.device) * MRAD
    return torch.exp(-((theta / 2) ** 2) * (dchi_dkx**2 + dchi_dky**2) / wavelength**2)


def temporal_envelope(kx, ky, wavelength, focal_spread_nm=0.0):
    """Temporal-coherence envelope E_t(k) = exp(−(Δ·∂χ/∂C1 / 2)²) of the quasi-coherent approximation.

    ``focal_spread_nm`` Δ [nm] is the 1/e half-width of the focus distribution exp(−f²/Δ²), the same
    number as abTEM's ``focal_spread`` (in [Å] there). Since ∂χ/∂C1 = π·λ·k², this is
    exp(−(π·λ·Δ·k²/2)²), the Gaussian focus average of exp(−i·π·λ·f·k²).
    """
    dchi_dc1 = aberration_phase(kx, ky, wavelength, defocus_nm=1.0)  # [rad / nm]
    spread = torch.as_tensor(focal_spread_nm, dtype=dchi_dc1.dtype, device=dchi_dc1.device)
    return torch.exp(-((spread * dchi_dc1 / 2) ** 2))


def ctf(kx, ky, wavelength, defocus_nm=0.0, astig_x_nm=0.0, astig_y_nm=0.0, cs_um=0.0,
        aperture_mrad=None, convergence_mrad=0.0, focal_spread_nm=0.0,
        aperture_edge_dk: tuple[float, float] | None = None) -> torch.Tensor:
    """The complex CTF exp(−iχ)·A·E_s·E_t; each factor is skipped at its neutral value.

    Parameters as in :func:`aberration_phase`, :func:`aperture`, :func:`spatial_envelope` and
    :func:`temporal_envelope`: [nm] for defocus, astigmatism and focal spread, [µm] for Cs, [mrad]
    for the aperture and convergence semi-angles, [1/Å] for ``aperture_edge_dk``. A nonzero focal
    spread applies the quasi-coherent temporal envelope; pass 0 for an explicit focal average.
    """
    aberrations = (defocus_nm, astig_x_nm, astig_y_nm, cs_um)
    chi = aberration_phase(kx, ky, wavelength, *aberrations)
    out = torch.polar(torch.ones_like(chi), -chi)
    if not _is_neutral(aperture_mrad, math.inf):
        out = out * aperture(kx, ky, wavelength, aperture_mrad, aperture_edge_dk)
    if not _is_neutral(convergence_mrad, 0.0):
        out = out * spatial_envelope(kx, ky, wavelength, convergence_mrad, *aberrations)
    if not _is_neutral(focal_spread_nm, 0.0):
        out = out * temporal_envelope(kx, ky, wavelength, focal_spread_nm)
    return out


def _is_neutral(value, neutral: float) -> bool:
    if value is None:
        return True
    return bool(torch.all(torch.as_tensor(value) == neutral))


def scherzer_defocus(voltage_kv: float, cs_um: float) -> float:
    """Scherzer defocus C1 = −√(1.5·Cs·λ) [nm] (negative = underfocus for Cs > 0), as in abTEM.

    There χ(k) has its flat minimum −3π/4 before the first zero. ``voltage_kv`` [kV], ``cs_um`` [µm].
    """
    if cs_um == 0:
        raise ValueError("cs_um must be nonzero for a Scherzer defocus, got 0")
    wavelength = electron_wavelength(voltage_kv)
    return -math.copysign(math.sqrt(1.5 * abs(cs_um) * UM * wavelength), cs_um) / NM


def ctf_zeros(voltage_kv: float, defocus_nm: float, cs_um: float = 0.0, k_max: float = 1.0,
              phase_shift: float = 0.0) -> np.ndarray:
    """Spatial frequencies k (0, k_max] [1/Å] where the round CTF sin(χ − φ) vanishes, sorted.

    Solves χ(k) = n·π + φ for every integer n, with χ = π·λ·C1·k² + ½·π·λ³·Cs·k⁴ (no astigmatism);
    ``phase_shift`` φ [rad] = arctan(amplitude-contrast ratio) shifts the zeros of an object with
    some amplitude contrast (φ = 0: pure phase object, zeros at χ = n·π).
    ``voltage_kv`` [kV], ``defocus_nm`` [nm], ``cs_um`` [µm], ``k_max`` [1/Å].
    """
    wavelength = electron_wavelength(voltage_kv)
    a = 0.5 * math.pi * wavelength**3 * cs_um * UM  # coefficient of k⁴
    b = math.pi * wavelength * defocus_nm * NM  # coefficient of k²
    u_max = k_max**2
    chi_max = max(abs(a) * u_max**2 + abs(b) * u_max, 1e-12)
    n_max = int(chi_max / math.pi) + 2
    roots = []
    for n in range(-n_max, n_max + 1):
        u = np.roots([a, b, -(n * math.pi + phase_shift)])  # k² where χ = nπ + φ
        u = np.real(u[np.abs(np.imag(u)) < 1e-12])
        roots.extend(np.sqrt(u[(u > 0) & (u <= u_max)]))
    return np.unique(np.array(roots, dtype=float))
