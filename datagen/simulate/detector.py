"""Image recording: resampling to the detector pixel, the detector MTF, and Poisson dose noise.

Order of operations, on the simulated intensity in units of the vacuum intensity:

1. **Resample** to ``pixel_size_nm`` by Fourier cropping (or zero-padding): an ideal band limit at
   the output Nyquist frequency, flux-conserving (the mean, and a vacuum image of 1, are kept).
   The output has ``round(extent / pixel)`` pixels per axis, so the pixel size achieved is
   ``extent / n_out`` (:func:`output_grid`), within half a pixel per field of the one asked for.
2. **MTF** multiplies the Fourier transform of the resampled image on the output frequency grid,
   q = |f| in units of the output Nyquist frequency 1/(2·pixel): a table (equally spaced from q = 0
   to q = 1, held at its last value beyond; e.g. a Merlin ``.mtf`` file, which includes the pixel
   aperture) interpolated linearly, or the parametric (1 − c)/(1 + (q/q0)²) + c. It is normalised
   to MTF(0) = 1, so the mean is kept.
3. **Poisson noise** at ``dose_e_per_A2`` [e-/Å²]: the expected count of a pixel is
   image · dose · pixel area [Å²]; the drawn counts are divided by dose · pixel area again, so the
   result stays in units of the vacuum intensity with variance mean / (dose · pixel area).

Noise is drawn after the MTF (the expected image is blurred, then counted), as in most HRTEM
simulators; the library returns arrays and records nothing.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from datagen.simulate.grid import resample
from datagen.simulate.params import MTF, Detector
from datagen.simulate.units import NM



def output_grid(shape: tuple[int, int], sampling_A,
                pixel_size_nm: float) -> tuple[tuple[int, int], tuple[float, float]]:
    """Output shape (ny, nx) and the pixel size achieved (sy, sx) [Å] for a field of ``shape`` pixels
    at ``sampling_A`` [Å] recorded with pixels of ``pixel_size_nm`` [nm]."""
    sampling = _pair(sampling_A, "sampling_A")
    if not (isinstance(pixel_size_nm, (int, float)) and math.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise ValueError(f"pixel_size_nm must be a positive number of nm, got {pixel_size_nm!r}")
    extent = [n * s for n, s in zip(shape, sampling)]
    out = tuple(max(1, round(length / (pixel_size_nm * NM))) for length in extent)
    return out, (extent[0] / out[0], extent[1] / out[1])


def mtf_values(mtf: MTF, q) -> np.ndarray:
    """MTF at spatial frequencies ``q`` in units of Nyquist (array-like), normalised to MTF(0) = 1."""
    q = np.abs(np.asarray(q, dtype=float))
    if mtf.table is not None:
        table = np.asarray(mtf.table, dtype=float)
        values = np.interp(q, np.linspace(0.0, 1.0, len(table)), table) / table[0]
    elif mtf.q0 is not None:
        values = (1 - mtf.c) / (1 + (q / mtf.q0) ** 2) + mtf.c
    else:
        values = np.ones_like(q)
    return values


def apply_mtf(images: torch.Tensor, mtf: MTF) -> torch.Tensor:
    """Multiply the spectrum of real images (..., ny, nx) by the MTF on their own pixel grid."""
    if mtf.table is None and mtf.q0 is None:
        return images
    ny, nx = images.shape[-2:]
    qy = 2 * np.fft.fftfreq(ny)[:, None]  # [Nyquist]
    qx = 2 * np.fft.fftfreq(nx)[None, :]
    kernel = torch.as_tensor(mtf_values(mtf, np.hypot(qy, qx)), dtype=images.dtype, device=images.device)
    return torch.fft.ifft2(torch.fft.fft2(images) * kernel).real


def poisson_noise(images: np.ndarray, counts_per_unit: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson-distributed images in the same units: counts drawn at ``images · counts_per_unit``
    expected electrons per pixel (negative expectations clipped to 0), divided by ``counts_per_unit``."""
    if not (math.isfinite(counts_per_unit) and counts_per_unit > 0):
        raise ValueError(f"counts_per_unit must be a positive number of electrons, got {counts_per_unit!r}")
    expected = np.clip(images, 0.0, None) * counts_per_unit
    return rng.poisson(expected) / counts_per_unit


def apply_detector(images, sampling_A, detector: Detector, rng: np.random.Generator | None) -> np.ndarray:
    """Record noise-free images (B, ny, nx) with a detector: resample, MTF, Poisson noise.

    Parameters
    ----------
    images : Real images (B, ny, nx), torch (any device) or numpy, in units of the vacuum intensity.
    sampling_A : Their sampling [Å], one number or (sy, sx).
    detector : Output pixel size [nm], dose [e-/Å²] (``None`` = noise-free) and MTF.
    rng : Generator for the Poisson noise; required when the detector has a dose.

    Returns
    -------
    numpy float32 (B, ny_out, nx_out) in units of the vacuum intensity (mean 1 over vacuum), at the
    pixel size given by :func:`output_grid`.
    """
    if not isinstance(detector, Detector):
        raise ValueError(f"detector must be a Detector, got {type(detector).__name__}")
    tensor = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if tensor.ndim != 3 or tensor.is_complex() or not tensor.is_floating_point():
        raise ValueError(f"images must be real floating-point (B, ny, nx), got {tuple(tensor.shape)} {tensor.dtype}")
    shape_out, pixel_A = output_grid(tuple(tensor.shape[-2:]), sampling_A, detector.pixel_size_nm)
    recorded = apply_mtf(resample(tensor, shape_out), detector.mtf).cpu().numpy().astype(np.float64)
    if detector.dose_e_per_A2 is not None:
        if not isinstance(rng, np.random.Generator):
            raise ValueError("rng must be a numpy.random.Generator when the detector has a dose")
        recorded = poisson_noise(recorded, detector.dose_e_per_A2 * pixel_A[0] * pixel_A[1], rng)
    return recorded.astype(np.float32)


def _pair(value, name: str) -> tuple[float, float]:
    try:
        pair = tuple(float(v) for v in (np.broadcast_to(np.asarray(value, dtype=float), (2,))))
    except (TypeError, ValueError):
        pair = ()
    if len(pair) != 2 or not all(math.isfinite(v) and v > 0 for v in pair):
        raise ValueError(f"{name} must be one or two positive lengths [Å], got {value!r}")
    return pair


def gaussian_blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """The image filtered with a Gaussian of ``sigma_px`` output pixels (0: unchanged), as images are often
    smoothed before they are saved; edges reflected."""
    if sigma_px <= 0:
        return np.asarray(image, np.float32)
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.asarray(image, np.float64), sigma_px, mode="reflect").astype(np.float32)


def quantize_8bit(image: np.ndarray, clip_percent: float) -> np.ndarray:
    """The image as saved to 8 bits with a contrast stretch: the darkest and brightest ``clip_percent`` [%]
    of pixels clipped, the rest mapped linearly onto 0-255 and rounded; returned as float32 grey levels."""
    a = np.asarray(image, np.float64)
    lo, hi = np.percentile(a, [clip_percent, 100 - clip_percent])
    if not hi > lo:
        return np.zeros(a.shape, np.float32)
    return np.rint(np.clip((a - lo) / (hi - lo), 0, 1) * 255).astype(np.float32)
