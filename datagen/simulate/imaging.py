"""Image formation: exit waves through the objective lens to noise-free HRTEM intensities.

For each sample, its own :class:`~datagen.simulate.params.Optics` give a CTF (see ``ctf``) that
multiplies the Fourier transform of the exit wave; the image is |ψ ⊛ PSF|², averaged over the
frozen-phonon configurations. Temporal coherence is one of two models, per sample:

- ``"focal_average"``: the intensity averaged explicitly over the Gaussian focus distribution
  exp(−f²/Δ²) (Δ = ``focal_spread_nm``, the 1/e half-width; σ = Δ/√2) by Gauss–Hermite quadrature
  with ``n_focal`` planes (weights sum to 1). The spatial envelope is evaluated at each plane's focus.
  The quadrature converges fast where πλΔk² is below about 1.5·√n (n = 7, Δ = 5 nm, 300 kV: up to
  k ≈ 1 Å⁻¹, past the information limit); at higher frequencies, where the true average is nearly
  zero, a residual of the coherent high-frequency contrast remains (an objective aperture or a
  larger n removes it).
- ``"envelope"``: the quasi-coherent temporal envelope E_t(k) multiplies the wave, as abTEM's CTF
  does: exact for the interference of every beam with the central beam (the linear image), an
  approximation for the non-linear terms.

Samples are batched: per-sample CTF stacks of shape (b, ny, nx), chunks of the batch bounded by a
memory budget, device and dtype those of the exit waves. Intensities are in units of the vacuum
intensity (a vacuum exit wave of 1 gives an image of 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy.fft import next_fast_len

from datagen.simulate import ctf as _ctf
from datagen.simulate.energy import electron_wavelength
from datagen.simulate.grid import resample, resize_spectrum
from datagen.simulate.params import Optics
from datagen.simulate.units import MRAD

#: Memory budget of one chunk of :func:`form_images` when none is given [bytes].
DEFAULT_MAX_BATCH_BYTES = 2**30


def focal_quadrature(n_focal: int, focal_spread_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite focus offsets [nm] and weights (summing to 1) for the distribution exp(−f²/Δ²).

    ``focal_spread_nm`` Δ [nm] is the 1/e half-width. With Δ = 0 or ``n_focal`` = 1 the single
    plane (0 nm, weight 1) is returned. The rule integrates polynomials of f up to degree
    2·n_focal − 1 exactly.
    """
    if not (isinstance(n_focal, (int, np.integer)) and n_focal >= 1):
        raise ValueError(f"n_focal must be a positive integer, got {n_focal!r}")
    if not (math.isfinite(focal_spread_nm) and focal_spread_nm >= 0):
        raise ValueError(f"focal_spread_nm must be a number >= 0 nm, got {focal_spread_nm!r}")
    if focal_spread_nm == 0 or n_focal == 1:
        return np.zeros(1), np.ones(1)
    nodes, weights = np.polynomial.hermite.hermgauss(int(n_focal))  # weight function exp(−x²)
    return focal_spread_nm * nodes, weights / weights.sum()


