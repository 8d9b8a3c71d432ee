"""Lattice visibility: the peak ratio of fringes in the lattice band against speckle, on analytic images and
on simulated Au particles on and off a zone axis; the visibility's amorphous reference; its bins."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms
from ase.cluster import Octahedron
from scipy.spatial.transform import Rotation

from datagen.generators.mask import particle_mask
from datagen.simulate.backends import get_backend
from datagen.simulate.params import Optics, SimulationSettings
from datagen.structures.lattice import crystal_lattice
from datagen.structures.particles import build_particle
from datagen.visibility import (MIN_REFERENCE, bin_index, bin_names, lattice_band, lattice_peak_ratio, peak_ratios,
                                visibility)

PIXEL_NM = 0.025


def disk(n: int, radius_px: float) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    return (yy ** 2 + xx ** 2 <= radius_px ** 2).astype(np.uint8)


def test_band_holds_the_three_largest_spacings_of_gold():
    lo, hi = lattice_band("Au")
    d = [d_ for _, d_ in crystal_lattice("Au").reflections()[:4]]  # {111} 2.355, {200} 2.04, {220} 1.44 Å
    assert lo < 10 / d[0] and 10 / d[2] < hi  # [1/nm]
    assert hi < 10 / d[3]  # {311} (1.23 Å) lies outside
    with pytest.raises(ValueError):
        lattice_band("C")  # no metal lattice: no band


def test_fringes_in_the_band_stand_out_of_speckle_and_fringes_outside_do_not():
    rng = np.random.default_rng(3)
    n, r = 128, 40  # a 2 nm particle at 0.025 nm per pixel
    mask = disk(n, r)
    yy, xx = np.mgrid[:n, :n] * PIXEL_NM
    speckle = 1 + 0.05 * rng.standard_normal((n, n))
    band = lattice_band("Au")
    d111 = 0.2355  # [nm]
    fringes = 0.05 * np.cos(2 * np.pi * (xx * np.cos(0.4) + yy * np.sin(0.4)) / d111)
    coarse = 0.05 * np.cos(2 * np.pi * xx / 0.6)  # 0.6 nm: no Au reflection
    r_speckle = lattice_peak_ratio(speckle, mask, PIXEL_NM, band)
    r_fringes = lattice_peak_ratio(speckle + fringes, mask, PIXEL_NM, band)
    r_coarse = lattice_peak_ratio(speckle + coarse, mask, PIXEL_NM, band)
    assert r_fringes > 20 * r_speckle
    assert r_coarse < 2 * r_speckle
    # the measure looks at the particle only: fringes outside the mask do not count
    outside = np.where(disk(n, r + 0.5 / PIXEL_NM) > 0, 0.0, fringes)  # beyond the window's grown edge
    assert lattice_peak_ratio(speckle + outside, mask, PIXEL_NM, band) < 3 * r_speckle
    assert math.isnan(lattice_peak_ratio(speckle, np.zeros_like(mask), PIXEL_NM, band))
    assert math.isnan(lattice_peak_ratio(speckle, mask, 0.2, band))  # Nyquist 2.5/nm: the band is not sampled


def _placed(p: Atoms, side_A: float, beam_direction=None) -> Atoms:
    """``p`` centred in a (side, side, 32) Å cell at a height of 16 Å (the same distance to the exit
    plane, hence the same effective defocus, in every cell), its crystal direction ``beam_direction``
    turned onto the beam (z)."""
    pos = p.positions - p.positions.mean(0)
    if beam_direction is not None:
        u = np.asarray(beam_direction, float) / np.linalg.norm(beam_direction)
        pos = Rotation.align_vectors([[0, 0, 1]], [u])[0].apply(pos)
    out = Atoms(p.numbers, positions=pos + [side_A / 2, side_A / 2, 16.0])
    out.cell, out.pbc = (side_A, side_A, 32.0), True
    return out


#: A direction at least 9.5° from putting any {111}, {200} or {220} plane edge-on (found by a search).
OFF_AXIS = [-0.41832964, 0.89128639, 0.17495391]
DEFOCI_NM = (-4.0, -2.0, 3.0)


def test_a_simulated_particle_on_a_zone_axis_shows_its_lattice_and_an_amorphous_one_does_not():
    """Truncated Au octahedra of 1.5 nm (116 atoms) and 2.7 nm (586) on the [110] zone axis (the {111} and
    {200} planes edge-on) and off every low-index zone, and random packings of as many Au atoms, through
    a focal series. A plane tilted by θ from edge-on still diffracts while θ < d/t (the excitation
    error against the crystal's thickness t): off the zone axis the thin crystal keeps its fringes and the
    thick one loses most of them. Amorphous particles stay at the speckle level."""
    normals = [np.array(v) / np.linalg.norm(v) for v in ([1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1], [1, 0, 0],
                                                          [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, -1, 0], [1, 0, 1],
                                                          [1, 0, -1], [0, 1, 1], [0, 1, -1])]
    assert min(abs(np.dot(OFF_AXIS, g)) for g in normals) > math.sin(math.radians(9.5))
    settings = SimulationSettings(sampling_A=0.2, slice_thickness_A=2.0, device="cpu")
    side = 40.0
    best = {}  # the strongest ratio over the focal series: on axis, off axis, amorphous
    for name, crystal in (("thin", Octahedron("Au", 6, cutoff=2)), ("thick", Octahedron("Au", 10, cutoff=3))):
        crystal = Atoms(crystal.numbers, positions=crystal.positions)
        d_A = 2 * (len(crystal) / 0.059 * 3 / 4 / np.pi) ** (1 / 3)  # equivalent sphere at bulk density
        three = [_placed(crystal, side, [1, 1, 0]), _placed(crystal, side, OFF_AXIS),
                 _placed(build_particle("amorphous", "Au", d_A, np.random.default_rng(1)), side)]
        models = three * len(DEFOCI_NM)
        optics = [Optics(defocus_nm=df) for df in DEFOCI_NM for _ in three]
        images, sampling = get_backend().simulate(models, optics, settings)
        images = np.asarray(images)
        masks = np.stack([particle_mask(m.positions[:, :2], m.numbers, images.shape[1:], sampling) for m in models])
        ratios = peak_ratios(images, masks, sampling[0] / 10, "Au").reshape(len(DEFOCI_NM), 3)
        assert (ratios[:, 2] < 40).all()  # speckle: the largest of a few hundred exponential values over their median
        assert (ratios[:, :2].min(axis=1) > 5 * ratios[:, 2]).all()  # every crystal image shows fringes somewhere
        best[name] = ratios.max(axis=0)
    assert best["thin"][0] / best["thin"][1] < 2  # thin: off the zone axis about as strong as on it
    assert best["thick"][0] / best["thick"][1] > 5  # thick: an order of magnitude weaker off the zone axis


def test_visibility_is_the_ratio_over_the_amorphous_quantile_of_that_size():
    rng = np.random.default_rng(0)
    ref_d = rng.uniform(1, 3, 400)
    ref_r = np.where(ref_d < 2, 20.0, 60.0) * rng.uniform(0.5, 1.0, 400)  # larger particles: more speckle
    v = visibility(np.array([40.0, 40.0, np.nan]), np.array([1.5, 2.5, 2.0]), ref_r, ref_d)
    q_small = np.quantile(ref_r[np.abs(ref_d - 1.5) <= 0.25], 0.99)
    q_large = np.quantile(ref_r[np.abs(ref_d - 2.5) <= 0.25], 0.99)
    assert v[0] == pytest.approx(40 / q_small) and v[0] > 1
    assert v[1] == pytest.approx(40 / q_large) and v[1] < 1
    assert math.isnan(v[2])
    # far from every reference diameter the nearest MIN_REFERENCE particles are the reference
    far = visibility(np.array([40.0]), np.array([5.0]), ref_r, ref_d)
    nearest = np.argsort(np.abs(ref_d - 5.0))[:MIN_REFERENCE]
    assert far[0] == pytest.approx(40 / np.quantile(ref_r[nearest], 0.99))
    with pytest.raises(ValueError, match=f"at least {MIN_REFERENCE} amorphous"):
        visibility(np.array([1.0]), np.array([2.0]), ref_r[:MIN_REFERENCE - 1], ref_d[:MIN_REFERENCE - 1])


def test_bins():
    assert bin_names() == ["<1", "1-3", "3-10", ">=10"]
    assert bin_index([0.2, 1.0, 2.99, 3.0, 50.0, np.nan]).tolist() == [0, 1, 1, 2, 3, -1]


def test_each_film_is_judged_against_amorphous_particles_on_the_same_film():
    rng = np.random.default_rng(1)
    n = 200
    ref_d = rng.uniform(1, 3, 2 * n)
    ref_g = np.array(["C"] * n + ["Si"] * n)
    ref_r = np.where(ref_g == "C", 20.0, 60.0) * rng.uniform(0.5, 1.0, 2 * n)  # Si speckles more
    ratios, diameters, films = np.array([40.0, 40.0]), np.array([2.0, 2.0]), np.array(["C", "Si"])
    v = visibility(ratios, diameters, ref_r, ref_d, films, ref_g)
    assert v[0] > 1 > v[1]
    for k, film in enumerate(films):
        own = (ref_g == film) & (np.abs(ref_d - 2.0) <= 0.25)
        assert v[k] == pytest.approx(40 / np.quantile(ref_r[own], 0.99))
    # a film with too few amorphous particles of its own is judged against them all
    few = visibility(ratios[:1], diameters[:1], ref_r, ref_d, np.array(["Ge"]), ref_g)
    pooled = visibility(ratios[:1], diameters[:1], ref_r, ref_d)
    assert few[0] == pooled[0]
