"""Detector: flux-conserving resampling, MTF (ideal, parametric, the real Merlin table), Poisson statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datagen.simulate.detector import apply_detector, apply_mtf, mtf_values, output_grid, resample
from datagen.simulate.params import MTF, Detector
from tests.conftest import SHARED_DATA

DATA = SHARED_DATA / "amorphous_carbon_thon_rings"
MTF_FILE = DATA / "Merlin-300keV-SPCM100.mtf"


def random_images(shape=(3, 120, 90), seed=0):
    rng = np.random.default_rng(seed)
    return torch.as_tensor(1 + 0.3 * rng.standard_normal(shape), dtype=torch.float32)


def test_output_grid_rounds_the_field_to_whole_pixels():
    assert output_grid((1200, 1200), 0.05, 0.02) == ((300, 300), (0.2, 0.2))
    shape, pixel = output_grid((100, 90), (0.1, 0.1), 0.03)
    assert shape == (33, 30) and pixel == pytest.approx((10 / 33, 0.3))
    with pytest.raises(ValueError, match="pixel_size_nm"):
        output_grid((8, 8), 0.1, 0.0)
    with pytest.raises(ValueError, match="sampling_A"):
        output_grid((8, 8), (0.1, -1.0), 0.02)


@pytest.mark.parametrize("shape_out", [(30, 45), (31, 17), (120, 90), (240, 181)])
def test_resampling_conserves_flux(device, shape_out):
    images = random_images().to(device)
    out = resample(images, shape_out)
    assert out.shape == (3, *shape_out) and out.device.type == device
    torch.testing.assert_close(out.mean(dim=(-2, -1)), images.mean(dim=(-2, -1)), rtol=1e-5, atol=1e-6)
    vacuum = resample(torch.ones((1, 120, 90), device=device), shape_out)
    torch.testing.assert_close(vacuum, torch.ones_like(vacuum))


def test_resampling_keeps_a_band_limited_signal():
    y, x = np.indices((120, 90))
    wave = 1 + 0.4 * np.cos(2 * np.pi * (3 * x / 90 + 2 * y / 120))  # 3 and 2 periods per field
    out = resample(torch.as_tensor(wave[None]), (40, 30))[0].numpy()
    y, x = np.indices((40, 30))
    np.testing.assert_allclose(out, 1 + 0.4 * np.cos(2 * np.pi * (3 * x / 30 + 2 * y / 40)), atol=1e-12)


def test_ideal_mtf_is_the_identity():
    images = random_images()
    assert apply_mtf(images, MTF()) is images
    out = apply_detector(images, 0.2, Detector(pixel_size_nm=0.02), rng=None)
    np.testing.assert_array_equal(out, images.numpy())


def test_parametric_mtf():
    mtf = MTF(q0=0.5, c=0.1)
    np.testing.assert_allclose(mtf_values(mtf, [0.0, 0.5, 1.0]), [1.0, 0.55, 0.9 / 5 + 0.1])


@pytest.mark.skipif(not MTF_FILE.exists(), reason=f"real MTF file not found at {MTF_FILE}")
@pytest.mark.parametrize("period, index", [(2, 128), (4, 64)])  # q = 1 (Nyquist) and q = 0.5
def test_tabulated_mtf_from_the_real_file_attenuates_as_tabulated(period, index):
    mtf = MTF.from_file(MTF_FILE)
    assert len(mtf.table) == 129 and mtf.table[0] == 1.0
    x = np.arange(64)
    pattern = 1 + 0.5 * np.cos(2 * np.pi * x / period)[None, :] * np.ones((32, 1))
    out = apply_detector(pattern[None], 0.5, Detector(pixel_size_nm=0.05, mtf=mtf), rng=None)[0]
    np.testing.assert_allclose(out, 1 + 0.5 * mtf.table[index] * (pattern - 1) / 0.5, atol=1e-5)
    if period == 2:
        assert mtf.table[index] == pytest.approx(0.1051)


def test_poisson_noise_statistics():
    dose, pixel_nm = 50.0, 0.02  # 50 e-/Å² on (0.2 Å)² pixels: 2 electrons per vacuum pixel
    image = np.full((4, 256, 256), 1.0)
    image[:, :, 128:] = 0.5
    noisy = apply_detector(image, 0.2, Detector(pixel_size_nm=pixel_nm, dose_e_per_A2=dose),
                           rng=np.random.default_rng(3))
    assert noisy.dtype == np.float32
    counts_per_unit = dose * (10 * pixel_nm) ** 2
    for half, mean in ((noisy[..., :128], 1.0), (noisy[..., 128:], 0.5)):
        assert half.mean() == pytest.approx(mean, rel=0.01)
        assert half.var() == pytest.approx(mean / counts_per_unit, rel=0.02)
    again = apply_detector(image, 0.2, Detector(pixel_size_nm=pixel_nm, dose_e_per_A2=dose),
                           rng=np.random.default_rng(3))
    np.testing.assert_array_equal(noisy, again)


def test_detector_chain_downsamples_then_counts():
    images = random_images((2, 400, 400))
    det = Detector(pixel_size_nm=0.02, dose_e_per_A2=1e4, mtf=MTF(q0=0.7, c=0.05))
    out = apply_detector(images, 0.05, det, rng=np.random.default_rng(0))
    assert out.shape == (2, 100, 100)
    assert out.mean() == pytest.approx(images.mean().item(), rel=1e-2)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="images"):
        apply_detector(np.ones((8, 8)), 0.1, Detector(), rng=None)
    with pytest.raises(ValueError, match="rng"):
        apply_detector(np.ones((1, 8, 8)), 0.1, Detector(dose_e_per_A2=10.0), rng=None)
    with pytest.raises(ValueError, match="detector"):
        apply_detector(np.ones((1, 8, 8)), 0.1, "merlin", rng=None)