def form_images(exit_waves: torch.Tensor, sampling: tuple[float, float], optics: Sequence[Optics], *,
                max_batch_bytes: int | None = None, shape: tuple[int, int] | None = None) -> torch.Tensor:
    """Noise-free images (B, ny, nx) of exit waves (F, B, ny, nx) through per-sample optics.

    Parameters
    ----------
    exit_waves : Complex tensor (F, B, ny, nx): F frozen-phonon configurations of B samples,
        vacuum-normalised (|ψ|² = 1 in vacuum); a (B, ny, nx) tensor is taken as F = 1.
    sampling : (sy, sx) real-space sampling of the waves [Å].
    optics : One :class:`Optics` per sample (or one for all).
    max_batch_bytes : Device memory a chunk of samples may use for image formation [bytes]
        (default 1 GiB); the batch, and if need be the configurations of a sample, are split into
        chunks that fit.
    shape : (ny_out, nx_out) of the returned images over the same field (default: the waves' grid):
        the full-grid images Fourier-resampled (``grid.resample``) to it. With an objective aperture
        the work is done on a coarser grid that gives the same result (see :func:`work_shape`);
        :func:`band_limited_shape` is the smallest ``shape`` that keeps every frequency of the image.

    Returns
    -------
    Real tensor (B, *shape) on the waves' device, in the waves' real dtype: intensity averaged over
    the F configurations and over focus, in units of the vacuum intensity.
    """
    waves = _check_waves(exit_waves)
    n_conf, n_samples, ny, nx = waves.shape
    optics = _check_optics(optics, n_samples)
    sampling = _check_sampling(sampling)
    budget = DEFAULT_MAX_BATCH_BYTES if max_batch_bytes is None else int(max_batch_bytes)
    if budget <= 0:
        raise ValueError(f"max_batch_bytes must be a positive number of bytes, got {max_batch_bytes!r}")

    shape = (ny, nx) if shape is None else _check_shape(shape)
    dtype, device = waves.real.dtype, waves.device
    extent = (ny * sampling[0], nx * sampling[1])
    edge_dk = (1.0 / extent[0], 1.0 / extent[1])
    plane_bytes = ny * nx * torch.finfo(dtype).bits // 8
    conf_bytes, fixed_bytes = 8 * plane_bytes, 24 * plane_bytes  # per configuration (complex), CTF parts
    conf_chunk = int(min(n_conf, max(1, (budget - fixed_bytes) // conf_bytes)))
    chunk = max(1, budget // (fixed_bytes + conf_chunk * conf_bytes))

    images = torch.zeros((n_samples, *shape), dtype=dtype, device=device)
    for n_planes, members in _groups(optics).items():
        for start in range(0, len(members), chunk):
            index = members[start:start + chunk]
            work = work_shape((ny, nx), sampling, [optics[i] for i in index], shape)
            kx, ky = _ctf.frequency_grid(work, (extent[0] / work[0], extent[1] / work[1]), device=device, dtype=dtype)
            params = _parameters([optics[i] for i in index], dtype, device)
            for first in range(0, n_conf, conf_chunk):
                spectrum = resize_spectrum(torch.fft.fft2(waves[first:first + conf_chunk, index]), work)
                if work != (ny, nx):  # the same wave on the coarser grid: ifft2 divides by fewer points
                    spectrum *= work[0] * work[1] / (ny * nx)
                share = spectrum.shape[0] / n_conf
                intensity = _focal_series(spectrum, kx, ky, params, n_planes, edge_dk)
                images[index] += share * resample(intensity, shape)
                del spectrum, intensity
    return images


def _aperture_index(shape: tuple[int, int], sampling: tuple[float, float], optics: Sequence[Optics]):
    """Per axis, the largest |FFT index| at which any sample's (soft-edged) objective aperture passes
    anything; None when one has no aperture."""
    if any(o.aperture_mrad is None or not math.isfinite(o.aperture_mrad) for o in optics):
        return None
    extent = (shape[0] * sampling[0], shape[1] * sampling[1])
    k_max = max(o.aperture_mrad * MRAD / electron_wavelength(o.voltage_kv) for o in optics)  # [1/Å]
    # the soft edge (``ctf.aperture``) reaches half a frequency step, at most 1/(2·min extent), further
    edge = 0.5 / min(extent)
    return tuple(math.floor((k_max + edge) * length) + 1 for length in extent)


def work_shape(shape: tuple[int, int], sampling: tuple[float, float], optics: Sequence[Optics],
               shape_out: tuple[int, int]) -> tuple[int, int]:
    """The grid (≤ ``shape``) on which :func:`form_images` forms images that it returns at ``shape_out``.

    An objective aperture confines the wave's spectrum to |index| ≤ m per axis and so the image's to
    |index| ≤ 2m. On a grid of n ≥ 2m + ⌊n_out/2⌋ + 1 points the wave is intact, and the image
    frequencies the output keeps (|index| ≤ ⌊n_out/2⌋) meet no alias, so the result equals the
    full-grid image resampled to ``shape_out`` (up to rounding). Sizes are rounded up to fast FFT lengths.
    """
    index = _aperture_index(shape, sampling, optics)
    if index is None:
        return tuple(shape)
    return tuple(min(n, next_fast_len(2 * m + n_out // 2 + 1)) for n, m, n_out in zip(shape, index, shape_out))


def band_limited_shape(shape: tuple[int, int], sampling: tuple[float, float],
                       optics: Sequence[Optics]) -> tuple[int, int]:
    """The smallest grid (≤ ``shape``, fast FFT lengths) that holds every frequency of the images of
    waves on ``shape`` at ``sampling`` [Å] through ``optics``: n ≥ 4m + 1 with m the aperture's
    largest index (``shape`` itself without an aperture). Images there resample exactly to any grid."""
    index = _aperture_index(shape, sampling, optics)
    if index is None:
        return tuple(shape)
    return tuple(min(n, next_fast_len(4 * m + 1)) for n, m in zip(shape, index))


def _focal_series(spectrum, kx, ky, params: dict, n_planes: int, edge_dk) -> torch.Tensor:
    """Σ_j w_j · mean_F |IFFT(ψ̃ · CTF(C1 + f_j))|² for one chunk; f_j, w_j from Gauss–Hermite.

    χ and its gradient are linear in C1, so both are evaluated once at the nominal focus and once per
    unit defocus; a focal plane then costs a few element-wise operations and one inverse FFT.
    """
    wavelength = params["wavelength"]
    aberrations = {name: params[name] for name in ("defocus_nm", "astig_x_nm", "astig_y_nm", "cs_um")}
    chi = _ctf.aberration_phase(kx, ky, wavelength, **aberrations)
    dchi = _ctf.aberration_phase(kx, ky, wavelength, defocus_nm=1.0) if n_planes > 1 else None  # [rad / nm]
    spread, envelope_model = params["focal_spread_nm"], params["envelope"]
    envelope_spread = torch.where(envelope_model, spread, 0.0)
    amplitude = torch.ones((), dtype=kx.dtype, device=kx.device)
    if bool(torch.any(torch.isfinite(params["aperture_mrad"]))):
        amplitude = amplitude * _ctf.aperture(kx, ky, wavelength, params["aperture_mrad"], edge_dk)
    if bool(torch.any(envelope_spread > 0)):
        amplitude = amplitude * _ctf.temporal_envelope(kx, ky, wavelength, envelope_spread)
    convergence = params["convergence_mrad"]
    spatial = bool(torch.any(convergence > 0))
    if spatial:
        gradient = _ctf.aberration_gradient(kx, ky, wavelength, **aberrations)
        unit_gradient = _ctf.aberration_gradient(kx, ky, wavelength, defocus_nm=1.0)
        width = (convergence * MRAD / 2 / wavelength) ** 2
    plane_spread = torch.where(envelope_model, 0.0, spread)
    offsets, weights = focal_quadrature(n_planes, 1.0)
    intensity = torch.zeros(spectrum.shape[1:], dtype=kx.dtype, device=kx.device)
    for offset, weight in zip(offsets, weights):
        shift = plane_spread * float(offset)  # [nm]
        modulus = amplitude
        if spatial:
            gx, gy = (g + shift * u for g, u in zip(gradient, unit_gradient))
            modulus = amplitude * torch.exp(-width * (gx**2 + gy**2))
        phase = chi if dchi is None else chi + shift * dchi
        transfer = torch.polar(modulus, -phase)
        wave = torch.fft.ifft2(spectrum * transfer)
        intensity += float(weight) * (wave.real**2 + wave.imag**2).mean(dim=0)
    return intensity


def _parameters(optics: Sequence[Optics], dtype, device) -> dict[str, torch.Tensor]:
    """Per-sample optics as tensors of shape (b, 1, 1), ready to broadcast against the k grid."""

    def column(values, column_dtype=dtype):
        return torch.tensor(values, dtype=column_dtype, device=device)[:, None, None]

    return {
        "wavelength": column([electron_wavelength(o.voltage_kv) for o in optics]),
        "defocus_nm": column([o.defocus_nm for o in optics]),
        "astig_x_nm": column([o.astig_x_nm for o in optics]),
        "astig_y_nm": column([o.astig_y_nm for o in optics]),
        "cs_um": column([o.cs_um for o in optics]),
        "aperture_mrad": column([math.inf if o.aperture_mrad is None else o.aperture_mrad for o in optics]),
        "convergence_mrad": column([o.convergence_mrad for o in optics]),
        "focal_spread_nm": column([o.focal_spread_nm for o in optics]),
        "envelope": column([o.temporal_model == "envelope" for o in optics], torch.bool),
    }


def _groups(optics: Sequence[Optics]) -> dict[int, list[int]]:
    """Sample indices grouped by their number of focal planes (1 for the envelope model)."""
    groups: dict[int, list[int]] = {}
    for i, o in enumerate(optics):
        explicit = o.temporal_model == "focal_average" and o.focal_spread_nm > 0
        groups.setdefault(o.n_focal if explicit else 1, []).append(i)
    return groups


def _check_waves(exit_waves) -> torch.Tensor:
    if not isinstance(exit_waves, torch.Tensor) or not exit_waves.is_complex():
        raise ValueError(f"exit_waves must be a complex torch tensor, got {type(exit_waves).__name__}")
    if exit_waves.ndim == 3:
        exit_waves = exit_waves[None]
    if exit_waves.ndim != 4 or 0 in exit_waves.shape:
        raise ValueError(f"exit_waves must have shape (F, B, ny, nx), got {tuple(exit_waves.shape)}")
    return exit_waves


def _check_optics(optics, n_samples: int) -> list[Optics]:
    optics = [optics] if isinstance(optics, Optics) else list(optics)
    if not all(isinstance(o, Optics) for o in optics):
        raise ValueError("optics must be a sequence of Optics")
    if len(optics) == 1:
        optics = optics * n_samples
    if len(optics) != n_samples:
        raise ValueError(f"optics must hold one Optics per sample ({n_samples}), got {len(optics)}")
    return optics


def _check_shape(shape) -> tuple[int, int]:
    pair = tuple(shape)
    if len(pair) != 2 or not all(isinstance(n, (int, np.integer)) and n >= 1 for n in pair):
        raise ValueError(f"shape must be two positive integers (ny, nx), got {shape!r}")
    return int(pair[0]), int(pair[1])


def _check_sampling(sampling) -> tuple[float, float]:
    pair = (sampling, sampling) if isinstance(sampling, (int, float)) else tuple(sampling)
    if len(pair) != 2 or not all(math.isfinite(s) and s > 0 for s in pair):
        raise ValueError(f"sampling must be (sy, sx) positive lengths [Å], got {sampling!r}")
    return float(pair[0]), float(pair[1])
