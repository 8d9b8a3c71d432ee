"""Projected atomic potentials from an electron scattering-factor parametrization.

Independent-atom model with the *infinite projection* (abTEM's ``projection="infinite"``): an atom's
whole projected potential goes into the slice holding its centre. For a slice,

    V̂(k) = Σ_e F_e(k) · S_e(k),    S_e(k) = Σ_{atoms of element e} exp(−2πi k·r_a),
    V(r) = (1 / A) Σ_k V̂(k) exp(2πi k·r)          [V·Å],  A the cell area [Å²],

with F_e(k) = C · f_e(|k|) [V·Å³] the 2-D Fourier transform of the projected potential of one atom,
f_e the electron scattering factor [Å] of the parametrization (``data/lobato.json``: Lobato & Van Dyck,
Acta Cryst. A70 (2014) 636; ``data/kirkland.json``: Kirkland, *Advanced Computing in Electron
Microscopy*, 2nd ed. 2010) and C = h² / (2π m₀ e) = 2π a₀ e / (4πε₀) = 47.878 V·Å².

V̂ is evaluated on the whole grid (all frequencies but the Nyquist row and column), not only inside
the wave's antialiasing cutoff k_max = (2/3)·k_Nyquist: through t = exp(iσV) the potential beyond
k_max still shapes the wave inside it, at second order in σV. Against a 0.0125 Å reference, Au on
carbon at 0.05 Å is off by 0.7 % (RMS of the exit wave) this way, 1.2 % with V cut at k_max.
No atom is deposited on pixels by interpolation (abTEM's bilinear deposit loses up to 40 % of an
atom's spectrum at 3 Å⁻¹ for 0.1 Å pixels). Two evaluations of S_e:

- ``structure_factors``, exact: S(ky, kx) = Σ_a exp(−2πi ky y_a) · exp(−2πi kx x_a) is a matrix
  product, done in real arithmetic with phases reduced modulo 2π in float64; cost ∝ atoms × grid.
- ``gridded_structure_factors``, Gaussian gridding (a type-1 non-uniform FFT): each atom spread as a
  Gaussian over 14×14 pixels, one rfft2, the Gaussian divided out; cost ∝ grid, independent of the
  atoms. Equal to the exact sum within 3·10⁻⁵ up to k_max, less accurate towards Nyquist (see there).
  Used for slices with at least ``GRIDDING_MIN_ATOMS`` atoms of one element (e.g. a carbon film).

``abtem_deposit_spectra`` with ``abtem_form_factors`` reproduces abTEM's approximation instead, only
to cross-check everything else against abTEM.

Optional Debye–Waller damping multiplies F_e by exp(−2π² σ_e² k²), σ_e the RMS displacement along
one axis [Å] (B = 8π² σ_e²; see ``phonons``).
"""

from __future__ import annotations

import functools
import json
import math
from importlib.resources import files

import numpy as np
import torch
from ase.data import chemical_symbols
from scipy import constants as _c
from scipy.special import kn

from datagen.device import complex_dtype
from datagen.simulate.grid import Grid, common_cell, grid_for_cell, slice_count, slice_index

PARAMETRIZATIONS = ("lobato", "kirkland")

#: h² / (2π m₀ e) [V·Å²]: converts a scattering factor f_e [Å] to the Fourier transform of the potential.
SCATTERING_TO_POTENTIAL = _c.h**2 / (2 * math.pi * _c.m_e * _c.e) * 1e20


@functools.cache
def parameters(parametrization: str) -> dict[str, np.ndarray]:
    """The coefficient table of a parametrization: element symbol → array of coefficients.

    Lobato: shape (2, 5), rows a [Å], b [Å²]. Kirkland: shape (4, 3), rows a [1/Å], b [1/Å²], c [Å], d [Å²].
    """
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}")
    text = (files("datagen.simulate") / "data" / f"{parametrization}.json").read_text(encoding="utf-8")
    return {symbol: np.asarray(p, dtype=np.float64) for symbol, p in json.loads(text)["elements"].items()}


