"""Augmentation on the training device, per sample and batched.

A particle has no preferred orientation in the image plane, so every cut-out is sent through a
random element of the square's symmetry group (four rotations by 90 degrees, each with or without a
mirror), which maps the pixel grid onto itself without interpolation. Contrast is scaled and Gaussian
noise added, as the paper did to cover imaging conditions the simulation does not vary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random changes; ``none()`` switches them all off."""

    dihedral: bool = True  # random rotation by k * 90 degrees and mirror
    contrast: tuple[float, float] = (0.8, 1.25)  # factor on the standardised intensity
    noise_sigma: tuple[float, float] = (0.0, 0.3)  # Gaussian noise, standard deviation in particle std units

    @classmethod
    def none(cls) -> Augmentation:
        return cls(dihedral=False, contrast=(1.0, 1.0), noise_sigma=(0.0, 0.0))

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
        if self.contrast != (1.0, 1.0):
            x = x * uniform(*self.contrast)
        if self.noise_sigma[1] > 0:
            sigma = uniform(*self.noise_sigma)
            x = x + sigma * torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype)
        return x
