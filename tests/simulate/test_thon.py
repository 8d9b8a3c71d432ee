"""Thon rings: synthetic rings of a known defocus are recovered; the real amorphous-carbon images fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datagen.simulate.detector import apply_detector
from datagen.simulate.imaging import form_images
from datagen.simulate.params import Detector, Optics
from datagen.simulate.thon import fit_thon_rings, match_minima, read_raw_image
from tests.conftest import SHARED_DATA

DATA = SHARED_DATA / "amorphous_carbon_thon_rings"
PIXEL_NM = 0.135355


def synthetic_thon_image(defocus_nm, astig_x_nm, astig_y_nm, seed=0, size=512):
    """A thin amorphous phase object (white phase noise, 0.05 rad RMS) through our CTF at 300 kV with
    a 4 nm focal spread, recorded at the real images' pixel size with Poisson noise at 500 e-/Å²."""
    rng = np.random.default_rng(seed)
    wave = torch.as_tensor(np.exp(0.05j * rng.standard_normal((size, size))))[None, None]
    optics = Optics(defocus_nm=defocus_nm, astig_x_nm=astig_x_nm, astig_y_nm=astig_y_nm, focal_spread_nm=4.0,
                    temporal_model="envelope")
    image = form_images(wave, (10 * PIXEL_NM, 10 * PIXEL_NM), [optics])
    return apply_detector(image, 10 * PIXEL_NM, Detector(pixel_size_nm=PIXEL_NM, dose_e_per_A2=500.0), rng)[0]


@pytest.mark.parametrize("defocus_nm, astig_x_nm, astig_y_nm", [(-350.0, 8.0, -5.0), (-800.0, 0.0, 0.0),
                                                                (-150.0, 3.0, 3.0)])
def test_recovers_a_known_defocus_and_astigmatism(defocus_nm, astig_x_nm, astig_y_nm):
    fit = fit_thon_rings(synthetic_thon_image(defocus_nm, astig_x_nm, astig_y_nm), PIXEL_NM)
    assert fit.defocus_nm == pytest.approx(defocus_nm, rel=0.02)
    assert abs(fit.astig_x_nm - astig_x_nm) < 2.0 and abs(fit.astig_y_nm - astig_y_nm) < 2.0
    assert fit.n_matched == len(fit.predicted_minima) >= 3
    assert fit.rms_minima_nm < 0.02  # [1/nm]; the profile is sampled every 0.0072 1/nm


def test_overfocus_sign_is_taken_from_the_caller():
    fit = fit_thon_rings(synthetic_thon_image(-350.0, 0.0, 0.0), PIXEL_NM, defocus_sign=+1)
    assert fit.defocus_nm == pytest.approx(350.0, rel=0.02)


@pytest.mark.skipif(not DATA.exists(), reason=f"real Thon-ring data not found at {DATA}")
def test_real_amorphous_carbon_image_fits_about_475_nm_underfocus():
    """img_1.raw: 0.135355 nm/px, about 475 nm underfocus; 300 kV assumed (the MTF file's voltage)."""
    fit = fit_thon_rings(read_raw_image(DATA / "img_1.raw"), PIXEL_NM, voltage_kv=300.0)
    assert fit.defocus_nm == pytest.approx(-475.0, abs=15.0)
    assert np.hypot(fit.astig_x_nm, fit.astig_y_nm) < 20.0
    assert fit.n_matched >= 9
    assert fit.rms_minima_nm < 0.015  # [1/nm], about 10 % of the ring spacing at Nyquist


def test_match_minima_pairs_nearest_within_tolerance():
    predicted = np.array([1.0, 1.4, 1.7, 1.95])
    measured = np.array([0.7, 1.02, 1.38, 1.84, 1.96])
    np.testing.assert_allclose(match_minima(predicted, measured), [[1.0, 1.02], [1.4, 1.38], [1.95, 1.96]])


def test_invalid_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="defocus_sign"):
        fit_thon_rings(np.ones((64, 64)), PIXEL_NM, defocus_sign=0)
    with pytest.raises(ValueError, match="pixel_nm"):
        fit_thon_rings(np.random.default_rng(0).random((64, 64)), -1.0)
    (tmp_path / "short.raw").write_bytes(b"\0" * 10)
    with pytest.raises(ValueError, match="short.raw"):
        read_raw_image(tmp_path / "short.raw")
