"""Masks are projected atomic footprints; the cut-out keeps the particle and removes the support around it."""

from __future__ import annotations

import numpy as np
import pytest
from ase.cluster import Icosahedron

from datagen.cutout import cutout
from datagen.generators.mask import particle_mask


def test_footprint_of_a_particle_is_its_projected_disk():
    ico = Icosahedron("Au", 5)  # 309 atoms
    pos = ico.positions - ico.positions.mean(0) + [30, 20, 0]
    mask = particle_mask(pos[:, :2], ico.numbers, (120, 120), (0.5, 0.5))
    r_proj = np.hypot(pos[:, 0] - 30, pos[:, 1] - 20).max() + 1.36  # outermost atom + covalent radius
    area = mask.sum() * 0.25
    assert np.pi * (r_proj - 2.0) ** 2 < area <= np.pi * (r_proj + 0.5) ** 2
    ys, xs = np.nonzero(mask)
    assert xs.mean() * 0.5 == pytest.approx(30, abs=0.3) and ys.mean() * 0.5 == pytest.approx(20, abs=0.3)
    # holes between atoms are filled
    from scipy.ndimage import binary_fill_holes

    np.testing.assert_array_equal(binary_fill_holes(mask), mask.astype(bool))


def test_empty_footprint():
    assert particle_mask(np.zeros((0, 2)), np.zeros(0, int), (8, 8), (1, 1)).sum() == 0


def test_cutout_keeps_the_particle_and_blanks_the_support():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:100, 0:100]
    mask = ((yy - 40) ** 2 + (xx - 60) ** 2 <= 15**2).astype(np.uint8)
    particle = 2 + np.sin(xx / 2.0)
    image = np.where(mask, particle, 0) + 5 * rng.standard_normal((100, 100))  # strong support signal
    out = cutout(image, mask, size=64, margin=0.1)
    assert out.shape == (64, 64) and out.dtype == np.float32
    # outside the particle: exactly the particle's mean (0 after standardising)
    assert np.abs(out[:3, :3]).max() < 1e-6 and np.abs(out[-3:, -3:]).max() < 1e-6
    # inside: standardised particle pixels
    centre = out[24:40, 24:40]
    assert centre.std() > 0.5
    # the same particle on a different support gives the same cut-out around it
    other = np.where(mask, particle, 0) + 5 * rng.standard_normal((100, 100))
    inside_same = np.where(mask, image, 0)
    np.testing.assert_allclose(cutout(inside_same, mask, 64), cutout(np.where(mask, image, 7.0), mask, 64), atol=1e-5)
    assert not np.allclose(cutout(other, mask, 64), out)


def test_cutout_near_the_border_and_errors():
    mask = np.zeros((50, 50), np.uint8)
    mask[0:10, 40:50] = 1
    out = cutout(np.random.default_rng(1).random((50, 50)), mask, size=32)
    assert out.shape == (32, 32) and np.isfinite(out).all()
    with pytest.raises(ValueError, match="mask is empty"):
        cutout(np.zeros((8, 8)), np.zeros((8, 8)), 16)
    with pytest.raises(ValueError, match="same shape|one shape"):
        cutout(np.zeros((8, 8)), np.zeros((9, 8)), 16)
