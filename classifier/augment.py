"""Augmentation on the training device, per sample and batched.

A particle has no preferred orientation in the image plane, so every cut-out is sent through a
random element of the square's symmetry group (four rotations by 90 degrees, each with or without a
mirror), which maps the pixel grid onto itself without interpolation. Contrast is scaled and Gaussian
noise added, as the paper did to cover imaging conditions the simulation does not vary.

``Augmentation.paper()`` adds the paper's other changes and two of the recording's: rotation by any
angle and random scaling (one bilinear resampling for both), a brightness offset, a Gaussian blur (the
filter images often get before they are saved), a camera-like MTF (1 - c) / (1 + (q / q0)²) + c with q
in Nyquist units (one Fourier product for blur and MTF), and shot noise whose variance follows the
intensity (dose noise). Every setting is recorded in the model file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

Range = tuple[float, float]


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random changes, each drawn per sample and uniform in its range; ``none()``
    switches them all off, ``paper()`` switches all on."""

    dihedral: bool = True  # random rotation by k * 90 degrees and mirror
    contrast: Range = (0.8, 1.25)  # factor on the standardised intensity
    noise_sigma: Range = (0.0, 0.3)  # Gaussian noise, standard deviation in particle std units
    rotation: bool = False  # rotation by any angle (bilinear)
    scale: Range = (1.0, 1.0)  # zoom about the centre (> 1 enlarges the particle)
    brightness: Range = (0.0, 0.0)  # offset added, in particle std units
    blur_sigma_px: Range = (0.0, 0.0)  # Gaussian blur, sigma in pixels of the cut-out
    mtf_q0: Range | None = None  # camera-like MTF (1 - c) / (1 + (q / q0)^2) + c, q0 in Nyquist units; None: off
    mtf_c: float = 0.0
    shot_noise: Range = (0.0, 0.0)  # dose noise: std = s * sqrt(I / mean I), I the intensity made positive

    @classmethod
    def none(cls) -> Augmentation:
        return cls(dihedral=False, contrast=(1.0, 1.0), noise_sigma=(0.0, 0.0))

    @classmethod
    def paper(cls) -> Augmentation:
        """Rotation by any angle, scaling, x/y reflection, brightness and contrast, Gaussian blur up to
        sigma 2 px (the paper's), plus an MTF and dose noise."""
        return cls(dihedral=True, contrast=(0.8, 1.25), noise_sigma=(0.0, 0.2), rotation=True, scale=(0.85, 1.15),
                   brightness=(-0.3, 0.3), blur_sigma_px=(0.0, 2.0), mtf_q0=(0.4, 1.5), mtf_c=0.1, shot_noise=(0.0, 0.3))

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch ``x`` of shape (N, 1, H, W) with H == W; returns a new tensor."""
        n = x.shape[0]
        dev = x.device

        def uniform(lo: float, hi: float) -> torch.Tensor:
            u = torch.rand(n, 1, 1, 1, generator=generator, device=dev, dtype=x.dtype)
            return lo + (hi - lo) * u

        if self.dihedral:
            flags = torch.rand(n, 3, generator=generator, device=dev) < 0.5
            for k, flip in enumerate((lambda t: t.transpose(-1, -2), lambda t: t.flip(-1), lambda t: t.flip(-2))):
                x = torch.where(flags[:, k].view(n, 1, 1, 1), flip(x), x)
        if self.rotation or self.scale != (1.0, 1.0):
            x = self._rotate_scale(x, uniform)
        if self.blur_sigma_px[1] > 0 or self.mtf_q0 is not None:
            x = self._filter(x, uniform)
        if self.shot_noise[1] > 0:
            level = x - x.amin(dim=(-2, -1), keepdim=True)
            level = level / level.mean(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
            x = x + uniform(*self.shot_noise) * level.sqrt() * torch.randn(x.shape, generator=generator, device=dev,
                                                                           dtype=x.dtype)
        if self.contrast != (1.0, 1.0):
            x = x * uniform(*self.contrast)
        if self.brightness != (0.0, 0.0):
            x = x + uniform(*self.brightness)
        if self.noise_sigma[1] > 0:
            sigma = uniform(*self.noise_sigma)
            x = x + sigma * torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype)
        return x

    def _rotate_scale(self, x: torch.Tensor, uniform) -> torch.Tensor:
        """One bilinear resampling: rotation by a uniform angle (if ``rotation``) and zoom by ``scale``;
        what comes from outside the cut-out is 0 (its background)."""
        n = x.shape[0]
        angle = uniform(0.0, 2 * math.pi).view(n) if self.rotation else torch.zeros(n, device=x.device, dtype=x.dtype)
        zoom = uniform(*self.scale).view(n)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        zero = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _filter(self, x: torch.Tensor, uniform) -> torch.Tensor:
        """Gaussian blur and MTF as one product in Fourier space (periodic; the cut-out's edge is its flat
        background, so nothing wraps that matters)."""
        h, w = x.shape[-2:]
        ky = torch.fft.fftfreq(h, device=x.device, dtype=x.dtype).view(1, 1, h, 1)
        kx = torch.fft.rfftfreq(w, device=x.device, dtype=x.dtype).view(1, 1, 1, w // 2 + 1)
        k2 = ky * ky + kx * kx  # cycles per pixel, squared
        transfer = torch.ones(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype)
        if self.blur_sigma_px[1] > 0:
            sigma = uniform(*self.blur_sigma_px)
            transfer = transfer * torch.exp(-2 * math.pi**2 * sigma * sigma * k2)
        if self.mtf_q0 is not None:
            q = k2.sqrt() / 0.5  # in Nyquist units
            q0 = uniform(*self.mtf_q0)
            transfer = transfer * ((1 - self.mtf_c) / (1 + (q / q0) ** 2) + self.mtf_c)
        return torch.fft.irfft2(torch.fft.rfft2(x) * transfer, s=(h, w))