def _coefficients(element: str | int, parametrization: str) -> np.ndarray:
    symbol = chemical_symbols[element] if isinstance(element, (int, np.integer)) else str(element)
    table = parameters(parametrization)
    if symbol not in table:
        raise ValueError(f"element {symbol!r} is not in the {parametrization} parametrization")
    return table[symbol]


def scattering_factor(element: str | int, k: np.ndarray, parametrization: str = "lobato") -> np.ndarray:
    """Electron scattering factor f_e(|k|) [Å] at spatial frequencies |k| [1/Å] (not 4π sinθ/λ)."""
    p = _coefficients(element, parametrization)
    k2 = np.asarray(k, dtype=np.float64) ** 2
    if parametrization == "lobato":
        a, b = p[0][:, None], p[1][:, None]
        return (a * (2 + b * k2.ravel()) / (1 + b * k2.ravel()) ** 2).sum(0).reshape(k2.shape)
    a, b, c, d = (row[:, None] for row in p)
    flat = k2.ravel()
    return (a / (flat + b) + c * np.exp(-d * flat)).sum(0).reshape(k2.shape)


def projected_form_factor(element: str | int, k: np.ndarray, parametrization: str = "lobato") -> np.ndarray:
    """2-D Fourier transform of one atom's projected potential, F(|k|) = C·f_e(|k|) [V·Å³]; F(0) = ∫V_z d²r."""
    return SCATTERING_TO_POTENTIAL * scattering_factor(element, k, parametrization)


def projected_potential(element: str | int, r: np.ndarray, parametrization: str = "lobato") -> np.ndarray:
    """Projected potential of one isolated atom V_z(r) = ∫ V(r, z) dz [V·Å] at radii r > 0 [Å] (analytic)."""
    p = _coefficients(element, parametrization)
    r = np.asarray(r, dtype=np.float64)
    flat = r.ravel()[None]
    a, c2 = p[0][:, None], SCATTERING_TO_POTENTIAL
    if parametrization == "lobato":
        b = p[1][:, None]
        # Hankel transform of C·f_e: V_z = 2 Σ α_i [2/β_i K0(β_i r) + r K1(β_i r)],
        # α_i = π² C a_i / b_i^{3/2}, β_i = 2π / √b_i.
        alpha, beta = math.pi**2 * c2 * a / b**1.5, 2 * math.pi / np.sqrt(b)
        v = 2 * (2 * alpha / beta * kn(0, beta * flat) + alpha * flat * kn(1, beta * flat))
    else:
        b, c, d = (row[:, None] for row in p[1:])
        # Kirkland (2010), appendix C: V_z = 2π C Σ a_i K0(2π r √b_i) + π C Σ c_i/d_i exp(−π² r²/d_i).
        v = 2 * math.pi * c2 * a * kn(0, 2 * math.pi * flat * np.sqrt(b)) \
            + math.pi * c2 * c / d * np.exp(-math.pi**2 * flat**2 / d)
    return v.sum(0).reshape(r.shape)


def band_limit(grid: Grid) -> float:
    """Antialiasing cutoff of the wave k_max = (2/3)·min Nyquist = 1 / (3·max(sampling)) [1/Å]."""
    return 1.0 / (3.0 * max(grid.sampling))


def frequency_extent(grid: Grid) -> tuple[int, int]:
    """Largest frequency indices (My, Mx) = ((ny−1)//2, (nx−1)//2) of the potential's spectrum.

    The spectrum holds ky = m/Ly for m in [−My, My] and, as the potential is real, only kx = m/Lx >= 0,
    m in [0, Mx]: the whole grid but the Nyquist row and column, which the grid cannot tell from
    their negatives. Arrays over it ("half spectra") are (…, 2My+1, Mx+1), ky in fftfreq order
    (0, 1, …, My, −My, …, −1).
    """
    return (grid.gpts[0] - 1) // 2, (grid.gpts[1] - 1) // 2


