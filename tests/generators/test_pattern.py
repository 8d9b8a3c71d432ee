"""The pattern baseline: labels, masks and provenance agree with the images drawn."""

from __future__ import annotations

import numpy as np
import pytest

from datagen.generators.pattern import pattern_sample
from datagen.plan import make_plan
from datagen.recipe import PatternParams, parse_recipe

PARAMS = PatternParams(image_size=128, diameter_px=(70, 90), background_noise=(0.0, 0.0))


def test_mask_is_the_recorded_disk():
    _, mask, prov = pattern_sample("amorphous", PARAMS, np.random.default_rng(1))
    r = prov["diameter_px"] / 2
    assert abs(mask.sum() - np.pi * r**2) < 2 * np.pi * r  # within one pixel ring
    yy, xx = np.nonzero(mask)
    assert abs(yy.mean() - prov["center_y_px"]) < 0.5 and abs(xx.mean() - prov["center_x_px"]) < 0.5


def test_monocrystal_spectrum_peaks_at_recorded_frequency_and_angles():
    params = PatternParams(image_size=128, diameter_px=(120, 120), frequency=(0.6, 0.6),
                           background_noise=(0.0, 0.0))
    image, mask, prov = pattern_sample("monocrystalline", params, np.random.default_rng(3))
    assert prov["n_domains"] == 1 and np.isnan(prov["wave_angle"][1:]).all()
    spec = np.abs(np.fft.fft2((image - 1) * mask))
    spec[0, 0] = 0
    ky, kx = np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128), indexing="ij")
    peak = np.unravel_index(np.argmax(spec), spec.shape)
    k_peak = 2 * np.pi * np.hypot(ky[peak], kx[peak])
    assert k_peak == pytest.approx(0.6, abs=2 * np.pi / 128)
    angle = np.arctan2(ky[peak], kx[peak]) % np.pi
    expected = prov["wave_angle"][0] % np.pi
    diffs = [min(abs(angle - e), np.pi - abs(angle - e)) for e in expected]
    assert min(diffs) < 0.1


def test_classes_have_their_structure():
    rng = np.random.default_rng(0)
    for _ in range(20):
        _, _, p = pattern_sample("polycrystalline", PARAMS, rng)
        assert p["n_domains"] in (2, 3)
        assert np.isfinite(p["cut_angle"][: p["n_domains"] - 1]).all()
        assert np.isfinite(p["wave_angle"][: p["n_domains"]]).all()
        _, _, a = pattern_sample("amorphous", PARAMS, rng)
        assert a["n_domains"] == 0 and np.isnan(a["frequency"]) and a["n_dots"] > 0
    with pytest.raises(ValueError, match="label must be one of"):
        pattern_sample("glassy", PARAMS, rng)


def test_same_seed_same_image_other_seed_other_image():
    a = pattern_sample("monocrystalline", PARAMS, np.random.default_rng([5, 1]))[0]
    b = pattern_sample("monocrystalline", PARAMS, np.random.default_rng([5, 1]))[0]
    c = pattern_sample("monocrystalline", PARAMS, np.random.default_rng([5, 2]))[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_plan_is_stratified_and_deterministic(tiny_dict):
    recipe = parse_recipe({**tiny_dict, "classes": {"amorphous": 100, "monocrystalline": 50, "polycrystalline": 10}})
    plan = make_plan(recipe)
    assert np.bincount(plan.labels).tolist() == [100, 50, 10]
    for label, n in [(0, 100), (1, 50), (2, 10)]:
        splits = plan.splits[plan.labels == label].tolist()
        assert splits.count("train") == round(0.6 * n) and splits.count("val") == round(0.2 * n)
    again = make_plan(recipe)
    np.testing.assert_array_equal(plan.labels, again.labels)
    assert plan.splits.tolist() == again.splits.tolist()
