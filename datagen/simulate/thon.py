"""Thon rings: radial power spectra of thin amorphous images, and a defocus fit with our CTF.

The power spectrum of a weak object imaged with the CTF is P(k) ≈ B(k) + E(k)²·sin²(χ(k) − φ): a
smooth background B, an envelope E (coherence, MTF) and rings from the aberration phase χ of
``ctf.aberration_phase``, shifted by φ = arctan(amplitude-contrast ratio). The fit works on the
logarithm of the radial profile against u = k², where (for small Cs) the rings are periodic:

1. **Coarse |C1|** on a logarithmic grid (0.3 % steps): for each candidate, a linear least-squares fit
   of the log profile by a smooth background (Legendre polynomial in u) plus damped rings
   a(u)·cos 2χ + b(u)·sin 2χ; the smallest residual wins (robust down to two or three rings).
2. **Astigmatism**: C1 refined in ``n_sectors`` azimuthal sectors; C1(θ) = C1 + a1x·cos 2θ + a1y·sin 2θ
   gives (a1x, a1y), θ the azimuth of k from the image x axis (columns) towards y (rows).
3. **Final C1** (and Cs when ``fit_cs``) on the astigmatism-corrected azimuthal average (each pixel's
   |k| rescaled so that its defocus phase is that of C1). Refinement maximises the demodulation
   |Σ d(u)·exp(−2iχ(u))| of the background-free log profile d, which is insensitive to the ring
   amplitude and phase; the phase shift φ then comes from the least-squares ring term.
4. **Minima**: local minima of d(k) against the zeros of sin(χ − φ) (``ctf.ctf_zeros``).

The rings of a phase object at Cs ≈ 0 do not tell the sign of the defocus: it is taken from
``defocus_sign`` (−1, underfocus, by default). Frequencies [1/nm], lengths [nm], Cs [µm].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import optimize, signal

from datagen.simulate.ctf import aberration_phase, ctf_zeros
from datagen.simulate.energy import electron_wavelength
from datagen.simulate.units import NM

_BACKGROUND_DEGREE = 6


@dataclass(frozen=True)
class ThonFit:
    """A Thon-ring fit. Frequencies [1/nm]; optics [nm], [µm]; phases [rad].

    ``profile`` is the background-subtracted log power spectrum at ``k_nm`` (astigmatism-corrected
    azimuthal average); ``model`` the fitted damped ring term ≈ −A(k)·cos(2(χ − φ)), i.e. the CTF²
    sin²(χ − φ) up to a smooth offset and scale; ``sector_defocus_nm`` the C1 of each azimuthal sector.
    """

    defocus_nm: float
    astig_x_nm: float
    astig_y_nm: float
    cs_um: float
    phase_shift: float
    voltage_kv: float
    k_nm: np.ndarray = field(repr=False)
    profile: np.ndarray = field(repr=False)
    model: np.ndarray = field(repr=False)
    measured_minima: np.ndarray = field(repr=False)
    predicted_minima: np.ndarray = field(repr=False)
    matched: np.ndarray = field(repr=False)  # (n, 2): predicted, measured [1/nm]
    sector_defocus_nm: np.ndarray = field(repr=False)

    @property
    def n_matched(self) -> int:
        """Number of predicted minima with a measured minimum next to them."""
        return len(self.matched)

    @property
    def rms_minima_nm(self) -> float:
        """RMS difference of matched predicted and measured minima [1/nm]."""
        if not len(self.matched):
            return math.nan
        return float(np.sqrt(np.mean((self.matched[:, 0] - self.matched[:, 1]) ** 2)))


def read_raw_image(path: str | Path, shape: tuple[int, int] = (512, 512), dtype: str = "<u2") -> np.ndarray:
    """A headerless raw image (default 512 × 512 little-endian uint16) as float64."""
    data = np.fromfile(Path(path), dtype=np.dtype(dtype))
    if data.size != shape[0] * shape[1]:
        raise ValueError(f"path {str(path)!r} holds {data.size} values, not shape {shape}")
    return data.reshape(shape).astype(np.float64)


def power_spectrum(image: np.ndarray) -> np.ndarray:
    """|FFT|² of the Hann-windowed relative contrast image/mean − 1, in FFT order."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or min(image.shape) < 16:
        raise ValueError(f"image must be a 2-D array of at least 16 × 16, got shape {image.shape}")
    window = np.outer(np.hanning(image.shape[0]), np.hanning(image.shape[1]))
    return np.abs(np.fft.fft2((image / image.mean() - 1) * window)) ** 2


