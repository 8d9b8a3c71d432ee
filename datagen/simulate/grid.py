"""The simulation grid: extent [Å], grid points and sampling [Å]; any two fix the third.

The rule is abTEM's (``abtem.core.grid.Grid``), so that our grids and abTEM's agree point for point:

- from extent and sampling: ``gpts = ceil(extent / sampling)``, then the sampling actually used is
  ``extent / gpts`` (never coarser than asked);
- from extent and gpts: ``sampling = extent / gpts``;
- from gpts and sampling: ``extent = gpts * sampling``.

The grid is periodic: point ``i`` sits at ``i * sampling`` and the endpoint ``extent`` is not a point.
Axes are ``(y, x)`` in the order of a torch image ``(..., ny, nx)``; spatial frequencies follow
``numpy.fft.fftfreq`` (zero first) in [1/Å].

Along z (also abTEM's rule) a cell of depth Lz is cut into ``ceil(Lz / thickness)`` equal slices;
an atom belongs to the slice holding its wrapped z, the deeper one on a boundary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import ase
import numpy as np
import torch


def _pair(value, name: str, cast) -> tuple:
    if isinstance(value, (int, float, np.integer, np.floating)):
        value = (value, value)
    try:
        pair = tuple(cast(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a number or a pair of numbers, got {value!r}") from err
    if len(pair) != 2 or not all(math.isfinite(v) and v > 0 for v in pair):
        raise ValueError(f"{name} must be one or two positive finite numbers, got {value!r}")
    return pair


@dataclass(frozen=True)
class Grid:
    """A periodic 2-D grid, axes ``(y, x)``.

    Parameters
    ----------
    extent : (Ly, Lx) size of the periodic cell [Å].
    gpts : (ny, nx) number of grid points.
    sampling : (sy, sx) distance between grid points [Å].
    """

    extent: tuple[float, float]
    gpts: tuple[int, int]
    sampling: tuple[float, float]

    @classmethod
    def from_any(cls, extent=None, gpts=None, sampling=None) -> "Grid":
        """Build a grid from any two of ``extent`` [Å], ``gpts`` and ``sampling`` [Å] (abTEM's rule).

        Scalars apply to both axes. Given all three, ``sampling`` is recomputed from the other two.
        """
        given = [v is not None for v in (extent, gpts, sampling)]
        if sum(given) < 2:
            raise ValueError("grid: give at least two of extent, gpts and sampling")
        if gpts is not None:
            gpts = _pair(gpts, "gpts", int)
        if extent is not None:
            extent = _pair(extent, "extent", float)
        if sampling is not None:
            sampling = _pair(sampling, "sampling", float)
        if extent is None:
            extent = tuple(n * d for n, d in zip(gpts, sampling))
        if gpts is None:
            gpts = tuple(int(np.ceil(length / d)) for length, d in zip(extent, sampling))
        sampling = tuple(length / n for length, n in zip(extent, gpts))
        return cls(extent=extent, gpts=gpts, sampling=sampling)

    @property
    def reciprocal_sampling(self) -> tuple[float, float]:
        """Spacing of spatial frequencies (1/Ly, 1/Lx) [1/Å]."""
        return (1.0 / self.extent[0], 1.0 / self.extent[1])

    @property
    def nyquist(self) -> tuple[float, float]:
        """Nyquist frequency of each axis 1/(2 s) [1/Å]."""
        return (0.5 / self.sampling[0], 0.5 / self.sampling[1])

    def frequencies(self, device=None, dtype=torch.float64, rfft: bool = False):
        """Spatial frequencies (ky[:, None], kx[None, :]) [1/Å], fftfreq order.

        With ``rfft=True`` the x axis holds the ``nx // 2 + 1`` non-negative frequencies of
        ``torch.fft.rfft2``.
        """
        ny, nx = self.gpts
        sy, sx = self.sampling
        ky = torch.fft.fftfreq(ny, sy, dtype=torch.float64)
        kx = torch.fft.rfftfreq(nx, sx, dtype=torch.float64) if rfft else torch.fft.fftfreq(nx, sx, dtype=torch.float64)
        return ky.to(device=device, dtype=dtype)[:, None], kx.to(device=device, dtype=dtype)[None, :]

    def k2(self, device=None, dtype=torch.float64, rfft: bool = False) -> torch.Tensor:
        """Squared spatial frequency |k|² on the grid (ny, nx or nx//2+1) [1/Å²]."""
        ky, kx = self.frequencies(device=device, dtype=torch.float64, rfft=rfft)
        return (ky**2 + kx**2).to(dtype)


def grid_for_cell(cell_xy: tuple[float, float], sampling: float) -> Grid:
    """The grid of an orthogonal cell with in-plane lengths ``(Lx, Ly)`` [Å] (ase order) at a ``sampling`` [Å].

    The grid is returned in image order (y, x).
    """
    lx, ly = _pair(cell_xy, "cell_xy", float)
    if not isinstance(sampling, (int, float, np.integer, np.floating)):
        raise ValueError(f"sampling must be one number of Å, got {sampling!r}")
    sampling = _pair(sampling, "sampling", float)[0]
    return Grid.from_any(extent=(ly, lx), sampling=sampling)


def slice_count(cell_z: float, slice_thickness_a: float) -> tuple[int, float]:
    """Number of slices n = ceil(Lz / thickness) and the thickness actually used Lz / n [Å]."""
    if not (math.isfinite(slice_thickness_a) and slice_thickness_a > 0):
        raise ValueError(f"slice_thickness_A must be a positive number of Å, got {slice_thickness_a!r}")
    n = max(1, int(np.ceil(cell_z / slice_thickness_a)))
    return n, cell_z / n


def slice_index(z: np.ndarray, cell_z: float, n_slices: int) -> np.ndarray:
    """Slice of each atom from its z [Å] (wrapped into [0, Lz)); an atom on a boundary goes to the deeper slice."""
    z = np.mod(z, cell_z)
    edges = np.cumsum(np.full(n_slices, cell_z / n_slices)) - 1e-12
    return np.minimum(np.digitize(z, edges), n_slices - 1)


def common_cell(models: Sequence[ase.Atoms]) -> tuple[float, float, float]:
    """The orthogonal cell (Lx, Ly, Lz) [Å] shared by all models; ValueError if they differ or are not orthogonal."""
    if len(models) == 0:
        raise ValueError("models must hold at least one structure")
    cells = []
    for i, atoms in enumerate(models):
        cell = np.asarray(atoms.cell.array, dtype=np.float64)
        if np.any(np.abs(cell - np.diag(np.diag(cell))) > 1e-8) or np.any(np.diag(cell) <= 0):
            raise ValueError(f"models[{i}] must have an orthogonal cell with positive lengths, got {cell.tolist()}")
        cells.append(np.diag(cell))
    first = cells[0]
    for i, cell in enumerate(cells):
        if not np.allclose(cell, first, rtol=0, atol=1e-6):
            raise ValueError(f"models must share one cell: models[{i}] has {cell.tolist()}, "
                             f"models[0] has {first.tolist()} [Å]; group them by cell before calling")
    return tuple(float(v) for v in first)


def resample(images: torch.Tensor, shape_out: tuple[int, int]) -> torch.Tensor:
    """Fourier-resample real images (..., ny, nx) to (..., ny_out, nx_out) over the same field.

    Keeps the frequencies both grids share (cropping is an ideal low-pass filter at the output
    Nyquist frequency; padding adds zeros) and scales so that the mean is unchanged.
    """
    ny, nx = images.shape[-2:]
    my, mx = shape_out
    if (my, mx) == (ny, nx):
        return images
    spectrum = resize_spectrum(torch.fft.fft2(images), (my, mx))
    return torch.fft.ifft2(spectrum).real * (my * mx / (ny * nx))


def resize_spectrum(spectrum: torch.Tensor, shape_out: tuple[int, int]) -> torch.Tensor:
    """FFT-ordered spectra (..., ny, nx) cut (or zero-padded) to their lowest frequencies (..., *shape_out):
    the spectrum of the same field on a coarser (finer) grid, unnormalised; a no-op for the same shape."""
    if tuple(shape_out) == tuple(spectrum.shape[-2:]):
        return spectrum
    return _fft_resize(_fft_resize(spectrum, shape_out[0], dim=-2), shape_out[1], dim=-1)


def _fft_resize(spectrum: torch.Tensor, n_out: int, dim: int) -> torch.Tensor:
    """Keep the lowest min(n_in, n_out) frequencies of an FFT-ordered axis, in FFT order of n_out."""
    n_in = spectrum.shape[dim]
    m = min(n_in, n_out)
    positive, negative = (m + 1) // 2, m // 2  # frequencies 0 … positive−1 and −negative … −1
    shape = list(spectrum.shape)
    shape[dim] = n_out
    out = torch.zeros(shape, dtype=spectrum.dtype, device=spectrum.device)
    out.narrow(dim, 0, positive).copy_(spectrum.narrow(dim, 0, positive))
    if negative:
        out.narrow(dim, n_out - negative, negative).copy_(spectrum.narrow(dim, n_in - negative, negative))
    return out