def spectrum_frequencies(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (ky, kx) [1/Å] of a half spectrum: ky in fftfreq order, kx in [0, Mx/Lx]."""
    my, mx = frequency_extent(grid)
    return np.r_[0:my + 1, -my:0] / grid.extent[0], np.arange(0, mx + 1) / grid.extent[1]


def form_factors(numbers: tuple[int, ...], grid: Grid, parametrization: str = "lobato",
                 sigmas: tuple[float, ...] | None = None, device=None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """F_e(k) [V·Å³] of each element on the half spectrum (``spectrum_frequencies``), (n_elements, nky, nkx).

    ``sigmas`` (one RMS displacement [Å] per element) switches on Debye–Waller damping exp(−2π² σ² k²).
    """
    ky, kx = spectrum_frequencies(grid)
    k = np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    out = np.stack([projected_form_factor(int(z), k, parametrization) for z in numbers]) if numbers \
        else np.zeros((0,) + k.shape)
    if sigmas is not None:
        out *= np.exp(-2 * math.pi**2 * np.asarray(sigmas, dtype=np.float64)[:, None, None] ** 2 * k[None] ** 2)
    return torch.as_tensor(out, dtype=dtype, device=device)


@functools.lru_cache(maxsize=32)
def _cached_form_factors(numbers, grid, parametrization, sigmas, device, dtype) -> torch.Tensor:
    return form_factors(numbers, grid, parametrization, sigmas, device, dtype)


def cached_form_factors(numbers, grid: Grid, parametrization: str, sigmas, device, dtype) -> torch.Tensor:
    """``form_factors`` through a small LRU cache keyed by (elements, grid, parametrization, σ, device, dtype)."""
    return _cached_form_factors(tuple(int(z) for z in numbers), grid, parametrization,
                                None if sigmas is None else tuple(float(s) for s in sigmas),
                                torch.device(device), dtype)


def cis(phase: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """exp(i·phase) for a real tensor of phases [rad], written straight into a complex tensor."""
    if out is None:
        out = torch.empty(phase.shape, dtype=complex_dtype(phase.dtype), device=phase.device)
    parts = torch.view_as_real(out)
    torch.cos(phase, out=parts[..., 0])
    torch.sin(phase, out=parts[..., 1])
    return out


def _reduced(m: torch.Tensor, frac: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """−2π·((m·u) mod 1), computed in float64, for m (k,) and u (…, n) → (…, k, n) [rad]."""
    arg = m[:, None] * frac[..., None, :]
    return (arg - torch.floor(arg)).to(dtype).mul_(-2 * math.pi)


def phase_table(frac: torch.Tensor, m0: int, count: int, dtype: torch.dtype) -> torch.Tensor:
    """exp(−2πi m·u) for fractional coordinates u (…, n) float64 and m = m0 … m0+count−1 → (…, count, n).

    Written m = m0 + qQ + r (Q ≈ √count): a coarse table in q times a fine one in r, so only about
    2√count sines and cosines per atom are evaluated; each phase is reduced modulo 1 in float64
    before its exponential, which keeps the table exact to the precision of ``dtype``.
    """
    step = max(1, math.isqrt(count - 1) + 1) if count > 1 else 1
    n_coarse = -(-count // step)
    opts = dict(dtype=torch.float64, device=frac.device)
    coarse = cis(_reduced(m0 + step * torch.arange(n_coarse, **opts), frac, dtype))
    fine = cis(_reduced(torch.arange(step, **opts), frac, dtype))
    table = coarse[..., :, None, :] * fine[..., None, :, :]
    return table.reshape(*frac.shape[:-1], n_coarse * step, frac.shape[-1])[..., :count, :]


def structure_factors(frac_y: torch.Tensor, frac_x: torch.Tensor, weight: torch.Tensor,
                      extent: tuple[int, int], block: int = 512) -> torch.Tensor:
    """Batched weighted structure factors S(ky, kx) = Σ_a w_a exp(−2πi (ky y_a + kx x_a)) (dimensionless).

    ``frac_y``, ``frac_x`` (W, n) float64 fractional coordinates y/Ly, x/Lx; ``weight`` (W, n) real
    (0 marks padding); ``extent`` (My, Mx) from ``frequency_extent``. Returns the half spectrum
    (W, 2My+1, Mx+1) complex (ky in fftfreq order).

    The sum over atoms is one real batched matrix product per block of ``block`` atoms:
    [cos ky·y; −sin ky·y] @ [cos kx·x; −sin kx·x]ᵀ over ky >= 0 gives the four products CC, CS, SC, SS
    from which S(+ky, kx) = (CC − SS) − i(CS + SC) and S(−ky, kx) = (CC + SS) + i(SC − CS) follow, half
    the arithmetic of a complex product over the whole ky range.
    """
    my, mx = extent
    acc = None
    for start in range(0, frac_y.shape[-1], block):
        sl = slice(start, start + block)
        ty = phase_table(frac_y[:, sl], 0, my + 1, weight.dtype)
        tx = phase_table(frac_x[:, sl], 0, mx + 1, weight.dtype).mul_(weight[:, None, sl])
        a = torch.cat([ty.real, ty.imag], dim=1)
        b = torch.cat([tx.real, tx.imag], dim=1)
        part = torch.bmm(a, b.transpose(1, 2))
        acc = part if acc is None else acc.add_(part)
    cc, minus_cs = acc[:, : my + 1, : mx + 1], acc[:, : my + 1, mx + 1:]
    minus_sc, ss = acc[:, my + 1:, : mx + 1], acc[:, my + 1:, mx + 1:]
    positive = torch.complex(cc - ss, minus_cs + minus_sc)
    negative = torch.complex(cc + ss, minus_cs - minus_sc)[:, 1:].flip(1)
    return torch.cat([positive, negative], dim=1)


#: Gaussian gridding: kernel standard deviation in pixels, and the points per axis around each atom.
GRIDDING_WIDTH_PX, GRIDDING_POINTS = 1.3, 14
#: Atoms per wave in one slice and element from which gridding beats the exact sum (measured on a CPU:
#: the two cost the same near 40 at 0.1 and 0.05 Å, since both scale with the number of grid points).
GRIDDING_MIN_ATOMS = 40


def gridded_structure_factors(frac_y: torch.Tensor, frac_x: torch.Tensor, weight: torch.Tensor,
                              grid: Grid, extent: tuple[int, int], block: int = 512) -> torch.Tensor:
    """The half spectrum of ``structure_factors`` by Gaussian gridding (a type-1 non-uniform FFT).

    Each atom is spread on the grid as a Gaussian of standard deviation τ = 1.3 pixels over 14×14
    points (``block`` atoms at a time), the sum is Fourier transformed (rfft2) and divided by the
    Gaussian's transform 2πτyτx/(sy·sx)·exp(−2π²(τy²ky² + τx²kx²)). The error is that of the
    kernel's aliased images, exp(−2π²τ²/s²·(1 − 2|k|s)) relative per axis: below 3·10⁻⁵ of S up to
    the wave's cutoff 1/(3s), 10⁻³ at 0.8 Nyquist, and of order one at the Nyquist frequency itself,
    which no quantity on the grid resolves.
    """
    w, n = frac_y.shape
    ny, nx = grid.gpts
    my, mx = extent
    dtype, device = weight.dtype, weight.device
    offsets = torch.arange(GRIDDING_POINTS, device=device) - (GRIDDING_POINTS // 2 - 1)
    wave = torch.arange(w, device=device)[:, None, None, None] * (ny * nx)

    def axis(frac, size):
        p = frac * size
        start = torch.floor(p).to(torch.int64)[..., None] + offsets
        d = (start - p[..., None]).to(dtype)
        return torch.remainder(start, size), torch.exp(d.square_().mul_(-0.5 / GRIDDING_WIDTH_PX**2))

    deposit = torch.zeros(w * ny * nx, dtype=dtype, device=device)
    for start in range(0, n, block):
        sl = slice(start, start + block)
        iy, wy = axis(frac_y[:, sl], ny)
        ix, wx = axis(frac_x[:, sl], nx)
        values = (wy * weight[:, sl, None])[..., :, None] * wx[..., None, :]
        index = wave + iy[..., :, None] * nx + ix[..., None, :]
        deposit.index_add_(0, index.reshape(-1), values.reshape(-1))
    spectrum = torch.fft.rfft2(deposit.view(w, ny, nx))
    out = torch.cat([spectrum[:, : my + 1, : mx + 1], spectrum[:, ny - my:, : mx + 1]], dim=1)
    return out.mul_(_gridding_correction(grid, extent, device, dtype))


@functools.lru_cache(maxsize=16)
def _gridding_correction(grid: Grid, extent: tuple[int, int], device, dtype) -> torch.Tensor:
    my, mx = extent
    ky = torch.as_tensor(np.r_[0:my + 1, -my:0] / grid.extent[0], dtype=torch.float64)
    kx = torch.as_tensor(np.arange(mx + 1) / grid.extent[1], dtype=torch.float64)
    tau_y, tau_x = GRIDDING_WIDTH_PX * grid.sampling[0], GRIDDING_WIDTH_PX * grid.sampling[1]
    c = grid.sampling[0] * grid.sampling[1] / (2 * math.pi * tau_y * tau_x)
    out = c * torch.exp(2 * math.pi**2 * (tau_y**2 * ky[:, None] ** 2 + tau_x**2 * kx[None] ** 2))
    return out.to(device=device, dtype=dtype)


def abtem_deposit_spectra(frac_y: torch.Tensor, frac_x: torch.Tensor, weight: torch.Tensor,
                          grid: Grid) -> torch.Tensor:
    """abTEM's approximate structure factors, for cross-checks: rfft2 of a bilinear deposit (W, ny, nx//2+1).

    Each atom is shared among its four nearest pixels with bilinear weights, as abTEM 1.0's
    ``superpose_deltas`` does; used with ``abtem_form_factors`` it reproduces abTEM's infinite projection,
    interpolation error included (the deposit's transform falls off as cos(πks) per axis).
    """
    w = frac_y.shape[0]
    ny, nx = grid.gpts
    py, px = frac_y * ny, frac_x * nx
    y0, x0 = torch.floor(py), torch.floor(px)
    ty, tx = (py - y0).to(weight.dtype), (px - x0).to(weight.dtype)
    y0, x0 = y0.to(torch.int64), x0.to(torch.int64)
    wave = torch.arange(w, device=weight.device)[:, None] * (ny * nx)
    deposit = torch.zeros(w * ny * nx, dtype=weight.dtype, device=weight.device)
    for dy, wy in ((0, 1 - ty), (1, ty)):
        for dx, wx in ((0, 1 - tx), (1, tx)):
            index = wave + torch.remainder(y0 + dy, ny) * nx + torch.remainder(x0 + dx, nx)
            deposit.index_add_(0, index.reshape(-1), (wy * wx * weight).reshape(-1))
    return torch.fft.rfft2(deposit.view(w, ny, nx))


@functools.lru_cache(maxsize=16)
def abtem_form_factors(numbers: tuple[int, ...], grid: Grid, parametrization: str,
                       sigmas: tuple[float, ...] | None, device, dtype) -> torch.Tensor:
    """F_e(k) / (sinc(q)·sy·sx) on the rfft2 grid, (n_elements, ny, nx//2+1) [V·Å], q = |(ky·sy, kx·sx)|.

    abTEM 1.0's correction for its deposit, ``sinc = sin(q)/q`` (sic: the bilinear kernel's transform
    would be sinc²(πky·sy)·sinc²(πkx·sx)); kept as is, since its only use is to reproduce abTEM.
    """
    ky = np.fft.fftfreq(grid.gpts[0], grid.sampling[0])[:, None]
    kx = np.fft.rfftfreq(grid.gpts[1], grid.sampling[1])[None, :]
    q = np.hypot(ky * grid.sampling[0], kx * grid.sampling[1])
    sinc = np.where(q > 0, np.sin(q) / np.where(q > 0, q, 1.0), 1.0) * grid.sampling[0] * grid.sampling[1]
    k = np.hypot(ky, kx)
    out = np.stack([projected_form_factor(int(z), k, parametrization) for z in numbers]) / sinc if numbers \
        else np.zeros((0,) + k.shape)
    if sigmas is not None:
        out *= np.exp(-2 * math.pi**2 * np.asarray(sigmas, dtype=np.float64)[:, None, None] ** 2 * k[None] ** 2)
    return torch.as_tensor(out, dtype=dtype, device=device)


def spectrum_to_potential(spectrum: torch.Tensor, grid: Grid, scale: float | None = None,
                          out: torch.Tensor | None = None) -> torch.Tensor:
    """Real-space potential V(r) [V·Å] (W, ny, nx) from a half spectrum V̂ (W, 2My+1, Mx+1) [V·Å³].

    V(r) = (1/A) Σ_k V̂(k) exp(2πi k·r), A the cell area [Å²], by one irfft2. ``scale`` replaces the
    factor 1/(sy·sx) = N/A [1/Å²] (pass σ/(sy·sx) to get the phase σV [rad] directly).
    """
    ny, nx = grid.gpts
    w, nky, nkx = spectrum.shape
    my = nky // 2
    scale = 1.0 / (grid.sampling[0] * grid.sampling[1]) if scale is None else scale
    full = spectrum.new_zeros((w, ny, nx // 2 + 1))
    torch.mul(spectrum[:, : my + 1], scale, out=full[:, : my + 1, :nkx])
    if my:
        torch.mul(spectrum[:, my + 1:], scale, out=full[:, ny - my:, :nkx])
    return torch.fft.irfft2(full, s=(ny, nx), out=out)


def slice_potentials(atoms, sampling: float, slice_thickness: float, parametrization: str = "lobato",
                     device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Projected potential of every slice of one structure, (n_slices, ny, nx) [V·Å].

    ``atoms``: an ase.Atoms with an orthogonal cell [Å]; grid from ``sampling`` [Å] and slices of about
    ``slice_thickness`` [Å], both as in ``multislice.exit_waves`` (infinite projection, exact sums).
    """
    lx, ly, lz = common_cell([atoms])
    grid = grid_for_cell((lx, ly), sampling)
    n_slices, _ = slice_count(lz, slice_thickness)
    numbers = tuple(sorted({int(z) for z in atoms.numbers}))
    ff = form_factors(numbers, grid, parametrization, None, device, dtype)
    extent = frequency_extent(grid)
    pos = np.asarray(atoms.positions, dtype=np.float64)
    index = slice_index(pos[:, 2], lz, n_slices)
    elem = np.searchsorted(numbers, atoms.numbers)
    spectrum = torch.zeros((n_slices,) + ff.shape[1:], dtype=complex_dtype(dtype), device=device)
    for s in range(n_slices):
        for e in range(len(numbers)):
            sel = (index == s) & (elem == e)
            if sel.any():
                fy = torch.as_tensor(np.mod(pos[sel, 1] / ly, 1.0)[None], device=device)
                fx = torch.as_tensor(np.mod(pos[sel, 0] / lx, 1.0)[None], device=device)
                w = torch.ones(fy.shape, dtype=dtype, device=device)
                spectrum[s] += (structure_factors(fy, fx, w, extent) * ff[e])[0]
    return spectrum_to_potential(spectrum, grid)