def polar_frequencies(shape: tuple[int, int], pixel_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """|k| [1/nm] and azimuth θ [rad] (from x = columns towards y = rows) of an FFT-ordered grid."""
    if not (math.isfinite(pixel_nm) and pixel_nm > 0):
        raise ValueError(f"pixel_nm must be a positive number of nm, got {pixel_nm!r}")
    ky = np.fft.fftfreq(shape[0], pixel_nm)[:, None]
    kx = np.fft.fftfreq(shape[1], pixel_nm)[None, :]
    return np.hypot(kx, ky), np.arctan2(ky, kx)


def radial_profile(spectrum: np.ndarray, k: np.ndarray, bin_nm: float,
                   mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``spectrum`` in rings of width ``bin_nm`` [1/nm] of ``k`` [1/nm] (optionally masked):
    bin centres [1/nm] and means; empty bins are dropped."""
    index = np.floor(k / bin_nm + 0.5).astype(int)
    keep = np.ones(k.shape, bool) if mask is None else mask
    counts = np.bincount(index[keep], minlength=index.max() + 1)
    sums = np.bincount(index[keep], spectrum[keep], minlength=index.max() + 1)
    full = counts > 0
    return np.arange(len(counts))[full] * bin_nm, sums[full] / counts[full]


class _LogProfile:
    """The log radial profile y(u) on a uniform grid of u = k² [1/nm²] inside ``k_range`` [1/nm], with the
    Legendre background basis (degree ``_BACKGROUND_DEGREE`` in u) projected out once."""

    def __init__(self, k: np.ndarray, profile: np.ndarray, k_range: tuple[float, float], points: int = 768):
        sel = (k >= k_range[0]) & (k <= k_range[1]) & (profile > 0)
        if sel.sum() < 16:
            raise ValueError(f"k_range_nm {k_range} holds fewer than 16 profile points")
        self.u = np.linspace(k[sel][0] ** 2, k[sel][-1] ** 2, points)
        self.y = np.interp(self.u, k[sel] ** 2, np.log(profile[sel]))
        self.s = 2 * (self.u - self.u[0]) / (self.u[-1] - self.u[0]) - 1
        self.q, _ = np.linalg.qr(np.polynomial.legendre.legvander(self.s, _BACKGROUND_DEGREE))
        self.y_rest = self.y - self.q @ (self.q.T @ self.y)


def _chi(u_nm2: np.ndarray, wavelength: float, defocus_nm: float, cs_um: float) -> np.ndarray:
    """χ [rad] at |k|² = u [1/nm²] along kx, from ``ctf.aberration_phase`` (k in [1/Å] there)."""
    return aberration_phase(np.sqrt(u_nm2) / NM, 0.0, wavelength, defocus_nm=defocus_nm, cs_um=cs_um)


@dataclass(frozen=True)
class _RingFit:
    residual: float  # sum of squared residuals of the log profile
    background: np.ndarray  # fitted smooth background B(u) of the log profile
    rings: np.ndarray  # fitted ring term a(u)·cos 2χ + b(u)·sin 2χ
    phase_shift: float  # φ [rad] from the ring term ≈ −A(u)·cos(2χ − 2φ)


def _ring_fit(p: _LogProfile, wavelength, defocus_nm, cs_um) -> _RingFit:
    """Linear least squares y(u) = background + (a0 + a1·s)·cos 2χ + (b0 + b1·s)·sin 2χ for one χ,
    s the scaled u ∈ [−1, 1]: the smooth background and the damped rings fitted together."""
    chi2 = 2 * _chi(p.u, wavelength, defocus_nm, cs_um)
    rings = np.column_stack([np.cos(chi2), p.s * np.cos(chi2), np.sin(chi2), p.s * np.sin(chi2)])
    rings_rest = rings - p.q @ (p.q.T @ rings)
    coef, *_ = np.linalg.lstsq(rings_rest, p.y_rest, rcond=None)
    fitted = rings @ coef
    background = p.q @ (p.q.T @ (p.y - fitted))
    return _RingFit(residual=float(np.sum((p.y_rest - rings_rest @ coef) ** 2)), background=background,
                    rings=fitted, phase_shift=float(np.arctan2(-coef[2], -coef[0]) / 2))


def _coarse_defocus(p: _LogProfile, wavelength, search_nm: tuple[float, float]) -> float:
    """|C1| [nm] on a logarithmic grid (steps of 0.3 %) whose rings best explain the log profile."""
    candidates = np.geomspace(search_nm[0], search_nm[1], int(np.log(search_nm[1] / search_nm[0]) / 0.003) + 1)
    residuals = [_ring_fit(p, wavelength, c, 0.0).residual for c in candidates]
    return float(candidates[int(np.argmin(residuals))])


def _demodulation(p: _LogProfile, wavelength, defocus_nm, cs_um) -> float:
    """|Σ d(u)·exp(−2iχ(u))| of the background-free log profile d: largest where χ has the rings' phase
    (insensitive to the phase shift φ and to the ring amplitude)."""
    return float(abs(np.sum(p.y_rest * np.exp(-2j * _chi(p.u, wavelength, defocus_nm, cs_um)))))


def _refine(p: _LogProfile, wavelength, defocus_nm, cs_um, fit_cs: bool, span: float = 0.01) -> tuple[float, float]:
    """Maximise the demodulation over C1 [nm] within ±``span``·|C1| (and Cs [µm] when ``fit_cs``)."""
    if fit_cs:
        start = np.array([defocus_nm, cs_um / 1e3])
        result = optimize.minimize(lambda x: -_demodulation(p, wavelength, x[0], x[1] * 1e3), x0=start,
                                   method="Nelder-Mead", options=dict(xatol=1e-3, fatol=1e-10, initial_simplex=[
                                       start, start + (span * defocus_nm, 0), start + (0, 0.2)]))
        return float(result.x[0]), float(result.x[1] * 1e3)
    bounds = (defocus_nm - span * abs(defocus_nm), defocus_nm + span * abs(defocus_nm))
    result = optimize.minimize_scalar(lambda c: -_demodulation(p, wavelength, c, cs_um), bounds=bounds,
                                      method="bounded", options=dict(xatol=1e-4))
    return float(result.x), cs_um


def measured_minima(k: np.ndarray, d: np.ndarray, k_range: tuple[float, float]) -> np.ndarray:
    """Local minima [1/nm] of a detrended profile d(k) inside ``k_range``, refined by a parabola."""
    smooth = signal.savgol_filter(d, 5, 2)
    peaks, _ = signal.find_peaks(-smooth, prominence=0.25 * np.std(smooth))
    peaks = peaks[(peaks > 0) & (peaks < len(k) - 1)]
    left, mid, right = smooth[peaks - 1], smooth[peaks], smooth[peaks + 1]
    offset = 0.5 * (left - right) / np.where(left - 2 * mid + right != 0, left - 2 * mid + right, 1.0)
    minima = k[peaks] + np.clip(offset, -0.5, 0.5) * (k[1] - k[0])
    return minima[(minima >= k_range[0]) & (minima <= k_range[1])]


def match_minima(predicted: np.ndarray, measured: np.ndarray, tolerance: float = 0.3) -> np.ndarray:
    """Pairs (predicted, measured) [1/nm]: the nearest measured minimum within ``tolerance`` × the local
    spacing of predicted minima, each measured minimum used at most once."""
    pairs, used = [], set()
    for i, p in enumerate(predicted):
        neighbours = np.diff(predicted[max(0, i - 1):i + 2])
        if not len(measured) or not len(neighbours):
            continue
        j = int(np.argmin(np.abs(measured - p)))
        if j not in used and abs(measured[j] - p) <= tolerance * neighbours.min():
            pairs.append((p, measured[j]))
            used.add(j)
    return np.array(pairs, dtype=float).reshape(-1, 2)


def fit_thon_rings(image: np.ndarray, pixel_nm: float, voltage_kv: float = 300.0, *, cs_um: float = 0.0,
                   fit_cs: bool = False, defocus_sign: int = -1, k_range_nm: tuple[float, float | None] = (0.5, None),
                   search_nm: tuple[float, float] = (20.0, 3000.0), n_sectors: int = 12) -> ThonFit:
    """Fit defocus (sign from ``defocus_sign``), two-fold astigmatism and, with ``fit_cs``, Cs to the
    Thon rings of an image of a thin amorphous film.

    Parameters
    ----------
    image : 2-D image (counts or any linear intensity).
    pixel_nm : Pixel size [nm].
    voltage_kv : Accelerating voltage [kV].
    cs_um : Cs [µm], fixed unless ``fit_cs`` (then the start value).
    defocus_sign : −1 (underfocus, C1 < 0) or +1.
    k_range_nm : Frequencies used [1/nm]; the upper bound defaults to 0.95 × Nyquist.
    search_nm : Range of |C1| [nm] for the coarse search.
    n_sectors : Azimuthal sectors (over 180°) for the astigmatism.
    """
    if defocus_sign not in (-1, 1):
        raise ValueError(f"defocus_sign must be -1 or +1, got {defocus_sign!r}")
    if n_sectors < 3:
        raise ValueError(f"n_sectors must be >= 3 to determine astigmatism, got {n_sectors!r}")
    wavelength = electron_wavelength(voltage_kv)
    spectrum = power_spectrum(image)
    k, theta = polar_frequencies(spectrum.shape, pixel_nm)
    bin_nm = 0.5 / (max(spectrum.shape) * pixel_nm)
    k_range = (k_range_nm[0], 0.95 * 0.5 / pixel_nm if k_range_nm[1] is None else k_range_nm[1])

    profile = _LogProfile(*radial_profile(spectrum, k, bin_nm), k_range)
    defocus = defocus_sign * _coarse_defocus(profile, wavelength, search_nm)

    centres = (np.arange(n_sectors) + 0.5) * math.pi / n_sectors
    sector = np.floor(np.mod(theta, math.pi) / (math.pi / n_sectors)).astype(int)
    sector_defocus = np.array([
        _refine(_LogProfile(*radial_profile(spectrum, k, 2 * bin_nm, sector == s), k_range), wavelength,
                defocus, cs_um, False, span=0.08)[0] for s in range(n_sectors)])
    design = np.column_stack([np.ones(n_sectors), np.cos(2 * centres), np.sin(2 * centres)])
    defocus, astig_x, astig_y = np.linalg.lstsq(design, sector_defocus, rcond=None)[0]

    local = defocus + astig_x * np.cos(2 * theta) + astig_y * np.sin(2 * theta)
    profile = _LogProfile(*radial_profile(spectrum, k * np.sqrt(np.clip(local / defocus, 0, None)), bin_nm), k_range)
    defocus, cs_um = _refine(profile, wavelength, defocus, cs_um, fit_cs)
    fit = _ring_fit(profile, wavelength, defocus, cs_um)
    u = profile.u

    k_grid = np.arange(k_range[0], k_range[1], bin_nm)
    d_k = np.interp(k_grid ** 2, u, profile.y - fit.background)
    predicted = ctf_zeros(voltage_kv, defocus, cs_um, k_max=k_range[1] / NM, phase_shift=fit.phase_shift) * NM
    predicted = predicted[predicted >= k_range[0]]
    minima = measured_minima(k_grid, d_k, k_range)
    return ThonFit(defocus_nm=float(defocus), astig_x_nm=float(astig_x), astig_y_nm=float(astig_y),
                   cs_um=float(cs_um), phase_shift=fit.phase_shift, voltage_kv=float(voltage_kv),
                   k_nm=k_grid, profile=d_k, model=np.interp(k_grid ** 2, u, fit.rings),
                   measured_minima=minima, predicted_minima=predicted, matched=match_minima(predicted, minima),
                   sector_defocus_nm=sector_defocus)
